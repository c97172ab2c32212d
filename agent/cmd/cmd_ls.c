/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_ls.c — `mayfly ls RESULTS_URI [--json]`: the runs under a results prefix (a job's, or the results root with
 * several jobs), newest first, one line each. Runs are found by their status.json: RESULTS_URI itself, the folders
 * under it, or the folders under those (results/ → NAME/ → RUN-ID/), read in parallel. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <pthread.h>

#include "aws/s3.h"
#include "jsonx.h"
#include "caps.h"
#include "termsafe.h"
#include "cmd/cli.h"

#define LS_WORKERS 8
#define LS_MAX_RUNS 100000

struct probe {
        char *prefix;                    /* a folder that may be a run: "results/NAME/RUN-ID/" */
        cJSON *status;                   /* its status.json, NULL when it has none */
        int r;                           /* 0, -MF_ENOTFOUND, or the failure */
        char err[768];
};

struct probes {
        struct probe *v;
        size_t n, cap;
        struct aws_ctx *c;
        const char *bucket;
        size_t next;                     /* the next to read (under lock) */
        pthread_mutex_t lock;
};

static int add_probe(struct probes *p, const char *prefix) {
        if (p->n >= LS_MAX_RUNS)
                return -E2BIG;
        if (p->n == p->cap) {
                size_t cap = p->cap ? 2 * p->cap : 64;
                struct probe *v = realloc(p->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                p->v = v;
                p->cap = cap;
        }
        p->v[p->n] = (struct probe){ .prefix = strdup(prefix) };
        return p->v[p->n++].prefix ? 0 : -ENOMEM;
}

static void probes_free(struct probes *p) {
        for (size_t i = 0; i < p->n; i++) {
                free(p->v[i].prefix);
                cJSON_Delete(p->v[i].status);
        }
        free(p->v);
}

static void read_one(struct probes *p, struct http_client *h, struct probe *x) {
        char key[2100];
        snprintf(key, sizeof key, "%sstatus.json", x->prefix);
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct aws_result res = { 0 };
        x->r = s3_get_capped(p->c, h, p->bucket, key, CAP_STATUS_JSON, "a status.json", &body, &len, &res);
        if (x->r == 0 && !cJSON_IsObject(x->status = cJSON_ParseWithLength(body, len))) {
                errf(x->err, sizeof x->err, "s3://%s/%s is not a JSON object", p->bucket, key);
                x->r = -MF_EPARSE;
        } else if (x->r < 0)
                errf(x->err, sizeof x->err, "%s", res.msg);
}

static void *worker(void *ud) {
        struct probes *p = ud;
        struct http_client h;
        if (http_client_init(&h) < 0)
                return NULL;
        for (;;) {
                pthread_mutex_lock(&p->lock);
                size_t i = p->next++;
                pthread_mutex_unlock(&p->lock);
                if (i >= p->n)
                        break;
                read_one(p, &h, &p->v[i]);
        }
        http_client_free(&h);
        return NULL;
}

/* Reads the status.json of v[from..n) on LS_WORKERS connections. */
static void read_all(struct probes *p, size_t from) {
        p->next = from;
        pthread_t th[LS_WORKERS];
        size_t started = 0;
        for (; started < LS_WORKERS && started < p->n - from; started++)
                if (pthread_create(&th[started], NULL, worker, p) != 0)
                        break;
        if (!started)
                worker(p);
        for (size_t i = 0; i < started; i++)
                pthread_join(th[i], NULL);
}

struct dirs {
        struct probes *p;
        int r;
};

static int on_dir(void *ud, const char *dir) {
        struct dirs *d = ud;
        return d->r = add_probe(d->p, dir);
}

/* The folders under prefix become probes; -errno with the message printed. */
static int list_under(struct probes *p, struct http_client *h, const char *prefix) {
        struct dirs d = { p, 0 };
        struct aws_result res = { 0 };
        int r = s3_list_dirs(p->c, h, p->bucket, prefix, on_dir, &d, &res);
        if (r < 0 && !d.r)
                log_error("%s", res.msg);
        return r;
}

/* Every run under prefix: prefix itself, its folders, or their folders. */
static int find_runs(struct probes *p, struct http_client *h, const char *prefix) {
        int r = add_probe(p, prefix);
        if (r < 0)
                return r;
        read_one(p, h, &p->v[0]);
        if (p->v[0].r != -MF_ENOTFOUND)
                return p->v[0].r == 0 ? 0 : (log_error("%s", p->v[0].err), p->v[0].r);
        size_t level1 = p->n;
        if ((r = list_under(p, h, prefix)) < 0)
                return r;
        read_all(p, level1);
        size_t level2 = p->n;
        for (size_t i = level1; i < level2; i++)
                if (p->v[i].r == -MF_ENOTFOUND && (r = list_under(p, h, p->v[i].prefix)) < 0) /* a job's folder */
                        return r;
        read_all(p, level2);
        return 0;
}

static time_t stamp(const cJSON *st, const char *k) {
        time_t t = 0;
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, k));
        return s && parse_iso8601(s, &t) == 0 ? t : 0;
}

static const char *str(const cJSON *st, const char *k) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, k));
        return s && *s ? s : "?";
}

static int newest_first(const void *a, const void *b) {
        const struct probe *x = *(const struct probe *const *)a, *y = *(const struct probe *const *)b;
        time_t tx = stamp(x->status, "started"), ty = stamp(y->status, "started");
        if (tx != ty)
                return tx < ty ? 1 : -1;
        return -strcmp(str(x->status, "run_id"), str(y->status, "run_id"));
}

static bool running(const cJSON *st) { return !strcmp(str(st, "outcome"), "running"); }

/* Seconds from the start to the last status (to now while running); -1 when unknown. */
static long duration(const cJSON *st, time_t now) {
        time_t a = stamp(st, "started"), b = running(st) ? now : stamp(st, "updated");
        return a && b >= a ? (long)(b - a) : -1;
}

static void fmt_duration(long s, bool more, char out[32]) {
        if (s < 0)
                snprintf(out, 32, "-");
        else if (s >= 86400)
                snprintf(out, 32, "%ldd%02ldh%02ldm%s", s / 86400, s % 86400 / 3600, s % 3600 / 60, more ? "+" : "");
        else if (s >= 3600)
                snprintf(out, 32, "%ldh%02ldm%02lds%s", s / 3600, s % 3600 / 60, s % 60, more ? "+" : "");
        else
                snprintf(out, 32, "%ldm%02lds%s", s / 60, s % 60, more ? "+" : "");
}

/* "$1.23"; "?" when the run priced it but a price is unknown; "-" when status.json has no cost. */
static void fmt_cost(const cJSON *st, char out[32]) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(st, "cost"), *t = cJSON_GetObjectItemCaseSensitive(c, "total");
        if (cJSON_IsNumber(t))
                snprintf(out, 32, t->valuedouble >= 1 ? "$%.2f" : "$%.4f", t->valuedouble);
        else
                snprintf(out, 32, cJSON_IsObject(c) ? "?" : "-");
}

static void print_table(struct probe **rows, size_t n, time_t now) {
        int wn = 4, wr = 6;
        for (size_t i = 0; i < n; i++)
                term_safe_json(rows[i]->status);
        for (size_t i = 0; i < n; i++) {
                wn = MAX(wn, (int)strlen(str(rows[i]->status, "name")));
                wr = MAX(wr, (int)strlen(str(rows[i]->status, "run_id")));
        }
        printf("%-*s  %-*s  %-11s  %-17s  %-11s  %s\n", wn, "NAME", wr, "RUN ID", "OUTCOME", "STARTED", "DURATION",
               "COST");
        for (size_t i = 0; i < n; i++) {
                const cJSON *st = rows[i]->status;
                char started[32] = "-", dur[32], cost[32];
                time_t a = stamp(st, "started");
                if (a) {
                        struct tm tm;
                        gmtime_r(&a, &tm);
                        strftime(started, sizeof started, "%Y-%m-%d %H:%MZ", &tm);
                }
                fmt_duration(duration(st, now), running(st), dur);
                fmt_cost(st, cost);
                printf("%-*s  %-*s  %-11s  %-17s  %-11s  %s\n", wn, str(st, "name"), wr, str(st, "run_id"),
                       str(st, "outcome"), started, dur, cost);
        }
}

static int print_json(struct probe **rows, size_t n, const char *bucket, time_t now) {
        _cleanup_(cjson_deletep) cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; a && i < n; i++) {
                const cJSON *st = rows[i]->status, *c = cJSON_GetObjectItemCaseSensitive(st, "cost");
                cJSON *o = cJSON_CreateObject();
                if (!o || !cJSON_AddItemToArray(a, o))
                        return cJSON_Delete(o), -ENOMEM;
                static const char *const keys[] = { "name", "run_id", "outcome", "started", "updated" };
                for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                        const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, keys[k]);
                        cJSON_AddItemToObject(o, keys[k], cJSON_IsString(v) ? cJSON_CreateString(v->valuestring)
                                                                            : cJSON_CreateNull());
                }
                long d = duration(st, now);
                if (d >= 0)
                        cJSON_AddNumberToObject(o, "duration_seconds", (double)d);
                else
                        cJSON_AddNullToObject(o, "duration_seconds");
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "total");
                if (cJSON_IsNumber(t))
                        cJSON_AddNumberToObject(o, "cost", t->valuedouble);
                else
                        cJSON_AddNullToObject(o, "cost");
                const cJSON *cur = cJSON_GetObjectItemCaseSensitive(c, "currency");
                if (cJSON_IsString(cur))
                        cJSON_AddStringToObject(o, "currency", cur->valuestring);
                const cJSON *why = cJSON_GetObjectItemCaseSensitive(c, "total_unknown");
                if (cJSON_IsString(why))
                        cJSON_AddStringToObject(o, "cost_unknown", why->valuestring);
                char uri[2200];
                snprintf(uri, sizeof uri, "s3://%s/%s", bucket, rows[i]->prefix);
                cJSON_AddStringToObject(o, "results", uri);
        }
        _cleanup_free_ char *text = a ? cJSON_Print(a) : NULL;
        if (!text)
                return -ENOMEM;
        printf("%s\n", text);
        return 0;
}

/* A run whose status.json cannot be read (too big, not JSON): a row of its own, named from its prefix
 * (".../NAME/RUN-ID/"), outcome "unreadable". */
static int unreadable_row(struct probe *x) {
        char name[256] = "?", id[256] = "?";
        size_t l = strlen(x->prefix);
        while (l && x->prefix[l - 1] == '/')
                l--;
        size_t b = l;
        while (b && x->prefix[b - 1] != '/')
                b--;
        snprintf(id, sizeof id, "%.*s", (int)(l - b), x->prefix + b);
        size_t e = b ? b - 1 : 0, a = e;
        while (a && x->prefix[a - 1] != '/')
                a--;
        if (e > a)
                snprintf(name, sizeof name, "%.*s", (int)(e - a), x->prefix + a);
        cJSON_Delete(x->status);
        x->status = cJSON_CreateObject();
        if (!x->status || !cJSON_AddStringToObject(x->status, "name", name) ||
            !cJSON_AddStringToObject(x->status, "run_id", id) ||
            !cJSON_AddStringToObject(x->status, "outcome", "unreadable"))
                return -ENOMEM;
        return 0;
}

int cmd_ls(int argc, char **argv) {
        static const char usage[] = "usage: mayfly ls RESULTS_URI [--json]\n\n"
                                    "  The runs under a results prefix (s3://bucket/results/ or s3://bucket/results/NAME/),\n"
                                    "  newest first: name, run id, outcome, start, duration, cost ('?': a price is\n"
                                    "  unknown; '-': no cost recorded). --json: an array of objects for scripts.\n";
        static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
                                              { 0 } };
        bool json = false;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (ch == 'j')
                        json = true;
                else {
                        fputs(usage, ch == 'h' ? stdout : stderr);
                        return ch == 'h' ? EXIT_OK : EXIT_USAGE;
                }
        }
        if (argc - optind != 1 || !str_has_prefix(argv[optind], "s3://")) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        const char *uri = argv[optind];
        char err[512];
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        if (s3_parse_uri(uri, &bucket, &key, err, sizeof err) < 0) {
                log_error("%s", err);
                return EXIT_USAGE;
        }
        char prefix[2048];
        snprintf(prefix, sizeof prefix, "%s%s", key, *key && !str_has_suffix(key, "/") ? "/" : "");
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct probes p = { .c = &c, .bucket = bucket };
        pthread_mutex_init(&p.lock, NULL);
        struct http_client h;
        int r = http_client_init(&h);
        if (r == 0)
                r = find_runs(&p, &h, prefix);
        http_client_free(&h);
        struct probe **rows = r == 0 ? calloc(p.n + 1, sizeof *rows) : NULL;
        size_t n = 0, failed = 0;
        for (size_t i = 0; rows && i < p.n; i++) {
                if (p.v[i].r == 0)
                        rows[n++] = &p.v[i];
                else if (p.v[i].r != -MF_ENOTFOUND) {
                        if (failed++ < 5) { /* (it names a key from the listing: anyone's words) */
                                char *e = p.v[i].err;
                                term_safe_str(e);
                                log_error("%s", e);
                        }
                        if (unreadable_row(&p.v[i]) == 0)
                                rows[n++] = &p.v[i]; /* listed as unreadable, not hidden */
                }
        }
        if (r == 0 && !rows)
                r = -ENOMEM;
        if (r == 0) {
                qsort(rows, n, sizeof *rows, newest_first);
                if (json)
                        r = print_json(rows, n, bucket, now_wall());
                else if (n)
                        print_table(rows, n, now_wall()); /* its strings made safe for the terminal */
                else
                        log_error("no runs under %s", uri);
        }
        free(rows);
        probes_free(&p);
        pthread_mutex_destroy(&p.lock);
        aws_ctx_free(&c);
        return r < 0 ? exit_code_for(r) : failed ? EXIT_FAIL : EXIT_OK;
}
