/* SPDX-License-Identifier: Apache-2.0 */
/* run.c — `mayfly run` and `mayfly failsafe`: the driver of the lifecycle (lifecycle.h). It performs the action the
 * table names for the phase and the event, and feeds the event the action ends with back to the table. Every ending
 * goes STOPPING → SHIP → EXIT; nothing else ships or ends the instance. The state is saved at each step, so a
 * restarted agent resumes where it was. */
#include "run/run.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "beneath.h"
#include "crypto.h"
#include "aws/chain.h"
#include "exitcode.h"
#include "log.h"
#include "run/envact.h"
#include "run/exitact.h"
#include "run/exptree.h"
#include "run/gpu.h"
#include "run/fleet.h"
#include "run/gpuprobe.h"
#include "run/instance.h"
#include "run/ledger.h"
#include "run/lifecycle.h"
#include "run/logship.h"
#include "run/runner.h"
#include "run/runstate.h"
#include "run/ship.h"
#include "run/status.h"
#include "run/supervise.h"
#include "run/wait.h"
#include "run/watch.h"
#include "run/wrapup.h"

extern char **environ;

#define SPOT_UPLOAD_MARGIN 30     /* seconds kept for uploads before a spot notice's time */
#define SPOT_MIN_GRACE 3          /* seconds a SIGTERM'd experiment always gets, even out of that margin */
#define EXIT_RETRY 30             /* seconds between attempts at an exit action that failed */
#define STOP_DRIVING (-1)         /* an action's answer: the process ends here (the state says where to go on) */
#define FLEET_WAIT 5              /* seconds between looks at the ledger while waiting for an experiment */
#define FLEET_SHIP_WAIT 120       /* seconds the run's ender gives the others to ship, beyond ttl/3 + stop_grace */

struct run {
        struct job job;
        bool bad_spec;                /* the job could not be parsed: it runs with the defaults to report that */
        char job_path[4096];
        char state_dir[2048], logs_dir[2048], cache_dir[2048];
        char state_path[2200];
        char workdir[4096];
        int workfd;                   /* the workdir, once the run user is known (-1 before) */
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
        struct wrapup wrap;           /* cost ledger, report.html, the notification (wrapup.h) */
        /* a run shared by instances (the job names a run_id): the ledger in S3 is the truth */
        bool fleet;
        bool sweep;                   /* experiments claimed in any order (`after` aside): a fleet of several */
        struct ledger ledger;
        bool ledger_ok;
        bool rebalance_seen;
        int rc;                       /* the process's exit code */
};

/* ---------- small helpers ---------- */

/* The first directory of a systemd *_DIRECTORY list (or def). */
static void first_dir(char *dst, size_t n, const char *env, const char *def) {
        const char *v = env_nonempty(env);
        if (!v)
                v = def;
        size_t l = strcspn(v, ":");
        snprintf(dst, n, "%.*s", (int)l, v);
}

static void save_state(struct run *R) {
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

static int io(struct run *R, int (*fn)(struct run *R, void *arg), void *arg) {
        struct io_call c = { .R = R, .fn = fn, .arg = arg };
        return waiter_blocking(&R->w, io_trampoline, &c, 0);
}

/* The ledger's calls, through the seam: each takes its own arguments */
struct ledger_call {
        int i, max_attempts;                    /* claim */
        const struct ledger_done *done;         /* commit */
        const char *outcome, *reason;           /* end */
        struct aws_result out;
};

static int do_refresh(struct run *R, void *a) { return ledger_refresh(&R->ledger, &((struct ledger_call *)a)->out); }
static int do_release(struct run *R, void *a) { return ledger_release(&R->ledger, &((struct ledger_call *)a)->out); }
static int do_claim(struct run *R, void *a) {
        struct ledger_call *l = a;
        return ledger_claim(&R->ledger, l->i, l->max_attempts, &l->out);
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

/* What the ledger told this instance changes its part in the shared run (lifecycle.h: the role table); saved. */
static void role_news(struct run *R, enum fleet_news n) {
        enum fleet_role was = R->st.role;
        R->st.role = fleet_role_next(was, n);
        if (R->st.role != was) {
                log_info("fleet role: %s -> %s (%s)", fleet_role_name(was), fleet_role_name(R->st.role),
                         fleet_news_name(n));
                save_state(R);
        }
}

static int build_status(const struct run *R, bool final, char **ret) {
        struct status_parts p = { .job = &R->job, .st = &R->st, .inst = &R->inst, .results_uri = R->results_uri,
                                  .gpu = R->have_gpu_inv ? &R->gpu_inv : NULL, .gpu_hung = R->gpu_hung,
                                  .final = final, .cost = wrapup_cost_json(&R->wrap),
                                  .ledger = R->ledger_ok ? &R->ledger : NULL };
        return status_build(&p, ret);
}

static void push_status(struct run *R) {
        _cleanup_free_ char *js = NULL;
        if (R->ship_ready && build_status(R, false, &js) == 0) {
                shipper_set_status(&R->ship, js);
                wrapup_status_changed(&R->wrap, js); /* report.html follows status.json */
        }
}

/* A failure the run cannot go on from: the first one is the run's error. Returns EV_FAILED. */
static enum lc_event failed(struct run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static enum lc_event failed(struct run *R, const char *fmt, ...) {
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

static struct lc_exp lc_exp_of(const struct exp_state *s) {
        return (struct lc_exp){ .ran = s->st == EXP_DONE, .skipped = s->st == EXP_SKIPPED, .reason = s->reason,
                                .exit_code = s->exit_code };
}

static enum outcome decide_outcome(const struct run *R) {
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
static void stop_watch(struct run *R) {
        if (R->ledger_ok)
                ledger_set_wake(&R->ledger, -1); /* the watcher's eventfd is about to close */
        if (watcher_stop(&R->watch)) {
                log_warn("the GPU thread is still stuck in a query: left behind");
                R->w.abandoned = true;
                R->gpu_hung = true;
        }
}

/* The watcher has news: a spot notice (→ EV_SPOT, once), a rebalance recommendation, GPU idleness, GPU health. */
static int on_watch(struct run *R) {
        watcher_ack(&R->watch);
        pthread_mutex_lock(&R->watch.lock);
        bool spot = R->watch.spot, reb = R->watch.rebalance, idle = R->watch.idle_fired;
        char action[16];
        snprintf(action, sizeof action, "%s", R->watch.spot_action);
        time_t when = R->watch.spot_time;
        pthread_mutex_unlock(&R->watch.lock);
        check_gpu_health(R);
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
static int pending_event(struct run *R) {
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
static int take_workdir(struct run *R, bool create) {
        char err[1024];
        if (R->workfd >= 0)
                return 0;
        if (!R->user_ok) {
                int r = run_user_resolve(R->job.user, &R->user, err, sizeof err);
                if (r < 0) {
                        failed(R, "%s", err);
                        return r;
                }
                R->user_ok = true;
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

/* ---------- FETCH ---------- */

struct fetch {
        struct run *R;
        char err[512];
};

static int fetch(void *arg) {
        struct fetch *f = arg;
        struct run *R = f->R;
        return exptree_fetch(&R->c, R->job.source, R->cache_dir, &R->user, R->workfd, f->err, sizeof f->err);
}

struct status_put {
        char *js;
        struct aws_result res;
};

static int do_put_status(struct run *R, void *p) {
        struct status_put *sp = p;
        return shipper_put_status(&R->ship, sp->js, &sp->res);
}

static int act_fetch(struct run *R) {
        /* fail before spending hours on a run whose results could not be kept */
        struct status_put sp = { 0 };
        /* in a shared run -EAGAIN (others kept writing it) is an answer too: the location takes writes */
        int w = build_status(R, false, &sp.js) == 0 ? io(R, do_put_status, &sp) : 0;
        free(sp.js);
        if (w < 0 && w != -EAGAIN) {
                R->ship_ready = false; /* nothing can be shipped there */
                return failed(R, "cannot write to the results location %s: %s", R->results_uri, sp.res.msg);
        }
        int ev = pending_event(R);
        if (ev >= 0)
                return ev;
        if (take_workdir(R, true) < 0)
                return EV_FAILED;
        waiter_status("fetching %s", R->job.source);
        log_info("fetching %s into %s", R->job.source, R->workdir);
        struct fetch f = { .R = R };
        int r = waiter_blocking(&R->w, fetch, &f, 0);
        if (r < 0)
                return failed(R, "%s", f.err[0] ? f.err : strerror(-r));
        ev = pending_event(R);
        return ev >= 0 ? ev : EV_DONE;
}

/* ---------- PREPARE ---------- */

static int act_prepare(struct run *R) {
        char err[1024];
        if (take_workdir(R, true) < 0)
                return EV_FAILED;
        struct env_spec es = { .kind = (enum env_kind)R->job.env_kind, .value = R->job.env_value };
        struct envact_search search = { .conda_exe = env_nonempty("CONDA_EXE"), .home = R->user.home };
        if (envact_resolve(&es, &search, &R->env, err, sizeof err) < 0)
                return failed(R, "%s", err);
        if (!R->gpu && !R->gpu_hung) {
                bool wait = R->job.gpu_require || R->job.gpu_idle > 0;
                if (wait)
                        waiter_status("waiting for the GPU driver%s", "");
                int r = gpu_probe(&R->w, wait ? R->job.gpu_wait : -1, &R->gpu, &R->gpu_inv, &R->have_gpu_inv, err,
                                  sizeof err);
                if (r == -ETIMEDOUT) {
                        R->gpu_hung = true;
                        log_error("%s; going on without GPU sampling", err);
                }
                if (r == -ETIMEDOUT && R->job.gpu_require)
                        return failed(R, "GPU required but %s", err);
                if (r < 0 && R->job.gpu_require)
                        return failed(R, "GPU required but none found after %lds: %s", R->job.gpu_wait, err);
        }
        if (R->have_gpu_inv)
                log_info("GPUs: %d (%s, driver %s)", R->gpu_inv.count, R->gpu_inv.source, R->gpu_inv.driver);
        if (R->gpu && R->job.gpu_require && (!R->have_gpu_inv || R->gpu_inv.count < R->job.gpu_min_count))
                return failed(R, "GPU required: found %d, need at least %d", R->have_gpu_inv ? R->gpu_inv.count : 0,
                              R->job.gpu_min_count);
        if (R->job.checkpoint_dir && !R->ship.ckpt_since)
                shipper_set_checkpoint(&R->ship, &R->user, R->workfd, R->job.checkpoint_dir, R->st.n,
                                       R->job.checkpoint_interval);
        if (R->metrics_fd < 0) {
                R->metrics_fd = open(R->metrics_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
                if (R->metrics_fd >= 0)
                        shipper_add_stream(&R->ship, R->metrics_path, "metrics");
        }
        if (R->gpu)
                watcher_add_gpu(&R->watch, R->gpu, R->metrics_fd, R->job.gpu_idle);
        int ev = pending_event(R);
        return ev >= 0 ? ev : EV_DONE;
}

/* ---------- RUN: one experiment ---------- */

struct restore {
        struct run *R;
        char prefix[1400];
        char dir[4200];
        size_t n;
        char refused[700];
};

/* The experiment's own checkpoint back from S3 into its directory (on a worker: the loop feeds the watchdog). */
static int restore_checkpoint(void *arg) {
        struct restore *rs = arg;
        struct run *R = rs->R;
        struct aws_result res = { 0 };
        int r = exptree_restore(&R->c, R->bucket, rs->prefix, &R->user, R->workfd, rs->dir, &rs->n, rs->refused,
                                sizeof rs->refused, &res);
        if (r < 0)
                log_warn("checkpoint restore from s3://%s/%s failed: %s", R->bucket, rs->prefix, res.msg);
        return r;
}

/* <checkpoint>/<experiment> in the workdir, made as the run user; on a resume its checkpoint restored into it. */
static int prepare_checkpoint(struct run *R, size_t i, bool resume, char *abs, size_t n) {
        const char *name = R->job.experiments[i].name;
        struct restore rs = { .R = R };
        if (pathf(rs.dir, sizeof rs.dir, "%s/%s", R->job.checkpoint_dir, name) < 0 ||
            pathf(abs, n, "%s/%s", R->workdir, rs.dir) < 0 ||
            pathf(rs.prefix, sizeof rs.prefix, "%scheckpoint/%s/", R->prefix, name) < 0)
                return failed(R, "the checkpoint directory of %s: its path or S3 key is too long", name);
        int r = exptree_mkdir(&R->user, R->workfd, rs.dir);
        if (beneath_refused(r))
                return failed(R, "the checkpoint directory %s is a link out of the workdir (planted by an experiment?): "
                              "refused", rs.dir);
        if (r < 0) {
                log_warn("cannot create the checkpoint directory %s as %s: %s", abs, R->user.name, strerror(-r));
                return -1;
        }
        if (!resume || !exptree_empty(&R->user, R->workfd, rs.dir))
                return -1;
        r = waiter_blocking(&R->w, restore_checkpoint, &rs, 0);
        if (rs.refused[0])
                return failed(R, "checkpoint restore: refused %s", rs.refused);
        if (r == 0)
                log_info("checkpoint restored: %zu files into %s", rs.n, abs);
        return -1;
}

static int open_log(struct run *R, const char *exp, const char *stream, char *path, size_t n) {
        if (pathf(path, n, "%s/%s", R->logs_dir, exp) < 0)
                return -ENAMETOOLONG;
        if (mkdir(path, 0750) < 0 && errno != EEXIST)
                return -errno;
        if (pathf(path, n, "%s/%s/%s.log", R->logs_dir, exp, stream) < 0)
                return -ENAMETOOLONG;
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        return fd < 0 ? -errno : fd;
}

/* Starts experiment i (resume: again, after an interruption). EV_FAILED when it cannot start. */
static int start_experiment(struct run *R, size_t i, bool resume) {
        const struct experiment *x = &R->job.experiments[i];
        struct exp_state *s = &R->st.exps[i];
        char ckpt[4400] = "", outp[4200], errp[4200];
        if (R->job.checkpoint_dir && prepare_checkpoint(R, i, resume, ckpt, sizeof ckpt) == EV_FAILED)
                return EV_FAILED;
        int out_log = open_log(R, x->name, "stdout", outp, sizeof outp);
        int err_log = out_log < 0 ? -1 : open_log(R, x->name, "stderr", errp, sizeof errp);
        if (out_log < 0 || err_log < 0) {
                int e = out_log < 0 ? out_log : err_log;
                if (out_log >= 0)
                        close(out_log);
                return failed(R, "cannot create log files under %s: %s", R->logs_dir, strerror(-e));
        }
        char stream[300];
        snprintf(stream, sizeof stream, "%s/stdout", x->name);
        shipper_add_stream(&R->ship, outp, stream);
        snprintf(stream, sizeof stream, "%s/stderr", x->name);
        shipper_add_stream(&R->ship, errp, stream);

        char e_run[256], e_exp[128], e_res[1500], e_ck[4500], e_att[64];
        snprintf(e_run, sizeof e_run, "MAYFLY_RUN_ID=%s", R->st.run_id);
        snprintf(e_exp, sizeof e_exp, "MAYFLY_EXPERIMENT=%s", x->name);
        snprintf(e_res, sizeof e_res, "MAYFLY_RESULTS=%s", R->results_uri);
        snprintf(e_ck, sizeof e_ck, "MAYFLY_CHECKPOINT_DIR=%s", ckpt);
        snprintf(e_att, sizeof e_att, "MAYFLY_ATTEMPT=%d", s->attempts + 1);
        char e_type[96], e_iid[96], e_gpus[48];
        snprintf(e_type, sizeof e_type, "MAYFLY_INSTANCE_TYPE=%s", R->inst.type);
        snprintf(e_iid, sizeof e_iid, "MAYFLY_INSTANCE_ID=%s", R->inst.id);
        snprintf(e_gpus, sizeof e_gpus, "MAYFLY_GPU_COUNT=%d", R->have_gpu_inv ? R->gpu_inv.count : 0);
        char *menv[10] = { e_run, e_exp, e_res, e_att, e_type, e_iid, e_gpus };
        size_t nm = 7;
        if (ckpt[0])
                menv[nm++] = e_ck;
        if (resume)
                menv[nm++] = "MAYFLY_RESUME=1";
        char **envp = runner_environment(&R->user, environ, R->job.environment, menv);
        char **argv = NULL;
        envact_exec_argv(&R->env, x->argv, x->shell, &argv);
        char err[512] = "out of memory";
        int r = envp && argv ? 0 : -ENOMEM;
        if (r == 0) {
                struct spawn sp = { .argv = argv, .envp = envp, .cwd = R->workdir, .user = &R->user };
                r = exp_start(&R->cur, x->name, &sp, out_log, err_log, x->timeout, R->job.stop_grace, err, sizeof err);
        } else {
                close(out_log);
                close(err_log);
        }
        strv_free(envp);
        envact_free_argv(argv);
        if (r < 0)
                return failed(R, "experiment %s: %s", x->name, err);
        R->cur_idx = (int)i;
        s->st = EXP_RUNNING;
        s->start = now_wall();
        s->attempts++;
        s->pid = R->cur.ch.pid;
        s->pid_start = proc_start_time(R->cur.ch.pid);
        s->reason = R_NONE;
        save_state(R);
        push_status(R);
        watcher_experiment(&R->watch, true);
        if (R->job.checkpoint_dir)
                shipper_checkpoint_current(&R->ship, (int)i, x->name);
        waiter_status("running %s", x->name);
        log_info("experiment %s started (pid %d%s)", x->name, (int)R->cur.ch.pid, resume ? ", resumed" : "");
        return -1;
}

/* The running experiment has ended: recorded. Stopped with the agent, it is not finished: it runs again when the
 * run resumes. A failure without continue_on_failure skips the rest. */
static void finish_experiment(struct run *R) {
        size_t i = (size_t)R->cur_idx;
        struct exp_state *s = &R->st.exps[i];
        exp_finish(&R->cur, s);
        R->cur_idx = -1;
        watcher_experiment(&R->watch, false);
        shipper_checkpoint_current(&R->ship, -1, NULL);
        s->st = s->reason == R_AGENT_STOPPED                             ? EXP_RUNNING
                : s->reason == R_LEASE_LOST || s->reason == R_RUN_OVER ? EXP_PENDING
                                                                        : EXP_DONE;
        log_info("experiment %s ended: %s %d (%s)", R->job.experiments[i].name, s->signal ? "signal" : "exit code",
                 s->signal ? s->signal : s->exit_code, exp_reason_name(s->reason));
        if (s->st == EXP_DONE && s->exit_code != 0 && !R->job.continue_on_failure && R->st.end == END_NONE &&
            !R->fleet) {
                for (size_t k = i + 1; k < R->st.n; k++)
                        if (R->st.exps[k].st == EXP_PENDING) {
                                R->st.exps[k].st = EXP_SKIPPED;
                                R->st.exps[k].reason = R_SKIPPED;
                        }
                log_info("experiment %s failed; the rest are skipped (continue_on_failure is false)",
                         R->job.experiments[i].name);
        }
        save_state(R);
        push_status(R);
}

/* Supervises the running experiment until it ends (EV_EXP_ENDED) or the run must decide (a stop, a spot notice,
 * max_runtime). */
static int supervise(struct run *R) {
        for (;;) {
                enum exp_wake wk = exp_wait(&R->cur, &R->w, R->watch.running ? R->watch.efd : -1, R->deadline);
                switch (wk) {
                case WAKE_ENDED: finish_experiment(R); return EV_EXP_ENDED;
                case WAKE_STOP: log_info("stop requested: stopping the experiment; the run resumes on restart");
                        return EV_SIGTERM;
                case WAKE_DEADLINE: return EV_MAX_RUNTIME;
                case WAKE_WATCH: {
                        int ev = on_watch(R);
                        if (ev >= 0)
                                return ev;
                        break;
                }
                }
        }
}

static int fleet_start(struct run *R);

/* The next experiment: the one an interruption left unfinished, else the next pending one. */
static int act_start(struct run *R) {
        int ev = pending_event(R);
        if (ev >= 0)
                return ev;
        if (R->fleet)
                return fleet_start(R);
        for (size_t i = 0; i < R->st.n; i++) {
                struct exp_state *s = &R->st.exps[i];
                if (s->st != EXP_RUNNING && s->st != EXP_PENDING)
                        continue;
                bool resume = s->st == EXP_RUNNING;
                if (resume)
                        exp_stop_leftover(&R->w, s->pid, s->pid_start, R->job.stop_grace);
                if (start_experiment(R, i, resume) == EV_FAILED)
                        return EV_FAILED;
                return supervise(R);
        }
        return EV_NO_MORE;
}

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
        if (r < 0) {
                log_warn("cannot write the run's end record (%s): ending it from here", l.out.msg);
                r = 1;
        }
        role_news(R, r == 1 ? FN_END_WON : FN_END_LOST);
        log_info(r == 1 ? "the run is over (%s, %s): this instance ends it" : "the run is over (%s, %s)",
                 r == 1 ? outcome_name(o) : R->ledger.end_outcome, r == 1 ? reason : R->ledger.end_reason);
}

/* The experiment's full logs from S3 before it resumes on another instance: its log goes on from where it was. */
static int restore_logs(struct run *R, void *arg) {
        static const char *const streams[] = { "stdout", "stderr" };
        const char *name = R->job.experiments[*(int *)arg].name;
        for (size_t k = 0; k < 2; k++) {
                char path[4200], key[S3_MAX_KEY + 1];
                struct aws_result out = { 0 };
                if (pathf(path, sizeof path, "%s/%s/%s.log", R->logs_dir, name, streams[k]) < 0 ||
                    pathf(key, sizeof key, "%slogs/%s/%s.log", R->prefix, name, streams[k]) < 0 || access(path, F_OK) == 0)
                        continue;
                char dir[4200];
                if (pathf(dir, sizeof dir, "%s/%s", R->logs_dir, name) == 0)
                        mkdir(dir, 0750);
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

static struct ship_plan plan_of(struct run *R) {
        struct ship_plan p = { .ship = &R->ship, .job = &R->job, .logs_dir = R->logs_dir,
                               .metrics_path = access(R->metrics_path, F_OK) == 0 ? R->metrics_path : NULL,
                               .user = &R->user, .workfd = R->workfd,
                               .experiment_logs = R->st.end != END_OVER || R->fleet,
                               .outputs_done = &R->outputs_done };
        if (R->fleet && R->ledger_ok) {
                /* a run shared by instances: what this one finished went to S3 before its done record; what it
                 * lost went to another instance, whose logs and checkpoint are newer: only the experiment it
                 * still holds (interrupted, stopped) is shipped at the end, outputs with it */
                int held = ledger_held(&R->ledger);
                for (size_t i = 0; i < R->job.n_experiments && i < JOB_MAX_EXPERIMENTS; i++)
                        R->ship_mask[i] = (int)i == held;
                p.only = R->ship_mask;
                p.no_outputs = held < 0;
        }
        /* several instances write into one run: each its own agent log and metrics */
        if (R->fleet && R->inst.id[0]) {
                if (pathf(p.agent_log_rel, sizeof p.agent_log_rel, "logs/agent-%s.log", R->inst.id) < 0 ||
                    pathf(p.metrics_rel, sizeof p.metrics_rel, "metrics/%s.jsonl", R->inst.id) < 0)
                        p.agent_log_rel[0] = p.metrics_rel[0] = 0;
        }
        return p;
}

struct commit {
        struct run *R;
        size_t i;
};

static int ship_one(void *arg) {
        struct commit *cm = arg;
        struct ship_plan p = plan_of(cm->R);
        return ship_experiment(&p, cm->i);
}

/* A finished experiment: its logs, outputs and checkpoint in S3, then its done record (once), the claim given back.
 * While S3 cannot take them, it waits (the claim renewed): committing without them would lose them. */
static int commit_experiment(struct run *R, size_t i) {
        const struct exp_state *s = &R->st.exps[i];
        struct commit cm = { .R = R, .i = i };
        for (int attempt = 0;; attempt++) {
                int r = waiter_blocking(&R->w, ship_one, &cm, 0);
                struct ledger_done d = { .exit_code = s->exit_code, .signal = s->signal,
                                         .reason = exp_reason_name(s->reason), .start = s->start, .end = s->end };
                struct ledger_call l = { .done = &d };
                if (r == 0 && (r = io(R, do_commit, &l)) == 0) {
                        log_info("experiment %s committed (attempt %d)", R->job.experiments[i].name, s->attempts);
                        return 0;
                }
                log_warn("experiment %s: its results are not all in S3 yet (%s); trying again",
                         R->job.experiments[i].name, r == -EIO ? "uploads failed" : l.out.msg);
                /* the keeper may have given the claim up meanwhile: ledger_held reads it under the ledger's lock */
                if (!waiter_sleep(&R->w, MIN(5 << MIN(attempt, 4), 60)) || ledger_held(&R->ledger) != (int)i)
                        return -ECANCELED;
        }
}

/* The next experiment the ledger lets this instance have: claimed, started, supervised, committed. */
static int fleet_start(struct run *R) {
        bool said_wait = false;
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
                l = (struct ledger_call){ .i = i, .max_attempts = R->job.fleet.max_attempts };
                int r = io(R, do_claim, &l);
                if (r == -MF_EPRECOND)
                        continue; /* another instance won it */
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
                struct exp_state *s = &R->st.exps[i];
                bool resume = R->ledger.attempt > 1;
                if (s->st == EXP_RUNNING)
                        exp_stop_leftover(&R->w, s->pid, s->pid_start, R->job.stop_grace);
                s->attempts = R->ledger.attempt - 1; /* start_experiment counts this one */
                ledger_set_phase(&R->ledger, "RUN", R->job.experiments[i].name);
                if (resume)
                        io(R, restore_logs, &i);
                if (start_experiment(R, (size_t)i, resume) == EV_FAILED) {
                        io(R, do_release, &l);
                        return EV_FAILED;
                }
                ev = supervise(R);
                if (ev != EV_EXP_ENDED)
                        return ev; /* a stop, a notice, max_runtime: the claim is given back once shipped */
                ledger_set_phase(&R->ledger, "RUN", NULL);
                if (s->st != EXP_DONE)
                        continue; /* its claim was lost (another instance's now), or the run is over (shipped, then
                                   * given back) */
                if (commit_experiment(R, (size_t)i) < 0) {
                        ev = pending_event(R);
                        return ev >= 0 ? ev : EV_EXP_ENDED;
                }
                if (s->exit_code != 0 && !R->job.continue_on_failure) {
                        log_info("experiment %s failed: the run ends (continue_on_failure is false)",
                                 R->job.experiments[i].name);
                        fleet_end(R, OUT_FAILED, "an experiment failed");
                        return EV_NO_MORE;
                }
                return EV_EXP_ENDED;
        }
}

/* Stop the running experiment the way the end asks: for a spot notice within what the notice leaves. */
static int act_stop(struct run *R) {
        static const enum exp_reason why[END__MAX] = { [END_SPOT] = R_INTERRUPTED, [END_STOPPED] = R_AGENT_STOPPED,
                                                       [END_MAX_RUNTIME] = R_MAX_RUNTIME, [END_ERROR] = R_ERROR,
                                                       [END_FAILSAFE] = R_ERROR };
        enum exp_reason reason = R->st.end > END_NONE && R->st.end < END__MAX ? why[R->st.end] : R_ERROR;
        if (R->cur_idx >= 0) {
                long grace = R->job.stop_grace;
                if (R->st.end == END_SPOT)
                        /* never a SIGKILL on the SIGTERM's heels: a handler that checkpoints gets its seconds even
                         * when the notice came late (out of the uploads' margin) */
                        grace = MAX(MIN(R->job.spot_grace,
                                        (long)(R->st.spot_time - aws_cloud_now(&R->c)) - SPOT_UPLOAD_MARGIN),
                                    MIN(R->job.spot_grace, SPOT_MIN_GRACE));
                if (R->st.end == END_STOPPED)
                        sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu",
                                   (unsigned long long)(MAX(grace, 0) + R->job.ship_timeout + 30) * 1000000ULL);
                exp_stop(&R->cur, reason, grace);
                while (exp_wait(&R->cur, &R->w, R->watch.running ? R->watch.efd : -1, 0) != WAKE_ENDED)
                        if (R->watch.running)
                                on_watch(R);
                finish_experiment(R);
        }
        /* what the end leaves unstarted: a resume comes back to it (stop, spot) or it never runs */
        bool resumes = R->st.end == END_STOPPED || R->st.end == END_SPOT;
        for (size_t i = 0; i < R->st.n; i++) {
                struct exp_state *s = &R->st.exps[i];
                if (s->st == EXP_RUNNING && s->reason != R_AGENT_STOPPED) {
                        /* interrupted before this agent restarted it: whatever it left still goes */
                        exp_stop_leftover(&R->w, s->pid, s->pid_start, R->job.stop_grace);
                        s->pid = 0;
                        s->pid_start = 0;
                        if (resumes)
                                continue;
                        /* not started only to be stopped a moment later: a training script that starts and gets
                         * SIGTERM may write a checkpoint of its fresh state over the good one */
                        s->st = EXP_DONE;
                        s->reason = reason;
                        s->exit_code = -1;
                        s->signal = 0;
                        s->end = now_wall();
                        if (R->st.end == END_MAX_RUNTIME)
                                log_info("experiment %s not restarted: max_runtime (%lds) is spent",
                                         R->job.experiments[i].name, R->job.max_runtime);
                } else if (s->st == EXP_PENDING && !resumes) {
                        s->st = EXP_SKIPPED;
                        s->reason = R->st.end == END_MAX_RUNTIME ? R_MAX_RUNTIME : R_SKIPPED;
                }
        }
        save_state(R);
        return EV_EXP_ENDED;
}

/* ---------- SHIP ---------- */

/* In a fleet, who does what at the end, decided before the final status (fleet_end_plan): the end record says
 * who ends the run. */
static void fleet_decide(struct run *R) {
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

struct ship_job {
        struct run *R;
        struct ship_plan plan;
};

static int ship_all(void *arg) {
        struct ship_job *sj = arg;
        struct run *R = sj->R;
        int r = ship_results(&sj->plan);
        if (sj->plan.refused[0] && !R->st.error[0]) {
                errf(R->st.error, sizeof R->st.error, "%s: refused %s", sj->plan.refused_what, sj->plan.refused);
                R->st.outcome = decide_outcome(R);
                save_state(R);
        }
        /* in a fleet only the instance that ends the run writes its final status: the others' view is partial */
        if (R->fleet && R->st.role != ROLE_ENDS)
                return r;
        wrapup_cost_refresh(&R->wrap); /* the cost up to now goes into the final status */
        _cleanup_free_ char *js = NULL;
        struct aws_result res = { 0 };
        if (build_status(R, true, &js) == 0 && shipper_put_text(&R->ship, "status.json", js, "application/json", &res) < 0) {
                log_warn("shipping status.json: %s", res.msg);
                r = -EIO;
        }
        /* report.html from the final status (a page for people: its failure fails nothing) */
        if (js && wrapup_final_report(&R->wrap, js, &res) < 0)
                log_warn("shipping report.html: %s", res.msg);
        return r;
}

static int act_ship(struct run *R) {
        stop_watch(R);
        if (!R->ship_ready)
                return EV_DONE; /* nowhere to ship to: nothing on this instance is worth keeping it for */
        shipper_stop(&R->ship);
        fleet_decide(R);
        /* a restart in SHIP: what the run set up before is set up again, the workdir only if it exists */
        if (R->workfd < 0 && !R->bad_spec)
                take_workdir(R, false);
        if (R->job.checkpoint_dir && !R->ship.ckpt_since)
                shipper_set_checkpoint(&R->ship, &R->user, R->workfd, R->job.checkpoint_dir, R->st.n, 0);
        /* stopped by systemd: its stop timeout must cover the final upload */
        sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)(R->job.ship_timeout + 30) * 1000000ULL);
        struct ship_job *sj = calloc(1, sizeof *sj); /* an abandoned worker may still use it */
        if (!sj)
                return EV_INCOMPLETE;
        *sj = (struct ship_job){ .R = R, .plan = plan_of(R) };
        int r = waiter_blocking(&R->w, ship_all, sj, now_mono() + (double)R->job.ship_timeout);
        if (r == -ETIMEDOUT) {
                log_error("the final upload did not finish within ship_timeout (%lds); results are kept under %s and %s",
                          R->job.ship_timeout, R->logs_dir, R->workdir);
                return EV_INCOMPLETE;
        }
        free(sj);
        if (r < 0) {
                log_error("some results could not be uploaded; they are kept under %s and %s", R->logs_dir, R->workdir);
                return EV_INCOMPLETE;
        }
        log_info("results in %s", R->results_uri);
        if (R->ledger_ok && ledger_held(&R->ledger) >= 0) {
                /* shipped: the experiment's claim goes back, so that a replacement takes it at once */
                struct ledger_call l = { 0 };
                if (io(R, do_release, &l) < 0)
                        log_warn("giving the claim back: %s (it expires on its own)", l.out.msg);
        }
        return EV_DONE;
}

/* ---------- EXIT ---------- */

/* After a spot notice: results are shipped; AWS reclaims the instance. Wait for it, then act anyway. */
static bool await_reclaim(struct run *R) {
        log_info("results shipped before the interruption; waiting for EC2 to %s the instance", R->st.spot_action);
        /* the notice's time as IMDS gave it, but never more than 2 minutes out (what EC2 gives): a far-off time
         * (a bad answer, a clock far off at boot) must not keep the instance up; the notice's time is the cloud's */
        time_t now = aws_cloud_now(&R->c);
        double wait = (double)(MIN(R->st.spot_time, now + 120) + 300 - now);
        if (!waiter_sleep(&R->w, MAX(wait, 0)))
                return false;
        log_warn("the instance is still up 5 minutes after the notice's time");
        return true;
}

/* The exit's calls to EC2 and Auto Scaling, through the seam */
struct exit_call {
        enum exit_action a;
        long wait_s;
        char msg[512];
};

static int do_exit_action(struct run *R, void *p) {
        struct exit_call *e = p;
        return exit_action_perform(&R->c, e->a, R->inst.id, e->msg, sizeof e->msg);
}
static int do_teardown(struct run *R, void *p) {
        struct exit_call *e = p;
        return fleet_teardown(&R->c, &R->job.fleet, R->inst.id, e->wait_s, e->msg, sizeof e->msg);
}
static int do_leave(struct run *R, void *p) {
        struct exit_call *e = p;
        return fleet_leave(&R->c, R->inst.id, e->msg, sizeof e->msg);
}
static int do_detach(struct run *R, void *p) {
        struct exit_call *e = p;
        return fleet_detach(&R->c, &R->job.fleet, R->inst.id, e->msg, sizeof e->msg);
}
static int do_keep_disk(struct run *R, void *p) {
        struct exit_call *e = p;
        return exit_keep_disk(&R->c, R->inst.id, e->msg, sizeof e->msg);
}

/* The exit action, repeated until it takes (EV_DONE) or the agent is stopped. */
static int perform_exit(struct run *R, enum exit_action a) {
        sd_notify(0, "STOPPING=1");
        for (int attempt = 1;; attempt++) {
                struct exit_call e = { .a = a };
                log_info("exit action: %s", exit_action_name(a));
                if (io(R, do_exit_action, &e) == 0) {
                        log_info("%s", e.msg);
                        R->st.exit_done = true;
                        save_state(R);
                        return EV_DONE;
                }
                log_error("exit action %s failed (attempt %d): %s; retrying in %d s", exit_action_name(a), attempt,
                          e.msg, EXIT_RETRY);
                if (!waiter_sleep(&R->w, EXIT_RETRY))
                        return STOP_DRIVING;
        }
}

static int act_exit(struct run *R) {
        bool shipped = R->st.phase != PH_SHIP;
        struct lc_exit_plan p = lc_exit_decide(R->st.end, R->st.outcome, shipped, R->job.on_exit, R->job.on_error);
        R->rc = R->bad_spec ? EXIT_USAGE : R->st.outcome == OUT_SUCCEEDED ? EXIT_OK : EXIT_RUN_FAILED;
        log_info("outcome: %s (%s)", outcome_name(R->st.outcome), lc_end_name(R->st.end));
        switch (p.kind) {
        case X_RESUME_LATER:
                /* systemd stops us (shutdown, scale-in, restart): shipped, the state kept, resumed on the next start */
                R->st.phase = R->st.ended_in == PH_FETCH ? PH_FETCH : PH_PREPARE;
                R->st.end = END_NONE;
                R->st.outcome = OUT_RUNNING;
                save_state(R);
                log_info("stopped; the run resumes when the agent starts again");
                R->rc = EXIT_OK;
                return STOP_DRIVING;
        case X_AWAIT_RECLAIM: {
                _cleanup_free_ char *js = NULL;
                if (build_status(R, true, &js) == 0)
                        wrapup_notify(&R->wrap, js); /* the interruption's notification, when it is due */
                if (!await_reclaim(R)) {
                        R->rc = EXIT_OK;
                        return STOP_DRIVING;
                }
                break;
        }
        case X_ACTION: break;
        }
        /* the notification, after the final status and before the exit action; bounded, once per run; in a fleet
         * by the instance that ended the run only */
        _cleanup_free_ char *js = NULL;
        if ((!R->fleet || R->st.role == ROLE_ENDS) && build_status(R, true, &js) == 0)
                wrapup_notify(&R->wrap, js);
        struct exit_call e = { 0 };
        if (R->fleet && R->job.fleet.group && (R->st.role == ROLE_ENDS || R->st.role == ROLE_FOLLOWS)) {
                /* the run is over: its group goes (a relaunch loop is impossible: nothing relaunches it) */
                /* the others see the end record within ttl/3, stop within stop_grace and ship */
                e.wait_s = R->ledger.ttl / 3 + R->job.stop_grace + FLEET_SHIP_WAIT;
                if (io(R, do_teardown, &e) < 0)
                        log_warn("%s", e.msg);
                else
                        log_info("%s", e.msg);
        }
        if (R->fleet && R->job.fleet.group && R->st.role == ROLE_LEAVES && p.action != EXIT_ACTION_KEEP && !p.keep_disk) {
                if (io(R, do_leave, &e) == 0) {
                        log_info("%s", e.msg);
                        R->st.exit_done = true;
                        save_state(R);
                        return EV_DONE;
                }
                log_warn("%s; ending the instance instead", e.msg);
        }
        if (p.keep_disk) {
                /* out of the group first, so that it is not replaced while its disk holds the results */
                if (R->fleet && R->job.fleet.group && io(R, do_detach, &e) < 0)
                        log_warn("%s", e.msg);
                if (io(R, do_keep_disk, &e) == 0) {
                        log_warn("%s: stopped rather than %s, so that its disk keeps what did not reach S3; when it "
                                 "starts again mayfly ships it, then does the exit action", e.msg,
                                 exit_action_name(p.wanted));
                        R->rc = EXIT_RUN_FAILED;
                        return STOP_DRIVING;
                }
                log_error("cannot stop the instance to keep its unshipped results (%s); going on with %s: what did "
                          "not reach S3 is lost with the instance", e.msg, exit_action_name(p.wanted));
                p.action = p.wanted;
        }
        return perform_exit(R, p.action);
}

/* ---------- the driver ---------- */

/* A step of the table: the end (the first one counts), the phase, and what the status says of them. */
static void enter(struct run *R, const struct lc_step *s) {
        if (s->end == END_CLEAR) {
                R->st.end = END_NONE;
                R->st.outcome = OUT_RUNNING;
                R->st.spot_action[0] = 0;
                R->st.spot_time = 0;
        } else if (s->end != END_NONE && R->st.end == END_NONE) {
                R->st.end = s->end;
                R->st.ended_in = R->st.phase;
        }
        if (s->next == R->st.phase)
                return;
        R->st.phase = s->next;
        if (s->next == PH_SHIP)
                R->st.outcome = decide_outcome(R);
        if (R->ledger_ok)
                ledger_set_phase(&R->ledger, phase_name(s->next), NULL);
        save_state(R);
        waiter_status("%s", phase_name(s->next));
        log_info("phase %s", phase_name(s->next));
        push_status(R);
}

static int perform(struct run *R, enum lc_action a) {
        switch (a) {
        case A_FETCH: return act_fetch(R);
        case A_PREPARE: return act_prepare(R);
        case A_START: return act_start(R);
        case A_STOP: case A_BAIL: return act_stop(R);
        case A_SHIP: return act_ship(R);
        case A_EXIT: return act_exit(R);
        case A_NONE: case A_HOLE: case A__MAX: break;
        }
        return STOP_DRIVING;
}

static void drive(struct run *R, enum lc_event ev) {
        for (;;) {
                enum phase was = R->st.phase;
                struct lc_step s = lc_transition(was, ev);
                if (s.action == A_BAIL)
                        /* a defect of the agent's: the run ends through STOPPING and SHIP like any failure */
                        failed(R, "internal error: event %s in phase %s", lc_event_name(ev), phase_name(was));
                else if (s.action == A_HOLE)
                        log_error("internal error: the lifecycle has no answer to event %s in phase %s",
                                  lc_event_name(ev), phase_name(was));
                enter(R, &s);
                int next = perform(R, s.action);
                if (next < 0)
                        return;
                ev = (enum lc_event)next;
        }
}

/* ---------- start ---------- */

static int setup_results(struct run *R, const char *results, const char *name) {
        char err[256];
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        int r = s3_parse_uri(results, &bucket, &key, err, sizeof err);
        if (r < 0)
                return r;
        if (pathf(R->bucket, sizeof R->bucket, "%s", bucket) < 0 ||
            pathf(R->prefix, sizeof R->prefix, "%s%s%s/%s/", key, *key && !str_has_suffix(key, "/") ? "/" : "", name,
                  R->st.run_id) < 0 ||
            pathf(R->results_uri, sizeof R->results_uri, "s3://%s/%s", R->bucket, R->prefix) < 0)
                return -ENAMETOOLONG;
        r = shipper_init(&R->ship, &R->c, R->bucket, R->prefix, R->job.log_interval);
        R->ship_ready = r == 0;
        return r;
}

static void new_run(struct run *R, const char *sha) {
        memset(&R->st, 0, sizeof R->st);
        char ts[32];
        time_t t = now_wall();
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
        if (R->job.run_id) /* one run shared by the instances that run the job */
                snprintf(R->st.run_id, sizeof R->st.run_id, "%s", R->job.run_id);
        else
                snprintf(R->st.run_id, sizeof R->st.run_id, "%s-%s", R->inst.id[0] ? R->inst.id : "local", ts);
        R->st.started = t;
        snprintf(R->st.instance_id, sizeof R->st.instance_id, "%s", R->inst.id);
        snprintf(R->st.job_sha, sizeof R->st.job_sha, "%s", sha ? sha : "");
        R->st.n = R->job.n_experiments;
        for (size_t i = 0; i < R->st.n; i++)
                R->st.exps[i].exit_code = -1;
        R->st.phase = PH_FETCH;
}

/* Best effort for a spec that does not validate: where should the error status go, what on error? */
static void peek_job(struct run *R, const char *text, size_t len, char *results, size_t rn, char *name, size_t nn) {
        cJSON *j = cJSON_ParseWithLength(text, len);
        const char *res = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "results"));
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "name"));
        const char *oe = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "on_error"));
        snprintf(results, rn, "%s", res && str_has_prefix(res, "s3://") ? res : "");
        snprintf(name, nn, "%s", nm && *nm && !strchr(nm, '/') && strlen(nm) <= 64 ? nm : "invalid-job");
        R->job.on_error = EXIT_ACTION_TERMINATE;
        if (oe)
                for (int a = EXIT_ACTION_TERMINATE; a <= EXIT_ACTION_KEEP; a++)
                        if (!strcmp(oe, exit_action_name((enum exit_action)a)))
                                R->job.on_error = (enum exit_action)a;
        cJSON_Delete(j);
}

/* A job that cannot be parsed still runs, with the defaults, to report that: EV_FAILED from a new run. */
static enum lc_event bad_spec(struct run *R, const char *text, size_t len, const char *err) {
        char results[1024] = "", name[80] = "invalid-job";
        job_defaults(&R->job); /* stop_grace, ship_timeout… for reporting the error */
        if (text)
                peek_job(R, text, len, results, sizeof results, name, sizeof name);
        R->job.name = strdup(name);
        R->bad_spec = true;
        new_run(R, NULL);
        if (!results[0] || setup_results(R, results, name) < 0) {
                log_error("bad job spec %s: %s (no results location to report to)", R->job_path, err);
                R->ship_ready = false;
                errf(R->st.error, sizeof R->st.error, "bad job spec: %s", err);
                return EV_FAILED;
        }
        return failed(R, "bad job spec %s: %s", R->job_path, err);
}

/* The instance is back after a spot stop (EC2 stopped, then started it): the interrupted experiment runs again. */
static void back_after_spot(struct run *R) {
        log_info("the instance is back after a spot %s: the run goes on", R->st.spot_action);
        for (size_t i = 0; i < R->st.n; i++) {
                struct exp_state *s = &R->st.exps[i];
                if (s->st == EXP_DONE && s->reason == R_INTERRUPTED) {
                        s->st = EXP_RUNNING;
                        s->pid = 0;
                        s->pid_start = 0;
                        s->reason = R_NONE;
                }
        }
}

static enum lc_event start(struct run *R, bool failsafe) {
        char err[1024];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        /* the directories come from systemd (StateDirectory=, LogsDirectory=): short; the job's workdir is checked */
        if (pathf(R->state_path, sizeof R->state_path, "%s/state.json", R->state_dir) < 0 ||
            pathf(R->metrics_path, sizeof R->metrics_path, "%s/metrics.jsonl", R->logs_dir) < 0)
                log_warn("the state or logs directory's path is too long: %s, %s", R->state_dir, R->logs_dir);
        if (instance_load(&R->c.imds, &R->inst, err, sizeof err) < 0)
                log_warn("IMDS unavailable: no instance id (running off EC2?)%s%s", err[0] ? ": " : "", err);
        if (!R->c.region[0] && R->inst.region[0])
                snprintf(R->c.region, sizeof R->c.region, "%s", R->inst.region);
        int r = read_file_capped(R->job_path, JOB_MAX_BYTES, &text, &len);
        if (r < 0)
                errf(err, sizeof err, "cannot read the job spec %s: %s", R->job_path,
                         r == -EFBIG ? "larger than 256 KiB" : strerror(-r));
        else
                r = job_parse(text, len, &R->job, err, sizeof err);
        if (r < 0)
                return bad_spec(R, text, len, err);
        unsigned char md[32];
        crypto_sha256(text, len, md);
        char sha[65];
        hex_encode(md, 32, sha);
        if ((R->job.workdir ? pathf(R->workdir, sizeof R->workdir, "%s", R->job.workdir)
                            : pathf(R->workdir, sizeof R->workdir, "%s/work", R->state_dir)) < 0)
                return failed(R, "the workdir's path is too long");
        struct run_state old;
        bool have = runstate_load(R->state_path, &old) == 0 && !strcmp(old.job_sha, sha) && old.n == R->job.n_experiments;
        if (have && old.instance_id[0] && R->inst.id[0] && strcmp(old.instance_id, R->inst.id)) {
                /* an AMI baked after a run, a volume moved: that run was another instance's */
                log_info("state.json was written on instance %s, and this is %s: ignored, a new run starts",
                         old.instance_id, R->inst.id);
                have = false;
        }
        if (have) {
                R->st = old;
                log_info("resuming run %s at phase %s", R->st.run_id, phase_name(R->st.phase));
        } else {
                new_run(R, sha);
                save_state(R);
                log_info("new run %s (%s)", R->st.run_id, R->job.name);
        }
        if (R->job.max_runtime)
                R->deadline = now_mono() + (double)(R->st.started + R->job.max_runtime - now_wall());
        if (setup_results(R, R->job.results, R->job.name) < 0)
                return failed(R, "cannot set up the results location %s", R->job.results);
        if (R->job.run_id) {
                R->fleet = true;
                shipper_share_status(&R->ship); /* the final status is the ender's alone */
                R->sweep = R->job.fleet.size > 1;
                for (size_t i = 0; i < R->job.n_experiments; i++)
                        R->sweep |= R->job.experiments[i].n_after > 0;
                if (ledger_init(&R->ledger, &R->c, R->bucket, R->prefix, R->inst.id, &R->job, R->job.fleet.lease_ttl) < 0)
                        return failed(R, "cannot set up the run's ledger");
                R->ledger_ok = true;
                struct aws_result out = { 0 };
                if (ledger_refresh(&R->ledger, &out) < 0)
                        log_warn("reading the run's ledger: %s", out.msg);
                else if (R->ledger.ended && !(R->st.phase >= PH_SHIP && R->st.end != END_NONE)) {
                        /* booted into a run that is over: no work, only what is left of its group goes */
                        log_info("run %s is over (%s, ended by %s): nothing to do here", R->st.run_id,
                                 R->ledger.end_outcome, R->ledger.end_by);
                        role_news(R, FN_OVER);
                        return EV_OVER;
                }
        }
        if (failsafe) {
                if (R->st.end == END_NONE && !R->st.error[0])
                        snprintf(R->st.error, sizeof R->st.error,
                                 "the agent failed repeatedly (systemd gave up restarting it)");
                return EV_FAILSAFE;
        }
        /* a spot stop: EC2 stopped the instance (in STOPPING, SHIP or EXIT) and started it again, the notice gone;
         * only a run that was ending for that notice goes on (one ending for a failure goes on ending) */
        if (R->st.spot_action[0] && R->st.end == END_SPOT && !R->st.exit_done && R->st.phase >= PH_STOPPING &&
            R->st.phase <= PH_EXIT && R->inst.id[0] && !instance_spot_pending(&R->c.imds)) {
                back_after_spot(R);
                role_news(R, FN_BACK);
                return EV_BACK;
        }
        return EV_BOOT;
}

int run_main(const char *job_path, bool failsafe) {
        struct run *R = calloc(1, sizeof *R);
        if (!R)
                return EXIT_FAIL;
        snprintf(R->job_path, sizeof R->job_path, "%s", job_path);
        R->metrics_fd = -1;
        R->workfd = -1;
        R->cur_idx = -1;
        R->rc = EXIT_FAIL;
        first_dir(R->state_dir, sizeof R->state_dir, "STATE_DIRECTORY", "/var/lib/mayfly");
        first_dir(R->logs_dir, sizeof R->logs_dir, "LOGS_DIRECTORY", "/var/log/mayfly");
        first_dir(R->cache_dir, sizeof R->cache_dir, "CACHE_DIRECTORY", "/var/cache/mayfly");
        const char *dirs[] = { R->state_dir, R->logs_dir, R->cache_dir };
        for (size_t i = 0; i < 3; i++) {
                char probe[2100];
                if (pathf(probe, sizeof probe, "%s/x", dirs[i]) == 0)
                        mkdir_parents(probe, 0755);
        }
        char agent_log[2200];
        if (pathf(agent_log, sizeof agent_log, "%s/agent.log", R->logs_dir) == 0)
                log_open_file(agent_log);
        int r = waiter_init(&R->w);
        if (r == 0)
                r = aws_ctx_init(&R->c);
        if (r < 0) {
                log_error("cannot initialise: %s", strerror(-r));
                free(R);
                return EXIT_FAIL;
        }
        if (failsafe)
                log_error("failsafe: the agent failed repeatedly; shipping what exists and ending the instance");
        enum lc_event ev = start(R, failsafe);
        if (failsafe && R->bad_spec) {
                /* without a readable job: power off (an instance launched with InstanceInitiatedShutdownBehavior=
                 * terminate ends); exit 1 even then, so that the unit's FailureAction makes sure of it */
                log_error("failsafe: no readable job: powering off");
                R->job.on_error = EXIT_ACTION_POWEROFF;
        }
        sd_notify(0, "READY=1");
        if (R->ship_ready) {
                struct wrapup_run wr = { .c = &R->c, .bucket = R->bucket, .prefix = R->prefix, .logs_dir = R->logs_dir,
                                         .state_dir = R->state_dir, .metrics_path = R->metrics_path,
                                         .inst = &R->inst, .job = &R->job, .st = &R->st, .w = &R->w };
                wrapup_init(&R->wrap, &wr);
                /* the instance and its price, at the start (bounded) */
                waiter_blocking(&R->w, wrapup_cost_refresh, &R->wrap, 0);
        }
        if (!failsafe && R->ship_ready) {
                watcher_start(&R->watch, R->inst.id[0] ? &R->c.imds : NULL);
                shipper_start(&R->ship);
                push_status(R);
        }
        /* the claim's keeper, which wakes the supervision when the claim is lost */
        if (R->ledger_ok)
                ledger_keeper_start(&R->ledger, R->watch.running ? R->watch.efd : -1);
        drive(R, ev);
        if (R->ledger_ok)
                ledger_keeper_stop(&R->ledger);
        stop_watch(R);
        if (!wrapup_free(&R->wrap))
                R->w.abandoned = true; /* a report.html upload hangs */
        if (failsafe)
                R->rc = R->st.exit_done && !R->bad_spec ? EXIT_OK : EXIT_FAIL;
        if (R->w.abandoned) {
                /* a worker still uses the run's state, libcurl and libcrypto: end without the exit handlers and
                 * library destructors that would pull them from under it */
                log_close_file();
                fflush(NULL);
                _exit(R->rc);
        }
        int rc = R->rc;
        if (R->ledger_ok)
                ledger_free(&R->ledger);
        if (R->ship_ready)
                shipper_free(&R->ship);
        shipped_files_free(&R->outputs_done);
        if (R->metrics_fd >= 0)
                close(R->metrics_fd);
        if (R->workfd >= 0)
                close(R->workfd);
        gpu_close(R->gpu);
        job_free(&R->job);
        aws_ctx_free(&R->c);
        waiter_free(&R->w);
        log_close_file();
        free(R);
        return rc;
}
