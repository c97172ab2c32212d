/* SPDX-License-Identifier: Apache-2.0 */
/* phases.c — what the driver does in each phase: fetch the source, prepare the run user, environment and GPUs,
 * start and supervise the experiments one after another, stop the running one, ship everything. */
#include "run/drive/phases.h"

#include "run/drive/xcreds.h"
#include "run/drive/xinputs.h"
#include "run/drive/xscratch.h"
#include "run/proc/asuser.h"

#include <fcntl.h>
#include <systemd/sd-daemon.h>

#include "beneath.h"
#include "log.h"
#include "run/proc/exptree.h"
#include "run/watch/gpuprobe.h"

extern char **environ;

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

int act_fetch(struct run *R) {
        /* fail before spending hours on a run whose results could not be kept */
        struct status_put sp = { 0 };
        /* in a shared run -EAGAIN (others kept writing it) is an answer too: the location takes writes */
        int w = build_status(R, false, &sp.js) == 0 ? io(R, do_put_status, &sp) : 0;
        free(sp.js);
        if (w == -MF_ESTORE) /* it takes writes, but not a shared run's: ended here, its logs and status shipped */
                return failed(R, "the results location %s: %s", R->results_uri, sp.res.msg);
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

struct readable {
        const char *path;
        int err;
};

/* On the run user's identity (as_user): whether the file can be opened for reading. */
static int readable_by(void *arg) {
        struct readable *rd = arg;
        int fd = open(rd->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                rd->err = errno;
                return -errno;
        }
        close(fd);
        return 0;
}

int act_prepare(struct run *R) {
        char err[1024];
        if (take_workdir(R, true) < 0)
                return EV_FAILED;
        struct env_spec es = { .kind = (enum env_kind)R->job.env_kind, .value = R->job.env_value };
        struct envact_search search = { .conda_exe = env_nonempty("CONDA_EXE"), .home = R->user.home };
        if (envact_resolve(&es, &search, &R->env, err, sizeof err) < 0)
                return failed(R, "%s", err);
        /* found by root; the run user must be able to read it (a Conda in another user's home, ~ubuntu/anaconda3) */
        struct readable rd = { .path = R->env.kind == ENV_VENV ? R->env.activate : R->env.conda_sh, .err = EPERM };
        if (rd.path[0] && as_user(&R->user, -1, readable_by, &rd) < 0)
                return failed(R, "%s: not readable by the run user %s (%s): make it readable by that user, or name "
                              "its owner in \"user\"", rd.path, R->user.name, strerror(rd.err));
        if (prepare_scratch(R) == EV_FAILED)
                return EV_FAILED;
        if (prepare_credentials(R) == EV_FAILED)
                return EV_FAILED;
        if (!R->gpu && !R->gpu_hung) {
                bool wait = R->job.gpu_require || R->job.gpu_idle > 0;
                if (wait) {
                        waiter_status("waiting for the GPU driver%s", "");
                        /* said in status.json while it lasts: a run in PREPARE for minutes says why */
                        snprintf(R->waiting, sizeof R->waiting, "waiting for the GPU driver (NVML or nvidia-smi) to "
                                 "answer, up to %lds (gpu.wait_seconds)", R->job.gpu_wait);
                        push_status(R);
                }
                int r = gpu_probe(&R->w, wait ? R->job.gpu_wait : -1, &R->gpu, &R->gpu_inv, &R->have_gpu_inv, err,
                                  sizeof err);
                R->waiting[0] = 0;
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
                shipper_set_checkpoint(&R->ship, &R->user, run_tree(R, R->job.checkpoint_scratch, NULL),
                                       R->job.checkpoint_dir, R->st.n, R->job.checkpoint_interval);
        if (R->metrics_fd < 0) {
                R->metrics_fd = open(R->metrics_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
                if (R->metrics_fd >= 0)
                        shipper_add_stream(&R->ship, R->metrics_path, "metrics");
        }
        if (R->gpu)
                watcher_add_gpu(&R->watch, R->gpu, R->metrics_fd, R->job.gpu_idle);
        int sev = stage_inputs(R); /* last: the data in place, the experiment starts */
        if (sev >= 0)
                return sev;
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
        int r = exptree_restore(&R->c, R->bucket, rs->prefix, &R->user, run_tree(R, R->job.checkpoint_scratch, NULL),
                                rs->dir, &rs->n, rs->refused, sizeof rs->refused, &res);
        if (r < 0)
                log_warn("checkpoint restore from s3://%s/%s failed: %s", R->bucket, rs->prefix, res.msg);
        return r;
}

/* <checkpoint>/<experiment> in the workdir, made as the run user; on a resume its checkpoint restored into it. */
static int prepare_checkpoint(struct run *R, size_t i, bool resume, char *abs, size_t n) {
        const char *name = R->job.experiments[i].name;
        struct restore rs = { .R = R };
        const char *top;
        int tree = run_tree(R, R->job.checkpoint_scratch, &top);
        if (tree < 0)
                return failed(R, "the checkpoint directory is in the scratch directory, which this start has not got");
        if (pathf(rs.dir, sizeof rs.dir, "%s/%s", R->job.checkpoint_dir, name) < 0 ||
            pathf(abs, n, "%s/%s", top, rs.dir) < 0 ||
            pathf(rs.prefix, sizeof rs.prefix, "%scheckpoint/%s/", R->prefix, name) < 0)
                return failed(R, "the checkpoint directory of %s: its path or S3 key is too long", name);
        int r = exptree_mkdir(&R->user, tree, rs.dir);
        if (beneath_refused(r))
                return failed(R, "the checkpoint directory %s is a link out of the workdir (planted by an experiment?): "
                              "refused", rs.dir);
        if (r < 0) {
                log_warn("cannot create the checkpoint directory %s as %s: %s", abs, R->user.name, strerror(-r));
                return -1;
        }
        /* a gang's member gets rank 0's directory from S3 at each attempt, unless it was rank 0 here the attempt
         * before (it shipped it: what it has is the newest) */
        bool refresh = R->gang.exp == (int)i && !R->gang.ckpt_here;
        if (!resume || (!refresh && !exptree_empty(&R->user, tree, rs.dir)))
                return -1;
        r = waiter_blocking(&R->w, restore_checkpoint, &rs, 0);
        if (rs.refused[0])
                return failed(R, "checkpoint restore: refused %s", rs.refused);
        if (r == 0)
                log_info("checkpoint restored: %zu files into %s", rs.n, abs);
        return -1;
}

static int open_log(struct run *R, const char *exp, const char *stream, char *path, size_t n) {
        if (pathf(path, n, "%s/%s/x", R->logs_dir, exp) < 0)
                return -ENAMETOOLONG;
        int r = mkdir_parents(path, 0750); /* <experiment>/, or a gang rank's <experiment>/node-<r>/ */
        if (r < 0)
                return r;
        if (pathf(path, n, "%s/%s/%s.log", R->logs_dir, exp, stream) < 0)
                return -ENAMETOOLONG;
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0)
                return -errno;
        /* the run user's bytes (written as the user: logwrite.h), so the user's file: in root's directory, out of
         * the user's reach, handed over through the fd */
        struct stat st;
        if (R->user.switch_user && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 && st.st_nlink == 1 &&
            fchown(fd, R->user.uid, R->user.gid) < 0)
                log_warn("cannot hand %s to %s: %s", path, R->user.name, strerror(errno));
        return fd;
}

/* $MAYFLY_METRICS_FILE: <workdir>/.mayfly/metrics/<experiment>.jsonl, its directory made as the run user; the agent
 * copies it (as the run user, beneath the workdir) into the experiment's logs directory and ships it as a log. */
static void metrics_file(struct run *R, const char *exp, const char *logs, char *env, size_t n) {
        char rel[300], copy[4300], stream[300];
        env[0] = 0;
        if (pathf(rel, sizeof rel, "%s/%s.jsonl", XMETRICS_DIR, exp) < 0 ||
            pathf(copy, sizeof copy, "%s/%s/%s", R->logs_dir, logs, XMETRICS_FILE) < 0 ||
            pathf(stream, sizeof stream, "%s/%s", logs, XMETRICS_STREAM) < 0)
                return;
        int r = exptree_mkdir(&R->user, R->workfd, XMETRICS_DIR);
        if (r == 0)
                r = shipper_add_mirror(&R->ship, copy, stream, &R->user, R->workfd, rel);
        if (r < 0) {
                log_warn("experiment %s: no $MAYFLY_METRICS_FILE: %s%s", exp, strerror(-r),
                         beneath_refused(r) ? " (" XMETRICS_DIR " is a link out of the workdir)" : "");
                return;
        }
        snprintf(env, n, "MAYFLY_METRICS_FILE=%s/%s", R->workdir, rel);
}

/* The attempt's marker (into marker: SWEEP_MARKER_LEN + 1 bytes or more) and its environment entry, once what the
 * attempt before left running is gone (the next one never meets it). EV_FAILED when some of it survives, or there is
 * no randomness. */
static int new_marker(struct run *R, const char *exp, char *marker, char *env, size_t n) {
        if (R->last_marker[0] && R->user_ok) {
                int left = sweep_run(&R->w, R->user.uid, R->last_marker, SWEEP_SECONDS, NULL);
                if (left > 0)
                        return failed(R, "%d process%s the previous experiment left survive SIGKILL: %s is not started",
                                      left, left == 1 ? "" : "es", exp);
                R->last_marker[0] = 0;
        }
        if (sweep_new_marker(marker) < 0)
                return failed(R, "experiment %s: no randomness for its marker", exp);
        snprintf(env, n, "%s=%s", SWEEP_MARKER_VAR, marker);
        return 0;
}

/* Starts experiment i (resume: again, after an interruption). EV_FAILED when it cannot start. */
/* Experiment i's environment (runner_environment): the login variables, the job's, and mayfly's. NULL: no memory. */
static char **experiment_environ(struct run *R, size_t i, bool resume, char *e_mark, const char *ckpt) {
        const struct experiment *x = &R->job.experiments[i];
        const struct exp_state *s = &R->st.exps[i];
        char e_run[256], e_exp[128], e_res[1500], e_ck[4500], e_att[64];
        snprintf(e_run, sizeof e_run, "MAYFLY_RUN_ID=%s", R->st.run_id);
        snprintf(e_exp, sizeof e_exp, "MAYFLY_EXPERIMENT=%s", x->name);
        snprintf(e_res, sizeof e_res, "MAYFLY_RESULTS=%s", R->results_uri);
        snprintf(e_ck, sizeof e_ck, "MAYFLY_CHECKPOINT_DIR=%s", ckpt);
        snprintf(e_att, sizeof e_att, "MAYFLY_ATTEMPT=%d", s->attempts + 1);
        char e_type[96], e_iid[96], e_gpus[48], e_xm[4500];
        snprintf(e_type, sizeof e_type, "MAYFLY_INSTANCE_TYPE=%s", R->inst.type);
        snprintf(e_iid, sizeof e_iid, "MAYFLY_INSTANCE_ID=%s", R->inst.id);
        snprintf(e_gpus, sizeof e_gpus, "MAYFLY_GPU_COUNT=%d", R->have_gpu_inv ? R->gpu_inv.count : 0);
        char e_cred[4][2400];
        char e_scr[2400];
        char e_gang[GANG_ENV_N][GANG_ENV_LEN];
        _cleanup_(strv_freep) char **e_in = inputs_env(R);
        if (!e_in)
                return NULL;
        char *menv[17 + JOB_MAX_INPUTS + GANG_ENV_N + 1] = { e_mark, e_run, e_exp, e_res, e_att, e_type, e_iid,
                                                             e_gpus };
        size_t nm = 8;
        for (char **e = e_in; *e; e++)
                menv[nm++] = *e;
        for (size_t k = 0, ng = gang_env(R, i, e_gang); k < ng; k++)
                menv[nm++] = e_gang[k];
        for (size_t k = 0, nc = credentials_env(R, e_cred, sizeof e_cred[0]); k < nc; k++)
                menv[nm++] = e_cred[k];
        char logs[160];
        metrics_file(R, x->name, gang_log_name(R, i, logs, sizeof logs), e_xm, sizeof e_xm);
        if (e_xm[0])
                menv[nm++] = e_xm;
        if (ckpt[0])
                menv[nm++] = e_ck;
        if (resume)
                menv[nm++] = "MAYFLY_RESUME=1";
        if (scratch_env(R, e_scr, sizeof e_scr))
                menv[nm++] = e_scr;
        return runner_environment(&R->user, environ, R->job.environment, menv);
}

int start_experiment(struct run *R, size_t i, bool resume) {
        const struct experiment *x = &R->job.experiments[i];
        struct exp_state *s = &R->st.exps[i];
        close_attempt(R, i); /* an attempt here before: how it ended, before this one resets the state */
        char e_mark[96], ckpt[4400] = "", outp[4200], errp[4200], lb[160];
        if (new_marker(R, x->name, s->marker, e_mark, sizeof e_mark) == EV_FAILED ||
            (R->job.checkpoint_dir && prepare_checkpoint(R, i, resume, ckpt, sizeof ckpt) == EV_FAILED))
                return EV_FAILED;
        const char *logs = gang_log_name(R, i, lb, sizeof lb); /* a gang's rank > 0: <name>/node-<rank> */
        int out_log = open_log(R, logs, "stdout", outp, sizeof outp);
        int err_log = out_log < 0 ? -1 : open_log(R, logs, "stderr", errp, sizeof errp);
        if (out_log < 0 || err_log < 0) {
                int e = out_log < 0 ? out_log : err_log;
                if (out_log >= 0)
                        close(out_log);
                return failed(R, "cannot create log files under %s: %s", R->logs_dir, strerror(-e));
        }
        struct stat so, se; /* where this attempt's logs begin: an earlier attempt's are restored before them */
        uint64_t out_from = fstat(out_log, &so) == 0 ? (uint64_t)so.st_size : 0;
        uint64_t err_from = fstat(err_log, &se) == 0 ? (uint64_t)se.st_size : 0;
        char stream[300];
        snprintf(stream, sizeof stream, "%s/stdout", logs);
        shipper_add_stream(&R->ship, outp, stream);
        snprintf(stream, sizeof stream, "%s/stderr", logs);
        shipper_add_stream(&R->ship, errp, stream);

        char **envp = experiment_environ(R, i, resume, e_mark, ckpt);
        char **argv = NULL;
        envact_exec_argv(&R->env, x->argv, x->shell, &argv);
        char err[512] = "out of memory";
        int r = envp && argv ? 0 : -ENOMEM;
        if (r == 0) {
                struct spawn sp = { .argv = argv, .envp = envp, .cwd = R->workdir, .user = &R->user };
                r = exp_start(&R->cur, x->name, &sp, out_log, err_log, R->job.log_max, x->timeout, R->job.stop_grace,
                              err, sizeof err);
        } else {
                close(out_log);
                close(err_log);
        }
        strv_free(envp);
        envact_free_argv(argv);
        if (r < 0)
                return failed(R, "experiment %s: %s", x->name, err);
        exp_mark(&R->cur, R->user.uid, s->marker);
        R->cur_idx = (int)i;
        s->st = EXP_RUNNING;
        s->start = now_wall();
        s->attempts++;
        s->pid = R->cur.ch.pid;
        s->pid_start = proc_start_time(R->cur.ch.pid);
        s->reason = R_NONE;
        note_attempt(R, i, out_from, err_from);
        save_state(R);
        push_status(R);
        share_self(R, true); /* `mayfly logs` marks where this attempt begins */
        watcher_experiment(&R->watch, true);
        if (R->job.checkpoint_dir && gang_rank_of(R, i) == 0) /* a gang's checkpoint is rank 0's */
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
        snprintf(R->last_marker, sizeof R->last_marker, "%s", s->marker); /* swept again before the next */
        char stream[300], lb[160];
        if (pathf(stream, sizeof stream, "%s/%s", gang_log_name(R, i, lb, sizeof lb), XMETRICS_STREAM) == 0)
                shipper_mirror(&R->ship, stream); /* its last lines, before anything ships its logs */
        watcher_experiment(&R->watch, false);
        shipper_checkpoint_current(&R->ship, -1, NULL);
        s->st = s->reason == R_AGENT_STOPPED                             ? EXP_RUNNING
                : s->reason == R_LEASE_LOST || s->reason == R_RUN_OVER || s->reason == R_GANG_STOPPED ? EXP_PENDING
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
int supervise(struct run *R) {
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

/* The next experiment: the one an interruption left unfinished, else the next pending one. */
int act_start(struct run *R) {
        int ev = pending_event(R);
        if (ev >= 0)
                return ev;
        for (size_t i = 0; i < R->st.n; i++) {
                struct exp_state *s = &R->st.exps[i];
                if (s->st != EXP_RUNNING && s->st != EXP_PENDING)
                        continue;
                bool resume = s->st == EXP_RUNNING;
                if (resume)
                        stop_leftover(R, i);
                if (start_experiment(R, i, resume) == EV_FAILED)
                        return EV_FAILED;
                return supervise(R);
        }
        return EV_NO_MORE;
}

struct ship_plan plan_of(struct run *R) {
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
                /* a gang's rank > 0: its own logs (logs/<experiment>/node-<rank>/), rank 0 ships the rest */
                p.node_rank = held >= 0 ? gang_rank_of(R, (size_t)held) : 0;
                p.no_outputs = held < 0 || p.node_rank > 0;
        }
        /* several instances write into one run: each its own agent log and metrics */
        if (R->fleet && R->inst.id[0]) {
                if (pathf(p.agent_log_rel, sizeof p.agent_log_rel, "logs/agent-%s.log", R->inst.id) < 0 ||
                    pathf(p.metrics_rel, sizeof p.metrics_rel, "metrics/%s.jsonl", R->inst.id) < 0)
                        p.agent_log_rel[0] = p.metrics_rel[0] = 0;
        }
        return p;
}

struct held_ship {
        struct run *R;
        size_t i;
};

static int ship_held_work(void *arg) {
        struct held_ship *hs = arg;
        struct ship_plan p = plan_of(hs->R);
        return ship_experiment(&p, hs->i);
}

int ship_held(struct run *R, size_t i) {
        struct held_ship hs = { .R = R, .i = i };
        return waiter_blocking(&R->w, ship_held_work, &hs, 0);
}

/* Stop the running experiment the way the end asks: for a spot notice within what the notice leaves. */
int act_stop(struct run *R) {
        static const enum exp_reason why[END__MAX] = { [END_SPOT] = R_INTERRUPTED, [END_STOPPED] = R_AGENT_STOPPED,
                                                       [END_MAX_RUNTIME] = R_MAX_RUNTIME, [END_ERROR] = R_ERROR,
                                                       [END_FAILSAFE] = R_ERROR, [END_CANCELLED] = R_CANCELLED };
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
                        stop_leftover(R, i);
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
                        s->reason = R->st.end == END_MAX_RUNTIME ? R_MAX_RUNTIME
                                    : R->st.end == END_CANCELLED ? R_CANCELLED
                                                                 : R_SKIPPED;
                }
        }
        save_state(R);
        return EV_EXP_ENDED;
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
        wrapup_cost_refresh(&R->wrap); /* the cost up to now goes into the final status and the last word */
        end_here(R);
        /* in a fleet only the instance that ends the run writes its final status: the others' view is partial */
        if (R->fleet && R->st.role != ROLE_ENDS)
                return r;
        if (R->ledger_ok) {
                struct aws_result o2 = { 0 };
                ledger_read_peers(&R->ledger, &o2); /* every instance's last word, for the final status */
        }
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

bool ship_begin(struct run *R) {
        stop_watch(R);
        if (!R->ship_ready)
                return false; /* nowhere to ship to: nothing on this instance is worth keeping it for */
        /* the live shipper may be stuck in a transfer: it gets at most half of ship_timeout to stop, then SHIP goes
         * on without it (act_ship's deadline counts from here) and ships what it can */
        R->ship_deadline = now_mono() + (double)R->job.ship_timeout;
        if (shipper_stop(&R->ship, now_mono() + (double)R->job.ship_timeout / 2) < 0) {
                log_error("the live log shipper did not stop within %lds (a stuck upload?): going on without it",
                          R->job.ship_timeout / 2);
                R->w.abandoned = true; /* it still uses the run's state: the process ends without freeing it */
        }
        return true;
}

/* The final upload (after ship_begin, and in a shared run fleet_decide): EV_DONE, or EV_INCOMPLETE. */
int act_ship(struct run *R) {
        /* a restart in SHIP: what the run set up before is set up again, the workdir only if it exists */
        if (R->workfd < 0 && !R->bad_spec)
                take_workdir(R, false);
        if (R->job.checkpoint_dir && !R->ship.ckpt_since)
                shipper_set_checkpoint(&R->ship, &R->user, run_tree(R, R->job.checkpoint_scratch, NULL),
                                       R->job.checkpoint_dir, R->st.n, 0);
        /* stopped by systemd: its stop timeout must cover the final upload */
        sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)(R->job.ship_timeout + 30) * 1000000ULL);
        struct ship_job *sj = calloc(1, sizeof *sj); /* an abandoned worker may still use it */
        if (!sj)
                return EV_INCOMPLETE;
        *sj = (struct ship_job){ .R = R, .plan = plan_of(R) };
        /* one ship_timeout for SHIP as a whole (from ship_begin), at least half of it for the final upload */
        double deadline = R->ship_deadline > 0 ? MAX(R->ship_deadline, now_mono() + (double)R->job.ship_timeout / 2)
                                               : now_mono() + (double)R->job.ship_timeout;
        int r = waiter_blocking(&R->w, ship_all, sj, deadline);
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
        return EV_DONE;
}
