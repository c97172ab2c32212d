/* SPDX-License-Identifier: Apache-2.0 */
/* wrapup.c — the cost ledger, report.html and the notification, fed from struct run at the lifecycle's hooks. */
#include "run/view/wrapup.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "jsonx.h"
#include "aws/s3.h"
#include "aws/sns.h"
#include "log.h"
#include "run/view/notify.h"
#include "run/view/report.h"
#include "run/view/status.h"

/* ---------- the cost ledger ---------- */

static void ledger_path(const struct wrapup *w, char *out, size_t n) {
        snprintf(out, n, "%s/%s", w->r.state_dir, COST_LEDGER_FILE);
}

/* pendingTime of the identity document: when this boot of the instance began (0 when IMDS does not say). */
static time_t boot_time(struct wrapup *w) {
        char err[256];
        _cleanup_free_ char *txt = NULL;
        size_t len = 0;
        if (imds_get(&w->r.c->imds, "dynamic/instance-identity/document", &txt, &len, err, sizeof err) < 0)
                return 0;
        _cleanup_(cjson_deletep) cJSON *doc = cJSON_ParseWithLength(txt, len);
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "pendingTime"));
        time_t t = 0;
        return p && parse_iso8601(p, &t) == 0 ? t : 0;
}

int wrapup_cost_refresh(void *arg) {
        struct wrapup *w = arg;
        const struct instance_info *inst = w->r.inst;
        const struct run_state *st = w->r.st;
        if (!inst || !inst->id[0] || !st->run_id[0])
                return 0; /* not on EC2: no instance to charge for */
        char path[2300];
        ledger_path(w, path, sizeof path);
        if (!w->cost || strcmp(w->cost->run_id, st->run_id)) {
                if (!w->cost && !(w->cost = calloc(1, sizeof *w->cost)))
                        return 0;
                if (cost_ledger_load(path, st->run_id, w->cost) < 0)
                        cost_ledger_init(w->cost, st->run_id);
        }
        time_t now = now_wall();
        struct cost_seen s = { .id = inst->id, .type = inst->type, .az = inst->az, .region = inst->region,
                               .lifecycle = inst->lifecycle, .boot = boot_time(w), .run_started = st->started,
                               .now = now };
        struct cost_instance *in = cost_observe(w->cost, &s);
        if (!in)
                return 0;
        struct pricing_opts o = { .max_attempts = 2, .timeout_ms = COST_LOOKUP_TIMEOUT_MS };
        struct aws_result res;
        char before[sizeof in->error];
        snprintf(before, sizeof before, "%s", in->error);
        if (cost_lookup_price(w->r.c, in, now, &o, &res) < 0 && strcmp(before, in->error))
                log_warn("cost: the price of %s (%s, %s) %s: %s", in->id, in->type,
                         in->lifecycle[0] ? in->lifecycle : "lifecycle unknown",
                         in->have_price ? "could not be brought up to date" : "is unknown", in->error);
        int r = cost_ledger_save(path, w->cost);
        if (r < 0)
                log_warn("cost: cannot save %s: %s", path, strerror(-r));
        return 0;
}

struct cJSON *wrapup_cost_json(const struct wrapup *w) {
        return w->cost ? cost_to_json(w->cost, now_wall()) : NULL;
}

struct cJSON *wrapup_cost_current(const struct wrapup *w) {
        return w->cost ? cost_current_json(w->cost, now_wall()) : NULL;
}

/* ---------- what the report is made of, from the instance's disk ---------- */

/* The last `max` bytes of a file; *whole when that is all of it. */
static int read_tail(const char *path, size_t max, char **ret, size_t *ret_len, bool *whole) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        size_t size = (size_t)st.st_size, n = MIN(size, max);
        char *b = malloc(n + 1);
        if (!b)
                return -ENOMEM;
        ssize_t got = n ? pread(fd, b, n, (off_t)(size - n)) : 0;
        if (got < 0) {
                free(b);
                return -errno;
        }
        b[got] = 0;
        *ret = b;
        *ret_len = (size_t)got;
        *whole = n == size;
        return 0;
}

/* An href relative to the run's folder: each byte outside the unreserved set percent-encoded, '/' kept. */
static char *rel_href(const char *rel) {
        struct buf b = BUF_INIT(4 * S3_MAX_KEY + 16);
        if (uri_encode(&b, rel, strlen(rel), true) < 0) {
                buf_free(&b);
                return NULL;
        }
        return buf_steal(&b);
}

/* A log on this disk for tail_read. */
static int file_read(void *ud, size_t max, char **ret, size_t *ret_len, bool *whole) {
        return read_tail(ud, max, ret, ret_len, whole);
}

static void local_logs(struct report_build *x, const char *logs_dir, bool linked) {
        const cJSON *e;
        static const char *const streams[] = { "stdout", "stderr" };
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(x->status, "experiments")) {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
                for (size_t k = 0; name && k < 2; k++) {
                        char path[4300], rel[600];
                        if (pathf(path, sizeof path, "%s/%s/%s.log", logs_dir, name, streams[k]) < 0 ||
                            pathf(rel, sizeof rel, "logs/%s/%s.log", name, streams[k]) < 0)
                                continue;
                        int r = report_build_tail(x, name, streams[k], file_read, path, linked ? rel_href(rel) : NULL);
                        if (r == -ENOMEM)
                                return; /* else: not started (-ENOENT), or unreadable: no tail */
                }
                char path[4300];
                _cleanup_free_ char *text = NULL;
                size_t len = 0;
                bool whole;
                if (name && pathf(path, sizeof path, "%s/%s/%s", logs_dir, name, XMETRICS_FILE) == 0 &&
                    read_tail(path, REPORT_XM_MAX_BYTES, &text, &len, &whole) == 0 &&
                    report_build_xmetrics(x, name, TAKE_PTR(text), len) < 0)
                        return;
        }
}

struct lister {
        struct report_build *x;
        size_t skip;                     /* the run prefix's length */
};

static int on_object(void *ud, const struct s3_object *o) {
        struct lister *l = ud;
        return strlen(o->key) > l->skip ? report_build_file(l->x, o->key + l->skip, rel_href(o->key + l->skip), o->size)
                                        : 0;
}

static uint64_t file_size(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

/* The logs and outputs the run shipped, as S3 lists them, and status.json (status_len bytes) and metrics.jsonl. */
static int shipped_files(struct wrapup *w, struct report_build *x, size_t status_len, struct aws_result *out) {
        struct http_client h;
        int r = http_client_init(&h);
        struct lister l = { x, strlen(w->r.prefix) };
        static const char *const dirs[] = { "logs/", "outputs/" };
        for (size_t i = 0; r == 0 && i < ARRAY_SIZE(dirs); i++) {
                char prefix[1400];
                r = pathf(prefix, sizeof prefix, "%s%s", w->r.prefix, dirs[i]);
                if (r < 0)
                        break;
                r = s3_list(w->r.c, &h, w->r.bucket, prefix, on_object, &l, out);
        }
        http_client_free(&h);
        if (r == 0)
                r = report_build_file(x, "status.json", rel_href("status.json"), status_len);
        if (r == 0 && w->r.metrics_path && access(w->r.metrics_path, F_OK) == 0)
                r = report_build_file(x, "metrics.jsonl", rel_href("metrics.jsonl"), file_size(w->r.metrics_path));
        return r;
}

static int gather(struct report_build *x, const char *status_json, const char *logs_dir, const char *instance,
                  bool final) {
        if (!(x->status = cJSON_Parse(status_json)))
                return -EINVAL;
        char path[2200];
        size_t len = 0;
        bool whole;
        if (pathf(path, sizeof path, "%s/metrics.jsonl", logs_dir) < 0 || read_tail(path, REPORT_MAX_METRICS, &x->metrics, &len, &whole) < 0)
                x->metrics = NULL;
        local_logs(x, logs_dir, final);
        const char *results = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x->status, "results"));
        char when[40], note[1800];
        time_t now = now_wall();
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", &tm);
        snprintf(note, sizeof note, "Written by the agent on %s at %s%s. Links are relative to the run's folder: they "
                 "work on a copy of it (mayfly cp --recursive %s DIR); `mayfly report %s` renders this page with "
                 "links that work from anywhere.", instance[0] ? instance : "this machine", when,
                 final ? "" : " (the run is not over: updated at each phase)", results ? results : "RESULTS",
                 results ? results : "RESULTS");
        x->in.status = x->status;
        x->in.metrics = x->metrics;
        x->in.metrics_len = x->metrics ? len : 0;
        x->in.now = now;
        x->in.note = report_build_own(x, strdup(note));
        return 0;
}

static int render_put(struct aws_ctx *c, const char *bucket, const char *prefix, const struct report_input *in,
                      struct aws_result *out) {
        _cleanup_(buf_freep) struct buf html = BUF_INIT(REPORT_MAX_BYTES);
        int r = report_render(in, &html);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot render report.html: %s", strerror(-r));
                return r;
        }
        char key[1400];
        if (pathf(key, sizeof key, "%s%s", prefix, REPORT_KEY) < 0) {
                errf(out->msg, sizeof out->msg, "%s%s: S3 key too long", prefix, REPORT_KEY);
                return -ENAMETOOLONG;
        }
        struct http_client h;
        r = http_client_init(&h);
        if (r < 0)
                return r;
        h.total_timeout_ms = REPORT_UPLOAD_TIMEOUT_MS;
        r = s3_put(c, &h, bucket, key, html.data, -1, 0, html.len, "text/html; charset=utf-8", NULL, NULL, out);
        http_client_free(&h);
        return r;
}

/* ---------- the background publisher ---------- */

/* A run shared by instances whose end record exists: its final report.html is the ender's, and no running view
 * from here may land over it (one HEAD before each live upload; the ender writes the end record long before its
 * final page). */
static bool shared_run_over(struct wrapup *w) {
        if (!w->r.job || !w->r.job->run_id)
                return false;
        char key[1400];
        uint64_t size;
        struct aws_result out = { 0 };
        if (pathf(key, sizeof key, "%sledger/end.json", w->prefix) < 0)
                return false;
        struct http_client h;
        if (http_client_init(&h) < 0)
                return false;
        bool over = s3_head(w->c, &h, w->bucket, key, &size, NULL, &out) == 0;
        http_client_free(&h);
        return over;
}

static void *publisher(void *ud) {
        struct wrapup *w = ud;
        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->stop && (!w->pending || now_mono() - w->last_put < REPORT_MIN_INTERVAL)) {
                        struct timespec ts;
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        ts.tv_sec += 1;
                        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
                }
                if (w->stop)
                        break;
                char *js = TAKE_PTR(w->pending);
                w->last_put = now_mono();
                pthread_mutex_unlock(&w->lock);
                struct report_build x = { 0 };
                struct aws_result res = { 0 };
                int r = gather(&x, js, w->logs_dir, w->instance, false);
                pthread_mutex_lock(&w->lock);
                bool over = w->shared_over;
                pthread_mutex_unlock(&w->lock);
                over = r == 0 && (over || shared_run_over(w));
                if (r == 0 && !over)
                        r = render_put(w->c, w->bucket, w->prefix, &x.in, &res);
                report_build_free(&x);
                free(js);
                pthread_mutex_lock(&w->lock);
                if (over)
                        w->shared_over = true; /* the ender's page: nothing from here any more */
                else if (r == 0)
                        w->published++;
                else
                        w->failures++;
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static int publisher_start(struct wrapup *w) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, &ca);
        pthread_condattr_destroy(&ca);
        w->c = w->r.c;
        snprintf(w->bucket, sizeof w->bucket, "%s", w->r.bucket);
        snprintf(w->prefix, sizeof w->prefix, "%s", w->r.prefix);
        snprintf(w->logs_dir, sizeof w->logs_dir, "%s", w->r.logs_dir);
        snprintf(w->instance, sizeof w->instance, "%s", w->r.inst ? w->r.inst->id : "");
        w->stop = false;
        int r = pthread_create(&w->th, NULL, publisher, w);
        if (r != 0) {
                pthread_cond_destroy(&w->cond);
                pthread_mutex_destroy(&w->lock);
                return -r;
        }
        w->running = true;
        return 0;
}

/* Stops the publisher, waiting at most wait_s for an upload in progress (0: as long as it takes). false when it
 * was left running. */
static bool publisher_stop(struct wrapup *w, int wait_s) {
        if (!w->running)
                return true;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (wait_s > 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts); /* pthread_timedjoin_np measures on CLOCK_REALTIME */
                ts.tv_sec += wait_s;
                if (pthread_timedjoin_np(w->th, NULL, &ts) != 0) {
                        pthread_detach(w->th);
                        w->running = false;
                        return false; /* it still uses *w: the caller must not free it */
                }
        } else
                pthread_join(w->th, NULL);
        free(TAKE_PTR(w->pending));
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        w->running = false;
        return true;
}

void wrapup_status_changed(struct wrapup *w, const char *status_json) {
        if (!w->r.c || w->final || (!w->running && publisher_start(w) < 0))
                return;
        char *copy = strdup(status_json);
        pthread_mutex_lock(&w->lock);
        free(w->pending);
        w->pending = copy;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

int wrapup_final_report(struct wrapup *w, const char *status_json, struct aws_result *out) {
        if (!w->r.c)
                return 0;
        publisher_stop(w, 0);  /* nothing older may land after the final page */
        w->final = true;       /* and no later status (PH_EXIT) brings the publisher back */
        struct report_build x = { 0 };
        int r = gather(&x, status_json, w->r.logs_dir, w->r.inst ? w->r.inst->id : "", true);
        if (r == 0)
                r = shipped_files(w, &x, strlen(status_json), out);
        if (r == 0)
                r = render_put(w->r.c, w->r.bucket, w->r.prefix, &x.in, out);
        if (r == 0)
                w->published++;
        report_build_free(&x);
        return r;
}

/* ---------- the notification ---------- */

struct sending {
        struct aws_ctx *c;
        struct notify_msg msg;
        const char *topic, *webhook;
        char group[80], dedup[65];
        struct kv attrs[3];
        int sns_r, hook_r;
        char sns_id[128], sns_err[768], hook_err[512];
};

static void *webhook_main(void *ud) {
        struct sending *s = ud;
        s->hook_r = notify_webhook(s->webhook, s->msg.json, NOTIFY_REQUEST_TIMEOUT_MS, s->hook_err, sizeof s->hook_err);
        return NULL;
}

/* Both channels at once, so that a hanging one does not eat the other's time. */
static int send_all(void *arg) {
        struct sending *s = arg;
        pthread_t th;
        bool hook_thread = s->webhook && pthread_create(&th, NULL, webhook_main, s) == 0;
        if (s->webhook && !hook_thread)
                webhook_main(s);
        if (s->topic) {
                struct http_client h;
                struct aws_result res = { 0 };
                struct sns_message m = { .subject = s->msg.subject, .body = s->msg.text, .attrs = s->attrs,
                                         .n_attrs = 3, .group_id = s->group, .dedup_id = s->dedup };
                s->sns_r = http_client_init(&h);
                if (s->sns_r == 0)
                        s->sns_r = sns_publish(s->c, &h, s->topic, &m, NOTIFY_ATTEMPTS, NOTIFY_REQUEST_TIMEOUT_MS,
                                               s->sns_id, sizeof s->sns_id, &res);
                http_client_free(&h);
                errf(s->sns_err, sizeof s->sns_err, "%s", res.msg);
        }
        if (hook_thread)
                pthread_join(th, NULL);
        return 0;
}

static void report_link(struct wrapup *w, struct buf *url, time_t *until) {
        char key[1400], err[512];
        if (pathf(key, sizeof key, "%s%s", w->r.prefix, REPORT_KEY) < 0 || !w->published ||
            s3_presign_get(w->r.c, w->r.bucket, key, SIGV4_MAX_PRESIGN_EXPIRES, now_wall(), url, until, err, sizeof err) < 0)
                buf_reset(url);
}

static void log_results(const struct sending *s) {
        char where[300];
        if (s->topic) {
                if (s->sns_r == 0)
                        log_info("notify: SNS topic %s: published (message id %s)", s->topic, s->sns_id);
                else
                        log_warn("notify: SNS topic %s: not published: %s", s->topic, s->sns_err);
        }
        if (s->webhook) {
                notify_redact_url(s->webhook, where, sizeof where);
                if (s->hook_r == 0)
                        log_info("notify: webhook %s: delivered", where);
                else
                        log_warn("notify: webhook not delivered: %s", s->hook_err);
        }
}

void wrapup_notify(struct wrapup *w, const char *status_json) {
        if (!w->r.c)
                return;
        const struct job_notify *n = &w->r.job->notify;
        const struct run_state *rs = w->r.st;
        /* a stop or hibernate notice: EC2 may start the instance again and the run goes on */
        bool goes_on = !strcmp(rs->spot_action, "stop") || !strcmp(rs->spot_action, "hibernate");
        enum notify_event e = notify_due(n, outcome_name(rs->outcome), goes_on);
        if (e == NOTIFY_NONE)
                return;
        char key[64], path[2300];
        notify_key(e, rs->spot_time, key);
        if (pathf(path, sizeof path, "%s/%s", w->r.state_dir, NOTIFY_SENT_FILE) < 0)
                return;
        if (notify_was_sent(path, rs->run_id, key)) {
                log_info("notify: the %s notification of run %s was sent before", key, rs->run_id);
                return;
        }
        _cleanup_(cjson_deletep) cJSON *st = status_json ? cJSON_Parse(status_json) : NULL;
        _cleanup_(buf_freep) struct buf url = BUF_INIT(16384);
        time_t until = 0;
        report_link(w, &url, &until);
        /* on the heap: a worker abandoned at the deadline may still use it */
        struct sending *s = calloc(1, sizeof *s);
        if (!s || !st || notify_compose(st, e, url.len ? url.data : NULL, until, &s->msg) < 0) {
                log_warn("notify: cannot compose the notification");
                free(s);
                return;
        }
        s->c = w->r.c;
        s->topic = n->sns_topic;
        s->webhook = n->webhook;
        snprintf(s->group, sizeof s->group, "%s", w->r.job->name ? w->r.job->name : "mayfly");
        char dedup_src[256];
        snprintf(dedup_src, sizeof dedup_src, "%s/%s", rs->run_id, key);
        sha256_hex(dedup_src, strlen(dedup_src), s->dedup);
        s->attrs[0] = (struct kv){ "mayfly.outcome", outcome_name(rs->outcome) };
        s->attrs[1] = (struct kv){ "mayfly.job", s->group };
        s->attrs[2] = (struct kv){ "mayfly.event", e == NOTIFY_INTERRUPTED ? "interrupted" : "finished" };
        log_info("notify: sending the %s notification (at most %ds)", key, NOTIFY_DEADLINE_S);
        int r = waiter_blocking(w->r.w, send_all, s, now_mono() + NOTIFY_DEADLINE_S);
        if (r == -ETIMEDOUT)
                log_warn("notify: not done within %ds; going on without it", NOTIFY_DEADLINE_S); /* s stays alive */
        else {
                log_results(s);
                notify_msg_free(&s->msg);
                free(s);
        }
        r = notify_mark_sent(path, rs->run_id, key);
        if (r < 0)
                log_warn("notify: cannot record the notification in %s: %s", path, strerror(-r));
}

void wrapup_init(struct wrapup *w, const struct wrapup_run *r) {
        w->r = *r;
}

bool wrapup_free(struct wrapup *w) {
        if (!publisher_stop(w, WRAPUP_STOP_WAIT_S)) {
                /* an upload of report.html hangs: the process ends without freeing what it uses */
                log_warn("report.html: an upload still runs; not waiting for it");
                return false;
        }
        free(TAKE_PTR(w->cost));
        return true;
}
