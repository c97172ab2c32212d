/* SPDX-License-Identifier: Apache-2.0 */
/* status.h — status.json: what a user (or `mayfly status`) needs to know about a run, built from its parts. */
#pragma once
#include <stdbool.h>

#include "run/watch/gpu.h"
#include "run/watch/instance.h"
#include "run/base/job.h"
#include "run/fleet/ledger.h"
#include "run/base/runstate.h"

struct cJSON;

struct status_parts {
        const struct job *job;
        const struct run_state *st;
        const struct instance_info *inst;
        const char *results_uri;
        const struct gpu_state *gpu;  /* NULL: no inventory */
        bool gpu_hung;                /* a GPU query has not returned */
        bool final;                   /* the final status, written once everything else is shipped */
        const char *waiting;          /* what the run waits for now (the GPU driver), NULL or "": nothing */
        struct cJSON *cost;           /* the "cost" object (taken: freed by status_build), NULL: none */
        struct cJSON *staging;        /* the inputs being staged ("staging": taken), NULL: none */
        const struct ledger *ledger;  /* a run shared by instances: who ran what, the sweep's progress; NULL: none */
        struct cJSON *records;        /* ... and every instance's record (ledger/instances/<id>.json, this one's
                                       * included): the cost, start and attempts of all of them (taken), NULL none */
};

/* The JSON text (pretty-printed), into *ret (free it). Pure but for the time it is stamped with. The outcome is
 * "running" until the final status (or the exit phase): a reader that sees an outcome can take the run's
 * results as shipped. */
int status_build(const struct status_parts *p, char **ret);
