/* SPDX-License-Identifier: Apache-2.0 */
/* supervise.h — one experiment's process: started as the run user, its output pumped raw into its logs and line by
 * line into the journal, its own timeout and a stop turned into SIGTERM, then SIGKILL after the grace, its end
 * recorded. It knows nothing of the run: the lifecycle (run.c) decides what a spot notice or SIGTERM means. */
#pragma once
#include <stdbool.h>

#include "run/base/lifecycle.h"
#include "run/proc/runner.h"
#include "run/base/runstate.h"
#include "run/base/wait.h"
#include "run/proc/logwrite.h"
#include "run/proc/sweep.h"

struct exp_run {
        const char *name;
        struct child ch;
        int out_log, err_log;
        char linebuf[2][4096];
        size_t linelen[2];
        enum exp_reason kill_reason;  /* R_NONE: not being stopped */
        double kill_at;               /* SIGKILL time (monotonic), 0 = none pending */
        double timeout_at;            /* the experiment's own timeout (monotonic), 0 = none */
        long stop_grace;
        bool exited;
        int status;
        double exited_at;
        bool running;                 /* started and not finished */
        /* the attempt's marker (run/proc/sweep.h): what it leaves running is killed when its process exits */
        char marker[SWEEP_MARKER_LEN + 1];
        uid_t uid;
        int left;                     /* marked processes that survived the sweep (> 0: still there) */
        /* its logs: written with the run user's identity (logwrite.h), their head released past log_max */
        struct logwriter lw;
        uint64_t log_max;             /* 0: no cap */
        uint64_t size[2];             /* each log's size (what an earlier attempt wrote included) */
        uint64_t released[2];         /* where its released head ends */
        bool capped[2];               /* log_max reached (said once) */
};

/* Starts sp; out_log/err_log (taken: closed by exp_finish) receive its output, written as sp->user, each capped at
 * log_max bytes on the disk (0: no cap). timeout: seconds from now, 0 = none. On failure err says why (exec
 * failures included) and both logs are closed. */
int exp_start(struct exp_run *E, const char *name, const struct spawn *sp, int out_log, int err_log, uint64_t log_max,
              long timeout, long stop_grace, char *err, size_t errlen);

enum exp_wake {
        WAKE_ENDED,                   /* the process is gone and its output drained */
        WAKE_STOP,                    /* the agent got SIGTERM (w->stop) */
        WAKE_WATCH,                   /* watch_fd is readable */
        WAKE_DEADLINE,                /* deadline (monotonic) passed */
};

/* Supervises until one of the wakes; the experiment's own timeout and SIGKILL after a stop's grace are handled
 * here. watch_fd -1: none; deadline 0: none. A stop already noted or a deadline already passed wakes at once only
 * while the experiment is not being stopped. */
enum exp_wake exp_wait(struct exp_run *E, struct waiter *w, int watch_fd, double deadline);

/* After exp_start: the marker the attempt's environment carries and the uid it runs as; when its process exits,
 * every process of uid carrying the marker is killed (sweep_run) before WAKE_ENDED. */
void exp_mark(struct exp_run *E, uid_t uid, const char *marker);

/* SIGTERM to the process group now, SIGKILL after grace seconds; the first stop's reason is kept. */
void exp_stop(struct exp_run *E, enum exp_reason why, long grace);

/* The process group gets sig (SIGUSR1 on a rebalance recommendation). */
void exp_signal(struct exp_run *E, int sig);

/* After WAKE_ENDED: closes its logs and records the end in s (exit code or signal, reason, end time). */
void exp_finish(struct exp_run *E, struct exp_state *s);

/* An experiment a previous agent left running (kill -9): its process group is stopped (SIGTERM, grace, SIGKILL)
 * when pid is still that process; then, with a marker (its attempt's, "" = none), every process of uid carrying it
 * is killed. Returns how many marked processes remain (0: none). */
int exp_stop_leftover(struct waiter *w, pid_t pid, unsigned long long pid_start, long grace, uid_t uid,
                      const char *marker);
