/* supervise.c — the RUN phase: each experiment started, its output pumped raw into its logs and the journal,
 * its deadlines, spot notices and GPU idleness turned into SIGTERM then SIGKILL, its end recorded. The loop
 * never blocks on the network: uploads happen in the shipper thread. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>

#include "beneath.h"
#include "exitcode.h"
#include "log.h"
#include "run/exptree.h"
#include "run/run.h"
#include "aws/xferdir.h"

extern char **environ;

#define SPOT_UPLOAD_MARGIN 30     /* seconds kept for uploads before a spot notice's time */
#define DRAIN_AFTER_EXIT_MS 2000

struct exp_run {
        size_t idx;
        struct child ch;
        int out_log, err_log;
        char linebuf[2][4096];
        size_t linelen[2];
        const char *kill_reason;
        double kill_at;           /* SIGKILL time (monotonic), 0 = not killing */
        bool exited;
        int status;
        bool usr1_sent;
};

static void journal_line(const char *exp, int stream, const char *line, size_t n) {
        sd_journal_send("MESSAGE=%.*s", (int)n, line, "PRIORITY=%d", stream ? LOG_WARNING : LOG_INFO,
                        "MAYFLY_EXPERIMENT=%s", exp, "MAYFLY_STREAM=%s", stream ? "stderr" : "stdout",
                        "SYSLOG_IDENTIFIER=mayfly", NULL);
}

/* Copy what the experiment wrote, raw, into its log; mirror whole lines to the journal.
 * true when bytes were read (there may be more). */
static bool pump(struct run *R, struct exp_run *E, int k) {
        int fd = k ? E->ch.err_fd : E->ch.out_fd;
        if (fd < 0)
                return false;
        char buf[65536];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0)
                return false; /* EAGAIN: nothing more for now */
        if (n == 0) {
                close(fd);
                if (k)
                        E->ch.err_fd = -1;
                else
                        E->ch.out_fd = -1;
                return false;
        }
        int lf = k ? E->err_log : E->out_log;
        for (ssize_t done = 0; done < n;) {
                ssize_t w = write(lf, buf + done, (size_t)(n - done));
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        static bool warned;
                        if (!warned)
                                log_error("cannot write the experiment's log: %s (output kept flowing to the journal)",
                                          strerror(errno));
                        warned = true;
                        break;
                }
                done += w;
        }
        const char *name = R->job.experiments[E->idx].name;
        for (ssize_t i = 0; i < n; i++) {
                char c = buf[i];
                if (c == '\n' || E->linelen[k] == sizeof E->linebuf[k]) {
                        journal_line(name, k, E->linebuf[k], E->linelen[k]);
                        E->linelen[k] = 0;
                        if (c == '\n')
                                continue;
                }
                E->linebuf[k][E->linelen[k]++] = c;
        }
        return true;
}

static void begin_kill(struct run *R, struct exp_run *E, const char *reason, long grace) {
        if (E->kill_reason)
                return;
        E->kill_reason = reason;
        E->kill_at = now_mono() + (double)MAX(grace, 0);
        log_info("stopping experiment %s (%s): SIGTERM, SIGKILL in %lds", R->job.experiments[E->idx].name, reason,
                 MAX(grace, 0));
        runner_signal_group(E->ch.pid, SIGTERM);
}

static void on_watch_event(struct run *R, struct exp_run *E) {
        watcher_ack(&R->watch);
        pthread_mutex_lock(&R->watch.lock);
        bool spot = R->watch.spot, reb = R->watch.rebalance, idle = R->watch.idle_fired;
        char action[16];
        snprintf(action, sizeof action, "%s", R->watch.spot_action);
        time_t when = R->watch.spot_time;
        pthread_mutex_unlock(&R->watch.lock);
        if (spot && !R->spot_interrupted) {
                R->spot_interrupted = true;
                snprintf(R->st.spot_action, sizeof R->st.spot_action, "%s", action);
                R->st.spot_time = when;
                run_save_state(R);
                long left = (long)(when - now_wall()) - SPOT_UPLOAD_MARGIN;
                long grace = MIN(R->job.spot_grace, left);
                log_info("spot interruption notice: %s at %ld (in %lds)", action, (long)when, (long)(when - now_wall()));
                begin_kill(R, E, "interrupted", grace);
        }
        if (reb && !R->rebalance_seen) {
                R->rebalance_seen = true;
                log_info("rebalance recommendation received");
                if (R->job.rebalance_sigusr1 && !E->usr1_sent) {
                        E->usr1_sent = true;
                        runner_signal_group(E->ch.pid, SIGUSR1);
                }
        }
        if (idle)
                begin_kill(R, E, "gpu-idle", R->job.stop_grace);
        run_check_gpu_health(R);
}

/* max_runtime counts from the run's start, across agent restarts. */
static bool max_runtime_spent(const struct run *R) {
        return R->job.max_runtime && now_wall() - R->st.started >= R->job.max_runtime;
}

static void check_deadlines(struct run *R, struct exp_run *E) {
        const struct experiment *x = &R->job.experiments[E->idx];
        struct exp_state *s = &R->st.exps[E->idx];
        time_t now = now_wall();
        if (x->timeout && now - s->start >= x->timeout)
                begin_kill(R, E, "timeout", R->job.stop_grace);
        if (max_runtime_spent(R))
                begin_kill(R, E, "max-runtime", R->job.stop_grace);
        if (R->stop_requested)
                begin_kill(R, E, "agent-stopped", R->job.stop_grace);
        if (E->kill_at && now_mono() >= E->kill_at) {
                log_info("experiment %s ignored SIGTERM: SIGKILL", x->name);
                runner_signal_group(E->ch.pid, SIGKILL);
                E->kill_at = 0;
        }
}

static void reap(struct run *R, struct exp_run *E) {
        struct signalfd_siginfo si;
        while (read(R->sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                        if (!R->stop_requested)
                                log_info("stop requested: stopping the experiment; the run resumes on restart");
                        R->stop_requested = true;
                }
        }
        /* by pid: other children (nvidia-smi, the power-off command) are reaped by their own code */
        int st;
        if (!E->exited && waitpid(E->ch.pid, &st, WNOHANG) == E->ch.pid) {
                E->exited = true;
                E->status = st;
        }
}

struct restore {
        const char *prefix;
        const char *dir;
};

static int fill_restore(struct xfer_batch *b, void *ud, struct aws_result *out) {
        struct restore *rs = ud;
        return xfer_batch_add_prefix(b, rs->prefix, rs->dir, out);
}

/* The checkpoint back from S3 into its directory, created by and owned by the run user, never through a link out
 * of the workdir. */
static int restore_checkpoint(struct run *R, void *arg) {
        const char *dir = arg;
        struct aws_result res = { 0 };
        char prefix[1400];
        snprintf(prefix, sizeof prefix, "%scheckpoint/", R->prefix);
        struct xfer_batch b;
        struct restore rs = { .prefix = prefix, .dir = dir };
        int r = xfer_batch_init(&b, &R->c, R->bucket, false, NULL);
        if (r == 0)
                r = exptree_transfer(&R->user, R->workfd, &b, fill_restore, &rs, &res);
        if (r == 0 && b.refused) {
                char m[700];
                exptree_refusal(&b, m, sizeof m);
                run_note_refusal(R, "checkpoint restore", m);
        }
        if (r == 0)
                log_info("checkpoint restored: %zu files into %s", b.n, dir);
        else
                log_warn("checkpoint restore from s3://%s/%s failed: %s", R->bucket, prefix, res.msg);
        xfer_batch_free(&b);
        return r;
}

static char **experiment_argv(struct run *R, const struct experiment *x) {
        char **argv = NULL;
        if (envact_command(&R->env, x->argv, x->shell, &argv) < 0)
                return NULL;
        if (strchr(argv[0], '/'))
                return argv;
        /* a bare command name: let env(1) search the experiment's PATH */
        size_t n = 0;
        while (argv[n])
                n++;
        char **v = calloc(n + 2, sizeof *v);
        if (!v || !(v[0] = strdup("/usr/bin/env"))) {
                free(v);
                envact_free_argv(argv);
                return NULL;
        }
        for (size_t i = 0; i < n; i++)
                v[i + 1] = argv[i];
        free(argv);
        return v;
}

static int open_log(struct run *R, const char *exp, const char *stream, char *path, size_t n) {
        snprintf(path, n, "%s/%s", R->logs_dir, exp);
        if (mkdir(path, 0750) < 0 && errno != EEXIST)
                return -errno;
        snprintf(path, n, "%s/%s/%s.log", R->logs_dir, exp, stream);
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        return fd < 0 ? -errno : fd;
}

static int run_experiment(struct run *R, size_t i, bool resume) {
        const struct experiment *x = &R->job.experiments[i];
        struct exp_state *s = &R->st.exps[i];
        struct exp_run E = { .idx = i, .out_log = -1, .err_log = -1 };
        char ckpt[4200] = "", outp[4200], errp[4200];
        if (R->job.checkpoint_dir) {
                const char *rel = R->job.checkpoint_dir;
                snprintf(ckpt, sizeof ckpt, "%s/%s", R->workdir, rel);
                int r = exptree_mkdir(&R->user, R->workfd, rel);
                if (beneath_refused(r)) {
                        /* not started: resumed without its checkpoint, it would sync fresh state over the good one */
                        char m[4400];
                        snprintf(m, sizeof m, "the checkpoint directory %s is a link out of the workdir (planted by an "
                                 "experiment?): refused", rel);
                        return run_fail_run(R, r, m);
                } else if (r < 0)
                        log_warn("cannot create the checkpoint directory %s as %s: %s", ckpt, R->user.name,
                                 strerror(-r));
                if (r == 0 && resume && exptree_empty(&R->user, R->workfd, rel))
                        run_blocking(R, restore_checkpoint, (void *)rel);
        }
        E.out_log = open_log(R, x->name, "stdout", outp, sizeof outp);
        E.err_log = open_log(R, x->name, "stderr", errp, sizeof errp);
        if (E.out_log < 0 || E.err_log < 0) {
                char m[600];
                snprintf(m, sizeof m, "cannot create log files under %s: %s", R->logs_dir,
                         strerror(-(E.out_log < 0 ? E.out_log : E.err_log)));
                return run_fail_run(R, -EIO, m);
        }
        char stream[300];
        snprintf(stream, sizeof stream, "%s/stdout", x->name);
        shipper_add_stream(&R->ship, outp, stream);
        snprintf(stream, sizeof stream, "%s/stderr", x->name);
        shipper_add_stream(&R->ship, errp, stream);

        char e_run[256], e_exp[128], e_res[1500], e_ck[4300];
        snprintf(e_run, sizeof e_run, "MAYFLY_RUN_ID=%s", R->st.run_id);
        snprintf(e_exp, sizeof e_exp, "MAYFLY_EXPERIMENT=%s", x->name);
        snprintf(e_res, sizeof e_res, "MAYFLY_RESULTS=%s", R->results_uri);
        snprintf(e_ck, sizeof e_ck, "MAYFLY_CHECKPOINT_DIR=%s", ckpt);
        char *menv[6] = { e_run, e_exp, e_res };
        size_t nm = 3;
        if (ckpt[0])
                menv[nm++] = e_ck;
        if (resume)
                menv[nm++] = "MAYFLY_RESUME=1";
        char **envp = runner_environment(&R->user, environ, R->job.environment, menv);
        char **argv = experiment_argv(R, x);
        char err[512];
        int r = envp && argv ? 0 : -ENOMEM;
        if (r == 0) {
                struct spawn sp = { .argv = argv, .envp = envp, .cwd = R->workdir, .user = &R->user };
                r = runner_spawn(&sp, &E.ch, err, sizeof err);
        } else
                snprintf(err, sizeof err, "out of memory");
        strv_free(envp);
        envact_free_argv(argv);
        if (r < 0) {
                close(E.out_log);
                close(E.err_log);
                char m[700];
                snprintf(m, sizeof m, "experiment %s: %s", x->name, err);
                return run_fail_run(R, r, m);
        }
        s->st = EXP_RUNNING;
        s->start = now_wall();
        s->attempts++;
        s->pid = E.ch.pid;
        s->pid_start = proc_start_time(E.ch.pid);
        s->reason[0] = 0;
        run_save_state(R);
        run_push_status(R);
        watcher_experiment(&R->watch, true);
        run_notify_status("running %s", x->name);
        log_info("experiment %s started (pid %d%s)", x->name, (int)E.ch.pid, resume ? ", resumed" : "");

        double exited_at = 0;
        while (!E.exited || (E.ch.out_fd >= 0 || E.ch.err_fd >= 0)) {
                struct pollfd p[4] = { { .fd = R->sfd, .events = POLLIN },
                                       { .fd = R->watch.running ? R->watch.efd : -1, .events = POLLIN },
                                       { .fd = E.ch.out_fd, .events = POLLIN },
                                       { .fd = E.ch.err_fd, .events = POLLIN } };
                int pr = poll(p, 4, 500);
                if (pr < 0 && errno != EINTR)
                        break;
                /* bounded: a chatty experiment cannot starve deadlines, signals or the watchdog */
                for (int k = 0; k < 2; k++)
                        if (p[2 + k].revents)
                                for (int n = 0; n < 16 && pump(R, &E, k); n++)
                                        ;
                if (p[0].revents)
                        reap(R, &E);
                if (p[1].revents)
                        on_watch_event(R, &E);
                if (!E.exited) {
                        check_deadlines(R, &E);
                        /* SIGCHLD can be missed if it raced the signalfd set-up: poll for it too */
                        reap(R, &E);
                } else {
                        if (!exited_at) {
                                exited_at = now_mono();
                                /* whatever the experiment left behind in its group goes with it */
                                runner_signal_group(E.ch.pid, SIGKILL);
                        }
                        if (now_mono() - exited_at > DRAIN_AFTER_EXIT_MS / 1000.0)
                                break;
                }
                run_watchdog(R);
        }
        for (int k = 0; k < 2; k++) {
                if (E.linelen[k])
                        journal_line(x->name, k, E.linebuf[k], E.linelen[k]);
                int fd = k ? E.ch.err_fd : E.ch.out_fd;
                if (fd >= 0)
                        close(fd);
        }
        close(E.out_log);
        close(E.err_log);
        watcher_experiment(&R->watch, false);
        s->end = now_wall();
        s->pid = 0;
        if (WIFEXITED(E.status)) {
                s->exit_code = WEXITSTATUS(E.status);
                s->signal = 0;
        } else {
                s->exit_code = -1;
                s->signal = WIFSIGNALED(E.status) ? WTERMSIG(E.status) : 0;
        }
        snprintf(s->reason, sizeof s->reason, "%s", E.kill_reason ? E.kill_reason : "exit");
        if (E.kill_reason && !strcmp(E.kill_reason, "agent-stopped")) {
                s->st = EXP_RUNNING; /* not finished: run again on resume */
                run_save_state(R);
                return 0;
        }
        s->st = EXP_DONE;
        run_save_state(R);
        run_push_status(R);
        log_info("experiment %s ended: %s %d (%s)", x->name, s->signal ? "signal" : "exit code",
                 s->signal ? s->signal : s->exit_code, s->reason);
        return 0;
}

/* An experiment left running by a previous agent (kill -9): stop its process group before running it again. */
static void stop_leftover(struct run *R, struct exp_state *s) {
        if (s->pid <= 0 || !s->pid_start || proc_start_time(s->pid) != s->pid_start)
                return;
        log_info("stopping the previous agent's experiment process group %d", (int)s->pid);
        runner_signal_group(s->pid, SIGTERM);
        for (int i = 0; i < 10 * MAX(R->job.stop_grace, 1) && proc_start_time(s->pid) == s->pid_start; i++) {
                usleep(100000);
                run_watchdog(R);
        }
        runner_signal_group(s->pid, SIGKILL);
}

int run_phase_run(struct run *R) {
        int metrics = -1;
        snprintf(R->metrics_path, sizeof R->metrics_path, "%s/metrics.jsonl", R->logs_dir);
        metrics = open(R->metrics_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        R->metrics_fd = metrics;
        if (metrics >= 0)
                shipper_add_stream(&R->ship, R->metrics_path, "metrics");
        watcher_start(&R->watch, R->inst.id[0] ? &R->c.imds : NULL, R->gpu, metrics, R->job.gpu_idle);
        if (R->job.checkpoint_dir)
                shipper_set_checkpoint(&R->ship, &R->user, R->workfd, R->job.checkpoint_dir, R->job.checkpoint_interval);
        for (size_t i = 0; i < R->job.n_experiments; i++) {
                struct exp_state *s = &R->st.exps[i];
                if (s->st == EXP_DONE || s->st == EXP_SKIPPED)
                        continue;
                bool resume = s->st == EXP_RUNNING;
                if (resume)
                        stop_leftover(R, s);
                if (max_runtime_spent(R)) {
                        /* Not started only to be stopped a moment later: a training script that starts and gets
                         * SIGTERM may write a checkpoint of its fresh state over the good one. */
                        log_info("experiment %s not %s: max_runtime (%lds) is spent", R->job.experiments[i].name,
                                 resume ? "restarted" : "started", R->job.max_runtime);
                        s->st = resume ? EXP_DONE : EXP_SKIPPED;
                        if (resume) {
                                s->end = now_wall();
                                s->exit_code = -1;
                                s->signal = 0;
                                s->pid = 0;
                                s->pid_start = 0;
                        }
                        snprintf(s->reason, sizeof s->reason, "max-runtime");
                        break;
                }
                int rc = run_experiment(R, i, resume);
                if (rc != 0)
                        return rc; /* failed to start: fail_run did everything */
                if (R->stop_requested || R->spot_interrupted)
                        break;
                if (!strcmp(s->reason, "max-runtime"))
                        break;
                bool failed = s->exit_code != 0;
                if (failed && !R->job.continue_on_failure) {
                        for (size_t k = i + 1; k < R->job.n_experiments; k++) {
                                R->st.exps[k].st = EXP_SKIPPED;
                                snprintf(R->st.exps[k].reason, sizeof R->st.exps[k].reason, "skipped");
                        }
                        log_info("experiment %s failed; the rest are skipped (continue_on_failure is false)",
                                 R->job.experiments[i].name);
                        break;
                }
        }
        for (size_t i = 0; i < R->job.n_experiments; i++)
                if (R->st.exps[i].st == EXP_PENDING && !R->stop_requested && !R->spot_interrupted) {
                        R->st.exps[i].st = EXP_SKIPPED;
                        snprintf(R->st.exps[i].reason, sizeof R->st.exps[i].reason, "skipped");
                }
        run_save_state(R);
        return 0;
}
