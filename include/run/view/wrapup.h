/* SPDX-License-Identifier: Apache-2.0 */
/* wrapup.h — what the lifecycle hands the user: the cost ledger kept up to date, report.html next to status.json
 * (rendered in the background at each status change, and synchronously with the final status) and the end-of-run
 * notification. The glue between struct run and the pure cost, report and notify modules: the lifecycle calls
 * these at a few sites marked "integration hook", so that they can move with it. */
#pragma once
#include <pthread.h>
#include <stdbool.h>

#include "aws/aws.h"
#include "run/view/cost.h"
#include "run/base/job.h"
#include "run/base/runstate.h"
#include "run/view/status.h"
#include "run/base/wait.h"

#define REPORT_KEY "report.html"
#define REPORT_MIN_INTERVAL 5            /* seconds between two background uploads of report.html */
#define REPORT_UPLOAD_TIMEOUT_MS 30000   /* each attempt */
#define COST_LOOKUP_TIMEOUT_MS 5000      /* each attempt; two attempts */
#define WRAPUP_STOP_WAIT_S 5             /* how long the agent's exit waits for a report.html upload */

struct cJSON;

/* What of the run the wrapup reads (the driver's, alive as long as the wrapup). */
struct wrapup_run {
        struct aws_ctx *c;                /* NULL: no results location, nothing is done */
        const char *bucket, *prefix;      /* the run's prefix in S3 */
        const char *logs_dir, *state_dir;
        const char *metrics_path;         /* NULL: none */
        const struct instance_info *inst;
        const struct job *job;
        const struct run_state *st;
        struct waiter *w;                 /* the bounded notification waits here */
};

struct wrapup {
        struct wrapup_run r;
        /* The cost ledger: NULL until the first refresh loads it from the state directory. Written only by the
         * lifecycle's own thread or the worker it waits for (run_blocking), like the rest of struct run. */
        struct cost_ledger *cost;
        /* the background publisher of report.html */
        pthread_t th;
        bool running;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        char *pending;                   /* the status.json to render next, NULL when none */
        double last_put;                 /* monotonic */
        bool final;                      /* the final page is up: nothing older may replace it */
        bool shared_over;                /* a shared run's end record exists: the live pages stop (under lock) */
        struct aws_ctx *c;
        char bucket[64], prefix[1200], logs_dir[2048], instance[64];
        unsigned long published, failures;
};

void wrapup_init(struct wrapup *w, const struct wrapup_run *r);
/* A new status.json went to the shipper: render report.html from it and upload it, off the lifecycle's thread
 * (at most every REPORT_MIN_INTERVAL seconds; the newest status wins). */
void wrapup_status_changed(struct wrapup *w, const char *status_json);
/* The instance's time and price into the ledger ($STATE_DIRECTORY/cost.json). Network (IMDS, EC2, the Price List
 * API), bounded: run it where blocking is allowed (waiter_blocking; arg is the wrapup). Always 0: an unknown
 * price is not a failure. */
int wrapup_cost_refresh(void *arg);
/* status.json's "cost" object (NULL before the first refresh). */
struct cJSON *wrapup_cost_json(const struct wrapup *w);
/* This instance's entry of it (for its record in the run's ledger), NULL when none. */
struct cJSON *wrapup_cost_current(const struct wrapup *w);
/* report.html from the final status, with links to the logs and outputs in S3; synchronous. */
int wrapup_final_report(struct wrapup *w, const char *status_json, struct aws_result *out);
/* The job's notification for the final status, once per run (and per interruption), before the exit action;
 * bounded by NOTIFY_DEADLINE_S. Failures are logged, never returned. */
void wrapup_notify(struct wrapup *w, const char *status_json);
/* Stops the publisher (waiting at most WRAPUP_STOP_WAIT_S) and frees the ledger; false when an upload hangs and
 * was left behind (the process should then end with _exit). */
bool wrapup_free(struct wrapup *w);
