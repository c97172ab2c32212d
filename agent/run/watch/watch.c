/* SPDX-License-Identifier: Apache-2.0 */
/* watch.c — spot/rebalance polling and GPU sampling off the main loop, each on its own thread: a GPU query that
 * hangs never delays a spot notice. */
#include "run/watch/watch.h"
#include "jsonx.h"

#include <cjson/cJSON.h>
#include <sys/eventfd.h>

int spot_parse(const char *json, size_t len, char action[16], time_t *when) {
        _cleanup_(cjson_deletep) cJSON *j = cJSON_ParseWithLength(json, len);
        const char *a = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "action"));
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "time"));
        if (!a || !t || (strcmp(a, "terminate") && strcmp(a, "stop") && strcmp(a, "hibernate")))
                return -EBADMSG;
        time_t tt;
        if (parse_iso8601(t, &tt) < 0)
                return -EBADMSG;
        snprintf(action, 16, "%s", a);
        *when = tt;
        return 0;
}

int rebalance_parse(const char *json, size_t len, time_t *when) {
        _cleanup_(cjson_deletep) cJSON *j = cJSON_ParseWithLength(json, len);
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "noticeTime"));
        return t ? parse_iso8601(t, when) : -EBADMSG;
}

static void wake(struct watcher *w) {
        uint64_t one = 1;
        ssize_t n = write(w->efd, &one, sizeof one);
        (void)n;
}

void watcher_ack(struct watcher *w) {
        uint64_t v;
        ssize_t n = read(w->efd, &v, sizeof v);
        (void)n;
}

static void poll_spot(struct watcher *w) {
        char err[256], action[16];
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        time_t when;
        w->spot_polls++;
        if (imds_get(w->imds, "meta-data/spot/instance-action", &body, &len, err, sizeof err) == 0 &&
            spot_parse(body, len, action, &when) == 0) {
                pthread_mutex_lock(&w->lock);
                bool was = w->spot;
                w->spot = true;
                snprintf(w->spot_action, sizeof w->spot_action, "%s", action);
                w->spot_time = when;
                pthread_mutex_unlock(&w->lock);
                if (!was)
                        wake(w);
        }
        free(body);
        body = NULL;
        if (imds_get(w->imds, "meta-data/events/recommendations/rebalance", &body, &len, err, sizeof err) == 0 &&
            rebalance_parse(body, len, &when) == 0) {
                pthread_mutex_lock(&w->lock);
                bool was = w->rebalance;
                w->rebalance = true;
                w->rebalance_time = when;
                pthread_mutex_unlock(&w->lock);
                if (!was)
                        wake(w);
        }
}

/* One GPU sample, on the GPU thread. A query that never returns (a hung NVML, a wedged driver) stalls this thread
 * alone: the spot thread sees busy_since age and reports it. */
static void sample_gpu(struct watcher *w) {
        struct gpu_state st;
        char err[256];
        pthread_mutex_lock(&w->lock);
        w->gpu_busy_since = now_mono();
        pthread_mutex_unlock(&w->lock);
        int r = gpu_query(w->gpu, &st, err, sizeof err);
        pthread_mutex_lock(&w->lock);
        w->gpu_busy_since = 0;
        bool stop = w->stop, was_hung = w->gpu_hung;
        w->gpu_hung = false;
        pthread_mutex_unlock(&w->lock);
        if (was_hung)
                wake(w);
        if (stop || r < 0)
                return; /* after a stop the metrics fd may be closed: nothing more is written */
        _cleanup_free_ char *js = NULL;
        if (w->metrics_fd >= 0 && gpu_state_to_json(&st, true, &js) == 0) {
                char ts[32];
                time_t t = now_wall();
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
                char line[16384];
                int n = snprintf(line, sizeof line, "{\"time\":\"%s\",\"gpu\":%s}\n", ts, js);
                if (n > 0 && (size_t)n < sizeof line) {
                        ssize_t wr = write(w->metrics_fd, line, (size_t)n);
                        (void)wr;
                }
        }
        bool fire = false;
        pthread_mutex_lock(&w->lock);
        w->last = st;
        if (w->exp_running && w->idle_limit > 0 && gpu_all_idle(&st)) {
                if (w->idle_since == 0)
                        w->idle_since = now_mono();
                else if (!w->idle_fired && now_mono() - w->idle_since >= (double)w->idle_limit)
                        fire = w->idle_fired = true;
        } else
                w->idle_since = 0;
        pthread_mutex_unlock(&w->lock);
        if (fire)
                wake(w);
}

/* Sleeps up to ms on the condition; true when asked to stop. Waits on CLOCK_MONOTONIC (a clock step cannot
 * stretch it). Called with the lock held. */
static bool nap(struct watcher *w, long ms) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
                ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        if (!w->stop)
                pthread_cond_timedwait(&w->cond, &w->lock, &ts);
        return w->stop;
}

/* A GPU query running for longer than WATCH_GPU_HUNG: flagged once, the main loop woken to say so. */
static void check_gpu_hang(struct watcher *w) {
        pthread_mutex_lock(&w->lock);
        bool fire = w->gpu_busy_since && !w->gpu_hung && now_mono() - w->gpu_busy_since >= WATCH_GPU_HUNG;
        if (fire) {
                w->gpu_hung = true;
                w->gpu_hung_since = now_wall() - WATCH_GPU_HUNG;
                w->gpu_hangs++;
        }
        pthread_mutex_unlock(&w->lock);
        if (fire)
                wake(w);
}

static void *spot_thread(void *ud) {
        struct watcher *w = ud;
        double next_spot = 0;
        for (;;) {
                double now = now_mono();
                if (w->imds && now >= next_spot) {
                        poll_spot(w);
                        next_spot = now + WATCH_SPOT_INTERVAL;
                }
                if (__atomic_load_n(&w->gpu_running, __ATOMIC_RELAXED))
                        check_gpu_hang(w);
                pthread_mutex_lock(&w->lock);
                bool stop = nap(w, 250);
                pthread_mutex_unlock(&w->lock);
                if (stop)
                        break;
        }
        return NULL;
}

static void *gpu_thread(void *ud) {
        struct watcher *w = ud;
        for (;;) {
                sample_gpu(w);
                pthread_mutex_lock(&w->lock);
                bool stop = nap(w, WATCH_GPU_INTERVAL * 1000);
                pthread_mutex_unlock(&w->lock);
                if (stop)
                        break;
        }
        pthread_mutex_lock(&w->lock);
        w->gpu_done = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

int watcher_start(struct watcher *w, struct imds *imds) {
        memset(w, 0, sizeof *w);
        w->imds = imds;
        w->metrics_fd = -1;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0)
                return -errno;
        pthread_mutex_init(&w->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cond, &ca);
        pthread_condattr_destroy(&ca);
        int r = pthread_create(&w->th, NULL, spot_thread, w);
        if (r != 0) {
                close(w->efd);
                w->efd = -1;
                return -r;
        }
        w->running = true;
        return 0;
}

int watcher_add_gpu(struct watcher *w, struct gpu *gpu, int metrics_fd, long idle_limit) {
        if (!w->running || w->gpu_running || !gpu)
                return 0;
        pthread_mutex_lock(&w->lock);
        w->gpu = gpu;
        w->metrics_fd = metrics_fd;
        w->idle_limit = idle_limit;
        pthread_mutex_unlock(&w->lock);
        int r = pthread_create(&w->gpu_th, NULL, gpu_thread, w);
        w->gpu_running = r == 0;
        return -r;
}

bool watcher_stop(struct watcher *w) {
        if (!w->running)
                return false;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->th, NULL);
        bool abandoned = false;
        if (w->gpu_running) {
                /* a GPU thread stuck in a query is left behind rather than waited for */
                pthread_mutex_lock(&w->lock);
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += 1;
                while (!w->gpu_done && pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
                        ;
                bool done = w->gpu_done;
                pthread_mutex_unlock(&w->lock);
                if (done)
                        pthread_join(w->gpu_th, NULL);
                else {
                        pthread_detach(w->gpu_th);
                        abandoned = true;
                }
                w->gpu_running = false;
        }
        w->running = false;
        if (!abandoned) {
                /* the abandoned thread still holds the lock's address: leave both in place */
                close(w->efd);
                w->efd = -1;
        }
        w->gpu_abandoned = abandoned;
        return abandoned;
}

void watcher_gpu_health(struct watcher *w, bool *hung, time_t *since, unsigned long *hangs) {
        pthread_mutex_lock(&w->lock);
        *hung = w->gpu_hung;
        *since = w->gpu_hung_since;
        *hangs = w->gpu_hangs;
        pthread_mutex_unlock(&w->lock);
}

void watcher_experiment(struct watcher *w, bool running) {
        if (!w->running)
                return;
        pthread_mutex_lock(&w->lock);
        w->exp_running = running;
        w->idle_since = 0;
        w->idle_fired = false;
        pthread_mutex_unlock(&w->lock);
}
