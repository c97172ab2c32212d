/* SPDX-License-Identifier: Apache-2.0 */
/* lifecycle.c — the table of phases × events, the name tables, the outcome and the exit decision. Pure. */
#include "run/lifecycle.h"

#include <string.h>


/* Every ending goes the same way: STOPPING (the experiment stopped, or what is left of it marked) → SHIP → EXIT. */
#define TO_SHIP(end) { PH_SHIP, A_SHIP, end }
#define TO_STOP(end) { PH_STOPPING, A_STOP, end }

static const struct lc_step table[PH__MAX][EV__MAX] = {
        [PH_FETCH] = {
                [EV_BOOT] = { PH_FETCH, A_FETCH, END_NONE },
                [EV_DONE] = { PH_PREPARE, A_PREPARE, END_NONE },
                [EV_FAILED] = TO_STOP(END_ERROR),
                [EV_SPOT] = TO_STOP(END_SPOT),
                [EV_SIGTERM] = TO_STOP(END_STOPPED),
                [EV_MAX_RUNTIME] = TO_STOP(END_MAX_RUNTIME),
                [EV_FAILSAFE] = TO_STOP(END_FAILSAFE),
                [EV_OVER] = TO_STOP(END_OVER),
        },
        [PH_PREPARE] = {
                [EV_BOOT] = { PH_PREPARE, A_PREPARE, END_NONE },
                [EV_DONE] = { PH_RUN, A_START, END_NONE },
                [EV_FAILED] = TO_STOP(END_ERROR),
                [EV_SPOT] = TO_STOP(END_SPOT),
                [EV_SIGTERM] = TO_STOP(END_STOPPED),
                [EV_MAX_RUNTIME] = TO_STOP(END_MAX_RUNTIME),
                [EV_FAILSAFE] = TO_STOP(END_FAILSAFE),
                [EV_OVER] = TO_STOP(END_OVER),
        },
        [PH_RUN] = {
                /* the run user, environment and GPUs are not persisted: prepared again, then the run resumes */
                [EV_BOOT] = { PH_PREPARE, A_PREPARE, END_NONE },
                [EV_EXP_ENDED] = { PH_RUN, A_START, END_NONE },
                [EV_NO_MORE] = TO_SHIP(END_FINISHED),
                [EV_FAILED] = TO_STOP(END_ERROR),
                [EV_SPOT] = TO_STOP(END_SPOT),
                [EV_SIGTERM] = TO_STOP(END_STOPPED),
                [EV_MAX_RUNTIME] = TO_STOP(END_MAX_RUNTIME),
                [EV_FAILSAFE] = TO_STOP(END_FAILSAFE),
                [EV_OVER] = TO_STOP(END_OVER),
        },
        [PH_STOPPING] = {
                /* a crash while stopping: stop what the previous agent left running, then ship */
                [EV_BOOT] = { PH_STOPPING, A_STOP, END_NONE },
                [EV_EXP_ENDED] = { PH_SHIP, A_SHIP, END_NONE },
                [EV_FAILSAFE] = TO_STOP(END_FAILSAFE),
        },
        [PH_SHIP] = {
                [EV_BOOT] = { PH_SHIP, A_SHIP, END_NONE },
                [EV_DONE] = { PH_EXIT, A_EXIT, END_NONE },
                /* stays SHIP: the exit keeps the instance's disk, and the next start ships again */
                [EV_INCOMPLETE] = { PH_SHIP, A_EXIT, END_NONE },
                [EV_FAILSAFE] = TO_SHIP(END_FAILSAFE),
        },
        [PH_EXIT] = {
                [EV_BOOT] = { PH_EXIT, A_EXIT, END_NONE },
                [EV_BACK] = { PH_PREPARE, A_PREPARE, END_CLEAR },
                [EV_DONE] = { PH_DONE, A_NONE, END_NONE },
                [EV_FAILSAFE] = { PH_EXIT, A_EXIT, END_NONE },
        },
        [PH_DONE] = {
                /* a finished run whose instance is still up: the exit action again */
                [EV_BOOT] = { PH_DONE, A_EXIT, END_NONE },
                [EV_DONE] = { PH_DONE, A_NONE, END_NONE },
                [EV_FAILSAFE] = { PH_DONE, A_EXIT, END_NONE },
        },
};

struct lc_step lc_transition(enum phase p, enum lc_event ev) {
        if ((unsigned)p >= PH__MAX || (unsigned)ev >= EV__MAX)
                return (struct lc_step){ p, A_NONE, END_NONE };
        struct lc_step s = table[p][ev];
        /* an empty cell ({ PH_FETCH, A_NONE }, which no filled one is): the event is not for this phase */
        if (s.next == PH_FETCH && s.action == A_NONE)
                return (struct lc_step){ p, A_NONE, END_NONE };
        return s;
}

static const char *const phase_names[PH__MAX] = { "FETCH", "PREPARE", "RUN", "STOPPING", "SHIP", "EXIT", "DONE" };
static const char *const event_names[EV__MAX] = { "boot", "back", "done", "failed", "experiment-ended", "no-more",
                                                  "spot", "sigterm", "max-runtime", "incomplete", "failsafe",
                                                  "over" };
static const char *const action_names[A__MAX] = { "none", "fetch", "prepare", "start", "stop", "ship", "exit" };
static const char *const end_names[END__MAX] = { "", "finished", "error", "spot-interruption", "agent-stopped",
                                                 "max-runtime", "failsafe", "over" };
static const char *const outcome_names[OUT__MAX] = { "running", "succeeded", "failed", "timeout", "gpu-idle",
                                                     "interrupted", "error" };
static const char *const reason_names[R__MAX] = { "", "exit", "timeout", "gpu-idle", "interrupted", "max-runtime",
                                                  "agent-stopped", "skipped", "error", "lease-lost",
                                                  "run-over" };

static const char *name_of(const char *const *t, size_t n, int v) {
        return v >= 0 && (size_t)v < n ? t[v] : NULL;
}

static int from_name(const char *const *t, size_t n, const char *s) {
        for (size_t i = 0; s && i < n; i++)
                if (!strcmp(t[i], s))
                        return (int)i;
        return -1;
}

const char *phase_name(enum phase p) { return name_of(phase_names, PH__MAX, (int)p); }
const char *lc_event_name(enum lc_event e) { return name_of(event_names, EV__MAX, (int)e); }
const char *lc_action_name(enum lc_action a) { return name_of(action_names, A__MAX, (int)a); }
const char *lc_end_name(enum lc_end e) { return name_of(end_names, END__MAX, (int)e); }
const char *outcome_name(enum outcome o) { return name_of(outcome_names, OUT__MAX, (int)o); }
const char *exp_reason_name(enum exp_reason r) { return name_of(reason_names, R__MAX, (int)r); }
int phase_from_name(const char *s) { return from_name(phase_names, PH__MAX, s); }
int lc_end_from_name(const char *s) { return from_name(end_names, END__MAX, s); }
int outcome_from_name(const char *s) { return from_name(outcome_names, OUT__MAX, s); }
int exp_reason_from_name(const char *s) { return from_name(reason_names, R__MAX, s); }

enum outcome lc_outcome(enum lc_end end, bool error, const struct lc_exp *exps, size_t n) {
        if (error || end == END_ERROR || end == END_FAILSAFE)
                return OUT_ERROR;
        switch (end) {
        case END_NONE: return OUT_RUNNING;
        case END_SPOT: case END_STOPPED: return OUT_INTERRUPTED;
        case END_MAX_RUNTIME: return OUT_TIMEOUT;
        default: break;
        }
        bool timeout = false, idle = false, failed = false;
        for (size_t i = 0; i < n; i++) {
                const struct lc_exp *e = &exps[i];
                timeout |= e->reason == R_MAX_RUNTIME; /* also one never started for it */
                failed |= e->skipped;
                if (!e->ran)
                        continue;
                timeout |= e->reason == R_TIMEOUT;
                idle |= e->reason == R_GPU_IDLE;
                failed |= e->exit_code != 0;
        }
        return timeout ? OUT_TIMEOUT : idle ? OUT_GPU_IDLE : failed ? OUT_FAILED : OUT_SUCCEEDED;
}

struct lc_exit_plan lc_exit_decide(enum lc_end end, enum outcome o, bool shipped, enum exit_action on_exit,
                                   enum exit_action on_error) {
        struct lc_exit_plan p = { .kind = X_ACTION, .action = o == OUT_SUCCEEDED ? on_exit : on_error };
        p.wanted = p.action;
        if (end == END_STOPPED) {
                p.kind = X_RESUME_LATER;
                return p;
        }
        if (end == END_SPOT) {
                p.kind = X_AWAIT_RECLAIM;
                p.action = p.wanted = on_error;
                return p;
        }
        if (!shipped && (p.action == EXIT_ACTION_TERMINATE || p.action == EXIT_ACTION_POWEROFF)) {
                p.action = EXIT_ACTION_STOP; /* the disk keeps the only copy of what did not reach S3 */
                p.keep_disk = true;
        }
        return p;
}
