/* SPDX-License-Identifier: Apache-2.0 */
/* runctx.h — the run as the driver holds it (struct run), and what its parts share: run.c (the driver: drive,
 * enter, start), phases.c (what each phase does), fleetrun.c (a run shared by instances: claims, commits, the end),
 * exit.c (the exit action). Internal to agent/run/drive/. */
#pragma once
#include <stdbool.h>

#include "aws/aws.h"
#include "run/base/lifecycle.h"
#include "run/base/runstate.h"
#include "run/base/wait.h"
#include "run/fleet/ledger.h"
#include "run/proc/envact.h"
#include "run/proc/expcreds.h"
#include "run/proc/inputs.h"
#include "run/proc/runner.h"
#include "run/proc/supervise.h"
#include "run/ship/ship.h"
#include "run/view/wrapup.h"
#include "run/watch/gpu.h"
#include "run/watch/instance.h"
#include "run/watch/watch.h"

#define SPOT_UPLOAD_MARGIN 30     /* seconds kept for uploads before a spot notice's time */
#define SPOT_MIN_GRACE 3          /* seconds a SIGTERM'd experiment always gets, even out of that margin */
#define EXIT_RETRY 30             /* seconds between attempts at an exit action that failed */
#define STOP_DRIVING (-1)         /* an action's answer: the process ends here (the state says where to go on) */
#define FLEET_WAIT 5              /* seconds between looks at the ledger while waiting for an experiment */
#define FLEET_SHIP_WAIT 120       /* seconds the run's ender gives the others to ship, beyond ttl/3 + stop_grace */

#define RUN_MAX_ATTEMPTS_HERE 64

/* One attempt of an experiment on this instance: where its logs began; once another attempt of the same
 * experiment starts here, how it ended. */
struct attempt_here {
        int exp, attempt;
        int node;                     /* a gang's rank > 0: the attempt's part on that node (its own logs) */
        time_t start;
        uint64_t out_from, err_from;
        bool closed;                  /* the fields below are its own (else the experiment's state is) */
        time_t end;
        int exit_code, signal;
        enum exp_status st;
        enum exp_reason reason;
};

struct run {
        struct job job;
        bool bad_spec;                /* the job could not be parsed: it runs with the defaults to report that */
        char job_path[4096];
        char state_dir[2048], logs_dir[2048], cache_dir[2048];
        char state_path[2200];
        char workdir[4096];
        int workfd;                   /* the workdir, once the run user is known (-1 before) */
        /* the scratch directory ("scratch"): the run user's, on the instance store or the workdir's disk; made at
         * PREPARE (xscratch.h), -1 / "" when the job has none */
        int scratchfd;
        char scratch_dir[2300];
        struct run_state st;
        struct aws_ctx c;
        struct instance_info inst;
        char bucket[64];
        char prefix[1200];            /* key prefix of this run: "<results prefix><name>/<run-id>/" */
        char results_uri[1400];
        struct shipper ship;
        struct shipped_files outputs_done; /* outputs in S3 already: not uploaded again while unchanged */
        bool ship_mask[JOB_MAX_EXPERIMENTS]; /* a shared run: the experiments the final upload ships */
        bool ship_ready;
        struct watcher watch;
        struct run_user user;
        bool user_ok;
        char last_marker[40];         /* the marker of the attempt that ended last: swept again before the next */
        struct envact_plan env;
        struct gpu *gpu;
        struct gpu_state gpu_inv;
        bool have_gpu_inv, gpu_hung;
        struct waiter w;
        int metrics_fd;
        char metrics_path[2200];
        struct exp_run cur;           /* the running experiment */
        int cur_idx;                  /* its index, -1 = none */
        double deadline;              /* max_runtime on the monotonic clock, 0 = none */
        double ship_deadline;         /* SHIP's end (ship_begin + ship_timeout, monotonic), 0 = not begun */
        struct wrapup wrap;           /* cost ledger, report.html, the notification (wrapup.h) */
        /* a run shared by instances (the job names a run_id): the ledger in S3 is the truth */
        bool fleet;
        bool sweep;                   /* experiments claimed in any order (`after` aside): a fleet of several */
        struct ledger ledger;
        bool ledger_ok;
        bool rebalance_seen;
        /* the attempts started on this instance (its record in the ledger lists them, with where their logs begin) */
        struct attempt_here attempts[RUN_MAX_ATTEMPTS_HERE];
        size_t n_attempts;
        bool ended_here;              /* this instance's part is over: its record's last word says so */
        char waiting[200];            /* what the run waits for now (status.json's "waiting"), "" none */
        /* the experiment kept from the instance role (imdsblock.h), and its own credentials (expcreds.h) */
        bool imds_blocked;
        uid_t blocked_uid;
        struct expcreds xcreds;
        char token_path[2300];        /* the credentials' token, readable by the run user alone ("" none) */
        /* the inputs being staged (xinputs.h): status.json's "staging" while it lasts */
        struct stage_progress stage;
        double stage_start;           /* monotonic; 0: not staging */
        int stage_event;              /* a stop or a notice that came while staging, -1: none */
        /* this instance's part in a gang (gangrun.h): its experiment (-1: none), its rank, the members' addresses */
        struct gang_part {
                int exp, rank, nodes, attempt;
                bool ran;                     /* it formed and its part started here */
                bool ckpt_here;               /* this instance was rank 0 of the attempt before (and shipped the
                                               * checkpoint): its directory is the newest; else S3's is restored */
                char ips[JOB_MAX_NODES * 16];
                char master[16];
                struct ledger_stop stop;      /* why the gang broke, in the member's own words (when it wrote them) */
        } gang;
        int rc;                       /* the process's exit code */
};

#define GANG_ENV_N 8
#define GANG_ENV_LEN (JOB_MAX_NODES * 16 + 32)
/* Experiment i's gang variables (MAYFLY_NODE_RANK, MAYFLY_NNODES, MAYFLY_NODE_IPS, MASTER_ADDR, MASTER_PORT,
 * NODE_RANK, WORLD_SIZE, RANK) into env; how many (0: i is not this instance's gang). */
size_t gang_env(const struct run *R, size_t i, char env[GANG_ENV_N][GANG_ENV_LEN]);
/* Where experiment i's logs go: its name, or "<name>/node-<rank>" for a gang's rank > 0 (logs/<that>/ in S3). */
const char *gang_log_name(const struct run *R, size_t i, char *buf, size_t n);
/* This instance's rank in experiment i's gang (0 also when it is no gang's). */
int gang_rank_of(const struct run *R, size_t i);
/* Why this part of a gang stops (an exp_reason name, its exit code and signal), into its held lease or slot now, so
 * that the other members stop too (a failure to write it is logged: the place still expires). */
void gang_say_stop(struct run *R, const char *reason, int exit_code, int sig);

/* The state to state.json (a warning when it cannot be written). */
void save_state(struct run *R);
/* The one seam: fn runs on a worker thread while the driver reads signals and feeds the watchdog (wait.h). */
int io(struct run *R, int (*fn)(struct run *R, void *arg), void *arg);
/* What the ledger told this instance changes its part in the shared run (the role table); saved. */
void role_news(struct run *R, enum fleet_news n);
int build_status(struct run *R, bool final, char **ret);
/* Experiment i's attempt that ran here before takes how it ended as its own (before a new attempt resets it). */
void close_attempt(struct run *R, size_t i);
/* An attempt of experiment i started here, its logs beginning at these offsets (its record says so). */
void note_attempt(struct run *R, size_t i, uint64_t out_from, uint64_t err_from);
/* This instance's record in the ledger brought up to date (beat: written at once, not at the next heartbeat). */
void share_self(struct run *R, bool beat);
/* This instance's part of the run is over: its record's last word, written now (on a worker: it waits on S3). */
int end_here(struct run *R);
/* status.json (and report.html) follow the state. */
void push_status(struct run *R);
/* A failure the run cannot go on from: the first one is the run's error. Returns EV_FAILED. */
enum lc_event failed(struct run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct lc_exp lc_exp_of(const struct exp_state *s);
enum outcome decide_outcome(const struct run *R);
/* The watcher's GPU thread and IMDS polling stopped (one stuck in a query is left behind). */
void stop_watch(struct run *R);
/* The watcher's and the keeper's news: EV_CANCEL once the run is cancelled, EV_SPOT once for a spot notice, else
 * -1 (a lost claim, a run ended elsewhere, GPU idleness and a rebalance recommendation are acted on here). */
int on_watch(struct run *R);
/* The run's cancel record was seen: who cancelled it, saved and said. */
void note_cancel(struct run *R, const char *by);
/* A stop, a spot notice or max_runtime that came meanwhile; -1: none. */
int pending_event(struct run *R);
/* The tree a place of the job is in (the checkpoint directory, an input): the scratch directory's fd for a
 * scratch:… place, else the workdir's (-1: not open); its path in *ret_path (may be NULL). */
int run_tree(const struct run *R, bool scratch, const char **ret_path);
/* The run user and the workdir (create: make the workdir if missing). */
int take_workdir(struct run *R, bool create);
/* Experiment i's attempt a previous agent left running, stopped, and what it started outside its group killed (by
 * its marker, once the run user is known). Whatever survives keeps the next experiment from starting. */
void stop_leftover(struct run *R, size_t i);
