/* SPDX-License-Identifier: Apache-2.0 */
/* wait.h — the one way the agent waits: poll with the signalfd, the systemd watchdog pinged at half its interval,
 * every time measured on CLOCK_MONOTONIC (a clock stepped back or forward neither stalls nor hurries a wait). */
#pragma once
#include <poll.h>
#include <stdbool.h>

struct waiter {
        int sfd;                      /* signalfd: SIGTERM, SIGINT (a stop), SIGCHLD (wakes the poll), SIGHUP */
        long watchdog_usec;           /* 0: no watchdog */
        double last_ping;
        bool stop;                    /* SIGTERM or SIGINT arrived */
        bool abandoned;               /* a worker outlived its deadline (waiter_blocking) */
};

/* Blocks SIGCHLD, SIGTERM, SIGINT, SIGHUP in the calling thread (and the threads it starts), opens the signalfd,
 * reads $WATCHDOG_USEC. */
int waiter_init(struct waiter *w);
void waiter_free(struct waiter *w);
/* Polls the signalfd and fds[0..n) for at most timeout_ms; drains the signals (noting a stop) and pings the
 * watchdog. Returns poll's count (fds[i].revents set), 0 on timeout or a signal only, -errno. */
int waiter_poll(struct waiter *w, struct pollfd *fds, int n, int timeout_ms);
/* Sleeps for seconds, returning early (false) on a stop. */
bool waiter_sleep(struct waiter *w, double seconds);
/* Runs fn(arg) on a worker thread while waiting (signals noted, watchdog fed). deadline: monotonic seconds, 0 = none;
 * past it the worker is abandoned (w->abandoned) and -ETIMEDOUT returned. */
int waiter_blocking(struct waiter *w, int (*fn)(void *arg), void *arg, double deadline);
/* The same, and tick(tick_ud) on the calling thread every `every` seconds while fn runs (status, a stop). */
int waiter_blocking_ticks(struct waiter *w, int (*fn)(void *arg), void *arg, double deadline,
                          void (*tick)(void *ud), void *tick_ud, double every);
/* The one sleep of a thread that is not the driver's (a worker under waiter_blocking, the watcher, the keeper):
 * the driver itself only ever waits through waiter_poll/waiter_sleep/waiter_blocking, which read signals and feed
 * the watchdog. No other sleep is called in agent/run/ (tests/blackbox/test_layout.py checks). */
void worker_nap(double seconds);
/* STATUS= for systemd: fmt with one %s. */
void waiter_status(const char *fmt, const char *arg);
