/* SPDX-License-Identifier: Apache-2.0 */
/* report.c — report.html from status.json, metrics.jsonl, log tails and file links: a pure renderer. */
#include "run/view/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>

#include "jsonx.h"

/* ---------- output with a sticky error ---------- */

struct out {
        struct buf *b;
        int err;
};

static void o_s(struct out *o, const char *s) {
        if (!o->err)
                o->err = buf_adds(o->b, s);
}

static void o_f(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void o_f(struct out *o, const char *fmt, ...) {
        if (o->err)
                return;
        char small[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        if (n < 0) {
                o->err = -EINVAL;
                return;
        }
        if ((size_t)n < sizeof small) {
                o->err = buf_add(o->b, small, (size_t)n);
                return;
        }
        char *big = malloc((size_t)n + 1);
        if (!big) {
                o->err = -ENOMEM;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        o->err = buf_add(o->b, big, (size_t)n);
        free(big);
}

static void o_en(struct out *o, const char *s, size_t n) {
        if (!o->err && s)
                o->err = report_escape(o->b, s, n);
}

static void o_e(struct out *o, const char *s) { o_en(o, s, s ? strlen(s) : 0); }

/* ---------- escaping and tails ---------- */

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n) {
        unsigned char c = p[0];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                if (c == 0xe0)
                        lo = 0xa0;
                if (c == 0xed)
                        hi = 0x9f; /* no UTF-16 surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                if (c == 0xf0)
                        lo = 0x90;
                if (c == 0xf4)
                        hi = 0x8f;
        } else
                return 0;
        if (n < len || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
        return len;
}

int report_escape(struct buf *b, const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0, plain = 0;
        int r = 0;
        while (i < n && r >= 0) {
                unsigned char c = p[i];
                const char *rep = NULL;
                size_t adv = 1;
                if (c < 0x80) {
                        rep = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&quot;"
                              : c == '\'' ? "&#39;" : (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f ? "" : NULL;
                } else if (!(adv = utf8_len(p + i, n - i))) {
                        rep = "\xef\xbf\xbd";
                        adv = 1;
                } else if (c == 0xc2 && p[i + 1] < 0xa0)
                        rep = ""; /* C1 control characters */
                if (rep) {
                        r = buf_add(b, p + plain, i - plain);
                        if (r >= 0)
                                r = buf_adds(b, rep);
                        plain = i + adv;
                }
                i += adv;
        }
        if (r >= 0)
                r = buf_add(b, p + plain, n - plain);
        return r;
}

/* ---------- status.json access ---------- */

static const char *jstr(const cJSON *o, const char *k) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
        return v && *v ? v : NULL;
}

static bool jnum(const cJSON *o, const char *k, double *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                return false;
        *ret = v->valuedouble;
        return true;
}

static time_t jtime(const cJSON *o, const char *k) {
        const char *s = jstr(o, k);
        time_t t = 0;
        return s && parse_iso8601(s, &t) == 0 ? t : 0;
}

static bool is_running(const cJSON *st) {
        const char *oc = jstr(st, "outcome");
        return !oc || !strcmp(oc, "running");
}

const char *report_phase(const cJSON *st) {
        return is_running(st) ? jstr(st, "phase") : "DONE";
}

time_t report_clock(const cJSON *st, time_t now) {
        time_t u = jtime(st, "updated");
        return is_running(st) || !u ? now : u;
}

/* The seconds a running run's instance has run since its status: one current at the status (its "until" within a
 * minute of the status's time) goes on to the page's clock, as the summary's duration and the bars do. */
static time_t since_status(const cJSON *st, const cJSON *x, time_t clock) {
        time_t u = jtime(st, "updated"), until = jtime(x, "until");
        const char *state = jstr(x, "state"); /* an instance that ended its part does not go on */
        if (!is_running(st) || !until || clock <= until || (u && until + 60 < u) || (state && strcmp(state, "running")))
                return 0;
        return clock - until;
}

static void fmt_time(time_t t, bool seconds, char out[40]) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, 40, seconds ? "%Y-%m-%d %H:%M:%SZ" : "%Y-%m-%d %H:%MZ", &tm);
}

static void fmt_duration(double secs, char out[32]) {
        long s = secs > 0 ? (long)(secs + 0.5) : 0;
        if (s >= 86400)
                snprintf(out, 32, "%ldd%02ldh%02ldm", s / 86400, s % 86400 / 3600, s % 3600 / 60);
        else if (s >= 3600)
                snprintf(out, 32, "%ldh%02ldm%02lds", s / 3600, s % 3600 / 60, s % 60);
        else if (s >= 60)
                snprintf(out, 32, "%ldm%02lds", s / 60, s % 60);
        else
                snprintf(out, 32, "%lds", s);
}

static void fmt_money(double usd, char out[32]) { snprintf(out, 32, usd >= 1 ? "$%.2f" : "$%.4f", usd); }

static void fmt_size(uint64_t n, char out[32]) {
        if (n == UINT64_MAX)
                snprintf(out, 32, "?");
        else if (n >= (1ull << 30))
                snprintf(out, 32, "%.1f GiB", (double)n / (1 << 30));
        else if (n >= (1ull << 20))
                snprintf(out, 32, "%.1f MiB", (double)n / (1 << 20));
        else if (n >= 1024)
                snprintf(out, 32, "%.1f KiB", (double)n / 1024);
        else
                snprintf(out, 32, "%llu B", (unsigned long long)n);
}

/* A CSS class from a word in the status (outcome, reason): letters, digits and '-' only. */
static void css_word(const char *s, char out[24]) {
        size_t n = 0;
        for (; s && *s && n < 23; s++)
                out[n++] = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ? *s : '-';
        out[n] = 0;
        if (!n)
                snprintf(out, 24, "unknown");
}

/* ---------- the time axis shared by the timeline and the plots ---------- */

#define G_LEFT 150  /* labels */
#define G_STEP 3    /* plot units per bucket */
#define G_WIDTH (G_STEP * REPORT_PLOT_BUCKETS)
#define G_RIGHT 24
#define G_VIEW_W (G_LEFT + G_WIDTH + G_RIGHT)

struct span {
        time_t x0, x1;
};

static double xpos(const struct span *sp, time_t t) {
        double f = (double)(t - sp->x0) / (double)(sp->x1 - sp->x0);
        return G_LEFT + G_WIDTH * MIN(MAX(f, 0.0), 1.0);
}

static void axis(struct out *o, const struct span *sp, int top, int bottom) {
        static const long steps[] = { 1,    2,     5,     10,    30,    60,     120,    300,    600,
                                      900,  1800,  3600,  7200,  10800, 21600,  43200,  86400,  172800,
                                      604800, 2592000 };
        long span = (long)(sp->x1 - sp->x0), step = steps[ARRAY_SIZE(steps) - 1];
        for (size_t i = 0; i < ARRAY_SIZE(steps); i++)
                if (span / steps[i] <= 7) {
                        step = steps[i];
                        break;
                }
        if (span / step > 7)
                step = span / 7 + 1; /* years (a status.json with odd times): still a handful of ticks */
        o_f(o, "<g class=\"axis\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", G_LEFT, bottom, G_LEFT + G_WIDTH,
            bottom);
        for (time_t t = (sp->x0 + step - 1) / step * step; t <= sp->x1; t += step) {
                char lab[16];
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(lab, sizeof lab, step < 60 ? "%H:%M:%S" : step < 86400 ? "%H:%M" : "%m-%d", &tm);
                double x = xpos(sp, t);
                o_f(o, "<line class=\"tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", x, top, x, bottom);
                o_f(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", x, bottom + 14, lab);
        }
        o_f(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">UTC</text></g>", G_LEFT - 34, bottom + 14);
}

/* ---------- GPU samples from metrics.jsonl ---------- */

struct sample {
        time_t t;
        int util;                  /* percent, -1 unknown */
        double mem;                /* MiB, <0 unknown */
};

struct series {
        char key[100], name[96], uuid[96];
        double mem_total;          /* MiB, 0 unknown */
        double mem_peak;
        struct sample *s;
        size_t n, cap;
};

struct gpus {
        struct series g[REPORT_MAX_GPUS];
        size_t n, more, samples;
        time_t first, last;
};

static void gpus_free(struct gpus *G) {
        for (size_t i = 0; i < G->n; i++)
                free(G->g[i].s);
}

static struct series *series_for(struct gpus *G, const cJSON *dev, int index) {
        const char *uuid = jstr(dev, "uuid"), *name = jstr(dev, "name");
        char key[100];
        if (uuid)
                snprintf(key, sizeof key, "%s", uuid);
        else
                snprintf(key, sizeof key, "#%d", index);
        for (size_t i = 0; i < G->n; i++)
                if (!strcmp(G->g[i].key, key))
                        return &G->g[i];
        if (G->n >= REPORT_MAX_GPUS) {
                G->more++;
                return NULL;
        }
        struct series *s = &G->g[G->n++];
        snprintf(s->key, sizeof s->key, "%s", key);
        snprintf(s->name, sizeof s->name, "%s", name ? name : "GPU");
        snprintf(s->uuid, sizeof s->uuid, "%s", uuid ? uuid : "");
        return s;
}

static void add_sample(struct gpus *G, struct series *s, time_t t, const cJSON *dev) {
        if (G->samples >= REPORT_MAX_SAMPLES)
                return;
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 1024;
                struct sample *p = realloc(s->s, cap * sizeof *p);
                if (!p)
                        return;
                s->s = p;
                s->cap = cap;
        }
        double u = -1, m = -1, tot;
        jnum(dev, "util", &u);
        jnum(dev, "memory_used_mib", &m);
        if (jnum(dev, "memory_total_mib", &tot) && tot > 0)
                s->mem_total = tot;
        s->s[s->n++] = (struct sample){ .t = t, .util = u >= 0 && u <= 100 ? (int)lround(u) : -1, .mem = m };
        s->mem_peak = MAX(s->mem_peak, m);
        G->samples++;
        G->first = G->first && G->first < t ? G->first : t;
        G->last = MAX(G->last, t);
}

static void parse_metrics(const char *text, size_t len, struct gpus *G) {
        for (size_t i = 0; i < len;) {
                const char *p = text + i, *nl = memchr(p, '\n', len - i);
                size_t l = nl ? (size_t)(nl - p) : len - i;
                i += l + 1;
                cJSON *j = cJSON_ParseWithLength(p, l); /* a cut first line or a torn last one: NULL, skipped */
                time_t t = jtime(j, "time");
                const cJSON *devs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "gpu"),
                                                                     "devices");
                int k = 0;
                const cJSON *d;
                if (t)
                        cJSON_ArrayForEach(d, devs) {
                                struct series *s = series_for(G, d, k++);
                                if (s)
                                        add_sample(G, s, t, d);
                        }
                cJSON_Delete(j);
        }
}

/* ---------- plots ---------- */

#define P_TOP 8
#define P_H 100

struct bucket {
        double usum, msum;
        int un, mn, umin, umax;
};

static void bucketize(const struct series *s, const struct span *sp, struct bucket *bk) {
        memset(bk, 0, REPORT_PLOT_BUCKETS * sizeof *bk);
        double w = (double)(sp->x1 - sp->x0);
        for (size_t i = 0; i < s->n; i++) {
                const struct sample *x = &s->s[i];
                if (x->t < sp->x0 || x->t > sp->x1)
                        continue;
                int b = (int)((double)(x->t - sp->x0) / w * REPORT_PLOT_BUCKETS);
                struct bucket *k = &bk[MIN(b, REPORT_PLOT_BUCKETS - 1)];
                if (x->util >= 0) {
                        k->umin = k->un ? MIN(k->umin, x->util) : x->util;
                        k->umax = k->un ? MAX(k->umax, x->util) : x->util;
                        k->usum += x->util;
                        k->un++;
                }
                if (x->mem >= 0) {
                        k->msum += x->mem;
                        k->mn++;
                }
        }
}

static int ybar(double pct) { return P_TOP + P_H - (int)lround(MIN(MAX(pct, 0.0), 100.0) * P_H / 100.0); }

/* A polyline through the buckets that have a value, broken where more than max_gap buckets in a row have none (the
 * agent was down, no experiment ran): "M x y l3 dy 6-dy ...". A bucket alone is a short flat stroke, so it shows. */
static void line_path(struct out *o, const int *y, const bool *have, int max_gap) {
        bool any = false;
        for (int b = 0; b < REPORT_PLOT_BUCKETS; b++) {
                if (!have[b])
                        continue;
                int next = b + 1;
                while (next < REPORT_PLOT_BUCKETS && !have[next] && next - b <= max_gap)
                        next++;
                bool alone = next >= REPORT_PLOT_BUCKETS || !have[next];
                o_f(o, "%sM%d %d", any ? " " : "", G_LEFT + G_STEP * b + (alone ? 0 : G_STEP / 2), y[b]);
                any = true;
                if (alone) {
                        o_f(o, "h%d", G_STEP);
                        continue;
                }
                o_s(o, "l");
                for (bool first = true;; first = false) {
                        int dy = y[next] - y[b];
                        o_f(o, "%s%d%s%d", first ? "" : " ", G_STEP * (next - b), dy < 0 ? "" : " ", dy);
                        b = next;
                        for (next = b + 1; next < REPORT_PLOT_BUCKETS && !have[next] && next - b <= max_gap; next++)
                                ;
                        if (next >= REPORT_PLOT_BUCKETS || !have[next])
                                break;
                }
        }
}

/* The min..max band of each stretch of buckets with samples: right along max, back along min. */
static void band_path(struct out *o, const struct bucket *bk) {
        for (int b = 0; b < REPORT_PLOT_BUCKETS;) {
                if (!bk[b].un) {
                        b++;
                        continue;
                }
                int e = b;
                while (e + 1 < REPORT_PLOT_BUCKETS && bk[e + 1].un)
                        e++;
                o_f(o, "M%d %dh%d", G_LEFT + G_STEP * b, ybar(bk[b].umax), G_STEP);
                for (int k = b + 1; k <= e; k++)
                        o_f(o, "v%dh%d", ybar(bk[k].umax) - ybar(bk[k - 1].umax), G_STEP);
                o_f(o, "v%dh-%d", ybar(bk[e].umin) - ybar(bk[e].umax), G_STEP);
                for (int k = e - 1; k >= b; k--)
                        o_f(o, "v%dh-%d", ybar(bk[k].umin) - ybar(bk[k + 1].umin), G_STEP);
                o_s(o, "z");
                b = e + 1;
        }
}

static int cmp_long(const void *a, const void *b) {
        long x = *(const long *)a, y = *(const long *)b;
        return x < y ? -1 : x > y;
}

/* The usual time between two samples: the median of (up to 1001 evenly spread) intervals, so that a stopped
 * instance's hours do not count as one. `dflt` with fewer than two samples. */
static double sample_interval(const struct series *s, double dflt) {
        long d[1001];
        size_t n = 0, step = s->n > 1002 ? (s->n - 1) / 1001 : 1;
        for (size_t i = 1; i < s->n && n < ARRAY_SIZE(d); i += step)
                d[n++] = (long)(s->s[i].t - s->s[i - 1].t);
        if (!n)
                return dflt;
        qsort(d, n, sizeof *d, cmp_long);
        return (double)MAX(d[n / 2], 1L);
}

static void plot_one(struct out *o, const struct series *s, size_t idx, const struct span *sp) {
        struct bucket *bk = calloc(REPORT_PLOT_BUCKETS, sizeof *bk);
        int *yu = calloc(REPORT_PLOT_BUCKETS, sizeof *yu), *ym = calloc(REPORT_PLOT_BUCKETS, sizeof *ym);
        bool *hu = calloc(REPORT_PLOT_BUCKETS, sizeof *hu), *hm = calloc(REPORT_PLOT_BUCKETS, sizeof *hm);
        if (!bk || !yu || !ym || !hu || !hm) {
                o->err = -ENOMEM;
                goto done;
        }
        bucketize(s, sp, bk);
        /* a bucket no longer than the time between samples holds one sample: nothing is averaged, and empty buckets
         * between samples are no gap */
        double per = (double)(sp->x1 - sp->x0) / REPORT_PLOT_BUCKETS;
        double every = sample_interval(s, per);
        int max_gap = (int)ceil(3.0 * every / per);
        double scale = s->mem_total > 0 ? s->mem_total : s->mem_peak > 0 ? s->mem_peak : 1;
        for (int b = 0; b < REPORT_PLOT_BUCKETS; b++) {
                if ((hu[b] = bk[b].un > 0))
                        yu[b] = ybar(bk[b].usum / bk[b].un);
                if ((hm[b] = bk[b].mn > 0))
                        ym[b] = ybar(100.0 * bk[b].msum / bk[b].mn / scale);
        }
        char bucket[32];
        fmt_duration((double)(sp->x1 - sp->x0) / REPORT_PLOT_BUCKETS, bucket);
        o_f(o, "<figure class=\"gpu\"><figcaption>GPU %zu · ", idx);
        o_e(o, s->name);
        if (s->uuid[0]) {
                o_s(o, " · <code>");
                o_e(o, s->uuid);
                o_s(o, "</code>");
        }
        o_f(o, " · %zu samples</figcaption>\n", s->n);
        o_f(o, "<svg class=\"gpu-plot\" id=\"gpu-%zu\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"GPU %zu "
               "utilisation and memory\"><g class=\"grid\">", idx, G_VIEW_W, P_TOP + P_H + 22, idx);
        for (int pct = 0; pct <= 100; pct += 50)
                o_f(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/><text x=\"%d\" y=\"%d\" "
                       "text-anchor=\"end\">%d%%</text>", G_LEFT, ybar(pct), G_LEFT + G_WIDTH, ybar(pct), G_LEFT - 8,
                    ybar(pct) + 4, pct);
        o_s(o, "</g>");
        axis(o, sp, P_TOP, P_TOP + P_H);
        o_f(o, "\n<path class=\"util-band\" id=\"gpu-%zu-util-band\" d=\"", idx);
        if (per > every)
                band_path(o, bk);
        o_f(o, "\"/>\n<path class=\"util\" id=\"gpu-%zu-util\" d=\"", idx);
        line_path(o, yu, hu, max_gap);
        o_f(o, "\"/>\n<path class=\"mem\" id=\"gpu-%zu-mem\" d=\"", idx);
        line_path(o, ym, hm, max_gap);
        o_s(o, "\"/>\n</svg>\n<p class=\"legend\"><span class=\"key util\">━</span>utilisation");
        if (per > every)
                o_f(o, ", mean per %s (band: min to max)", bucket);
        o_s(o, " <span class=\"key mem\">━</span>memory used");
        if (s->mem_total > 0)
                o_f(o, ", %% of %.0f MiB", s->mem_total);
        if (s->mem_peak >= 0)
                o_f(o, " (peak %.0f MiB)", s->mem_peak);
        o_s(o, "</p></figure>\n");
done:
        free(bk);
        free(yu);
        free(ym);
        free(hu);
        free(hm);
}

static void section_gpus(struct out *o, const struct gpus *G, const struct span *sp) {
        o_s(o, "<section id=\"gpus\"><h2>GPUs</h2>\n");
        if (!G->n)
                o_s(o, "<p class=\"muted\">No GPU samples: metrics.jsonl is empty or missing (no GPU, or the run "
                       "had not sampled one yet).</p>\n");
        for (size_t i = 0; i < G->n; i++)
                plot_one(o, &G->g[i], i, sp);
        if (G->more)
                o_f(o, "<p class=\"muted\">%zu more GPU samples from GPUs beyond the first %d are not plotted.</p>\n",
                    G->more, REPORT_MAX_GPUS);
        o_s(o, "</section>\n");
}

/* ---------- the experiment's own metrics ($MAYFLY_METRICS_FILE) ---------- */

#define XM_KEY 64

struct xpoint {
        double x, y;
};

struct xseries {
        char key[XM_KEY + 1];
        struct xpoint *p;
        size_t n, cap;
};

struct xm {
        struct xseries s[REPORT_XM_MAX_KEYS];
        size_t n, points, lines, skipped, other_keys;
        bool by_line;              /* some point had no "step": x is the line's number */
};

static void xm_free(struct xm *m) {
        for (size_t i = 0; i < m->n; i++)
                free(m->s[i].p);
}

static bool xm_value(const cJSON *v, double *ret) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > REPORT_XM_MAX_ABS)
                return false;
        *ret = v->valuedouble;
        return true;
}

static struct xseries *xm_series(struct xm *m, const char *key) {
        size_t kl = strlen(key);
        if (!kl || kl > XM_KEY)
                return NULL;
        for (size_t i = 0; i < m->n; i++)
                if (!strcmp(m->s[i].key, key))
                        return &m->s[i];
        if (m->n >= REPORT_XM_MAX_KEYS) {
                m->other_keys++;
                return NULL;
        }
        struct xseries *s = &m->s[m->n++];
        memcpy(s->key, key, kl + 1);
        return s;
}

/* One line's numbers, each a point at x. false: not a JSON object with a number in it. */
static bool xm_line(struct xm *m, const cJSON *j, double x) {
        bool any = false;
        const cJSON *v;
        cJSON_ArrayForEach(v, j) {
                double y;
                if (!v->string || !strcmp(v->string, "step") || !xm_value(v, &y) || m->points >= REPORT_XM_MAX_POINTS)
                        continue;
                struct xseries *s = xm_series(m, v->string);
                struct xpoint *p = s ? array_room(s->p, s->n, &s->cap, sizeof *p, 256) : NULL;
                if (!p)
                        continue;
                s->p = p;
                s->p[s->n++] = (struct xpoint){ x, y };
                m->points++;
                any = true;
        }
        return any;
}

/* JSON lines {"step": 10, "loss": 0.3}: x is "step" where a line has it, else the line's number; whatever is not
 * a finite number of sane size is skipped, a line that is not a JSON object too. */
static void parse_xm(const char *text, size_t len, struct xm *m) {
        for (size_t i = 0; i < len;) {
                const char *p = text + i, *nl = memchr(p, '\n', len - i);
                size_t l = nl ? (size_t)(nl - p) : len - i;
                i += l + 1;
                if (!l || (l == 1 && *p == '\r'))
                        continue;
                cJSON *j = l <= REPORT_XM_MAX_LINE ? cJSON_ParseWithLength(p, l) : NULL;
                double x;
                bool step = xm_value(cJSON_GetObjectItemCaseSensitive(j, "step"), &x);
                if (!step)
                        x = (double)(m->lines + 1);
                if (cJSON_IsObject(j) && xm_line(m, j, x)) {
                        m->lines++;
                        m->by_line |= !step;
                } else
                        m->skipped++;
                cJSON_Delete(j);
        }
}

struct xbucket {
        double sum, lo, hi;
        size_t n;
};

/* The points into REPORT_PLOT_BUCKETS buckets over [x0, x1]; the y range of what they hold. */
static void xm_bucketize(const struct xseries *s, double x0, double x1, struct xbucket *bk, double *ylo, double *yhi) {
        *ylo = INFINITY;
        *yhi = -INFINITY;
        for (size_t i = 0; i < s->n; i++) {
                const struct xpoint *p = &s->p[i];
                int b = (int)((p->x - x0) / (x1 - x0) * REPORT_PLOT_BUCKETS);
                struct xbucket *k = &bk[MIN(MAX(b, 0), REPORT_PLOT_BUCKETS - 1)];
                k->lo = k->n ? MIN(k->lo, p->y) : p->y;
                k->hi = k->n ? MAX(k->hi, p->y) : p->y;
                k->sum += p->y;
                k->n++;
                *ylo = MIN(*ylo, p->y);
                *yhi = MAX(*yhi, p->y);
        }
        if (*yhi - *ylo < 1e-12 * MAX(fabs(*ylo), 1.0)) {
                double pad = MAX(fabs(*ylo) * 0.05, 1e-6);
                *ylo -= pad;
                *yhi += pad;
        }
}

static int xm_y(double v, double lo, double hi) {
        return P_TOP + P_H - (int)lround((v - lo) / (hi - lo) * P_H);
}

/* The min..max band of each stretch of buckets: right along max, back along min. */
static void xm_band(struct out *o, const struct xbucket *bk, double lo, double hi) {
        for (int b = 0; b < REPORT_PLOT_BUCKETS;) {
                if (!bk[b].n) {
                        b++;
                        continue;
                }
                int e = b;
                while (e + 1 < REPORT_PLOT_BUCKETS && bk[e + 1].n)
                        e++;
                o_f(o, "M%d %d", G_LEFT + G_STEP * b, xm_y(bk[b].hi, lo, hi));
                for (int k = b; k <= e; k++)
                        o_f(o, "H%dV%d", G_LEFT + G_STEP * (k + 1), k < e ? xm_y(bk[k + 1].hi, lo, hi) :
                                                                               xm_y(bk[e].lo, lo, hi));
                for (int k = e; k >= b; k--)
                        o_f(o, "H%dV%d", G_LEFT + G_STEP * k, k > b ? xm_y(bk[k - 1].lo, lo, hi) :
                                                                        xm_y(bk[b].hi, lo, hi));
                o_s(o, "Z");
                b = e + 1;
        }
}

static void xm_axes(struct out *o, double x0, double x1, double lo, double hi, bool by_line) {
        o_s(o, "<g class=\"grid\">");
        for (int k = 0; k <= 2; k++) {
                double v = lo + (hi - lo) * k / 2;
                int y = xm_y(v, lo, hi);
                o_f(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/><text x=\"%d\" y=\"%d\" text-anchor=\"end\">"
                       "%.4g</text>", G_LEFT, y, G_LEFT + G_WIDTH, y, G_LEFT - 8, y + 4, v);
        }
        o_f(o, "</g><g class=\"axis\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", G_LEFT, P_TOP + P_H,
            G_LEFT + G_WIDTH, P_TOP + P_H);
        for (int k = 0; k <= 4; k++) {
                double x = G_LEFT + (double)G_WIDTH * k / 4;
                o_f(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.6g</text>", x, P_TOP + P_H + 14,
                    x0 + (x1 - x0) * k / 4);
        }
        o_f(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text></g>", G_LEFT - 34, P_TOP + P_H + 14,
            by_line ? "line" : "step");
}

static void xm_plot(struct out *o, const struct xm *m, size_t e, size_t k) {
        const struct xseries *s = &m->s[k];
        struct xbucket *bk = calloc(REPORT_PLOT_BUCKETS, sizeof *bk);
        int *y = calloc(REPORT_PLOT_BUCKETS, sizeof *y);
        bool *have = calloc(REPORT_PLOT_BUCKETS, sizeof *have);
        double x0 = INFINITY, x1 = -INFINITY, lo, hi;
        if (!bk || !y || !have) {
                o->err = -ENOMEM;
                goto done;
        }
        for (size_t i = 0; i < s->n; i++)
                x0 = MIN(x0, s->p[i].x), x1 = MAX(x1, s->p[i].x);
        if (x1 <= x0)
                x1 = x0 + 1;
        xm_bucketize(s, x0, x1, bk, &lo, &hi);
        bool band = false;
        for (int b = 0; b < REPORT_PLOT_BUCKETS; b++)
                if ((have[b] = bk[b].n > 0)) {
                        y[b] = xm_y(bk[b].sum / (double)bk[b].n, lo, hi);
                        band |= bk[b].n > 1;
                }
        o_s(o, "<figure class=\"xm\"><figcaption>");
        o_e(o, s->key);
        o_f(o, " · %zu points · last %.6g</figcaption>\n", s->n, s->p[s->n - 1].y);
        o_f(o, "<svg class=\"xm-plot\" id=\"xm-%zu-%zu\" viewBox=\"0 0 %d %d\" role=\"img\" data-key=\"", e, k,
            G_VIEW_W, P_TOP + P_H + 22);
        o_e(o, s->key);
        o_s(o, "\" aria-label=\"");
        o_e(o, s->key);
        o_s(o, "\">");
        xm_axes(o, x0, x1, lo, hi, m->by_line);
        o_f(o, "\n<path class=\"xm-band\" id=\"xm-%zu-%zu-band\" d=\"", e, k);
        if (band)
                xm_band(o, bk, lo, hi);
        o_f(o, "\"/>\n<path class=\"xm\" id=\"xm-%zu-%zu-line\" d=\"", e, k);
        line_path(o, y, have, REPORT_PLOT_BUCKETS);
        o_s(o, "\"/>\n</svg>");
        if (band)
                o_s(o, "<p class=\"legend\">mean per bucket (band: min to max)</p>");
        o_s(o, "</figure>\n");
done:
        free(bk);
        free(y);
        free(have);
}

static void xm_experiment(struct out *o, const struct report_xmetrics *x, size_t e) {
        struct xm *m = calloc(1, sizeof *m);
        if (!m) {
                o->err = -ENOMEM;
                return;
        }
        parse_xm(x->text ? x->text : "", x->text ? x->len : 0, m);
        o_s(o, "<h3>");
        o_e(o, x->experiment);
        o_s(o, "</h3>\n");
        if (!m->n)
                o_s(o, "<p class=\"muted\">No numbers in its metrics file yet.</p>\n");
        for (size_t k = 0; k < m->n; k++)
                xm_plot(o, m, e, k);
        if (m->other_keys)
                o_f(o, "<p class=\"muted\">%zu values of keys beyond the first %d are not plotted.</p>\n",
                    m->other_keys, REPORT_XM_MAX_KEYS);
        if (m->skipped)
                o_f(o, "<p class=\"muted\">%zu lines skipped (not a JSON object with a finite number).</p>\n",
                    m->skipped);
        xm_free(m);
        free(m);
}

static void section_xmetrics(struct out *o, const struct report_input *in) {
        if (!in->n_xmetrics)
                return;
        o_s(o, "<section id=\"xmetrics\"><h2>Experiment metrics</h2>\n<p class=\"muted\">What each experiment "
               "wrote to <code>$MAYFLY_METRICS_FILE</code>, one plot per key, downsampled to 300 points.</p>\n");
        for (size_t e = 0; e < in->n_xmetrics; e++)
                xm_experiment(o, &in->xmetrics[e], e);
        o_s(o, "</section>\n");
}

/* ---------- timeline ---------- */

#define T_TOP 6
#define T_LANE 22
#define T_BAR 14

static const char *bar_state(const cJSON *x) {
        const char *st = jstr(x, "status"), *rs = jstr(x, "reason");
        double code = -1;
        bool has_code = jnum(x, "exit_code", &code);
        if (st && !strcmp(st, "running"))
                return "running";
        if (!rs || !strcmp(rs, "exit"))
                return has_code && code == 0 ? "ok" : "failed";
        if (!strcmp(rs, "interrupted") || !strcmp(rs, "agent-stopped"))
                return "interrupted";
        if (!strcmp(rs, "timeout") || !strcmp(rs, "max-runtime"))
                return "timeout";
        if (!strcmp(rs, "gpu-idle"))
                return "idle";
        return "failed";
}

static void lane_label(struct out *o, int y, const char *text) {
        o_f(o, "<text class=\"lane\" x=\"%d\" y=\"%d\" text-anchor=\"end\">", G_LEFT - 8, y + T_BAR - 3);
        size_t n = strlen(text);
        if (n > 22) {
                o_en(o, text, 21);
                o_s(o, "…");
        } else
                o_e(o, text);
        o_s(o, "</text>");
}

/* One attempt of an experiment (or the span of an instance) as a bar; its title is the tooltip. */
static void bar(struct out *o, const struct span *sp, int y, time_t a, time_t b, const char *cls, const char *name,
                const char *title) {
        double x0 = xpos(sp, a), x1 = xpos(sp, b);
        o_f(o, "<rect class=\"bar st-%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" rx=\"2\"", cls, x0, y,
            MAX(x1 - x0, 1.5), T_BAR);
        if (name) {
                o_s(o, " data-experiment=\"");
                o_e(o, name);
                o_s(o, "\"");
        }
        o_s(o, "><title>");
        o_e(o, title);
        o_s(o, "</title></rect>");
}

static void exp_title(const cJSON *x, const char *name, time_t a, time_t b, char *t, size_t n) {
        char dur[32], code[48] = "";
        double v;
        fmt_duration((double)(b - a), dur);
        if (jnum(x, "exit_code", &v))
                snprintf(code, sizeof code, ", exit %.0f", v);
        else if (jnum(x, "signal", &v))
                snprintf(code, sizeof code, ", signal %.0f", v);
        const char *rs = jstr(x, "reason"), *inst = jstr(x, "instance");
        snprintf(t, n, "%s: %s%s%s%s%s%s", name, dur, code, rs ? ", " : "", rs ? rs : "", inst ? " on " : "",
                 inst ? inst : "");
}

static void timeline_experiment(struct out *o, const struct span *sp, const cJSON *x, int y, time_t now) {
        const char *name = jstr(x, "name");
        name = name ? name : "?";
        lane_label(o, y, name);
        const cJSON *hist = cJSON_GetObjectItemCaseSensitive(x, "history");
        time_t last_end = 0;
        char title[512];
        if (cJSON_IsArray(hist) && cJSON_GetArraySize(hist) > 0) {
                /* a run recovered on other instances: one bar per attempt */
                const cJSON *h;
                cJSON_ArrayForEach(h, hist) {
                        time_t a = jtime(h, "start"), b = jtime(h, "end");
                        if (!a)
                                continue;
                        b = b ? b : now;
                        exp_title(h, name, a, b, title, sizeof title);
                        bar(o, sp, y, a, b, bar_state(h), name, title);
                        last_end = MAX(last_end, b);
                }
        } else {
                time_t a = jtime(x, "start"), b = jtime(x, "end");
                const char *st = jstr(x, "status");
                if (!a || (st && (!strcmp(st, "pending") || !strcmp(st, "skipped")))) {
                        o_f(o, "<text class=\"none\" x=\"%d\" y=\"%d\">%s</text>", G_LEFT + 4, y + T_BAR - 3,
                            st && !strcmp(st, "skipped") ? "skipped" : "not started");
                        return;
                }
                b = b && (!st || strcmp(st, "running")) ? b : now;
                exp_title(x, name, a, b, title, sizeof title);
                bar(o, sp, y, a, b, bar_state(x), name, title);
                last_end = b;
        }
        double att = 0;
        if (jnum(x, "attempts", &att) && att > 1 && last_end)
                o_f(o, "<text class=\"attempts\" x=\"%.1f\" y=\"%d\">×%.0f</text>",
                    MIN(xpos(sp, last_end) + 4, G_LEFT + G_WIDTH - 16.0), y + T_BAR - 3, att);
}

/* The spot notice an instance had, on its lane (every instance's: a recovered run has one per lost instance). */
static void notice_mark(struct out *o, const struct span *sp, const cJSON *x, int y) {
        const cJSON *ir = cJSON_GetObjectItemCaseSensitive(x, "interruption");
        time_t it = jtime(ir, "time");
        if (!it)
                return;
        double xi = xpos(sp, it);
        const char *act = jstr(ir, "action");
        o_f(o, "<g class=\"interrupt notice\"><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/><title>spot ", xi,
            y - 3, xi, y + T_BAR + 3);
        o_e(o, act ? act : "interruption");
        o_s(o, " notice for ");
        o_e(o, jstr(x, "id") ? jstr(x, "id") : "?");
        o_s(o, "</title></g>");
}

/* The instances the run used, each a lane: the cost ledger's list, else status.json's instance. */
static int timeline_instances(struct out *o, const struct span *sp, const cJSON *st, int y, time_t now) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "cost"),
                                                             "instances");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(st, "instance");
        int lanes = 0;
        char title[256];
        const cJSON *x;
        cJSON_ArrayForEach(x, list) {
                time_t a = jtime(x, "since"), b = jtime(x, "until");
                if (!a)
                        continue;
                const char *id = jstr(x, "id"), *ty = jstr(x, "type"), *lc = jstr(x, "lifecycle"), *s = jstr(x, "state");
                b = b ? b + since_status(st, x, now) : now;
                snprintf(title, sizeof title, "%s %s%s%s%s%s%s", id ? id : "?", ty ? ty : "", lc ? " " : "", lc ? lc : "",
                         s ? " (" : "", s ? s : "", s ? ")" : "");
                lane_label(o, y + T_LANE * lanes, id ? id : "instance");
                bar(o, sp, y + T_LANE * lanes, a, b, "instance", NULL, title);
                const char *self = jstr(cJSON_GetObjectItemCaseSensitive(st, "instance"), "id");
                if (!self || !id || strcmp(self, id) || !cJSON_HasObjectItem(st, "interruption"))
                        notice_mark(o, sp, x, y + T_LANE * lanes); /* this instance's is the run's own mark */
                lanes++;
        }
        if (!lanes && jstr(in, "id") && jtime(st, "started")) {
                snprintf(title, sizeof title, "%s %s", jstr(in, "id"), jstr(in, "type") ? jstr(in, "type") : "");
                lane_label(o, y, jstr(in, "id"));
                bar(o, sp, y, jtime(st, "started"), now, "instance", NULL, title);
                lanes = 1;
        }
        return lanes;
}

static void section_timeline(struct out *o, const cJSON *st, const struct span *sp, time_t now) {
        const cJSON *exps = cJSON_GetObjectItemCaseSensitive(st, "experiments");
        int n = MIN(cJSON_GetArraySize(exps), REPORT_MAX_LANES);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "cost"), "instances");
        int ninst = MAX(cJSON_GetArraySize(list), 1);
        int height = T_TOP + T_LANE * (n + ninst) + 6;
        o_s(o, "<section id=\"timeline-section\"><h2>Timeline</h2>\n");
        o_f(o, "<svg id=\"timeline\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"instances and experiments over "
               "time\">", G_VIEW_W, height + 20);
        axis(o, sp, T_TOP, height);
        int lanes = timeline_instances(o, sp, st, T_TOP + 3, now);
        int y = T_TOP + 3 + T_LANE * lanes;
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, exps) {
                if (i++ >= n)
                        break;
                o_s(o, "\n");
                timeline_experiment(o, sp, x, y, now);
                y += T_LANE;
        }
        const cJSON *ir = cJSON_GetObjectItemCaseSensitive(st, "interruption");
        time_t it = jtime(ir, "time");
        if (it) {
                double xi = xpos(sp, it);
                const char *act = jstr(ir, "action");
                o_f(o, "\n<g class=\"interrupt\" id=\"interruption\"><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
                       "y2=\"%d\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"end\">spot ", xi, T_TOP, xi, height,
                    xi - 3, T_TOP + 10);
                o_e(o, act ? act : "interruption");
                o_s(o, "</text></g>");
        }
        o_s(o, "</svg>\n");
        if (cJSON_GetArraySize(exps) > n)
                o_f(o, "<p class=\"muted\">%d more experiments are listed below, not drawn.</p>\n",
                    cJSON_GetArraySize(exps) - n);
        o_s(o, "<p class=\"legend\"><span class=\"key st-ok\">━</span>exit 0 <span class=\"key st-failed\">━</span>"
               "failed <span class=\"key st-interrupted\">━</span>interrupted <span class=\"key st-timeout\">━</span>"
               "timeout <span class=\"key st-idle\">━</span>GPU idle <span class=\"key st-running\">━</span>running "
               "<span class=\"key st-instance\">━</span>instance</p>\n");
}

/* ---------- tables ---------- */

static void row(struct out *o, const char *k, const char *v) {
        if (!v)
                return;
        o_s(o, "<tr><th>");
        o_s(o, k);
        o_s(o, "</th><td>");
        o_e(o, v);
        o_s(o, "</td></tr>\n");
}

static void row_time(struct out *o, const char *k, time_t t) {
        char b[40];
        if (!t)
                return;
        fmt_time(t, true, b);
        row(o, k, b);
}

static void section_summary(struct out *o, const cJSON *st, time_t now) {
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(st, "instance");
        const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(st, "gpu");
        const cJSON *ir = cJSON_GetObjectItemCaseSensitive(st, "interruption");
        char b[512], d[32];
        o_s(o, "<section id=\"summary\"><h2>Summary</h2><table class=\"kv\">\n");
        row(o, "outcome", jstr(st, "outcome") ? jstr(st, "outcome") : "?");
        row(o, "error", jstr(st, "error"));
        row(o, "cancelled by", jstr(st, "cancelled_by"));
        row(o, "phase", report_phase(st));
        time_t a = jtime(st, "started"), u = jtime(st, "updated");
        row_time(o, "started", a);
        row_time(o, "last update", u);
        if (a) {
                bool running = is_running(st);
                fmt_duration((double)(now - a), d);
                snprintf(b, sizeof b, "%s%s", d, running ? " so far" : "");
                row(o, "duration", b);
        }
        if (jstr(in, "id")) {
                snprintf(b, sizeof b, "%s · %s · %s · %s", jstr(in, "id"), jstr(in, "type") ? jstr(in, "type") : "?",
                         jstr(in, "lifecycle") ? jstr(in, "lifecycle") : "lifecycle unknown",
                         jstr(in, "availability_zone") ? jstr(in, "availability_zone") : "?");
                row(o, "instance", b);
                row(o, "AMI", jstr(in, "ami_id"));
        }
        double cnt;
        if (jnum(gpu, "count", &cnt)) {
                const char *nm = jstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(gpu, "devices"), 0), "name");
                snprintf(b, sizeof b, "%d × %s (driver %s, %s)", (int)cnt, nm ? nm : "GPU",
                         jstr(gpu, "driver") ? jstr(gpu, "driver") : "?", jstr(gpu, "source") ? jstr(gpu, "source") : "?");
                row(o, "GPUs", b);
        }
        if (ir) {
                char t[40] = "?";
                if (jtime(ir, "time"))
                        fmt_time(jtime(ir, "time"), true, t);
                snprintf(b, sizeof b, "spot %s notice, for %s", jstr(ir, "action") ? jstr(ir, "action") : "?", t);
                row(o, "interruption", b);
        }
        row(o, "exit action", jstr(st, "exit_action"));
        row(o, "results", jstr(st, "results"));
        row(o, "mayfly", jstr(st, "mayfly_version"));
        o_s(o, "</table></section>\n");
}

/* The cost of x's time since the status (extra seconds) at its hourly price; 0 when either is unknown. */
static double cost_since(const cJSON *x, time_t extra) {
        double h;
        return extra > 0 && jnum(x, "hourly_price", &h) && h >= 0 ? h * (double)extra / 3600.0 : 0;
}

static void cost_row(struct out *o, const cJSON *x, time_t extra) {
        char secs[32], price[48] = "unknown", cost[32] = "unknown", asof[40] = "";
        double v;
        fmt_duration((jnum(x, "seconds", &v) ? v : 0) + (double)extra, secs);
        if (jnum(x, "hourly_price", &v))
                snprintf(price, sizeof price, v >= 0.001 || v == 0 ? "$%.4f/h" : "$%.6f/h", v);
        if (jnum(x, "cost", &v))
                fmt_money(v + cost_since(x, extra), cost);
        if (jtime(x, "price_as_of"))
                fmt_time(jtime(x, "price_as_of"), false, asof);
        o_s(o, "<tr><td><code>");
        o_e(o, jstr(x, "id"));
        o_s(o, "</code></td><td>");
        o_e(o, jstr(x, "type"));
        o_s(o, "</td><td>");
        o_e(o, jstr(x, "lifecycle"));
        o_f(o, "</td><td>%s</td><td>%s</td><td>", secs, price);
        o_e(o, jstr(x, "price_source"));
        if (asof[0])
                o_f(o, " (%s)", asof);
        o_f(o, "</td><td>%s</td></tr>\n", cost);
        const char *why = jstr(x, "price_unknown") ? jstr(x, "price_unknown") : jstr(x, "price_note");
        if (why) {
                o_s(o, "<tr class=\"why\"><td colspan=\"7\">");
                o_s(o, jstr(x, "price_unknown") ? "Price unknown: " : "Note: ");
                o_e(o, why);
                o_s(o, "</td></tr>\n");
        }
}

static void section_cost(struct out *o, const cJSON *st, time_t clock) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(st, "cost");
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(c, "instances"), *x;
        double more = 0;
        cJSON_ArrayForEach(x, list)
                more += cost_since(x, since_status(st, x, clock));
        o_s(o, "<section id=\"cost\"><h2>Cost</h2>\n");
        if (!cJSON_IsObject(c)) {
                o_s(o, "<p class=\"muted\">Unknown: this status.json has no cost (written by a mayfly without cost "
                       "accounting).</p></section>\n");
                return;
        }
        double total;
        if (jnum(c, "total", &total)) {
                char m[32];
                fmt_money(total + more, m);
                o_f(o, "<p class=\"total\" id=\"cost-total\">%s ", m);
                o_e(o, jstr(c, "currency"));
                o_s(o, is_running(st) ? " so far</p>\n" : "</p>\n");
        } else {
                o_s(o, "<p class=\"total unknown\" id=\"cost-total\">Total unknown: ");
                o_e(o, jstr(c, "total_unknown") ? jstr(c, "total_unknown") : "no price");
                o_s(o, ". No number is shown rather than a guess.</p>\n");
        }
        if (cJSON_GetArraySize(list) > 0) {
                o_s(o, "<table class=\"grid\"><tr><th>instance</th><th>type</th><th>lifecycle</th><th>time</th>"
                       "<th>price</th><th>source</th><th>cost</th></tr>\n");
                cJSON_ArrayForEach(x, list)
                        cost_row(o, x, since_status(st, x, clock));
                o_s(o, "</table>\n");
        }
        if (more > 0) {
                char t[40];
                fmt_time(clock, true, t);
                o_f(o, "<p class=\"muted\">Up to %s: the time since the last status at its hourly price.</p>\n", t);
        }
        if (jstr(c, "covers")) {
                o_s(o, "<p class=\"muted\">");
                o_e(o, jstr(c, "covers"));
                o_s(o, ".</p>\n");
        }
        o_s(o, "</section>\n");
}

static void exp_row(struct out *o, const cJSON *x, time_t now) {
        char a[40] = "", b[40] = "", d[32] = "", code[32] = "";
        time_t ta = jtime(x, "start"), tb = jtime(x, "end");
        const char *st = jstr(x, "status");
        bool running = st && !strcmp(st, "running");
        if (ta)
                fmt_time(ta, true, a);
        if (tb && !running)
                fmt_time(tb, true, b);
        if (ta)
                fmt_duration((double)((tb && !running ? tb : now) - ta), d);
        double v;
        if (jnum(x, "exit_code", &v))
                snprintf(code, sizeof code, "exit %.0f", v);
        else if (jnum(x, "signal", &v))
                snprintf(code, sizeof code, "signal %.0f", v);
        char cls[24];
        css_word(ta ? bar_state(x) : st, cls);
        o_s(o, "<tr><td>");
        o_e(o, jstr(x, "name"));
        o_f(o, "</td><td><span class=\"dot st-%s\">●</span>", cls);
        o_e(o, st);
        o_s(o, "</td><td>");
        o_e(o, jstr(x, "reason"));
        o_f(o, "</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>",
            (int)json_int(x, "attempts", 0, INT_MAX, 0), a, b, d, code);
        const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(x, "command");
        const cJSON *arg, *argv = cJSON_IsArray(cmd) ? cmd : NULL;
        bool any = cJSON_IsString(cmd) ? *cmd->valuestring != 0 : cJSON_GetArraySize(argv) > 0;
        if (any)
                o_s(o, "<code>");
        if (cJSON_IsString(cmd))
                o_e(o, cmd->valuestring);
        bool first = true;
        cJSON_ArrayForEach(arg, argv) {
                if (!first)
                        o_s(o, " ");
                o_e(o, cJSON_GetStringValue(arg));
                first = false;
        }
        o_s(o, any ? "</code></td></tr>\n" : "</td></tr>\n");
}

static void section_experiments(struct out *o, const cJSON *st, time_t now) {
        o_s(o, "<table class=\"grid\" id=\"experiments\"><tr><th>experiment</th><th>status</th><th>reason</th>"
               "<th>attempts</th><th>start</th><th>end</th><th>duration</th><th>result</th><th>command</th></tr>\n");
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(st, "experiments"))
                exp_row(o, x, now);
        o_s(o, "</table></section>\n");
}

/* ---------- logs and files ---------- */

static void id_word(struct out *o, const char *s) {
        /* experiment names are [A-Za-z0-9._-]; anything else in an id becomes '_' */
        for (; s && *s; s++) {
                char c = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                                         *s == '-' || *s == '_' || *s == '.'
                                 ? *s
                                 : '_';
                char t[2] = { c, 0 };
                o_s(o, t);
        }
}

static void one_tail(struct out *o, const struct report_log *l, size_t budget) {
        struct buf t = BUF_INIT(budget + 1024);
        size_t lines = 0;
        int r = tail_render(l->text ? l->text : "", l->text ? l->len : 0, l->from_start, budget, REPORT_TAIL_LINES,
                            &t, &lines);
        if (r < 0 && r != -E2BIG)
                o->err = r;
        o_s(o, "<h4>");
        o_e(o, l->stream);
        if (l->href) {
                o_s(o, " · <a href=\"");
                o_e(o, l->href);
                o_s(o, "\">whole log</a>");
        }
        size_t total = l->len && l->text[l->len - 1] != '\n';
        for (size_t i = 0; i < l->len; i++)
                total += l->text[i] == '\n';
        bool cut = l->cut || !l->from_start || total > lines;
        if (lines && cut)
                o_f(o, " <span class=\"muted\">(last %zu lines)</span>", lines);
        o_s(o, "</h4>\n<pre class=\"tail\" id=\"tail-");
        id_word(o, l->experiment);
        o_s(o, "-");
        id_word(o, l->stream);
        o_s(o, "\">");
        if (t.len)
                o_en(o, t.data, t.len);
        else
                o_s(o, "<span class=\"muted\">(empty)</span>");
        o_s(o, "</pre>\n");
        buf_free(&t);
}

static void section_logs(struct out *o, const struct report_input *in) {
        o_s(o, "<section id=\"logs\"><h2>Log tails</h2>\n");
        if (!in->n_logs)
                o_s(o, "<p class=\"muted\">No logs yet.</p>\n");
        size_t budget = MIN((size_t)TAIL_KEEP_BYTES, REPORT_TAILS_BUDGET / MAX(in->n_logs, (size_t)1));
        budget = MAX(budget, (size_t)2048);
        const char *open_exp = NULL;
        for (size_t i = 0; i < in->n_logs; i++) {
                const struct report_log *l = &in->logs[i];
                if (!open_exp || strcmp(open_exp, l->experiment)) {
                        if (open_exp)
                                o_s(o, "</details>\n");
                        o_f(o, "<details%s><summary>", in->n_logs <= 8 ? " open" : "");
                        o_e(o, l->experiment);
                        o_s(o, "</summary>\n");
                        open_exp = l->experiment;
                }
                one_tail(o, l, budget);
        }
        if (open_exp)
                o_s(o, "</details>\n");
        o_s(o, "</section>\n");
}

static void section_files(struct out *o, const struct report_input *in) {
        o_s(o, "<section id=\"files\"><h2>Files</h2>\n");
        if (!in->n_files)
                o_s(o, "<p class=\"muted\">None listed yet: logs and outputs are listed once the run has shipped "
                       "them.</p>\n");
        else
                o_s(o, "<ul class=\"files\">\n");
        for (size_t i = 0; i < in->n_files; i++) {
                char sz[32];
                fmt_size(in->files[i].size, sz);
                o_s(o, "<li><a href=\"");
                o_e(o, in->files[i].href);
                o_s(o, "\">");
                o_e(o, in->files[i].label);
                o_f(o, "</a> <span class=\"muted\">%s</span></li>\n", sz);
        }
        if (in->n_files)
                o_s(o, "</ul>\n");
        if (in->files_more)
                o_f(o, "<p class=\"muted\">and %zu more.</p>\n", in->files_more);
        o_s(o, "</section>\n");
}

/* ---------- the page ---------- */

static const char CSS[] =
        ":root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--int:#d4610e;--run:#0969da;--mute:#6e7781;--time:#8250df;"
        "--inst:#8c959f}"
        "body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif;margin:0;"
        "color:#1f2328;background:#f6f8fa}"
        "header{background:#fff;border-bottom:1px solid #d0d7de;padding:14px 24px}"
        "main{padding:4px 24px 24px;max-width:1180px}"
        "section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 16px;margin:14px 0}"
        "h1{font-size:22px;margin:0}h2{font-size:16px;margin:2px 0 8px}h4{font-size:13px;margin:8px 0 4px}"
        "summary{font-weight:600;cursor:pointer}code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
        ".sub,.note,.muted,footer{color:var(--mute)}footer{padding:0 24px 24px;font-size:12px}"
        ".badge{display:inline-block;padding:1px 10px;border-radius:12px;color:#fff;font-size:14px;"
        "vertical-align:middle;background:var(--mute)}"
        ".o-succeeded{background:var(--ok)}.o-failed,.o-error{background:var(--bad)}.o-timeout{background:var(--time)}"
        ".o-interrupted{background:var(--int)}.o-gpu-idle{background:var(--warn)}.o-running{background:var(--run)}"
        "table{border-collapse:collapse}td,th{padding:3px 12px 3px 0;text-align:left;vertical-align:top}"
        "table.kv th{color:var(--mute);font-weight:500}table.grid{width:100%}"
        "table.grid th{border-bottom:1px solid #d0d7de;font-weight:600}table.grid td{border-bottom:1px solid #eaeef2}"
        "tr.why td{color:var(--bad);border-bottom:1px solid #eaeef2}"
        ".total{font-size:20px;font-weight:600;margin:4px 0}.total.unknown{font-size:15px;color:var(--bad)}"
        "svg{width:100%;height:auto;display:block}svg text{font-size:11px;fill:#57606a}"
        ".axis line{stroke:#8c959f}.axis line.tick,.grid line{stroke:#eaeef2}"
        ".dot{margin-right:4px;color:var(--mute)}.st-ok{fill:var(--ok);color:var(--ok)}.st-failed{fill:var(--bad);color:var(--bad)}"
        ".st-interrupted{fill:var(--int);color:var(--int)}.st-timeout{fill:var(--time);color:var(--time)}"
        ".st-idle{fill:var(--warn);color:var(--warn)}.st-running{fill:var(--run);color:var(--run)}"
        ".st-instance{fill:var(--inst);color:var(--inst)}"
        "text.lane{fill:#1f2328}text.none{fill:var(--mute);font-style:italic}text.attempts{fill:#1f2328}"
        ".interrupt line{stroke:var(--bad);stroke-width:1.5;stroke-dasharray:4 3}.interrupt text{fill:var(--bad)}"
        "path.util{fill:none;stroke:var(--run);stroke-width:1.5}path.util-band{fill:var(--run);opacity:.16}"
        "path.mem{fill:none;stroke:var(--int);stroke-width:1.5}"
        "path.xm{fill:none;stroke:var(--ok);stroke-width:1.5}path.xm-band{fill:var(--ok);opacity:.16}"
        "h3{font-size:14px;margin:10px 0 4px}"
        ".legend{font-size:12px;color:var(--mute);margin:2px 0 10px}"
        ".key{font-weight:700;margin:0 3px 0 10px}.key.util{color:var(--run)}.key.mem{color:var(--int)}"
        "figure{margin:6px 0 12px}figcaption{font-weight:600;font-size:13px}"
        "pre.tail{background:#0d1117;color:#e6edf3;padding:8px 10px;margin:0 0 8px;max-height:360px;overflow:auto;"
        "font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;"
        "word-break:break-all;border-radius:4px}"
        "pre.tail .muted{color:#8b949e}ul.files{columns:2;margin:0;padding-left:18px}";

static void head(struct out *o, const cJSON *st, const char *name, const char *outcome) {
        o_s(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               /* nothing outside the page may load, and nothing runs */
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
               "<meta name=\"generator\" content=\"mayfly " MAYFLY_VERSION "\">\n<title>");
        o_e(o, name);
        o_s(o, " · ");
        o_e(o, outcome);
        o_s(o, " · mayfly</title>\n<style>");
        o_s(o, CSS);
        o_s(o, "</style>\n</head>\n<body>\n<header>\n<h1>");
        o_e(o, name);
        char cls[24];
        css_word(outcome, cls);
        o_f(o, " <span class=\"badge o-%s\" id=\"outcome\">", cls);
        o_e(o, outcome);
        o_s(o, "</span></h1>\n<p class=\"sub\">run <code>");
        o_e(o, jstr(st, "run_id") ? jstr(st, "run_id") : "?");
        o_s(o, "</code>");
        if (jstr(st, "results")) {
                o_s(o, " · <code>");
                o_e(o, jstr(st, "results"));
                o_s(o, "</code>");
        }
        o_s(o, "</p>\n");
}

/* The x range of the timeline and the plots: the run, the samples and the notice's time, whichever reach further. */
static struct span run_span(const cJSON *st, const struct gpus *G, time_t now) {
        time_t a = jtime(st, "started"), b = jtime(st, "updated");
        if (is_running(st))
                b = MAX(b, now);
        if (G->samples) {
                a = a ? MIN(a, G->first) : G->first;
                b = MAX(b, G->last);
        }
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(st, "experiments")) {
                time_t s = jtime(x, "start"), e = jtime(x, "end");
                a = s && (!a || s < a) ? s : a;
                b = MAX(b, e);
        }
        time_t it = jtime(cJSON_GetObjectItemCaseSensitive(st, "interruption"), "time");
        b = MAX(b, it);
        if (!a)
                a = b ? b : now;
        if (b <= a)
                b = a + 60;
        return (struct span){ a, b };
}

int report_render(const struct report_input *in, struct buf *out) {
        const cJSON *st = in->status;
        if (!cJSON_IsObject(st))
                return -EINVAL;
        struct out o = { .b = out };
        struct gpus *G = calloc(1, sizeof *G);
        if (!G)
                return -ENOMEM;
        if (in->metrics)
                parse_metrics(in->metrics, in->metrics_len, G);
        time_t clock = report_clock(st, in->now); /* one clock for the bars, the duration and the cost */
        struct span sp = run_span(st, G, clock);
        const char *name = jstr(st, "name") ? jstr(st, "name") : "mayfly run";
        const char *outcome = jstr(st, "outcome") ? jstr(st, "outcome") : "unknown";
        head(&o, st, name, outcome);
        if (in->note) {
                o_s(&o, "<p class=\"note\">");
                o_e(&o, in->note);
                o_s(&o, "</p>\n");
        }
        o_s(&o, "</header>\n<main>\n");
        section_summary(&o, st, clock);
        section_cost(&o, st, clock);
        section_timeline(&o, st, &sp, clock);
        section_experiments(&o, st, clock);
        section_gpus(&o, G, &sp);
        section_xmetrics(&o, in);
        section_logs(&o, in);
        section_files(&o, in);
        char gen[40];
        fmt_time(in->now, true, gen);
        o_f(&o, "</main>\n<footer>generated %s by mayfly " MAYFLY_VERSION "</footer>\n</body>\n</html>\n", gen);
        gpus_free(G);
        free(G);
        return o.err;
}

/* ---------- building the input ---------- */

char *report_build_own(struct report_build *b, char *taken) {
        if (!taken)
                return NULL;
        if (b->n_owned == b->owned_cap) {
                size_t cap = b->owned_cap ? 2 * b->owned_cap : 64;
                char **p = realloc(b->owned, cap * sizeof *p);
                if (!p) {
                        free(taken);
                        return NULL;
                }
                b->owned = p;
                b->owned_cap = cap;
        }
        return b->owned[b->n_owned++] = taken;
}

int report_build_log(struct report_build *b, const char *experiment, const char *stream, char *text_taken, size_t len,
                     bool from_start, char *href_taken) {
        const char *text = report_build_own(b, text_taken), *href = report_build_own(b, href_taken);
        const char *exp = report_build_own(b, strdup(experiment)), *st = report_build_own(b, strdup(stream));
        if ((text_taken && !text) || (href_taken && !href) || !exp || !st)
                return -ENOMEM;
        if (b->in.n_logs == b->logs_cap) {
                size_t cap = b->logs_cap ? 2 * b->logs_cap : 16;
                struct report_log *p = realloc(b->logs, cap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                b->logs = p;
                b->logs_cap = cap;
        }
        b->logs[b->in.n_logs++] = (struct report_log){ .experiment = exp, .stream = st, .text = text, .len = len,
                                                       .from_start = from_start, .href = href };
        b->in.logs = b->logs;
        return 0;
}

int report_build_tail(struct report_build *b, const char *experiment, const char *stream, tail_read_fn read_end,
                      void *ud, char *href_taken) {
        struct buf t = BUF_INIT(TAIL_KEEP_BYTES + 16);
        size_t lines = 0;
        bool cut = false;
        int r = tail_read(read_end, ud, REPORT_TAIL_LINES, &t, &lines, &cut);
        if (r < 0) {
                buf_free(&t);
                free(href_taken);
                return r;
        }
        size_t len = t.len;
        r = report_build_log(b, experiment, stream, buf_steal(&t), len, true, href_taken);
        if (r == 0)
                b->logs[b->in.n_logs - 1].cut = cut;
        return r;
}

int report_build_xmetrics(struct report_build *b, const char *experiment, char *text_taken, size_t len) {
        const char *text = report_build_own(b, text_taken), *exp = report_build_own(b, strdup(experiment));
        if (!text || !exp)
                return -ENOMEM;
        struct report_xmetrics *v = array_room(b->xm, b->in.n_xmetrics, &b->xm_cap, sizeof *v, 8);
        if (!v)
                return -ENOMEM;
        b->xm = v;
        b->xm[b->in.n_xmetrics++] = (struct report_xmetrics){ .experiment = exp, .text = text, .len = len };
        b->in.xmetrics = b->xm;
        return 0;
}

int report_build_file(struct report_build *b, const char *label, char *href_taken, uint64_t size) {
        const char *href = report_build_own(b, href_taken);
        if (b->in.n_files >= REPORT_MAX_FILES) {
                b->in.files_more++;
                return 0;
        }
        const char *l = report_build_own(b, strdup(label));
        if (!href || !l)
                return -ENOMEM;
        if (b->in.n_files == b->files_cap) {
                size_t cap = b->files_cap ? 2 * b->files_cap : 32;
                struct report_file *p = realloc(b->files, cap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                b->files = p;
                b->files_cap = cap;
        }
        b->files[b->in.n_files++] = (struct report_file){ .label = l, .href = href, .size = size };
        b->in.files = b->files;
        return 0;
}

void report_build_free(struct report_build *b) {
        for (size_t i = 0; i < b->n_owned; i++)
                free(b->owned[i]);
        free(b->owned);
        free(b->logs);
        free(b->files);
        free(b->xm);
        free(b->metrics);
        cJSON_Delete(b->status);
        memset(b, 0, sizeof *b);
}
