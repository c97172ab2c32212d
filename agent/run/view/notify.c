/* SPDX-License-Identifier: Apache-2.0 */
/* notify.c — the end-of-run summary, and the HTTPS webhook that carries it. */
#include "run/view/notify.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>

#include "jsonx.h"
#include "aws/http.h"
#include "run/base/runstate.h"

enum notify_event notify_due(const struct job_notify *n, const char *outcome, bool run_goes_on) {
        if ((!n->sns_topic && !n->webhook) || !outcome || !*outcome || !strcmp(outcome, "running"))
                return NOTIFY_NONE;
        if (strcmp(outcome, "interrupted"))
                return NOTIFY_FINISHED;
        return !run_goes_on || n->on_interrupt ? NOTIFY_INTERRUPTED : NOTIFY_NONE;
}

void notify_key(enum notify_event e, time_t spot_time, char out[64]) {
        if (e == NOTIFY_INTERRUPTED)
                snprintf(out, 64, "interrupted@%lld", (long long)spot_time);
        else
                snprintf(out, 64, "finished");
}

/* ---------- composing ---------- */

/* Text with a sticky error: the first failure (the cap, ENOMEM) is kept and later appends are skipped. */
struct text {
        struct buf b;
        int err;
};

static void t_f(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void t_f(struct text *t, const char *fmt, ...) {
        if (t->err)
                return;
        va_list ap;
        va_start(ap, fmt);
        char small[1024];
        int n = vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof small) {
                /* only a report URL or an error message is this long: add it piece by piece */
                char *big = NULL;
                va_start(ap, fmt);
                n = vasprintf(&big, fmt, ap);
                va_end(ap);
                t->err = n < 0 ? -ENOMEM : buf_add(&t->b, big, (size_t)n);
                free(big);
                return;
        }
        t->err = buf_add(&t->b, small, (size_t)n);
}

static void text_freep(struct text *t) { buf_free(&t->b); }

static const char *jstr(const cJSON *o, const char *k) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
        return v && *v ? v : NULL;
}

static const char *or(const char *s, const char *def) { return s ? s : def; }

static time_t jtime(const cJSON *o, const char *k) {
        time_t t = 0;
        const char *s = jstr(o, k);
        return s && parse_iso8601(s, &t) == 0 ? t : 0;
}

static void fmt_duration(long s, char out[32]) {
        s = MAX(s, 0L);
        if (s >= 3600)
                snprintf(out, 32, "%ldh%02ldm%02lds", s / 3600, s % 3600 / 60, s % 60);
        else if (s >= 60)
                snprintf(out, 32, "%ldm%02lds", s / 60, s % 60);
        else
                snprintf(out, 32, "%lds", s);
}

static void fmt_time(time_t t, char out[40]) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, 40, "%Y-%m-%d %H:%M UTC", &tm);
}

/* "succeeded", "failed", "ended with an error: ...", "was interrupted: spot terminate notice for ..." */
static void headline(const cJSON *st, enum notify_event e, struct text *b) {
        const char *oc = or(jstr(st, "outcome"), "?"), *name = or(jstr(st, "name"), "run");
        t_f(b, "mayfly: %s ", name);
        if (e == NOTIFY_INTERRUPTED) {
                const cJSON *ir = cJSON_GetObjectItemCaseSensitive(st, "interruption");
                char t[40] = "?";
                if (jtime(ir, "time"))
                        fmt_time(jtime(ir, "time"), t);
                t_f(b, "was interrupted: spot %s notice for %s", or(jstr(ir, "action"), "interruption"), t);
        } else if (!strcmp(oc, "error"))
                t_f(b, "ended with an error: %s", or(jstr(st, "error"), "(no message)"));
        else if (!strcmp(oc, "timeout"))
                t_f(b, "%s", "timed out");
        else if (!strcmp(oc, "gpu-idle"))
                t_f(b, "%s", "was stopped: the GPUs were idle");
        else if (!strcmp(oc, "cancelled"))
                t_f(b, "was cancelled by %s", or(jstr(st, "cancelled_by"), "someone"));
        else
                t_f(b, "%s", oc);
}

static void experiments_line(const cJSON *st, struct text *b) {
        const cJSON *exps = cJSON_GetObjectItemCaseSensitive(st, "experiments"), *x;
        int n = cJSON_GetArraySize(exps), i = 0;
        t_f(b, "Experiments (%d):", n);
        cJSON_ArrayForEach(x, exps) {
                if (i++ >= NOTIFY_MAX_EXPERIMENTS) {
                        t_f(b, " and %d more", n - NOTIFY_MAX_EXPERIMENTS);
                        break;
                }
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(x, "exit_code");
                const char *rs = jstr(x, "reason"), *stt = or(jstr(x, "status"), "?");
                t_f(b, "%s %s ", i > 1 ? "," : "", or(jstr(x, "name"), "?"));
                if (cJSON_IsNumber(code) && (!rs || !strcmp(rs, "exit")))
                        t_f(b, "exit %d", (int)code->valuedouble);
                else
                        t_f(b, "%s", rs && strcmp(stt, "pending") ? rs : stt);
                time_t a = jtime(x, "start"), z = jtime(x, "end");
                if (a && z >= a) {
                        char d[32];
                        fmt_duration((long)(z - a), d);
                        t_f(b, " (%s)", d);
                }
        }
        t_f(b, "\n");
}

static void cost_line(const cJSON *st, struct text *b) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(st, "cost");
        const cJSON *total = cJSON_GetObjectItemCaseSensitive(c, "total");
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "instances"), 0);
        if (!cJSON_IsObject(c))
                return;
        if (cJSON_IsNumber(total)) {
                t_f(b, "Cost: $%.4f %s", total->valuedouble, or(jstr(c, "currency"), "USD"));
                const cJSON *h = cJSON_GetObjectItemCaseSensitive(first, "hourly_price");
                if (cJSON_IsNumber(h))
                        t_f(b, " (%s at $%.4f/h, %s)", or(jstr(first, "lifecycle"), "?"), h->valuedouble,
                                   or(jstr(first, "price_source"), "?"));
                t_f(b, "%s", ", EC2 instance time only\n");
                return;
        }
        const char *why = jstr(first, "price_unknown");
        t_f(b, "Cost: unknown (%s)\n", or(why, or(jstr(c, "total_unknown"), "no price")));
}

static int compose_text(const cJSON *st, enum notify_event e, const char *url, time_t until, struct text *b) {
        headline(st, e, b);
        t_f(b, "\n");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(st, "instance");
        t_f(b, "Run: %s on %s (%s, %s)\n", or(jstr(st, "run_id"), "?"), or(jstr(in, "type"), "?"),
                   or(jstr(in, "lifecycle"), "lifecycle unknown"), or(jstr(in, "availability_zone"), "?"));
        time_t a = jtime(st, "started"), u = jtime(st, "updated");
        if (a) {
                char d[32], t[40];
                fmt_duration((long)((u ? u : a) - a), d);
                fmt_time(a, t);
                t_f(b, "Duration: %s (started %s)\n", d, t);
        }
        experiments_line(st, b);
        cost_line(st, b);
        if (url) {
                char t[40];
                fmt_time(until, t);
                t_f(b, "Report: %s (link valid until %s)\n", url, t);
        }
        t_f(b, "Results: %s\n", or(jstr(st, "results"), "?"));
        if (e == NOTIFY_FINISHED)
                t_f(b, "Exit action: %s", or(jstr(st, "exit_action"), "?"));
        else
                t_f(b, "%s", "The run's results so far are in S3.");
        return b->err;
}

/* The machine-readable part of the webhook body. */
static cJSON *summary_json(const cJSON *st, enum notify_event e, const char *url, time_t until) {
        cJSON *m = cJSON_CreateObject();
        if (!m)
                return NULL;
        cJSON_AddStringToObject(m, "event", e == NOTIFY_INTERRUPTED ? "interrupted" : "finished");
        static const char *const copy[] = { "name", "run_id", "outcome", "error", "started", "updated", "results",
                                            "exit_action", "cancelled_by" };
        for (size_t i = 0; i < ARRAY_SIZE(copy); i++)
                if (jstr(st, copy[i]))
                        cJSON_AddStringToObject(m, copy[i], jstr(st, copy[i]));
        time_t a = jtime(st, "started"), u = jtime(st, "updated");
        if (a && u >= a)
                cJSON_AddNumberToObject(m, "duration_seconds", (double)(u - a));
        static const char *const sub[] = { "instance", "interruption", "cost" };
        for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, sub[i]);
                if (cJSON_IsObject(v))
                        cJSON_AddItemToObject(m, sub[i], cJSON_Duplicate(v, true));
        }
        cJSON *ex = cJSON_AddArrayToObject(m, "experiments");
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(st, "experiments")) {
                cJSON *y = cJSON_CreateObject();
                static const char *const keys[] = { "name", "status", "reason", "start", "end", "exit_code",
                                                    "signal", "attempts" };
                for (size_t i = 0; y && i < ARRAY_SIZE(keys); i++) {
                        const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, keys[i]);
                        if (v && !cJSON_IsNull(v))
                                cJSON_AddItemToObject(y, keys[i], cJSON_Duplicate(v, false));
                }
                if (y && !cJSON_AddItemToArray(ex, y))
                        cJSON_Delete(y);
        }
        if (url) {
                char t[32];
                struct tm tm;
                gmtime_r(&until, &tm);
                strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
                cJSON_AddStringToObject(m, "report_url", url);
                cJSON_AddStringToObject(m, "report_url_expires", t);
        }
        return m;
}

int notify_compose(const cJSON *st, enum notify_event e, const char *report_url, time_t url_until,
                   struct notify_msg *ret) {
        if (!cJSON_IsObject(st) || e == NOTIFY_NONE)
                return -EINVAL;
        _cleanup_(text_freep) struct text b = { .b = BUF_INIT(SNS_MAX_MESSAGE / 2) }, h = { .b = BUF_INIT(1024) };
        int r = compose_text(st, e, report_url, url_until, &b);
        if (r < 0)
                return r;
        headline(st, e, &h);
        _cleanup_(cjson_deletep) cJSON *body = cJSON_CreateObject();
        cJSON *m = summary_json(st, e, report_url, url_until);
        if (!body || !m || !cJSON_AddStringToObject(body, "text", b.b.data ? b.b.data : "") ||
            !cJSON_AddItemToObject(body, "mayfly", m)) {
                cJSON_Delete(m);
                return -ENOMEM;
        }
        char *json = cJSON_PrintUnformatted(body);
        if (!json)
                return -ENOMEM;
        struct notify_msg out = { .text = buf_steal(&b.b), .json = json };
        sns_subject(h.b.data && !h.err ? h.b.data : "mayfly", out.subject);
        if (!out.text) {
                free(json);
                return -ENOMEM;
        }
        *ret = out;
        return 0;
}

void notify_msg_free(struct notify_msg *m) {
        free(m->text);
        free(m->json);
        m->text = m->json = NULL;
}

/* ---------- once per run ---------- */

static cJSON *load_sent(const char *path, const char *run_id) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        cJSON *o = read_file_capped(path, 1 << 20, &text, &len) == 0 ? cJSON_ParseWithLength(text, len) : NULL;
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "run_id"));
        if (!id || strcmp(id, run_id) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "sent"))) {
                cJSON_Delete(o);
                o = cJSON_CreateObject();
                if (o && (!cJSON_AddStringToObject(o, "run_id", run_id) || !cJSON_AddArrayToObject(o, "sent"))) {
                        cJSON_Delete(o);
                        return NULL;
                }
        }
        return o;
}

bool notify_was_sent(const char *path, const char *run_id, const char *key) {
        _cleanup_(cjson_deletep) cJSON *o = load_sent(path, run_id);
        const cJSON *k;
        cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(o, "sent"))
                if (cJSON_IsString(k) && !strcmp(k->valuestring, key))
                        return true;
        return false;
}

int notify_mark_sent(const char *path, const char *run_id, const char *key) {
        _cleanup_(cjson_deletep) cJSON *o = load_sent(path, run_id);
        cJSON *sent = cJSON_GetObjectItemCaseSensitive(o, "sent");
        cJSON *k = cJSON_CreateString(key);
        if (!sent || !k || !cJSON_AddItemToArray(sent, k)) {
                cJSON_Delete(k);
                return -ENOMEM;
        }
        _cleanup_free_ char *text = cJSON_PrintUnformatted(o);
        return text ? write_file_atomic(path, text, strlen(text), 0600) : -ENOMEM;
}

/* ---------- the webhook ---------- */

void notify_redact_url(const char *url, char *out, size_t n) {
        const char *sep = strstr(url, "://");
        size_t scheme = sep ? (size_t)(sep + 3 - url) : 0;
        const char *host = url + scheme;
        size_t hl = strcspn(host, "/?#");
        const char *at = memchr(host, '@', hl); /* user info */
        if (at) {
                hl -= (size_t)(at + 1 - host);
                host = at + 1;
        }
        snprintf(out, n, "%.*s%.*s%s", (int)scheme, url, (int)hl, host, host[hl] ? "/…" : "");
}

int notify_webhook(const char *url, const char *json, long timeout_ms, char *err, size_t errlen) {
        char where[300];
        notify_redact_url(url, where, sizeof where);
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0) {
                errf(err, errlen, "%s: cannot set up libcurl", where);
                return r;
        }
        h.connect_timeout_ms = MIN(timeout_ms, (long)HTTP_CONNECT_TIMEOUT_MS);
        h.total_timeout_ms = timeout_ms;
        struct curl_slist *hl = NULL, *t;
        static const char ua[] = "User-Agent: mayfly/" MAYFLY_VERSION;
        static const char *const hdrs[] = { "Content-Type: application/json", ua, "Expect:", "Accept:" };
        for (size_t i = 0; i < ARRAY_SIZE(hdrs); i++) {
                if (!(t = curl_slist_append(hl, hdrs[i]))) {
                        curl_slist_free_all(hl);
                        http_client_free(&h);
                        return -ENOMEM;
                }
                hl = t;
        }
        struct http_request q = { .method = "POST", .url = url, .headers = hl, .body = json, .body_len = strlen(json),
                                  .body_fd = -1, .out_fd = -1 };
        struct http_response res;
        r = http_perform(&h, &q, &res);
        if (r < 0)
                errf(err, errlen, "%s: %s", where, res.curl_error[0] ? res.curl_error : "the request failed");
        else if (res.status < 200 || res.status > 299) {
                /* the answer's first line, for "invalid_payload", "no_service" and the like */
                char why[160] = "";
                size_t n = 0;
                for (size_t i = 0; i < res.body.len && n + 1 < sizeof why && res.body.data[i] != '\n'; i++)
                        why[n++] = (unsigned char)res.body.data[i] < 0x20 ? ' ' : res.body.data[i];
                why[n] = 0;
                errf(err, errlen, "%s answered HTTP %ld%s%s", where, res.status, n ? ": " : "", why);
                r = -MF_EHTTP;
        }
        http_response_free(&res);
        curl_slist_free_all(hl);
        http_client_free(&h);
        return r;
}
