/* SPDX-License-Identifier: Apache-2.0 */
/* ship.h — the SHIP phase's uploads: everything that exists of the run reaches S3 (status.json is the driver's:
 * it is written last, with the final outcome). */
#pragma once
#include "run/base/job.h"
#include "run/ship/logship.h"
#include "run/proc/runner.h"

/* The outputs in S3 already, as shipped from here: each file's key, size and mtime, so that shipping again (after
 * each experiment, at the end) uploads only what is new or changed. In memory: after an agent restart everything
 * matched is uploaded once more. */
struct shipped_file {
        char *key;
        uint64_t size;
        int64_t mtime_ns;
};
struct shipped_files {
        struct shipped_file *v;
        size_t n, alloc;
};
void shipped_files_free(struct shipped_files *s);

struct ship_plan {
        struct shipper *ship;
        const struct job *job;
        const char *logs_dir;         /* $LOGS_DIRECTORY: <experiment>/stdout.log, stderr.log, agent.log */
        const char *metrics_path;     /* NULL: none */
        const struct run_user *user;  /* the workdir's files are read as this user ... */
        int workfd;                   /* ... beneath this fd; -1: the workdir was never opened, none are shipped */
        bool experiment_logs;         /* each experiment's logs (false: an instance that came to a finished run) */
        struct shipped_files *outputs_done; /* the outputs shipped before: skipped when unchanged (NULL: none) */
        const bool *only;             /* ship_results: per experiment, its logs and checkpoint go (NULL: all) */
        bool no_outputs;              /* ship_results: not the outputs */
        int node_rank;                /* > 0: this instance is that rank of a gang (ledger.h): its experiment's logs
                                       * go to logs/<experiment>/node-<rank>/, its checkpoint and outputs not at all */
        char agent_log_rel[128];      /* the agent log's key in the run ("" = logs/agent.log) */
        char metrics_rel[128];        /* metrics' ("" = metrics.jsonl) */
        char refused[700];            /* out: the first path of the experiment's that was refused, "" if none */
        char refused_what[32];        /* out: "outputs" or "checkpoint" */
};

/* Live log chunks first (so `logs --follow` is complete), then each experiment's whole logs, the outputs, every
 * experiment's checkpoint (its files changed since their last sync), metrics.jsonl and agent.log. 0 when all of it
 * is in S3, else -EIO (each failure logged). */
int ship_results(struct ship_plan *p);
/* One experiment's results, before its done record: its whole logs, the outputs, its checkpoint. 0 or -EIO. */
int ship_experiment(struct ship_plan *p, size_t i);
