/* SPDX-License-Identifier: Apache-2.0 */
/* fleetrun.c — a run shared by instances (a run_id): experiments claimed through the ledger, committed once their
 * results are in S3, the run ended once for all; this instance's role in its end (lifecycle.h: the role table). */
#include "run/drive/fleetrun.h"

#include "caps.h"

#include "log.h"
#include "run/proc/exptree.h"
#include "run/fleet/group.h"

#include "run/drive/gangrun.h"
#include "run/drive/phases.h"

/* The ledger's calls, through the seam: each takes its own arguments */
struct ledger_call {
        int i, max_attempts, rank;              /* claim (rank > 0: a gang's slot) */
        const struct ledger_done *done;         /* commit */
        const char *outcome, *reason;           /* end */
        struct aws_result out;
};

static int do_refresh(struct run *R, void *a) { return ledger_refresh(&R->ledger, &((struct ledger_call *)a)->out); }
static int do_release(struct run *R, void *a) { return ledger_release(&R->ledger, &((struct ledger_call *)a)->out); }
static int do_claim(struct run *R, void *a) {
        struct ledger_call *l = a;
        return l->rank > 0 ? ledger_claim_slot(&R->ledger, l->i, l->rank, &l->out)
                           : ledger_claim(&R->ledger, l->i, l->max_attempts, &l->out);
}
static int do_commit(struct run *R, void *a) {
        struct ledger_call *l = a;
        return ledger_commit(&R->ledger, l->done, &l->out);
}
static int do_end(struct run *R, void *a) {
        struct ledger_call *l = a;
        return ledger_end(&R->ledger, l->outcome, l->reason, &l->out);
}
static int do_last_member(struct run *R, void *a) { return fleet_last_member(&R->c, &R->job.fleet); }

/* ---------- RUN in a fleet: experiments claimed through the ledger ---------- */

/* What other instances finished, into the local state (for status.json and the outcome). */
static void sync_from_ledger(struct run *R) {
        for (size_t i = 0; i < R->st.n && i < R->ledger.n; i++) {
                const struct ledger_exp *e = &R->ledger.exps[i];
                struct exp_state *s = &R->st.exps[i];
                if (e->attempts > s->attempts)
                        s->attempts = e->attempts;
                if (e->done && s->st != EXP_DONE) {
                        s->st = EXP_DONE;
                        s->exit_code = e->exit_code;
                        s->signal = e->signal;
                        s->start = e->start;
                        s->end = e->end;
                        int rv = exp_reason_from_name(e->reason);
                        s->reason = rv > 0 ? (enum exp_reason)rv : R_EXIT;
                }
        }
}

/* Ends the run for every instance (the end record, once); who won decides this instance's role. */
static void fleet_end(struct run *R, enum outcome o, const char *reason) {
        struct ledger_call l = { .outcome = outcome_name(o), .reason = reason };
        int r = io(R, do_end, &l);
        if (r == -MF_ESTORE) {
                log_warn("cannot write the run's end record on a store that refuses conditional writes: ending it "
                         "from here");
                r = 1;
        } else if (r < 0) {
                log_warn("cannot write the run's end record (%s): ending it from here", l.out.msg);
                r = 1;
        }
        role_news(R, r == 1 ? FN_END_WON : FN_END_LOST);
        log_info(r == 1 ? "the run is over (%s, %s): this instance ends it" : "the run is over (%s, %s)",
                 r == 1 ? outcome_name(o) : R->ledger.end_outcome, r == 1 ? reason : R->ledger.end_reason);
}

struct restore_call {
        int i;
        bool gang;                              /* a gang's: a log here is replaced by S3's when S3's is longer */
        char name[160];                         /* where its logs go (gang_log_name) */
        char msg[600];
};

/* The experiment's full logs from S3 before it resumes on another instance: its log goes on from where it was.
 * -EFBIG (msg says which) for a log larger than what is brought back onto the disk: not restored, and not resumed
 * over (its next log would overwrite it). */
static int restore_logs(struct run *R, void *arg) {
        static const char *const streams[] = { "stdout", "stderr", XMETRICS_STREAM };
        static const char *const files[] = { "stdout.log", "stderr.log", XMETRICS_FILE };
        struct restore_call *rc = arg;
        const char *name = rc->name;
        for (size_t k = 0; k < ARRAY_SIZE(streams); k++) {
                char path[4200], key[S3_MAX_KEY + 1];
                struct aws_result out = { 0 };
                struct stat here;
                bool have = false;
                if (pathf(path, sizeof path, "%s/%s/%s", R->logs_dir, name, files[k]) < 0 ||
                    pathf(key, sizeof key, "%slogs/%s/%s", R->prefix, name, files[k]) < 0 ||
                    ((have = stat(path, &here) == 0) && !rc->gang))
                        continue;
                char dir[4200];
                if (pathf(dir, sizeof dir, "%s/%s/x", R->logs_dir, name) == 0)
                        mkdir_parents(dir, 0750);
                uint64_t size = 0;
                struct http_client h;
                int hr = http_client_init(&h);
                if (hr == 0)
                        hr = s3_head(&R->c, &h, R->bucket, key, &size, NULL, &out);
                http_client_free(&h);
                if (hr == 0 && size > CAP_LOG_RESTORE) {
                        char sz[32], lim[32];
                        fmt_bytes(size, sz);
                        fmt_bytes(CAP_LOG_RESTORE, lim);
                        errf(rc->msg, sizeof rc->msg, "s3://%s/%s is %s, more than a log brought back onto the "
                             "instance may be (%s): %s not resumed", R->bucket, key, sz, lim, name);
                        return -EFBIG;
                }
                /* a gang member whose rank moved: what the others appended meanwhile is in S3's, the longer */
                if (have && (hr != 0 || size <= (uint64_t)here.st_size))
                        continue;
                struct xfer_opts o = { .concurrency = 2 };
                if (xfer_download(&R->c, R->bucket, key, path, &o, &out) < 0 && out.status != 404)
                        log_warn("the earlier log of %s: %s", name, out.msg);
                /* an attempt whose instance vanished left only live chunks beyond the whole log */
                char stream[300];
                uint64_t added = 0;
                out = (struct aws_result){ 0 };
                snprintf(stream, sizeof stream, "%s/%s", name, streams[k]);
                if (shipper_restore_tail(&R->ship, path, stream, &added, &out) < 0)
                        log_warn("the live chunks of %s's %s: %s", name, streams[k], out.msg);
                else if (added)
                        log_info("%s's %s: %llu bytes from live chunks of an earlier attempt", name, streams[k],
                                 (unsigned long long)added);
        }
        return 0;
}

/* A finished experiment: its logs, outputs and checkpoint in S3, then its done record (once), the claim given back.
 * While S3 cannot take them, it waits (the claim renewed): committing without them would lose them. */
static int commit_experiment(struct run *R, size_t i) {
        const struct exp_state *s = &R->st.exps[i];
        for (int attempt = 0;; attempt++) {
                int r = ship_held(R, i);
                struct ledger_done d = { .exit_code = s->exit_code, .signal = s->signal,
                                         .reason = exp_reason_name(s->reason), .start = s->start, .end = s->end };
                struct ledger_call l = { .done = &d };
                if (r == 0 && (r = io(R, do_commit, &l)) == 0) {
                        log_info("experiment %s committed (attempt %d)", R->job.experiments[i].name, s->attempts);
                        return 0;
                }
                if (r == -MF_ESTORE) {
                        failed(R, "committing experiment %s: %s", R->job.experiments[i].name, l.out.msg);
                        return r;
                }
                log_warn("experiment %s: its results are not all in S3 yet (%s); trying again",
                         R->job.experiments[i].name, r == -EIO ? "uploads failed" : l.out.msg);
                /* the keeper may have given the claim up meanwhile: ledger_held reads it under the ledger's lock */
                if (!waiter_sleep(&R->w, MIN(5 << MIN(attempt, 4), 60)) || ledger_held(&R->ledger) != (int)i)
                        return -ECANCELED;
        }
}

/* The experiment this instance just claimed (its attempt in R->ledger): started or resumed, supervised, committed. */
static int run_claimed(struct run *R, int i) {
        struct exp_state *s = &R->st.exps[i];
        bool resume = R->ledger.attempt > 1, gang = R->job.experiments[i].nodes > 1;
        if (s->st == EXP_RUNNING)
                stop_leftover(R, (size_t)i);
        s->attempts = R->ledger.attempt - 1; /* start_experiment counts this one */
        ledger_set_phase(&R->ledger, "RUN", R->job.experiments[i].name);
        if (!gang)
                R->gang.exp = -1;
        int g = gang ? gang_form(R, i) : 0;
        if (g != 0)
                return g;
        struct restore_call rc = { .i = i, .gang = gang };
        const char *logs = gang_log_name(R, (size_t)i, rc.name, sizeof rc.name);
        if (logs != rc.name)
                snprintf(rc.name, sizeof rc.name, "%s", logs);
        if (resume && io(R, restore_logs, &rc) == -EFBIG) {
                struct ledger_call l = { 0 };
                io(R, do_release, &l);
                return failed(R, "%s", rc.msg);
        }
        if (start_experiment(R, (size_t)i, resume) == EV_FAILED) {
                struct ledger_call l = { 0 };
                io(R, do_release, &l);
                return EV_FAILED;
        }
        if (gang)
                ledger_gang_watch(&R->ledger, true);
        int ev = supervise(R);
        if (gang)
                ledger_gang_watch(&R->ledger, false);
        if (ev != EV_EXP_ENDED)
                return ev; /* a stop, a notice, max_runtime: the claim is given back once shipped */
        ledger_set_phase(&R->ledger, "RUN", NULL);
        if (gang && (ev = gang_part_ended(R, i)) != GANG_COMMIT)
                return ev;
        if (s->st != EXP_DONE)
                return CLAIM_AGAIN; /* its claim was lost (another instance's now), or the run is over (shipped, then
                                     * given back) */
        int c = commit_experiment(R, (size_t)i);
        if (c == -MF_ESTORE)
                return EV_FAILED;
        if (c < 0) {
                ev = pending_event(R);
                return ev >= 0 ? ev : EV_EXP_ENDED;
        }
        if (s->exit_code != 0 && !R->job.continue_on_failure) {
                log_info("experiment %s failed: the run ends (continue_on_failure is false)", R->job.experiments[i].name);
                fleet_end(R, OUT_FAILED, "an experiment failed");
                return EV_NO_MORE;
        }
        return EV_EXP_ENDED;
}

int fleet_start(struct run *R) {
        bool said_wait = false;
        int refused = 0; /* claims refused in a row */
        for (;;) {
                int ev = pending_event(R);
                if (ev >= 0)
                        return ev;
                struct ledger_call l = { 0 };
                if (io(R, do_refresh, &l) < 0) {
                        log_warn("reading the run's ledger: %s", l.out.msg);
                        if (!waiter_sleep(&R->w, FLEET_WAIT))
                                return EV_SIGTERM;
                        continue;
                }
                sync_from_ledger(R);
                if (R->ledger.ended) {
                        role_news(R, FN_OVER);
                        return EV_OVER;
                }
                if (R->ledger.cancelled) {
                        note_cancel(R, R->ledger.cancel_by);
                        return EV_CANCEL;
                }
                int i = -1;
                switch (ledger_pick(&R->ledger, !R->sweep, &i)) {
                case LEDGER_ALL_DONE: {
                        struct lc_exp e[JOB_MAX_EXPERIMENTS];
                        for (size_t k = 0; k < R->st.n; k++)
                                e[k] = lc_exp_of(&R->st.exps[k]);
                        fleet_end(R, lc_outcome(END_FINISHED, R->st.error[0] != 0, e, R->st.n), "finished");
                        return EV_NO_MORE;
                }
                case LEDGER_NOTHING_LEFT:
                        log_info("nothing left to claim: the other instances finish the run");
                        role_news(R, FN_NOTHING_LEFT);
                        return EV_NO_MORE;
                case LEDGER_WAIT:
                        if (!said_wait)
                                log_info("waiting: the next experiment is held by another instance");
                        said_wait = true;
                        if (!waiter_sleep(&R->w, FLEET_WAIT))
                                return EV_SIGTERM;
                        continue;
                case LEDGER_CLAIM: break;
                }
                l = (struct ledger_call){ .i = i, .max_attempts = R->job.fleet.max_attempts,
                                          .rank = ledger_gang_rank(&R->ledger, (size_t)i) };
                int r = io(R, do_claim, &l);
                if (r == -MF_EPRECOND) {
                        /* another instance won it: the next look comes at once; a store that keeps refusing the
                         * condition is looked at again only after a growing pause (no spin, signals read) */
                        if (++refused > 1) {
                                if (refused == 3)
                                        log_warn("claiming experiment %s: refused (412) %d times in a row",
                                                 R->job.experiments[i].name, refused);
                                if (!waiter_sleep(&R->w, MIN(refused - 1, FLEET_WAIT)))
                                        return EV_SIGTERM;
                        }
                        continue;
                }
                refused = 0;
                if (r == -MF_ESTORE) /* the store refuses what AWS accepts: no claim can ever take */
                        return failed(R, "claiming experiment %s: %s", R->job.experiments[i].name, l.out.msg);
                if (r == -E2BIG) {
                        log_error("experiment %s: max_attempts (%d) is spent", R->job.experiments[i].name,
                                  R->job.fleet.max_attempts);
                        fleet_end(R, OUT_INTERRUPTED, "max-attempts");
                        return EV_NO_MORE;
                }
                if (r < 0) {
                        log_warn("claiming experiment %s: %s", R->job.experiments[i].name, l.out.msg);
                        if (!waiter_sleep(&R->w, FLEET_WAIT))
                                return EV_SIGTERM;
                        continue;
                }
                ev = run_claimed(R, i);
                if (ev != CLAIM_AGAIN)
                        return ev;
        }
}

/* ---------- SHIP ---------- */

/* In a fleet, who does what at the end, decided before the final status (fleet_end_plan): the end record says
 * who ends the run. */
void fleet_decide(struct run *R) {
        if (!R->ledger_ok)
                return;
        struct fleet_facts f = { .end = R->st.end, .role = R->st.role, .sweep = R->sweep };
        if (fleet_plan_needs_members(&f))
                f.last_member = io(R, do_last_member, NULL) > 0;
        switch (fleet_end_plan(&f)) {
        case FP_END_ERROR: fleet_end(R, OUT_ERROR, R->st.error[0] ? R->st.error : lc_end_name(R->st.end)); break;
        case FP_END_TIMEOUT: fleet_end(R, OUT_TIMEOUT, "max-runtime"); break;
        case FP_LEAVE: role_news(R, FN_NOTHING_LEFT); break;
        case FP_FOLLOW: role_news(R, FN_OVER); break;
        case FP_END_CANCELLED: fleet_end(R, OUT_CANCELLED, "cancelled"); break;
        case FP_NOTHING: case FP__MAX: break;
        }
        if (R->st.role == ROLE_ENDS || R->st.role == ROLE_FOLLOWS) {
                struct ledger_call l = { 0 };
                if (io(R, do_refresh, &l) == 0)
                        sync_from_ledger(R);
                int o = outcome_from_name(R->ledger.end_outcome);
                if (o > 0)
                        R->st.outcome = (enum outcome)o;
                save_state(R);
        }
}

void fleet_release_claim(struct run *R) {
        if (!R->ledger_ok || ledger_held(&R->ledger) < 0)
                return;
        /* shipped: the experiment's claim goes back, so that a replacement takes it at once */
        struct ledger_call l = { 0 };
        if (io(R, do_release, &l) < 0)
                log_warn("giving the claim back: %s (it expires on its own)", l.out.msg);
}
