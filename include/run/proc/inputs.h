/* SPDX-License-Identifier: Apache-2.0 */
/* inputs.h — the job's inputs (job.h: struct job_input) staged from S3 before the experiment starts.
 *
 * As the run user, beneath its tree (the workdir or the scratch directory: exptree.h's rule): the objects under the
 * input's prefix (or its one object) are listed and downloaded through the parallel transfer engine (ranged GETs
 * for big objects, many small ones at once), each checked against the CRC32 S3 holds, else its size and its MD5
 * ETag where it has one. A key that would land outside the input's directory fails the staging, naming it. What was
 * staged is kept in a manifest (manifest.h) the agent writes in its own state directory: the next start on the same
 * disk lists the prefix again (no HEADs) and downloads only the objects S3 changed and the files that were changed
 * or removed here; files it staged that S3 no longer holds are removed, unless changed here. */
#pragma once
#include <stdatomic.h>

#include "aws/transfer.h"
#include "run/base/job.h"
#include "run/proc/runner.h"

/* What status.json shows while inputs are staged (read from other threads). */
struct stage_progress {
        struct xfer_progress *bytes;       /* bytes downloaded and to download (a counter: xfer_progress_new(0, -1)) */
        _Atomic uint64_t objects_done, objects_total;   /* to download */
        _Atomic int input;                 /* the input staged now (its index), -1: none */
        _Atomic bool cancel;               /* set by the driver on a stop: no further object is begun */
};

/* A new input begins: its counters from zero (the bytes' counter made on first use). 0 or -ENOMEM. */
int stage_progress_reset(struct stage_progress *pg, int input);
/* Staging over: the counters freed, input -1. */
void stage_progress_end(struct stage_progress *pg);
/* status.json's "staging" for the input staged now (name, and which of n it is): objects and bytes done and to
 * do, the rate, the ETA; NULL when nothing is staged. */
struct cJSON *stage_progress_json(const struct stage_progress *pg, const char *name, int n);

struct stage_stats {
        size_t listed;                     /* objects S3 holds for the input */
        size_t fetched, kept, removed;     /* downloaded, found as staged, removed (no longer in S3) */
        uint64_t bytes;                    /* downloaded */
        bool skipped;                      /* "sync": false and staged before: not looked at */
};

/* Stages input in beneath rootfd (the tree at root_path) as u; the manifest at manifest_path (the agent's). On
 * failure -errno with err saying why in one line ("input NAME: ..."). */
int inputs_stage(struct aws_ctx *c, const struct job_input *in, const struct run_user *u, int rootfd,
                 const char *root_path, const char *manifest_path, struct stage_progress *pg, struct stage_stats *st,
                 char *err, size_t errlen);
