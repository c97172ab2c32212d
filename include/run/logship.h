/* SPDX-License-Identifier: Apache-2.0 */
/* logship.h — a background thread that ships growing logs (only the new bytes, as numbered chunks), status.json
 * and the running experiment's checkpoint changes while it runs, so a slow S3 never blocks the experiment. */
#pragma once
#include <pthread.h>

#include "aws/aws.h"
#include "run/runner.h"

struct logstream {
        char *path;
        char *name;               /* "train/stdout" → live/train/stdout.<offset> */
        uint64_t shipped;
        double last;
};

struct shipper {
        struct aws_ctx *c;
        char bucket[64];
        char prefix[1200];        /* key prefix of the run: "results/name/run-id/" */
        long interval;
        pthread_t th;
        bool running;
        pthread_mutex_t lock;
        pthread_cond_t cond;      /* on CLOCK_MONOTONIC */
        bool stop;
        struct logstream *streams; /* any number: two per experiment, metrics */
        size_t n, alloc;
        char *status_json;        /* pending status.json, NULL when shipped */
        bool status_shared;       /* a run shared by instances: status.json never over the final one (the ender's) */
        bool status_closed;       /* ... and the run is over: no more status.json from here */
        /* checkpoints: <ckpt_base>/<experiment>/ in the workdir → checkpoint/<experiment>/ */
        char ckpt_base[4096];     /* relative to the workdir; "" = none */
        const struct run_user *ckpt_user;
        int ckpt_rootfd;          /* the workdir */
        long ckpt_interval;
        double ckpt_last;
        time_t *ckpt_since;       /* per experiment: files changed since then are synced */
        size_t ckpt_n;
        int ckpt_current;         /* the experiment synced every ckpt_interval, -1 = none */
        char ckpt_name[80];
        char refusal[700];        /* the first checkpoint path refused (a link out of the workdir) */
        unsigned long chunks, failures;
        char last_error[512];
};

int shipper_init(struct shipper *s, struct aws_ctx *c, const char *bucket, const char *prefix, long interval);
int shipper_start(struct shipper *s);
/* Stops the thread (the final upload is then done by the caller with shipper_flush). */
void shipper_stop(struct shipper *s);
void shipper_free(struct shipper *s);
/* A log to ship as it grows (again after a restart: its offset is kept). */
int shipper_add_stream(struct shipper *s, const char *path, const char *name);
void shipper_set_status(struct shipper *s, const char *json);
/* status.json now (the periodic one goes through shipper_set_status). Shared (shipper_share_status): only while
 * the run's ledger has no end record, and never over a status written meanwhile by another instance. */
int shipper_put_status(struct shipper *s, const char *json, struct aws_result *out);
void shipper_share_status(struct shipper *s);
/* The live chunks of stream name (live/<name>.<offset>) that go on from where the log at path ends, appended to it
 * in order: what an instance shipped of a log before it vanished without shipping the whole log. ret_added: the
 * bytes appended. 0 or -errno. */
int shipper_restore_tail(struct shipper *s, const char *path, const char *name, uint64_t *ret_added,
                         struct aws_result *out);
/* Checkpoints live in base/<experiment> of the workdir rootfd, n experiments, read as the run user u. */
int shipper_set_checkpoint(struct shipper *s, const struct run_user *u, int rootfd, const char *base, size_t n,
                           long interval);
/* The experiment (index, name) whose checkpoint is synced every interval from now on; -1: none. */
void shipper_checkpoint_current(struct shipper *s, int idx, const char *name);
/* Synchronous: upload experiment idx's checkpoint files changed since its last sync. */
int shipper_sync_checkpoint(struct shipper *s, int idx, const char *name, struct aws_result *out);
/* The first checkpoint path refused so far, into dst; false when there was none. */
bool shipper_refusal(struct shipper *s, char *dst, size_t n);
/* Synchronous: ship every stream's remaining bytes and the pending status now. */
int shipper_flush(struct shipper *s, struct aws_result *out);
/* Upload one local file as prefix+rel (final logs, metrics). */
int shipper_put_file(struct shipper *s, const char *path, const char *rel, struct aws_result *out);
int shipper_put_text(struct shipper *s, const char *rel, const char *text, const char *ctype, struct aws_result *out);
