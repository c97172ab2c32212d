/* SPDX-License-Identifier: Apache-2.0 */
/* supervise.c — one experiment's process: output pumped raw into its logs and the journal, its timeout, a stop
 * turned into SIGTERM then SIGKILL. The loop never blocks on the network: uploads happen in the shipper thread. */
#include "run/proc/supervise.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "util.h"

#define DRAIN_AFTER_EXIT 2.0      /* seconds the output of a finished experiment's group is still read */

static void journal_line(const char *exp, int stream, const char *line, size_t n) {
        sd_journal_send("MESSAGE=%.*s", (int)n, line, "PRIORITY=%d", stream ? LOG_WARNING : LOG_INFO,
                        "MAYFLY_EXPERIMENT=%s", exp, "MAYFLY_STREAM=%s", stream ? "stderr" : "stdout",
                        "SYSLOG_IDENTIFIER=mayfly", NULL);
}

/* n more bytes in log k: past log_max its head is released (said once, when it first happens). */
static void cap_log(struct exp_run *E, int k, int lf, uint64_t n) {
        E->size[k] += n;
        uint64_t upto = log_release_upto(E->size[k], E->log_max);
        if (upto <= E->released[k])
                return;
        int r = log_release(lf, E->released[k], upto);
        if (!E->capped[k]) {
                char max[32];
                fmt_bytes(E->log_max, max);
                if (r < 0)
                        log_error("experiment %s: its %s passed log_max (%s) but its head cannot be released: %s", E->name,
                                  k ? "stderr" : "stdout", max, strerror(-r));
                else
                        log_warn("experiment %s: its %s passed log_max (%s): from here on its head is released as it "
                                 "grows (its offsets stay; the bytes before the last %s read as zeros)", E->name,
                                 k ? "stderr" : "stdout", max, max);
                E->capped[k] = true;
        }
        if (r == 0)
                E->released[k] = upto;
}

/* Copy what the experiment wrote, raw, into its log; mirror whole lines to the journal.
 * true when bytes were read (there may be more). */
static bool pump(struct exp_run *E, int k) {
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
        ssize_t w = logw_write(&E->lw, lf, buf, (size_t)n);
        if (w < n) {
                static bool warned;
                if (!warned)
                        log_error("cannot write the experiment's log: %s (output kept flowing to the journal)",
                                  strerror(errno));
                warned = true;
        }
        if (w > 0)
                cap_log(E, k, lf, (uint64_t)w);
        for (ssize_t i = 0; i < n; i++) {
                char c = buf[i];
                if (c == '\n' || E->linelen[k] == sizeof E->linebuf[k]) {
                        journal_line(E->name, k, E->linebuf[k], E->linelen[k]);
                        E->linelen[k] = 0;
                        if (c == '\n')
                                continue;
                }
                E->linebuf[k][E->linelen[k]++] = c;
        }
        return true;
}

int exp_start(struct exp_run *E, const char *name, const struct spawn *sp, int out_log, int err_log, uint64_t log_max,
              long timeout, long stop_grace, char *err, size_t errlen) {
        *E = (struct exp_run){ .name = name, .out_log = out_log, .err_log = err_log, .stop_grace = stop_grace,
                               .ch = { .out_fd = -1, .err_fd = -1 }, .log_max = log_max };
        struct stat st;
        for (int k = 0; k < 2; k++)
                E->size[k] = fstat(k ? err_log : out_log, &st) == 0 ? (uint64_t)st.st_size : 0;
        int r = logw_start(&E->lw, sp->user);
        if (r < 0)
                snprintf(err, errlen, "cannot start the log writer as %s: %s", sp->user ? sp->user->name : "?",
                         strerror(-r));
        else if ((r = runner_spawn(sp, &E->ch, err, errlen)) < 0)
                logw_stop(&E->lw);
        if (r < 0) {
                close(out_log);
                close(err_log);
                E->out_log = E->err_log = -1;
                return r;
        }
        if (timeout > 0)
                E->timeout_at = now_mono() + (double)timeout;
        E->running = true;
        return 0;
}

void exp_stop(struct exp_run *E, enum exp_reason why, long grace) {
        if (!E->running || E->kill_reason != R_NONE || E->exited)
                return;
        E->kill_reason = why;
        E->kill_at = now_mono() + (double)MAX(grace, 0);
        log_info("stopping experiment %s (%s): SIGTERM, SIGKILL in %lds", E->name, exp_reason_name(why), MAX(grace, 0));
        runner_signal_group(E->ch.pid, SIGTERM);
}

void exp_signal(struct exp_run *E, int sig) {
        if (E->running && !E->exited)
                runner_signal_group(E->ch.pid, sig);
}

void exp_mark(struct exp_run *E, uid_t uid, const char *marker) {
        snprintf(E->marker, sizeof E->marker, "%s", marker ? marker : "");
        E->uid = uid;
}

/* Every process of uid carrying the marker, killed; logged. How many remain. */
static int sweep(struct waiter *w, const char *name, uid_t uid, const char *marker) {
        size_t killed = 0;
        int r = sweep_run(w, uid, marker, SWEEP_SECONDS, &killed);
        if (killed)
                log_info("experiment %s: %zu process%s it left running killed (SIGKILL: outside its process group, "
                         "found by %s)", name, killed, killed == 1 ? "" : "es", SWEEP_MARKER_VAR);
        if (r < 0)
                log_error("experiment %s: cannot look for the processes it left: %s", name, strerror(-r));
        else if (r > 0)
                log_error("experiment %s: %d process%s it left survive SIGKILL after %.0fs", name, r, r == 1 ? "" : "es",
                          SWEEP_SECONDS);
        return r > 0 ? r : 0;
}

/* By pid: other children (nvidia-smi, the power-off command) are reaped by their own code. */
static void reap(struct exp_run *E, struct waiter *w) {
        int st;
        if (!E->exited && waitpid(E->ch.pid, &st, WNOHANG) == E->ch.pid) {
                E->exited = true;
                E->status = st;
                E->exited_at = now_mono();
                /* whatever the experiment left behind in its group goes with it, and what left the group too */
                runner_signal_group(E->ch.pid, SIGKILL);
                if (E->marker[0])
                        E->left = sweep(w, E->name, E->uid, E->marker);
        }
}

enum exp_wake exp_wait(struct exp_run *E, struct waiter *w, int watch_fd, double deadline) {
        for (;;) {
                if (E->exited && ((E->ch.out_fd < 0 && E->ch.err_fd < 0) || now_mono() - E->exited_at > DRAIN_AFTER_EXIT))
                        return WAKE_ENDED;
                if (!E->exited && E->kill_reason == R_NONE) {
                        if (w->stop)
                                return WAKE_STOP;
                        if (deadline > 0 && now_mono() >= deadline)
                                return WAKE_DEADLINE;
                }
                struct pollfd p[3] = { { .fd = E->exited ? -1 : watch_fd, .events = POLLIN }, { .fd = E->ch.out_fd, .events = POLLIN },
                                       { .fd = E->ch.err_fd, .events = POLLIN } };
                int r = waiter_poll(w, p, 3, 500);
                /* bounded: a chatty experiment cannot starve deadlines, signals or the watchdog */
                for (int k = 0; r > 0 && k < 2; k++)
                        if (p[1 + k].revents)
                                for (int n = 0; n < 16 && pump(E, k); n++)
                                        ;
                /* SIGCHLD only wakes the poll (it can also race the signalfd's set-up): look each time */
                reap(E, w);
                if (!E->exited) {
                        double now = now_mono();
                        if (E->timeout_at && now >= E->timeout_at)
                                exp_stop(E, R_TIMEOUT, E->stop_grace);
                        if (E->kill_at && now >= E->kill_at) {
                                log_info("experiment %s ignored SIGTERM: SIGKILL", E->name);
                                runner_signal_group(E->ch.pid, SIGKILL);
                                E->kill_at = 0;
                        }
                }
                if (r > 0 && p[0].revents && !E->exited)
                        return WAKE_WATCH;
        }
}

void exp_finish(struct exp_run *E, struct exp_state *s) {
        for (int k = 0; k < 2; k++) {
                if (E->linelen[k])
                        journal_line(E->name, k, E->linebuf[k], E->linelen[k]);
                int fd = k ? E->ch.err_fd : E->ch.out_fd;
                if (fd >= 0)
                        close(fd);
        }
        logw_stop(&E->lw);
        if (E->out_log >= 0)
                close(E->out_log);
        if (E->err_log >= 0)
                close(E->err_log);
        E->out_log = E->err_log = -1;
        E->running = false;
        s->end = now_wall();
        s->pid = 0;
        s->pid_start = 0;
        if (WIFEXITED(E->status)) {
                s->exit_code = WEXITSTATUS(E->status);
                s->signal = 0;
        } else {
                s->exit_code = -1;
                s->signal = WIFSIGNALED(E->status) ? WTERMSIG(E->status) : 0;
        }
        s->reason = E->kill_reason != R_NONE ? E->kill_reason : R_EXIT;
}

int exp_stop_leftover(struct waiter *w, pid_t pid, unsigned long long pid_start, long grace, uid_t uid,
                      const char *marker) {
        if (pid > 0 && pid_start && proc_start_time(pid) == pid_start) {
                log_info("stopping the previous agent's experiment process group %d", (int)pid);
                runner_signal_group(pid, SIGTERM);
                double until = now_mono() + (double)MAX(grace, 1);
                while (now_mono() < until && proc_start_time(pid) == pid_start)
                        waiter_poll(w, NULL, 0, 100);
                runner_signal_group(pid, SIGKILL);
        }
        /* its leader gone or not, what it started outside its group may still run */
        return marker && marker[0] ? sweep(w, "of the previous agent", uid, marker) : 0;
}
