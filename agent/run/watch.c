/* watch.c — spot/rebalance polling and GPU sampling off the main loop. */
#include "run/watch.h"

#include <cjson/cJSON.h>
#include <sys/eventfd.h>

static void cjson_deletep(cJSON **j) { cJSON_Delete(*j); }

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

static void sample_gpu(struct watcher *w) {
        struct gpu_state st;
        char err[256];
        if (gpu_query(w->gpu, &st, err, sizeof err) < 0)
                return;
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

static void *watch_thread(void *ud) {
        struct watcher *w = ud;
        double next_spot = 0, next_gpu = 0;
        for (;;) {
                double now = now_mono();
                if (w->imds && now >= next_spot) {
                        poll_spot(w);
                        next_spot = now + WATCH_SPOT_INTERVAL;
                }
                if (w->gpu && now >= next_gpu) {
                        sample_gpu(w);
                        next_gpu = now + WATCH_GPU_INTERVAL;
                }
                pthread_mutex_lock(&w->lock);
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 250 * 1000000L;
                if (ts.tv_nsec >= 1000000000L)
                        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                if (!w->stop)
                        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
                bool stop = w->stop;
                pthread_mutex_unlock(&w->lock);
                if (stop)
                        break;
        }
        return NULL;
}

int watcher_start(struct watcher *w, struct imds *imds, struct gpu *gpu, int metrics_fd, long idle_limit) {
        memset(w, 0, sizeof *w);
        w->imds = imds;
        w->gpu = gpu;
        w->metrics_fd = metrics_fd;
        w->idle_limit = idle_limit;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0)
                return -errno;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        int r = pthread_create(&w->th, NULL, watch_thread, w);
        if (r != 0)
                return -r;
        w->running = true;
        return 0;
}

void watcher_stop(struct watcher *w) {
        if (!w->running)
                return;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->th, NULL);
        w->running = false;
        close(w->efd);
        w->efd = -1;
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
