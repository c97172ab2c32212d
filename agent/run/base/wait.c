/* SPDX-License-Identifier: Apache-2.0 */
/* wait.c — poll + signalfd + the watchdog, on the monotonic clock; workers for blocking work. */
#include "run/base/wait.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>

#include "util.h"

int waiter_init(struct waiter *w) {
        *w = (struct waiter){ .sfd = -1 };
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGCHLD);
        sigaddset(&m, SIGTERM);
        sigaddset(&m, SIGINT);
        sigaddset(&m, SIGHUP);
        if (pthread_sigmask(SIG_BLOCK, &m, NULL) != 0)
                return -errno;
        signal(SIGPIPE, SIG_IGN);
        w->sfd = signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
        if (w->sfd < 0)
                return -errno;
        uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) > 0)
                w->watchdog_usec = (long)usec;
        w->last_ping = now_mono();
        return 0;
}

void waiter_free(struct waiter *w) {
        if (w->sfd >= 0)
                close(w->sfd);
        w->sfd = -1;
}

static void drain(struct waiter *w) {
        struct signalfd_siginfo si;
        while (read(w->sfd, &si, sizeof si) == sizeof si)
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                        w->stop = true;
}

static void ping(struct waiter *w) {
        double now = now_mono();
        if (w->watchdog_usec > 0 && (now - w->last_ping) * 1e6 >= (double)w->watchdog_usec / 2) {
                sd_notify(0, "WATCHDOG=1");
                w->last_ping = now;
        }
}

int waiter_poll(struct waiter *w, struct pollfd *fds, int n, int timeout_ms) {
        struct pollfd p[8];
        if (n < 0 || n > 7)
                return -EINVAL;
        p[0] = (struct pollfd){ .fd = w->sfd, .events = POLLIN };
        for (int i = 0; i < n; i++)
                p[i + 1] = fds[i];
        /* never longer than half the watchdog interval */
        if (w->watchdog_usec > 0 && (timeout_ms < 0 || (long)timeout_ms * 2000 > w->watchdog_usec))
                timeout_ms = (int)(w->watchdog_usec / 2000);
        int r = poll(p, (nfds_t)n + 1, timeout_ms);
        int e = errno;
        drain(w);
        ping(w);
        if (r < 0)
                return e == EINTR ? 0 : -e;
        for (int i = 0; i < n; i++)
                fds[i].revents = p[i + 1].revents;
        return r - (p[0].revents ? 1 : 0);
}

void worker_nap(double seconds) {
        struct timespec t = { .tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };
        while (nanosleep(&t, &t) < 0 && errno == EINTR)
                ;
}

bool waiter_sleep(struct waiter *w, double seconds) {
        double until = now_mono() + seconds;
        for (double left; !w->stop && (left = until - now_mono()) > 0;)
                waiter_poll(w, NULL, 0, (int)MIN(left * 1000 + 1, 1000));
        return !w->stop;
}

/* On the heap: a worker abandoned at the deadline may still write its result here. */
struct blocking {
        int (*fn)(void *arg);
        void *arg;
        int rc;
        int efd;                  /* written when fn returns, so the loop wakes at once */
        bool done;
};

static void *blocking_main(void *ud) {
        struct blocking *b = ud;
        b->rc = b->fn(b->arg);
        __atomic_store_n(&b->done, true, __ATOMIC_RELEASE);
        uint64_t one = 1;
        ssize_t n = write(b->efd, &one, sizeof one);
        (void)n;
        return NULL;
}

int waiter_blocking(struct waiter *w, int (*fn)(void *arg), void *arg, double deadline) {
        return waiter_blocking_ticks(w, fn, arg, deadline, NULL, NULL, 0);
}

int waiter_blocking_ticks(struct waiter *w, int (*fn)(void *arg), void *arg, double deadline,
                          void (*tick)(void *ud), void *tick_ud, double every) {
        struct blocking *b = calloc(1, sizeof *b);
        if (!b)
                return fn(arg);
        *b = (struct blocking){ .fn = fn, .arg = arg, .efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
        pthread_t th;
        if (b->efd < 0 || pthread_create(&th, NULL, blocking_main, b) != 0) {
                if (b->efd >= 0)
                        close(b->efd);
                free(b);
                return fn(arg);
        }
        sd_notify(0, "EXTEND_TIMEOUT_USEC=60000000");
        double next_tick = now_mono() + every;
        while (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE)) {
                if (tick && now_mono() >= next_tick) {
                        tick(tick_ud);
                        next_tick = now_mono() + every;
                }
                if (deadline > 0 && now_mono() >= deadline) {
                        pthread_detach(th);
                        w->abandoned = true;
                        return -ETIMEDOUT;
                }
                struct pollfd p = { .fd = b->efd, .events = POLLIN };
                waiter_poll(w, &p, 1, 1000);
        }
        pthread_join(th, NULL);
        close(b->efd);
        int rc = b->rc;
        free(b);
        return rc;
}

void waiter_status(const char *fmt, const char *arg) {
        char s[512];
        snprintf(s, sizeof s, fmt, arg ? arg : "");
        sd_notifyf(0, "STATUS=%s", s);
}
