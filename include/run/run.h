/* run.h — `mayfly run`: the lifecycle FETCH → PREPARE → RUN each experiment → SHIP → EXIT as one state
 * machine, persisted so a restarted agent resumes. */
#pragma once
#include "aws/aws.h"
#include "run/envact.h"
#include "run/gpu.h"
#include "run/job.h"
#include "run/logship.h"
#include "run/runner.h"
#include "run/runstate.h"
#include "run/watch.h"
#include "run/wrapup.h"

struct instance_info {
        char id[64], type[64], region[64], az[64], ami[64], lifecycle[32];
};

struct run {
        struct job job;
        char job_path[4096];
        char state_dir[2048], logs_dir[2048], cache_dir[2048];
        char state_path[2200];
        char workdir[4096];
        struct run_state st;
        struct aws_ctx c;
        struct instance_info inst;
        char bucket[64];
        char prefix[1200];            /* key prefix of this run: "<results prefix><name>/<run-id>/" */
        char results_uri[1400];       /* s3://bucket/prefix */
        struct shipper ship;
        bool ship_ready;
        struct watcher watch;
        struct run_user user;
        struct envact_plan env;
        struct gpu *gpu;
        struct gpu_state gpu_inv;
        bool have_gpu_inv;
        int sfd;                      /* signalfd */
        bool stop_requested;          /* SIGTERM/SIGINT: stop, keep state, resume later */
        bool spot_interrupted;
        bool rebalance_seen;
        int metrics_fd;
        char metrics_path[2200];
        double last_watchdog;
        long watchdog_usec;
        bool worker_abandoned;        /* a ship worker outlived ship_timeout */
        struct wrapup wrap;           /* cost ledger, report.html, notification (integration hook, wrapup.h) */
};

int cmd_run(int argc, char **argv);
int cmd_failsafe(int argc, char **argv);
/* Shared by run.c (lifecycle), supervise.c (RUN phase) and failsafe.c. */
void run_notify_status(const char *fmt, const char *arg);
void run_watchdog(struct run *R);                 /* WATCHDOG=1 at half the interval */
void run_first_dir(char *dst, size_t n, const char *env, const char *def);
void run_save_state(struct run *R);
void run_push_status(struct run *R);              /* status.json to the shipper */
void run_set_phase(struct run *R, enum phase p);
void run_drain_signals(struct run *R);
/* fn(R, arg) on a worker thread while this thread keeps the watchdog fed. */
int run_blocking(struct run *R, int (*fn)(struct run *, void *), void *arg);
/* The same with a deadline (monotonic seconds): past it the worker is abandoned and -ETIMEDOUT returned. */
int run_blocking_until(struct run *R, int (*fn)(struct run *, void *), void *arg, double deadline);
/* After a worker was abandoned at its deadline: flush and _exit(rc) (no exit handlers under the running thread).
 * Returns when none was. */
void run_exit_if_abandoned(struct run *R, int rc);
void run_load_instance(struct run *R);
int run_setup_results(struct run *R, const char *results, const char *name);
void run_new_run_id(struct run *R);
int run_do_exit_action(struct run *R, enum exit_action a);
int run_fail_run(struct run *R, int rc, const char *msg);
int run_read_job(struct run *R, char **ret_text, size_t *ret_len, char *err, size_t errlen);
int run_setup_signals(struct run *R);
int run_phase_run(struct run *R);                 /* supervise.c */

/* status.json of the run as it stands. */
int status_build(const struct run *R, char **ret);
