/* SPDX-License-Identifier: Apache-2.0 */
/* lifecycle.c — the table of phases × events, the name tables, the outcome and the exit decision. Pure. */
#include "run/base/lifecycle.h"

#include <string.h>


/* Every cell is written out (s6-supervise's table has no holes): a hole is A_HOLE (zero), which the unit test finds.
 * Every ending goes the same way: STOPPING (the experiment stopped, or what is left of it marked) → SHIP → EXIT.
 * An event a phase cannot meet (the action that runs in it never answers with it) is a bail before SHIP — the run
 * ends with an internal error, through STOPPING and SHIP like any failure — and from STOPPING on it is the phase's
 * own work again (stop, ship, exit: each safe to repeat), so that nothing is ever left half done. */
#define TO_SHIP(end) { PH_SHIP, A_SHIP, end }
#define TO_STOP(end) { PH_STOPPING, A_STOP, end }
#define BAIL { PH_STOPPING, A_BAIL, END_ERROR }
#define AGAIN(ph, a) { ph, a, END_NONE }
/* The instance is back after a spot stop (start() says so only when the run was ending for that notice): the
 * notice is forgotten, the run user and environment prepared again, and the interrupted experiment resumes. */
#define BACK { PH_PREPARE, A_PREPARE, END_CLEAR }
/* Events that end a run before it ships, the same in FETCH, PREPARE and RUN */
#define ENDINGS \
        [EV_FAILED] = TO_STOP(END_ERROR), [EV_SPOT] = TO_STOP(END_SPOT), [EV_SIGTERM] = TO_STOP(END_STOPPED), \
        [EV_MAX_RUNTIME] = TO_STOP(END_MAX_RUNTIME), [EV_FAILSAFE] = TO_STOP(END_FAILSAFE), [EV_OVER] = TO_STOP(END_OVER), \
        [EV_CANCEL] = TO_STOP(END_CANCELLED)

static const struct lc_step table[PH__MAX][EV__MAX] = {
        [PH_FETCH] = {
                [EV_BOOT] = AGAIN(PH_FETCH, A_FETCH),
                [EV_BACK] = { PH_FETCH, A_FETCH, END_CLEAR },
                [EV_DONE] = { PH_PREPARE, A_PREPARE, END_NONE },
                [EV_EXP_ENDED] = BAIL, /* no experiment runs yet */
                [EV_NO_MORE] = BAIL,
                [EV_INCOMPLETE] = BAIL,
                ENDINGS,
        },
        [PH_PREPARE] = {
                [EV_BOOT] = AGAIN(PH_PREPARE, A_PREPARE),
                [EV_BACK] = BACK,
                [EV_DONE] = { PH_RUN, A_START, END_NONE },
                [EV_EXP_ENDED] = BAIL,
                [EV_NO_MORE] = BAIL,
                [EV_INCOMPLETE] = BAIL,
                ENDINGS,
        },
        [PH_RUN] = {
                /* the run user, environment and GPUs are not persisted: prepared again, then the run resumes */
                [EV_BOOT] = { PH_PREPARE, A_PREPARE, END_NONE },
                [EV_BACK] = BACK,
                [EV_DONE] = BAIL, /* A_START answers with an experiment's end, or that none is left */
                [EV_EXP_ENDED] = AGAIN(PH_RUN, A_START),
                [EV_NO_MORE] = TO_SHIP(END_FINISHED),
                [EV_INCOMPLETE] = BAIL,
                ENDINGS,
        },
        [PH_STOPPING] = {
                /* a crash while stopping: stop what the previous agent left running, then ship */
                [EV_BOOT] = AGAIN(PH_STOPPING, A_STOP),
                /* the instance was stopped while the experiment took its grace after a spot stop notice */
                [EV_BACK] = BACK,
                [EV_DONE] = AGAIN(PH_STOPPING, A_STOP),
                [EV_FAILED] = AGAIN(PH_STOPPING, A_STOP),
                [EV_EXP_ENDED] = { PH_SHIP, A_SHIP, END_NONE },
                [EV_NO_MORE] = AGAIN(PH_STOPPING, A_STOP),
                /* the run is ending already: the first end counts, the stop goes on */
                [EV_SPOT] = AGAIN(PH_STOPPING, A_STOP),
                [EV_SIGTERM] = AGAIN(PH_STOPPING, A_STOP),
                [EV_MAX_RUNTIME] = AGAIN(PH_STOPPING, A_STOP),
                [EV_INCOMPLETE] = AGAIN(PH_STOPPING, A_STOP),
                [EV_FAILSAFE] = TO_STOP(END_FAILSAFE),
                /* booted into a run another instance ended, while stopping: the stop goes on, then the ship */
                [EV_OVER] = TO_STOP(END_OVER),
                [EV_CANCEL] = AGAIN(PH_STOPPING, A_STOP),
        },
        [PH_SHIP] = {
                [EV_BOOT] = AGAIN(PH_SHIP, A_SHIP),
                /* the instance was stopped while shipping after a spot stop notice: live logs and checkpoints
                 * went on shipping while it ran; what is left ships when the run ends */
                [EV_BACK] = BACK,
                [EV_DONE] = { PH_EXIT, A_EXIT, END_NONE },
                [EV_FAILED] = AGAIN(PH_SHIP, A_SHIP),
                [EV_EXP_ENDED] = AGAIN(PH_SHIP, A_SHIP),
                [EV_NO_MORE] = AGAIN(PH_SHIP, A_SHIP),
                [EV_SPOT] = AGAIN(PH_SHIP, A_SHIP),
                /* systemd's stop timeout covers the final upload (EXTEND_TIMEOUT_USEC): it goes on */
                [EV_SIGTERM] = AGAIN(PH_SHIP, A_SHIP),
                [EV_MAX_RUNTIME] = AGAIN(PH_SHIP, A_SHIP),
                /* stays SHIP: the exit keeps the instance's disk, and the next start ships again */
                [EV_INCOMPLETE] = { PH_SHIP, A_EXIT, END_NONE },
                [EV_FAILSAFE] = TO_SHIP(END_FAILSAFE),
                [EV_OVER] = TO_SHIP(END_OVER),
                [EV_CANCEL] = AGAIN(PH_SHIP, A_SHIP),
        },
        [PH_EXIT] = {
                [EV_BOOT] = AGAIN(PH_EXIT, A_EXIT),
                [EV_BACK] = BACK,
                [EV_DONE] = { PH_DONE, A_NONE, END_NONE },
                [EV_FAILED] = AGAIN(PH_EXIT, A_EXIT),
                [EV_EXP_ENDED] = AGAIN(PH_EXIT, A_EXIT),
                [EV_NO_MORE] = AGAIN(PH_EXIT, A_EXIT),
                [EV_SPOT] = AGAIN(PH_EXIT, A_EXIT),
                [EV_SIGTERM] = AGAIN(PH_EXIT, A_EXIT),
                [EV_MAX_RUNTIME] = AGAIN(PH_EXIT, A_EXIT),
                [EV_INCOMPLETE] = AGAIN(PH_EXIT, A_EXIT),
                [EV_FAILSAFE] = AGAIN(PH_EXIT, A_EXIT),
                [EV_OVER] = AGAIN(PH_EXIT, A_EXIT),
                [EV_CANCEL] = AGAIN(PH_EXIT, A_EXIT),
        },
        [PH_DONE] = {
                /* a finished run whose instance is still up: the exit action again */
                [EV_BOOT] = AGAIN(PH_DONE, A_EXIT),
                [EV_BACK] = AGAIN(PH_DONE, A_EXIT),
                [EV_FAILSAFE] = AGAIN(PH_DONE, A_EXIT),
                [EV_OVER] = AGAIN(PH_DONE, A_EXIT),
                /* the exit action took: nothing is left to do, the driver ends */
                [EV_DONE] = AGAIN(PH_DONE, A_NONE),
                [EV_FAILED] = AGAIN(PH_DONE, A_NONE),
                [EV_EXP_ENDED] = AGAIN(PH_DONE, A_NONE),
                [EV_NO_MORE] = AGAIN(PH_DONE, A_NONE),
                [EV_SPOT] = AGAIN(PH_DONE, A_NONE),
                [EV_SIGTERM] = AGAIN(PH_DONE, A_NONE),
                [EV_MAX_RUNTIME] = AGAIN(PH_DONE, A_NONE),
                [EV_INCOMPLETE] = AGAIN(PH_DONE, A_NONE),
                [EV_CANCEL] = AGAIN(PH_DONE, A_NONE),
        },
};

struct lc_step lc_transition(enum phase p, enum lc_event ev) {
        if ((unsigned)p >= PH__MAX || (unsigned)ev >= EV__MAX)
                return (struct lc_step){ p, A_HOLE, END_NONE };
        return table[p][ev];
}

static const char *const phase_names[PH__MAX] = { "FETCH", "PREPARE", "RUN", "STOPPING", "SHIP", "EXIT", "DONE" };
static const char *const event_names[EV__MAX] = { "boot", "back", "done", "failed", "experiment-ended", "no-more",
                                                  "spot", "sigterm", "max-runtime", "incomplete", "failsafe",
                                                  "over", "cancel" };
static const char *const action_names[A__MAX] = { "hole", "none", "fetch", "prepare", "start", "stop", "ship", "exit",
                                                   "bail" };
static const char *const end_names[END__MAX] = { "", "finished", "error", "spot-interruption", "agent-stopped",
                                                 "max-runtime", "failsafe", "over", "cancelled" };
static const char *const outcome_names[OUT__MAX] = { "running", "succeeded", "failed", "timeout", "gpu-idle",
                                                     "interrupted", "error", "cancelled" };
static const char *const reason_names[R__MAX] = { "", "exit", "timeout", "gpu-idle", "interrupted", "max-runtime",
                                                  "agent-stopped", "skipped", "error", "lease-lost",
                                                  "run-over", "cancelled", "gang-stopped" };

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
        case END_CANCELLED: return OUT_CANCELLED;
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
        /* a cancelled run ends the way the job ends a good one: the user asked for it */
        struct lc_exit_plan p = { .kind = X_ACTION, .action = o == OUT_SUCCEEDED || o == OUT_CANCELLED ? on_exit
                                                                                                       : on_error };
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

/* ---------- the fleet role ---------- */

static const enum fleet_role role_table[ROLE__MAX][FN__MAX] = {
        [ROLE_WORKS] = { [FN_END_WON] = ROLE_ENDS, [FN_END_LOST] = ROLE_FOLLOWS, [FN_OVER] = ROLE_FOLLOWS,
                         [FN_NOTHING_LEFT] = ROLE_LEAVES, [FN_BACK] = ROLE_WORKS },
        /* the end record is this instance's: it ends the run whatever comes after */
        [ROLE_ENDS] = { [FN_END_WON] = ROLE_ENDS, [FN_END_LOST] = ROLE_ENDS, [FN_OVER] = ROLE_ENDS,
                        [FN_NOTHING_LEFT] = ROLE_ENDS, [FN_BACK] = ROLE_ENDS },
        /* the run is over: what is left of the group goes, with this instance */
        [ROLE_FOLLOWS] = { [FN_END_WON] = ROLE_FOLLOWS, [FN_END_LOST] = ROLE_FOLLOWS, [FN_OVER] = ROLE_FOLLOWS,
                           [FN_NOTHING_LEFT] = ROLE_FOLLOWS, [FN_BACK] = ROLE_FOLLOWS },
        /* leaving, until the run is over before it left: then it ends or follows like the others */
        [ROLE_LEAVES] = { [FN_END_WON] = ROLE_ENDS, [FN_END_LOST] = ROLE_FOLLOWS, [FN_OVER] = ROLE_FOLLOWS,
                          [FN_NOTHING_LEFT] = ROLE_LEAVES, [FN_BACK] = ROLE_WORKS },
};

enum fleet_role fleet_role_next(enum fleet_role r, enum fleet_news n) {
        if ((unsigned)r >= ROLE__MAX || (unsigned)n >= FN__MAX)
                return r;
        return role_table[r][n];
}

static const char *const role_names[ROLE__MAX] = { "works", "ends", "follows", "leaves" };
static const char *const news_names[FN__MAX] = { "end-won", "end-lost", "over", "nothing-left", "back" };
static const char *const plan_names[FP__MAX] = { "nothing", "end-error", "end-timeout", "leave", "follow",
                                                 "end-cancelled" };

const char *fleet_role_name(enum fleet_role r) { return name_of(role_names, ROLE__MAX, (int)r); }
int fleet_role_from_name(const char *s) { return from_name(role_names, ROLE__MAX, s); }
const char *fleet_news_name(enum fleet_news n) { return name_of(news_names, FN__MAX, (int)n); }
const char *fleet_plan_name(enum fleet_plan p) { return name_of(plan_names, FP__MAX, (int)p); }

bool fleet_plan_needs_members(const struct fleet_facts *f) {
        return f->role == ROLE_WORKS && f->end == END_MAX_RUNTIME && f->sweep;
}

enum fleet_plan fleet_end_plan(const struct fleet_facts *f) {
        if (f->role != ROLE_WORKS)
                return FP_NOTHING; /* decided while it ran (it ended, followed or left the run) */
        switch (f->end) {
        case END_ERROR:
        case END_FAILSAFE:
                /* a failure that would come back on every replacement: the run ends for all (no relaunch loop) */
                return FP_END_ERROR;
        case END_MAX_RUNTIME:
                /* max_runtime is per instance: in a sweep the others go on, unless this is the last one */
                return f->sweep && !f->last_member ? FP_LEAVE : FP_END_TIMEOUT;
        case END_OVER: return FP_FOLLOW;
        case END_CANCELLED: return FP_END_CANCELLED;
        case END_NONE: case END_FINISHED: case END_SPOT: case END_STOPPED: case END__MAX: case END_CLEAR: break;
        }
        /* a spot notice or a stop: the run goes on, on a replacement or after the restart */
        return FP_NOTHING;
}

/* ---------- a gang's member ---------- */

static const char *const gang_end_names[GE__MAX] = { "exit-ok", "exit-failed", "gang-stopped", "member-failed", "lost" };
static const char *const gang_step_names[GS__MAX] = { "", "commit", "commit-member", "finished", "stop-all", "leave",
                                                      "nothing" };

const char *gang_end_name(enum gang_end e) { return name_of(gang_end_names, GE__MAX, (int)e); }
const char *gang_step_name(enum gang_step s) { return name_of(gang_step_names, GS__MAX, (int)s); }

/* [how][rank 0][last] */
static const enum gang_step gang_table[GE__MAX][2][2] = {
        /*                    rank > 0: more, last             rank 0: more, last */
        [GE_EXIT_OK] =       { { GS_FINISHED, GS_FINISHED }, { GS_COMMIT, GS_COMMIT } },
        [GE_EXIT_FAILED] =   { { GS_STOP_ALL, GS_STOP_ALL }, { GS_STOP_ALL, GS_COMMIT } },
        [GE_GANG_STOPPED] =  { { GS_LEAVE, GS_LEAVE }, { GS_STOP_ALL, GS_STOP_ALL } },
        [GE_MEMBER_FAILED] = { { GS_LEAVE, GS_LEAVE }, { GS_STOP_ALL, GS_COMMIT_MEMBER } },
        [GE_LOST] =          { { GS_NOTHING, GS_NOTHING }, { GS_NOTHING, GS_NOTHING } },
};

enum gang_step gang_plan(enum gang_end how, bool rank0, bool last) {
        if ((int)how < 0 || how >= GE__MAX)
                return GS_HOLE;
        return gang_table[how][rank0][last];
}
