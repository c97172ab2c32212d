/* SPDX-License-Identifier: Apache-2.0 */
/* gangrun.c — this instance's part in a gang: formed, started with the gang's variables, stopped with the gang, and
 * what the end of one part means for the whole (gangrun.h; the ledger's side is gang.c). */
#include "run/drive/gangrun.h"

#include <cjson/cJSON.h>

#include "jsonx.h"
#include "log.h"
#include "run/fleet/group.h"
#include "run/drive/phases.h"

#define GANG_LOOK 1 /* seconds between looks at the ledger while the gang forms */

struct gang_call {
        int max, desired;
        bool finished;
        char msg[600];
        struct aws_result out;
};

static int do_refresh(struct run *R, void *a) { return ledger_refresh(&R->ledger, &((struct gang_call *)a)->out); }
static int do_release(struct run *R, void *a) {
        struct gang_call *g = a;
        return R->ledger.rank > 0 ? ledger_slot_release(&R->ledger, g->finished, &g->out)
                                  : ledger_release(&R->ledger, &g->out);
}
static int do_formed(struct run *R, void *a) {
        return ledger_gang_formed(&R->ledger, &((struct gang_call *)a)->out);
}
static int do_size(struct run *R, void *a) {
        struct gang_call *g = a;
        return fleet_size_now(&R->c, &R->job.fleet, &g->max, &g->desired, g->msg, sizeof g->msg);
}

#define GIVE_BACK_TRIES 5 /* 2 + 4 + 8 + 16 s between them */

/* The place this instance holds in experiment i's gang given back (finished: its part exited 0): tried again while S3
 * refuses, since the others read why from it; in the end dropped here (no longer renewed, it expires). */
static void give_back(struct run *R, bool finished) {
        for (int t = 0; t < GIVE_BACK_TRIES; t++) {
                struct gang_call g = { .finished = finished };
                if (io(R, do_release, &g) == 0)
                        return;
                log_warn("giving the gang's place back: %s%s", g.out.msg,
                         t + 1 < GIVE_BACK_TRIES ? "; trying again" : "; dropped here (it expires)");
                if (t + 1 < GIVE_BACK_TRIES && !waiter_sleep(&R->w, 2 << t))
                        break;
        }
        ledger_drop(&R->ledger);
}

/* "1, 3" */
static void ranks_text(const struct gang_view *v, char *buf, size_t n) {
        size_t at = 0;
        buf[0] = 0;
        for (int k = 0; k < v->n_missing && at < n; k++)
                at += (size_t)snprintf(buf + at, n - at, "%s%d", k ? ", " : "", v->missing[k]);
}

/* Other instances of the run at work on other experiments now (their records: beating, not ended, on another). */
static int busy_elsewhere(struct run *R, const char *name) {
        _cleanup_(cjson_deletep) cJSON *peers = ledger_peers_json(&R->ledger);
        time_t now = now_wall();
        int n = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, peers) {
                const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "experiment"));
                time_t t = (time_t)json_int(p, "time", 0, JSON_TIME_MAX, 0);
                n += e && strcmp(e, name) && !cJSON_GetObjectItemCaseSensitive(p, "ended") &&
                     t + R->ledger.ttl * 3 >= now;
        }
        return n;
}

/* gang_timeout spent: the attempt ends in error, naming the missing ranks and what the group can hold; in a sweep
 * whose other instances are at work on other experiments (they may yet come), its place is given back instead, and
 * the gang is tried again. */
static int timed_out(struct run *R, int i, const struct gang_view *v) {
        const struct experiment *x = &R->job.experiments[i];
        int busy = R->sweep ? busy_elsewhere(R, x->name) : 0;
        if (busy && v->present + busy >= x->nodes) {
                log_info("experiment %s: its gang did not form within gang_timeout (%lds), but %d instance%s of the run "
                         "%s at work on other experiments: its place is given back, and it waits for them", x->name,
                         R->job.gang_timeout, busy, busy == 1 ? "" : "s", busy == 1 ? "is" : "are");
                give_back(R, false);
                return waiter_sleep(&R->w, FLEET_WAIT) ? CLAIM_AGAIN : EV_SIGTERM;
        }
        struct gang_call g = { 0 };
        char ranks[200], size[300] = "";
        ranks_text(v, ranks, sizeof ranks);
        if (R->job.fleet.group && io(R, do_size, &g) == 0) {
                if (g.max < x->nodes)
                        snprintf(size, sizeof size, "; the group %s holds at most %d instance%s, fewer than its %d "
                                 "nodes", R->job.fleet.group, g.max, g.max == 1 ? "" : "s", x->nodes);
                else
                        snprintf(size, sizeof size, "; the group %s wants %d of at most %d instances (a launch that "
                                 "fails shows in mayfly status)", R->job.fleet.group, g.desired, g.max);
        }
        give_back(R, false);
        return failed(R, "experiment %s: its gang did not form within gang_timeout (%lds): %d of %d nodes, rank%s %s "
                      "missing%s", x->name, R->job.gang_timeout, v->present, x->nodes, v->n_missing == 1 ? "" : "s",
                      ranks, size);
}

/* The gang is whole: its members' addresses, rank 0's the rendezvous. */
static void formed(struct run *R, int i, const struct gang_view *v) {
        struct gang_part *g = &R->gang;
        size_t at = 0;
        g->ips[0] = 0;
        for (int r = 0; r < v->nodes && at < sizeof g->ips; r++)
                at += (size_t)snprintf(g->ips + at, sizeof g->ips - at, "%s%s", r ? "," : "", v->ips[r]);
        snprintf(g->master, sizeof g->master, "%s", v->ips[0]);
        g->ran = true;
        R->waiting[0] = 0;
        struct gang_call c = { 0 };
        if (g->rank == 0 && io(R, do_formed, &c) < 0)
                log_warn("marking the gang of %s formed: %s", R->job.experiments[i].name, c.out.msg);
        log_info("the gang of experiment %s is whole (attempt %d, %d nodes, rank 0 at %s): rank %d starts",
                 R->job.experiments[i].name, g->attempt, g->nodes, g->master[0] ? g->master : "?", g->rank);
}

/* While the gang forms, a slot's holder finds rank 0 moved on (stopping, another attempt, gone): its place goes. */
static bool rank0_moved_on(const struct run *R, int i) {
        const struct ledger_exp *e = &R->ledger.exps[i];
        return R->gang.rank > 0 && (!e->held || e->stale || e->lease_stop.set || e->lease_attempt != R->gang.attempt);
}

static int form_wait(struct run *R, int i) {
        const struct experiment *x = &R->job.experiments[i];
        bool fresh = R->gang.exp == i && R->gang.ran && R->gang.rank == 0 && R->gang.attempt == R->ledger.attempt - 1;
        R->gang = (struct gang_part){ .exp = i, .rank = R->ledger.rank, .nodes = x->nodes,
                                      .attempt = R->ledger.attempt, .ckpt_here = fresh && R->ledger.rank == 0 };
        double t0 = now_mono();
        int said = -1;
        for (;;) {
                int ev = pending_event(R);
                if (ev >= 0)
                        return ev; /* the place is given back with the claim, after SHIP */
                struct gang_call g = { 0 };
                if (io(R, do_refresh, &g) < 0) {
                        log_warn("reading the run's ledger: %s", g.out.msg);
                        if (now_mono() - t0 >= (double)R->job.gang_timeout) {
                                struct gang_view none = { .nodes = x->nodes };
                                for (int r = 0; r < x->nodes; r++)
                                        if (r != R->gang.rank)
                                                none.missing[none.n_missing++] = r;
                                none.present = 1;
                                return timed_out(R, i, &none);
                        }
                }
                else if (ledger_held(&R->ledger) != i)
                        return CLAIM_AGAIN; /* lost while waiting */
                else if (R->ledger.ended || R->ledger.cancelled || rank0_moved_on(R, i)) {
                        give_back(R, false);
                        return CLAIM_AGAIN; /* the run's end, or the attempt's, is seen by fleet_start */
                } else {
                        struct gang_view v;
                        ledger_gang_view(&R->ledger, (size_t)i, R->gang.attempt, R->gang.rank, &v);
                        if (v.present == v.nodes) {
                                formed(R, i, &v);
                                return 0;
                        }
                        if (now_mono() - t0 >= (double)R->job.gang_timeout)
                                return timed_out(R, i, &v);
                        if (v.present != said) {
                                char ranks[200];
                                ranks_text(&v, ranks, sizeof ranks);
                                snprintf(R->waiting, sizeof R->waiting, "gang %d/%d of experiment %s (attempt %d, "
                                         "rank %d here): waiting for rank%s %.60s", v.present, v.nodes, x->name,
                                         R->gang.attempt, R->gang.rank, v.n_missing == 1 ? "" : "s", ranks);
                                log_info("%s", R->waiting);
                                push_status(R);
                                said = v.present;
                        }
                }
                if (!waiter_sleep(&R->w, GANG_LOOK))
                        return EV_SIGTERM;
        }
}

int gang_form(struct run *R, int i) {
        int r = form_wait(R, i);
        R->waiting[0] = 0; /* formed, given up, or stopped: status.json waits for the gang no more */
        return r;
}

/* This part's logs (rank 0: and the checkpoint, the experiment's) in S3, then its place given back. */
static int leave_attempt(struct run *R, int i, bool finished) {
        if (ship_held(R, (size_t)i) < 0)
                log_warn("experiment %s: not all of rank %d's part reached S3 before its place was given back",
                         R->job.experiments[i].name, R->gang.rank);
        give_back(R, finished);
        R->st.exps[i].st = EXP_PENDING; /* done only once rank 0 commits it (sync_from_ledger) */
        save_state(R);
        return CLAIM_AGAIN;
}

/* How this part ended, for the table (gang_plan). */
static enum gang_end how_it_ended(const struct run *R, const struct exp_state *s) {
        if (s->st == EXP_DONE)
                return s->exit_code == 0 && !s->signal ? GE_EXIT_OK : GE_EXIT_FAILED;
        if (s->reason != R_GANG_STOPPED)
                return GE_LOST;
        return R->gang.stop.set && !strcmp(R->gang.stop.reason, "exit") ? GE_MEMBER_FAILED : GE_GANG_STOPPED;
}

#define GANG_EVIDENCE_MAX 60 /* seconds rank 0 looks for another member's stop before its failure is final */

/* Rank 0's failure with no attempt left is the experiment's only when no other member was interrupted or vanished: a
 * peer that dies makes every collective fail. The ledger is looked at for a while: a member's notice is there at
 * once, a vanished member's lease is found unrenewed after ttl / 2 (then EC2 is asked). */
static enum gang_end confirm_failure(struct run *R, int i, enum gang_end how) {
        double wait = MIN((double)R->ledger.ttl * 0.75, GANG_EVIDENCE_MAX), t0 = now_mono();
        for (;;) {
                struct gang_call g = { 0 };
                if (io(R, do_refresh, &g) == 0) {
                        struct gang_view v;
                        ledger_gang_view(&R->ledger, (size_t)i, R->gang.attempt, R->gang.rank, &v);
                        if (v.n_missing > 0 && !(v.stop.set && !strcmp(v.stop.reason, "exit"))) {
                                log_info("experiment %s: rank 0's part ended because the gang broke (%s): not a "
                                         "failure of its own", R->job.experiments[i].name, v.why);
                                return GE_GANG_STOPPED;
                        }
                        if (v.n_missing > 0 || how == GE_MEMBER_FAILED)
                                return how; /* members failed (their own words): a failure */
                }
                if (now_mono() - t0 >= wait || !waiter_sleep(&R->w, 1))
                        return how;
        }
}

int gang_part_ended(struct run *R, int i) {
        struct exp_state *s = &R->st.exps[i];
        const struct gang_part *g = &R->gang;
        const char *name = R->job.experiments[i].name;
        /* a failure is tried again only within max_attempts (none set: never, a gang that fails would loop) */
        bool last = R->job.fleet.max_attempts <= 0 || R->ledger.attempt >= R->job.fleet.max_attempts;
        enum gang_end how = how_it_ended(R, s);
        if (g->rank == 0 && last && (how == GE_EXIT_FAILED || how == GE_MEMBER_FAILED))
                how = confirm_failure(R, i, how);
        enum gang_step step = gang_plan(how, g->rank == 0, last);
        if (how == GE_EXIT_FAILED)
                log_info("rank %d of experiment %s %s %d: the gang's attempt %d ends%s", g->rank, name,
                         s->signal ? "was killed by signal" : "exited with code", s->signal ? s->signal : s->exit_code,
                         g->attempt, last ? "" : " and is tried again");
        switch (step) {
        case GS_COMMIT: return GANG_COMMIT;
        case GS_COMMIT_MEMBER:
                /* a member's failure with no attempt left is the experiment's */
                s->st = EXP_DONE;
                s->exit_code = g->stop.exit_code;
                s->signal = g->stop.signal;
                s->reason = R_EXIT;
                return GANG_COMMIT;
        case GS_FINISHED:
                log_info("rank %d of experiment %s finished; rank 0 commits the experiment", g->rank, name);
                return leave_attempt(R, i, true);
        case GS_STOP_ALL:
                /* why, into its lease: members still waiting or running stop at once */
                if (how == GE_EXIT_FAILED)
                        gang_say_stop(R, "exit", s->exit_code, s->signal);
                else
                        gang_say_stop(R, "gang-stopped", 0, 0);
                return leave_attempt(R, i, false);
        case GS_LEAVE: return leave_attempt(R, i, false);
        case GS_NOTHING: case GS_HOLE: case GS__MAX: break;
        }
        return CLAIM_AGAIN; /* its lease lost, or the run over: nothing of it is this instance's to ship */
}
