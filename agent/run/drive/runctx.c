/* SPDX-License-Identifier: Apache-2.0 */
/* runctx.c — what every part of the driver shares: the state saved at each step, the status pushed, a failure
 * recorded, the watcher's and the keeper's news read, and the one seam through which the driver waits (io). */
#include "run/drive/runctx.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdarg.h>

#include "jsonx.h"
#include "log.h"
#include "run/proc/exptree.h"

void save_state(struct run *R) {
        int r = runstate_save(R->state_path, &R->st);
        if (r < 0)
                log_warn("cannot save state to %s: %s", R->state_path, strerror(-r));
}

/* ---------- the one seam for what the driver waits on ---------- */

/* Every network call and wait of the driver runs through io(): fn runs on a worker thread while this thread reads
 * signals (a SIGTERM is noted, and acted on when fn returns) and feeds systemd's watchdog (wait.h). The driver
 * never blocks anywhere else, so no ledger call, teardown or exit action can starve the watchdog. */
struct io_call {
        struct run *R;
        int (*fn)(struct run *R, void *arg);
        void *arg;
};

static int io_trampoline(void *p) {
        struct io_call *c = p;
        return c->fn(c->R, c->arg);
}

int io(struct run *R, int (*fn)(struct run *R, void *arg), void *arg) {
        struct io_call c = { .R = R, .fn = fn, .arg = arg };
        return waiter_blocking(&R->w, io_trampoline, &c, 0);
}

/* What the ledger told this instance changes its part in the shared run (lifecycle.h: the role table); saved. */
void role_news(struct run *R, enum fleet_news n) {
        enum fleet_role was = R->st.role;
        R->st.role = fleet_role_next(was, n);
        if (R->st.role != was) {
                log_info("fleet role: %s -> %s (%s)", fleet_role_name(was), fleet_role_name(R->st.role),
                         fleet_news_name(n));
                save_state(R);
        }
}

/* ---------- this instance's record in the ledger ---------- */

void close_attempt(struct run *R, size_t i) {
        const struct exp_state *s = &R->st.exps[i];
        for (size_t k = 0; k < R->n_attempts; k++) {
                struct attempt_here *a = &R->attempts[k];
                if (a->exp == (int)i && !a->closed) /* an earlier attempt here: how it ended is its own now */
                        *a = (struct attempt_here){ .exp = a->exp, .attempt = a->attempt, .start = a->start,
                                                    .out_from = a->out_from, .err_from = a->err_from, .node = a->node,
                                                    .closed = true,
                                                    .end = s->end, .exit_code = s->exit_code, .signal = s->signal,
                                                    .st = EXP_DONE, .reason = s->reason };
        }
}

void note_attempt(struct run *R, size_t i, uint64_t out_from, uint64_t err_from) {
        const struct exp_state *s = &R->st.exps[i];
        close_attempt(R, i); /* (already, before its state was reset for this one) */
        if (R->n_attempts == RUN_MAX_ATTEMPTS_HERE) /* the oldest goes */
                memmove(R->attempts, R->attempts + 1, --R->n_attempts * sizeof R->attempts[0]);
        R->attempts[R->n_attempts++] = (struct attempt_here){ .exp = (int)i, .attempt = s->attempts, .start = s->start,
                                                              .out_from = out_from, .err_from = err_from,
                                                              .node = gang_rank_of(R, i) };
}

static void add_iso(cJSON *o, const char *k, time_t t) {
        char b[32];
        if (t && format_iso8601(t, b) == 0)
                cJSON_AddStringToObject(o, k, b);
}

static cJSON *attempt_json(const struct run *R, const struct attempt_here *a) {
        const struct exp_state *s = &R->st.exps[a->exp];
        enum exp_status st = a->closed ? a->st : s->st;
        time_t end = a->closed ? a->end : s->end;
        int code = a->closed ? a->exit_code : s->exit_code, sig = a->closed ? a->signal : s->signal;
        enum exp_reason rs = a->closed ? a->reason : s->reason;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "experiment", R->job.experiments[a->exp].name);
        cJSON_AddNumberToObject(o, "attempt", a->attempt);
        cJSON_AddStringToObject(o, "instance", R->inst.id);
        add_iso(o, "start", a->start);
        cJSON_AddStringToObject(o, "status", exp_status_name(st == EXP_RUNNING && R->ended_here ? EXP_DONE : st));
        if (st != EXP_RUNNING)
                add_iso(o, "end", end);
        if (st == EXP_DONE && code >= 0 && !sig)
                cJSON_AddNumberToObject(o, "exit_code", code);
        if (sig)
                cJSON_AddNumberToObject(o, "signal", sig);
        if (rs != R_NONE)
                cJSON_AddStringToObject(o, "reason", exp_reason_name(rs));
        cJSON_AddNumberToObject(o, "stdout_from", (double)a->out_from);
        cJSON_AddNumberToObject(o, "stderr_from", (double)a->err_from);
        if (a->node > 0) /* its offsets are in logs/<experiment>/node-<node>/'s, not the experiment's log */
                cJSON_AddNumberToObject(o, "node", a->node);
        return o;
}

/* What this instance did for the run, as its record in the ledger says it (ledger.h): its type, launch, cost, the
 * attempts it ran and, at its end, its last word. */
static cJSON *self_record(struct run *R) {
        time_t now = now_wall();
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return NULL;
        cJSON_AddStringToObject(o, "instance", R->inst.id);
        cJSON_AddNumberToObject(o, "time", (double)now);
        cJSON_AddNumberToObject(o, "ttl", (double)R->ledger.ttl);
        cJSON_AddNumberToObject(o, "started", (double)R->st.started); /* when this instance began its part */
        cJSON_AddStringToObject(o, "type", R->inst.type);
        cJSON_AddStringToObject(o, "availability_zone", R->inst.az);
        cJSON_AddStringToObject(o, "region", R->inst.region);
        cJSON_AddStringToObject(o, "lifecycle", R->inst.lifecycle);
        cJSON *c = wrapup_cost_current(&R->wrap);
        if (c)
                cJSON_AddItemToObject(o, "cost", c);
        if (R->st.spot_action[0]) {
                cJSON *sp = cJSON_AddObjectToObject(o, "interruption");
                cJSON_AddStringToObject(sp, "action", R->st.spot_action);
                add_iso(sp, "time", R->st.spot_time);
        }
        cJSON *a = cJSON_AddArrayToObject(o, "attempts");
        for (size_t k = 0; a && k < R->n_attempts; k++)
                cJSON_AddItemToArray(a, attempt_json(R, &R->attempts[k]));
        if (R->ended_here)
                cJSON_AddNumberToObject(o, "ended", (double)now);
        return o;
}

void share_self(struct run *R, bool beat) {
        if (!R->ledger_ok || !R->inst.id[0])
                return;
        _cleanup_(cjson_deletep) cJSON *o = self_record(R);
        _cleanup_free_ char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
        if (txt && strlen(txt) < LEDGER_SELF_MAX)
                ledger_set_self(&R->ledger, txt, beat);
}

int end_here(struct run *R) {
        if (!R->ledger_ok || !R->inst.id[0])
                return 0;
        R->ended_here = true;
        share_self(R, false);
        struct aws_result out = { 0 };
        int r = ledger_beat_now(&R->ledger, &out);
        if (r < 0)
                log_warn("this instance's last word to the run's ledger: %s", out.msg);
        return r;
}

/* Every instance's record: the others' as last read, and this one's now. */
static cJSON *all_records(struct run *R) {
        if (!R->ledger_ok)
                return NULL;
        cJSON *a = ledger_peers_json(&R->ledger);
        if (!a && !(a = cJSON_CreateArray()))
                return NULL;
        cJSON *self = R->inst.id[0] ? self_record(R) : NULL;
        if (self)
                cJSON_AddItemToArray(a, self);
        return a;
}

/* status.json's "staging" while an input is staged */
static cJSON *staging_of(const struct run *R) {
        int i = atomic_load(&R->stage.input);
        if (!R->stage_start || i < 0 || (size_t)i >= R->job.n_inputs)
                return NULL;
        return stage_progress_json(&R->stage, R->job.inputs[i].name, (int)R->job.n_inputs);
}

int build_status(struct run *R, bool final, char **ret) {
        struct status_parts p = { .job = &R->job, .st = &R->st, .inst = &R->inst, .results_uri = R->results_uri,
                                  .gpu = R->have_gpu_inv ? &R->gpu_inv : NULL, .gpu_hung = R->gpu_hung,
                                  .final = final, .cost = wrapup_cost_json(&R->wrap),
                                  .ledger = R->ledger_ok ? &R->ledger : NULL, .records = all_records(R),
                                  .waiting = R->waiting, .staging = staging_of(R) };
        return status_build(&p, ret);
}

void push_status(struct run *R) {
        _cleanup_free_ char *js = NULL;
        if (R->ship_ready && build_status(R, false, &js) == 0) {
                shipper_set_status(&R->ship, js);
                wrapup_status_changed(&R->wrap, js); /* report.html follows status.json */
        }
        share_self(R, false);
}

/* A failure the run cannot go on from: the first one is the run's error. Returns EV_FAILED. */
enum lc_event failed(struct run *R, const char *fmt, ...) {
        char m[sizeof R->st.error];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m, sizeof m, fmt, ap);
        va_end(ap);
        log_error("%s", m);
        if (!R->st.error[0])
                snprintf(R->st.error, sizeof R->st.error, "%s", m);
        save_state(R);
        return EV_FAILED;
}

static bool max_runtime_spent(const struct run *R) {
        return R->deadline > 0 && now_mono() >= R->deadline;
}

struct lc_exp lc_exp_of(const struct exp_state *s) {
        return (struct lc_exp){ .ran = s->st == EXP_DONE, .skipped = s->st == EXP_SKIPPED, .reason = s->reason,
                                .exit_code = s->exit_code };
}

enum outcome decide_outcome(const struct run *R) {
        struct lc_exp e[JOB_MAX_EXPERIMENTS];
        for (size_t i = 0; i < R->st.n; i++)
                e[i] = lc_exp_of(&R->st.exps[i]);
        return lc_outcome(R->st.end, R->st.error[0] != 0, e, R->st.n);
}

/* A GPU query hung (or answered again after a hang): said once in the log, and in status.json. */
static void check_gpu_health(struct run *R) {
        bool hung;
        time_t since;
        unsigned long hangs;
        watcher_gpu_health(&R->watch, &hung, &since, &hangs);
        if (hung == R->gpu_hung)
                return;
        R->gpu_hung = hung;
        if (hung)
                log_error("%s hung: a GPU query has not returned for %ds; GPU sampling and gpu_idle are off until it "
                          "does; spot handling and shipping go on", R->gpu_inv.source[0] ? R->gpu_inv.source : "NVML",
                          WATCH_GPU_HUNG);
        else
                log_info("the GPU query returned again after a hang");
        push_status(R);
}

/* A GPU thread left behind (stuck in NVML) means the process ends with _exit, the GPU handle not closed under it. */
void stop_watch(struct run *R) {
        if (R->ledger_ok)
                ledger_set_wake(&R->ledger, -1); /* the watcher's eventfd is about to close */
        if (watcher_stop(&R->watch)) {
                log_warn("the GPU thread is still stuck in a query: left behind");
                R->w.abandoned = true;
                R->gpu_hung = true;
        }
}

/* The watcher has news: a spot notice (→ EV_SPOT, once), a rebalance recommendation, GPU idleness, GPU health. */
void note_cancel(struct run *R, const char *by) {
        if (!R->st.cancelled_by[0]) {
                snprintf(R->st.cancelled_by, sizeof R->st.cancelled_by, "%s", by && *by ? by : "unknown");
                save_state(R);
        }
        log_info("run %s is cancelled (by %s): the running experiment stops, nothing more starts", R->st.run_id,
                 R->st.cancelled_by);
}

int gang_rank_of(const struct run *R, size_t i) {
        return R->gang.exp == (int)i ? R->gang.rank : 0;
}

const char *gang_log_name(const struct run *R, size_t i, char *buf, size_t n) {
        const char *name = R->job.experiments[i].name;
        if (gang_rank_of(R, i) > 0 && pathf(buf, n, "%s/node-%d", name, R->gang.rank) == 0)
                return buf;
        return name;
}

size_t gang_env(const struct run *R, size_t i, char env[GANG_ENV_N][GANG_ENV_LEN]) {
        const struct gang_part *g = &R->gang;
        if (g->exp != (int)i)
                return 0;
        snprintf(env[0], GANG_ENV_LEN, "MAYFLY_NODE_RANK=%d", g->rank);
        snprintf(env[1], GANG_ENV_LEN, "MAYFLY_NNODES=%d", g->nodes);
        snprintf(env[2], GANG_ENV_LEN, "MAYFLY_NODE_IPS=%s", g->ips);
        snprintf(env[3], GANG_ENV_LEN, "MASTER_ADDR=%s", g->master);
        snprintf(env[4], GANG_ENV_LEN, "MASTER_PORT=%d", R->job.rendezvous_port);
        snprintf(env[5], GANG_ENV_LEN, "NODE_RANK=%d", g->rank);
        /* one process per node scripts (init_method="env://"); torchrun sets its own for its workers */
        snprintf(env[6], GANG_ENV_LEN, "WORLD_SIZE=%d", g->nodes);
        snprintf(env[7], GANG_ENV_LEN, "RANK=%d", g->rank);
        return GANG_ENV_N;
}

static int do_gang_stop(struct run *R, void *a) {
        struct aws_result out = { 0 };
        int r = ledger_gang_stop(&R->ledger, a, &out);
        if (r < 0)
                log_warn("telling the gang why rank %d stops: %s", R->gang.rank, out.msg);
        return r;
}

void gang_say_stop(struct run *R, const char *reason, int exit_code, int sig) {
        struct ledger_stop s = { .set = true, .exit_code = exit_code, .signal = sig };
        snprintf(s.reason, sizeof s.reason, "%s", reason);
        io(R, do_gang_stop, &s);
}

/* A gang's part in the watch: the keeper found the gang broken (this part stops with it); spot: a notice came here
 * (why it stops goes into its lease at once, so that the others stop too). */
static void gang_watch(struct run *R, bool spot) {
        if (!R->ledger_ok || R->gang.exp < 0)
                return;
        char why[200];
        struct ledger_stop stop;
        if (ledger_take_gang(&R->ledger, why, sizeof why, &stop) && R->cur_idx == R->gang.exp) {
                R->gang.stop = stop;
                /* a member's spot notice: the notice's grace, so that rank 0 has the time to save */
                long grace = stop.set && !strcmp(stop.reason, "interrupted") ? MAX(R->job.stop_grace, R->job.spot_grace)
                                                                             : R->job.stop_grace;
                log_info("the gang of experiment %s broke: %s; rank %d's part stops (attempt %d, %lds to end)",
                         R->job.experiments[R->cur_idx].name, why, R->gang.rank, R->gang.attempt, grace);
                exp_stop(&R->cur, R_GANG_STOPPED, grace);
        }
        if (spot && ledger_held(&R->ledger) == R->gang.exp)
                gang_say_stop(R, "interrupted", 0, 0);
}

int on_watch(struct run *R) {
        watcher_ack(&R->watch);
        pthread_mutex_lock(&R->watch.lock);
        bool spot = R->watch.spot, reb = R->watch.rebalance, idle = R->watch.idle_fired;
        char action[16];
        snprintf(action, sizeof action, "%s", R->watch.spot_action);
        time_t when = R->watch.spot_time;
        pthread_mutex_unlock(&R->watch.lock);
        check_gpu_health(R);
        char broken[1024];
        if (R->ledger_ok && ledger_take_broken(&R->ledger, broken, sizeof broken))
                return failed(R, "%s", broken); /* the experiment stops, ships, and the run ends in error */
        if (R->ledger_ok && ledger_take_lost(&R->ledger) && R->cur_idx >= 0) {
                /* another instance may take it soon: no side effect of this one may outlive the claim */
                log_error("the claim on experiment %s could not be renewed: stopping it (another instance takes it over)",
                          R->job.experiments[R->cur_idx].name);
                exp_stop(&R->cur, R_LEASE_LOST, MIN(R->job.stop_grace, R->ledger.ttl / 2));
        }
        if (R->ledger_ok && ledger_take_over(&R->ledger) && R->cur_idx >= 0) {
                log_info("run %s was ended by another instance: stopping experiment %s", R->st.run_id,
                         R->job.experiments[R->cur_idx].name);
                exp_stop(&R->cur, R_RUN_OVER, R->job.stop_grace);
        }
        gang_watch(R, spot && !R->st.spot_action[0]);
        char by[160];
        if (R->ledger_ok && ledger_take_cancel(&R->ledger, by, sizeof by)) {
                note_cancel(R, by);
                return EV_CANCEL;
        }
        if (reb && !R->rebalance_seen) {
                R->rebalance_seen = true;
                log_info("rebalance recommendation received");
                if (R->job.rebalance_sigusr1 && R->cur_idx >= 0)
                        exp_signal(&R->cur, SIGUSR1);
        }
        if (idle && R->cur_idx >= 0)
                exp_stop(&R->cur, R_GPU_IDLE, R->job.stop_grace);
        if (spot && !R->st.spot_action[0]) {
                snprintf(R->st.spot_action, sizeof R->st.spot_action, "%s", action);
                R->st.spot_time = when;
                save_state(R);
                log_info("spot interruption notice: %s at %ld (in %lds)", action, (long)when,
                         (long)(when - aws_cloud_now(&R->c)));
                return EV_SPOT;
        }
        return -1;
}

/* After an action that does not watch for them itself: a stop or a spot notice that came meanwhile. */
int pending_event(struct run *R) {
        if (R->w.stop)
                return EV_SIGTERM;
        if (R->watch.running) {
                int ev = on_watch(R);
                if (ev >= 0)
                        return ev;
        }
        if (max_runtime_spent(R))
                return EV_MAX_RUNTIME;
        return -1;
}

/* ---------- the workdir and the run user ---------- */

/* The run user and the workdir, before anything touches the workdir; on every start, as neither is persisted.
 * create: make the workdir if it is missing (not when only shipping what exists). */
int run_tree(const struct run *R, bool scratch, const char **ret_path) {
        if (ret_path)
                *ret_path = scratch ? R->scratch_dir : R->workdir;
        return scratch ? R->scratchfd : R->workfd;
}

int take_workdir(struct run *R, bool create) {
        char err[1024];
        if (R->workfd >= 0)
                return 0;
        if (!R->user_ok) {
                int r = run_user_resolve(R->job.user, R->job.keep_groups, &R->user, err, sizeof err);
                if (r < 0) {
                        failed(R, "%s", err);
                        return r;
                }
                R->user_ok = true;
                if (R->user.dropped)
                        log_info("run user %s: %d administrators' group%s not given to the experiment (keep_groups "
                                 "keeps one by name)", R->user.name, R->user.dropped, R->user.dropped == 1 ? "" : "s");
        }
        if (!create && access(R->workdir, F_OK) != 0)
                return -ENOENT;
        int fd = exptree_open(R->workdir, &R->user, err, sizeof err);
        if (fd < 0) {
                failed(R, "%s", err);
                return fd;
        }
        R->workfd = fd;
        return 0;
}

void stop_leftover(struct run *R, size_t i) {
        struct exp_state *s = &R->st.exps[i];
        int left = exp_stop_leftover(&R->w, s->pid, s->pid_start, R->job.stop_grace, R->user.uid,
                                     R->user_ok ? s->marker : NULL);
        if (left > 0 || !R->user_ok)
                snprintf(R->last_marker, sizeof R->last_marker, "%s", s->marker);
}
