/* SPDX-License-Identifier: Apache-2.0 */
/* lifecycle.h — the whole run on one screen: its phases, the events that move it, the action each (phase, event)
 * calls for, and how a run ends. Pure: no I/O, no clock; the driver (run.c) performs the actions and feeds the
 * events back. Every ending — finished, spot notice, SIGTERM, max_runtime, bad spec or failure, failsafe — goes
 * the one way: stop the experiment, ship what exists, write the final status, the exit action. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "run/base/job.h"

/* Persisted in state.json. */
enum phase {
        PH_FETCH,       /* the source into the workdir */
        PH_PREPARE,     /* run user, environment, GPUs */
        PH_RUN,         /* the experiments, one after another */
        PH_STOPPING,    /* the run is ending: the running experiment gets SIGTERM, stop_grace, SIGKILL */
        PH_SHIP,        /* logs, outputs, checkpoints, metrics, status: until all of it is in S3 */
        PH_EXIT,        /* the exit action */
        PH_DONE,        /* the exit action took */
        PH__MAX
};

enum lc_event {
        EV_BOOT,        /* the agent starts (in the persisted phase) */
        EV_BACK,        /* the agent starts on an instance that a spot notice stopped and EC2 started again */
        EV_DONE,        /* the phase's work is done */
        EV_FAILED,      /* it failed for good (bad spec, fetch, prepare, an experiment that cannot start) */
        EV_EXP_ENDED,   /* the running experiment ended (or none was running) */
        EV_NO_MORE,     /* no experiment is left to run */
        EV_SPOT,        /* a spot interruption notice */
        EV_SIGTERM,     /* the agent is told to stop (shutdown, scale-in, systemctl stop, the backstop) */
        EV_MAX_RUNTIME, /* the run's max_runtime is spent */
        EV_INCOMPLETE,  /* the final upload did not complete within ship_timeout */
        EV_FAILSAFE,    /* `mayfly failsafe`: systemd gave up restarting the agent */
        EV_OVER,        /* the run is over: another instance ended it (this one boots into it, or sees it) */
        EV_CANCEL,      /* `mayfly cancel`: the run's cancel record (seen at a heartbeat, a claim, or at boot) */
        EV__MAX
};

enum lc_action {
        A_HOLE,         /* no answer written (zero, what a cell left out reads as): never in the table */
        A_NONE,         /* nothing left to do: the driver ends (DONE only) */
        A_FETCH,
        A_PREPARE,
        A_START,        /* start (or resume) the next experiment and supervise it; EV_NO_MORE when none is left */
        A_STOP,         /* stop the running experiment and wait for its end */
        A_SHIP,
        A_EXIT,         /* the exit decision (lc_exit_decide) */
        A_BAIL,         /* an event the phase cannot meet: recorded as the run's internal error, then A_STOP */
        A__MAX
};

/* Why the run is ending; END_NONE while it is not. */
enum lc_end {
        END_NONE,
        END_FINISHED,   /* every experiment ran (or the rest were skipped) */
        END_ERROR,      /* bad input or a failure the run cannot go on from */
        END_SPOT,       /* a spot interruption notice */
        END_STOPPED,    /* SIGTERM to the agent */
        END_MAX_RUNTIME,
        END_FAILSAFE,
        END_OVER,       /* another instance ended the run */
        END_CANCELLED,  /* `mayfly cancel` */
        END__MAX,
        END_CLEAR = -1  /* in a step: the end is forgotten (the instance is back after a spot stop) */
};

enum outcome {
        OUT_RUNNING, OUT_SUCCEEDED, OUT_FAILED, OUT_TIMEOUT, OUT_GPU_IDLE, OUT_INTERRUPTED, OUT_ERROR, OUT_CANCELLED,
        OUT__MAX
};

/* Why an experiment ended (or did not run). */
enum exp_reason {
        R_NONE, R_EXIT, R_TIMEOUT, R_GPU_IDLE, R_INTERRUPTED, R_MAX_RUNTIME, R_AGENT_STOPPED, R_SKIPPED, R_ERROR,
        R_LEASE_LOST,   /* another instance took the experiment over (this one could not renew its claim in time) */
        R_RUN_OVER,     /* another instance ended the run (a failure with continue_on_failure false): stopped here */
        R_CANCELLED,    /* the run was cancelled (`mayfly cancel`): stopped, or never started */
        R_GANG_STOPPED, /* another member of its gang stopped, failed or vanished: this part stopped with it */
        R__MAX
};

struct lc_step {
        enum phase next;
        enum lc_action action;
        enum lc_end end;        /* END_NONE: the end stays as it is */
};

/* The table: phase × event → step, total (every cell is written out; a phase or event out of range: A_HOLE). */
struct lc_step lc_transition(enum phase p, enum lc_event ev);

/* One name table per enum: the names in state.json, status.json, the log. NULL past the end. */
const char *phase_name(enum phase p);
const char *lc_event_name(enum lc_event e);
const char *lc_action_name(enum lc_action a);
const char *lc_end_name(enum lc_end e);         /* the run's `reason` in status.json */
const char *outcome_name(enum outcome o);
const char *exp_reason_name(enum exp_reason r);
/* Parse a name back (state.json); -1 when it is none of them. */
int phase_from_name(const char *s);
int lc_end_from_name(const char *s);
int outcome_from_name(const char *s);
int exp_reason_from_name(const char *s);

/* What an ended experiment says about the run: its reason and whether it counts as a failure. */
struct lc_exp {
        bool ran;               /* it ended (done), as opposed to pending or skipped */
        bool skipped;
        enum exp_reason reason;
        int exit_code;          /* -1: killed by a signal */
};

/* The run's outcome for an end and what the experiments did; error: the run recorded an error (a refused path). */
enum outcome lc_outcome(enum lc_end end, bool error, const struct lc_exp *exps, size_t n);

/* What the exit phase does. */
enum lc_exit {
        X_ACTION,               /* the job's on_exit (outcome succeeded) or on_error, as chosen in action */
        X_AWAIT_RECLAIM,        /* a spot notice: results are shipped, EC2 ends the instance; act only if it does not */
        X_RESUME_LATER,         /* SIGTERM: the state is kept and the process exits; the next start resumes the run */
};

struct lc_exit_plan {
        enum lc_exit kind;
        enum exit_action action;        /* for X_ACTION (and after X_AWAIT_RECLAIM times out) */
        bool keep_disk;                 /* action became STOP to keep what did not reach S3: stop, or nothing */
        enum exit_action wanted;        /* the action the job asked for */
};

/* ---------- a run shared by instances (a run_id): this instance's part in its end ---------- */

/* Persisted in state.json: a restarted agent (in SHIP, EXIT) still knows whether it ends the run or leaves. */
enum fleet_role {
        ROLE_WORKS,     /* claims and runs experiments; if its own run ends now, the run goes on elsewhere */
        ROLE_ENDS,      /* it wrote the run's end record: the group and the template go, then this instance */
        ROLE_FOLLOWS,   /* another instance ended the run: what is left of the group goes, then this instance */
        ROLE_LEAVES,    /* nothing is left for it and others go on: it leaves the group, which shrinks by one */
        ROLE__MAX
};

/* What the ledger told this instance. */
enum fleet_news {
        FN_END_WON,      /* its end record was written: it ends the run */
        FN_END_LOST,     /* another instance's end record was there first */
        FN_OVER,         /* the run is over (seen at boot, at a claim, at a heartbeat) */
        FN_NOTHING_LEFT, /* nothing left to claim here: the other instances finish the run */
        FN_BACK,         /* the instance is back after a spot stop: it works again */
        FN__MAX
};

/* The role table: role × news → role. Total; once the run is over (ENDS, FOLLOWS) nothing changes it. */
enum fleet_role fleet_role_next(enum fleet_role r, enum fleet_news n);
const char *fleet_role_name(enum fleet_role r);
int fleet_role_from_name(const char *s);
const char *fleet_news_name(enum fleet_news n);

/* What this instance does about the shared run when its own run ends (its end, its role, the fleet). */
enum fleet_plan {
        FP_NOTHING,      /* the run goes on elsewhere (a spot notice, a stop), or the role is decided already */
        FP_END_ERROR,    /* a failure that would come back on every replacement: end the run, outcome error */
        FP_END_TIMEOUT,  /* max_runtime, and no other instance goes on: end the run, outcome timeout */
        FP_LEAVE,        /* max_runtime in a sweep with other members: leave, the others go on */
        FP_FOLLOW,       /* the run was ended by another instance */
        FP_END_CANCELLED, /* `mayfly cancel`: end the run for all, outcome cancelled */
        FP__MAX
};

struct fleet_facts {
        enum lc_end end;        /* this instance's end */
        enum fleet_role role;
        bool sweep;             /* experiments claimed in any order by several instances */
        bool last_member;       /* the group has no other member (asked only for max_runtime in a sweep) */
};

enum fleet_plan fleet_end_plan(const struct fleet_facts *f);
/* Whether fleet_end_plan needs f->last_member for these facts (an Auto Scaling call the caller makes only then). */
bool fleet_plan_needs_members(const struct fleet_facts *f);
const char *fleet_plan_name(enum fleet_plan p);

/* ---------- a gang's member (gangrun.c): what the end of this instance's part means for the gang ---------- */

enum gang_end {
        GE_EXIT_OK,       /* its command exited 0 */
        GE_EXIT_FAILED,   /* ... exited non-zero, or was killed by a signal */
        GE_GANG_STOPPED,  /* another member stopped or vanished: this part was stopped with the gang */
        GE_MEMBER_FAILED, /* ... because that member's command failed (its own words, in its lease) */
        GE_LOST,          /* its lease lost, or the run over: nothing of it is this instance's any more */
        GE__MAX
};

enum gang_step {
        GS_HOLE,          /* no answer written: never in the table */
        GS_COMMIT,        /* rank 0: the experiment is finished (or failed for good): its done record, as any */
        GS_COMMIT_MEMBER, /* rank 0: the member's failure, with no attempt left, is the experiment's: its done record */
        GS_FINISHED,      /* rank > 0: its logs shipped, its slot given back "finished"; it waits for rank 0 */
        GS_STOP_ALL,      /* why it stops into its lease (every member stops), its part shipped, its place given back */
        GS_LEAVE,         /* its part shipped, its place given back: the next attempt */
        GS_NOTHING,       /* nothing to ship or give back: the next claim */
        GS__MAX
};

/* The table: how the part ended × rank 0 or not × whether a failure has no attempt left (max_attempts spent, or
 * none set) → step. Total (every cell written out); out of range: GS_HOLE. */
enum gang_step gang_plan(enum gang_end how, bool rank0, bool last);
const char *gang_end_name(enum gang_end e);
const char *gang_step_name(enum gang_step s);

/* The exit decision. shipped: the final upload completed. When it did not and the action would end the instance
 * with its volume (terminate, poweroff), the instance is stopped instead so that its disk keeps the only copy;
 * the next start ships, then acts. */
struct lc_exit_plan lc_exit_decide(enum lc_end end, enum outcome o, bool shipped, enum exit_action on_exit,
                                   enum exit_action on_error);
