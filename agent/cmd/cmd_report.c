/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_report.c — `mayfly report RESULTS_URI [-o FILE]`: report.html rendered on the user's machine from what the run
 * left in S3 (status.json, metrics.jsonl or its live chunks, the end of each log), links presigned. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <sys/mman.h>

#include "aws/s3.h"
#include "caps.h"
#include "cmd/cli.h"
#include "run/view/report.h"
#include "run/base/runstate.h"

#define REPORT_DEFAULT_EXPIRES 86400

struct fetch {
        struct aws_ctx *c;
        struct http_client h;
        const char *bucket;
        const char *run;                 /* the run's key prefix */
        long expires;
        time_t now, until;
        struct report_build b;
};

/* [off, off+len) of an object into memory (through a memfd: s3_get_range writes to an fd). */
static int get_range(struct fetch *f, const char *key, uint64_t off, uint64_t len, char **ret, struct aws_result *out) {
        char *mem = malloc(len + 1);
        if (!mem)
                return -ENOMEM;
        _cleanup_close_ int fd = memfd_create("mayfly-report", MFD_CLOEXEC);
        int r = fd < 0 ? -errno : 0;
        if (r == 0 && len)
                r = s3_get_range(f->c, &f->h, f->bucket, key, off, len, fd, 0, NULL, NULL, NULL, NULL, out);
        if (r == 0 && len && pread(fd, mem, len, 0) != (ssize_t)len)
                r = -EIO;
        if (r < 0) {
                free(mem);
                return r;
        }
        mem[len] = 0;
        *ret = mem;
        return 0;
}

/* The last `max` bytes of an object; -MF_ENOTFOUND when it does not exist. */
static int get_tail(struct fetch *f, const char *key, uint64_t max, char **ret, size_t *ret_len, bool *whole) {
        struct aws_result res;
        uint64_t size = 0;
        int r = s3_head(f->c, &f->h, f->bucket, key, &size, NULL, &res);
        if (r < 0)
                return r;
        uint64_t off = size > max ? size - max : 0;
        r = get_range(f, key, off, size - off, ret, &res);
        if (r == 0) {
                *ret_len = (size_t)(size - off);
                *whole = off == 0;
        }
        return r;
}

/* Live chunks "<dir><name>.<offset>", newest last. */
struct chunks {
        struct chunk {
                uint64_t off, size;
                char key[1024];
        } *v;
        size_t n, cap;
        const char *want;                /* "<name>." */
        size_t dir_len;
};

static int on_chunk(void *ud, const struct s3_object *o) {
        struct chunks *c = ud;
        const char *base = o->key + c->dir_len;
        uint64_t off;
        if (strlen(o->key) <= c->dir_len || !str_has_prefix(base, c->want) || strchr(base, '/') ||
            parse_u64(base + strlen(c->want), &off) < 0 || strlen(o->key) >= sizeof c->v->key)
                return 0;
        if (c->n == c->cap) {
                size_t cap = c->cap ? 2 * c->cap : 64;
                struct chunk *p = realloc(c->v, cap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                c->v = p;
                c->cap = cap;
        }
        c->v[c->n].off = off;
        c->v[c->n].size = o->size;
        snprintf(c->v[c->n].key, sizeof c->v->key, "%s", o->key);
        c->n++;
        return 0;
}

static int cmp_chunk(const void *a, const void *b) {
        const struct chunk *x = a, *y = b;
        return x->off < y->off ? -1 : x->off > y->off;
}

/* A stream the run is still writing: the last `max` bytes of its live chunks (the first one taken in part). */
static int get_live_tail(struct fetch *f, const char *dir, const char *name, uint64_t max, char **ret, size_t *ret_len,
                         bool *whole) {
        char prefix[2400], want[300];
        snprintf(want, sizeof want, "%s.", name);
        int dl = snprintf(prefix, sizeof prefix, "%slive/%s", f->run, dir);
        snprintf(prefix + dl, sizeof prefix - (size_t)dl, "%s", want); /* list only this stream's chunks */
        struct chunks c = { .want = want, .dir_len = (size_t)dl };
        struct aws_result res;
        int r = s3_list(f->c, &f->h, f->bucket, prefix, on_chunk, &c, &res);
        if (r == 0 && !c.n)
                r = -MF_ENOTFOUND;
        size_t first = c.n;
        uint64_t total = 0, skip = 0;
        if (r == 0) {
                qsort(c.v, c.n, sizeof *c.v, cmp_chunk);
                while (first > 0 && total < max)
                        total += c.v[--first].size;
                skip = total > max ? total - max : 0;
        }
        _cleanup_(buf_freep) struct buf b = BUF_INIT(total - skip + 1);
        for (size_t i = first; r == 0 && i < c.n; i++) {
                char *part = NULL;
                uint64_t off = i == first ? skip : 0;
                r = get_range(f, c.v[i].key, off, c.v[i].size - off, &part, &res);
                if (r == 0)
                        r = buf_add(&b, part, c.v[i].size - off);
                free(part);
        }
        if (r == 0) {
                *whole = first < c.n && c.v[first].off == 0 && !skip;
                *ret_len = b.len;
                *ret = buf_steal(&b);
        }
        free(c.v);
        return r;
}

/* One log for tail_read: the shipped log when there is one, else its live chunks. */
struct s3log {
        struct fetch *f;
        const char *key, *dir, *stream;
        int final;                       /* -1 not known yet, 0 live chunks, 1 the shipped log */
};

static int s3log_read(void *ud, size_t max, char **ret, size_t *ret_len, bool *whole) {
        struct s3log *l = ud;
        int r = -MF_ENOTFOUND;
        if (l->final != 0) {
                r = get_tail(l->f, l->key, max, ret, ret_len, whole);
                l->final = r == -MF_ENOTFOUND ? 0 : 1;
        }
        if (l->final == 0)
                r = get_live_tail(l->f, l->dir, l->stream, max, ret, ret_len, whole);
        return r;
}

/* A presigned link to an object of the run; NULL when it cannot be signed. */
static char *link_to(struct fetch *f, const char *rel) {
        char key[2400], err[256];
        snprintf(key, sizeof key, "%s%s", f->run, rel);
        struct buf url = BUF_INIT(16384);
        time_t until = 0;
        if (s3_presign_get(f->c, f->bucket, key, f->expires, f->now, &url, &until, err, sizeof err) < 0) {
                buf_free(&url);
                return NULL;
        }
        f->until = f->until ? MIN(f->until, until) : until;
        return buf_steal(&url);
}

static int fetch_logs(struct fetch *f) {
        static const char *const streams[] = { "stdout", "stderr" };
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(f->b.status, "experiments")) {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
                if (!name || !*name || strchr(name, '/'))
                        continue;
                for (size_t k = 0; k < 2; k++) {
                        char key[2400], rel[600], dir[300];
                        snprintf(rel, sizeof rel, "logs/%s/%s.log", name, streams[k]);
                        snprintf(key, sizeof key, "%s%s", f->run, rel);
                        snprintf(dir, sizeof dir, "%s/", name);
                        struct s3log l = { .f = f, .key = key, .dir = dir, .stream = streams[k], .final = -1 };
                        int r = report_build_tail(&f->b, name, streams[k], s3log_read, &l, NULL);
                        if (r == -MF_ENOTFOUND)
                                continue; /* not started */
                        if (r < 0)
                                return r;
                        if (l.final == 1) /* the whole log to link to */
                                f->b.logs[f->b.in.n_logs - 1].href = report_build_own(&f->b, link_to(f, rel));
                }
        }
        return 0;
}

static int fetch_metrics(struct fetch *f) {
        char key[2400];
        snprintf(key, sizeof key, "%smetrics.jsonl", f->run);
        size_t len = 0;
        bool whole;
        int r = get_tail(f, key, REPORT_MAX_METRICS, &f->b.metrics, &len, &whole);
        if (r == -MF_ENOTFOUND)
                r = get_live_tail(f, "", "metrics", REPORT_MAX_METRICS, &f->b.metrics, &len, &whole);
        f->b.in.metrics = f->b.metrics;
        f->b.in.metrics_len = f->b.metrics ? len : 0;
        return r == -MF_ENOTFOUND ? 0 : r;
}

/* Each experiment's own metrics ($MAYFLY_METRICS_FILE): the end of its shipped copy, else of its live chunks. */
static int fetch_xmetrics(struct fetch *f) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(f->b.status, "experiments")) {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
                if (!name || !*name || strchr(name, '/'))
                        continue;
                char key[2400], dir[300];
                snprintf(key, sizeof key, "%slogs/%s/%s", f->run, name, XMETRICS_FILE);
                snprintf(dir, sizeof dir, "%s/", name);
                struct s3log l = { .f = f, .key = key, .dir = dir, .stream = XMETRICS_STREAM, .final = -1 };
                char *text = NULL;
                size_t len = 0;
                bool whole;
                int r = s3log_read(&l, REPORT_XM_MAX_BYTES, &text, &len, &whole);
                if (r == -MF_ENOTFOUND)
                        continue; /* it wrote none */
                if (r == 0)
                        r = report_build_xmetrics(&f->b, name, text, len);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int on_file(void *ud, const struct s3_object *o) {
        struct fetch *f = ud;
        const char *rel = o->key + strlen(f->run);
        return *rel ? report_build_file(&f->b, rel, link_to(f, rel), o->size) : 0;
}

static int fetch_files(struct fetch *f) {
        static const char *const dirs[] = { "logs/", "outputs/" };
        struct aws_result res;
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                char prefix[2400];
                snprintf(prefix, sizeof prefix, "%s%s", f->run, dirs[i]);
                int r = s3_list(f->c, &f->h, f->bucket, prefix, on_file, f, &res);
                if (r < 0) {
                        log_error("%s", res.msg);
                        return r;
                }
        }
        static const char *const top[] = { "status.json", "metrics.jsonl" };
        for (size_t i = 0; i < ARRAY_SIZE(top); i++) {
                char key[2400];
                uint64_t size = 0;
                snprintf(key, sizeof key, "%s%s", f->run, top[i]);
                if (s3_head(f->c, &f->h, f->bucket, key, &size, NULL, &res) == 0) {
                        int r = report_build_file(&f->b, top[i], link_to(f, top[i]), size);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int fetch_status(struct fetch *f, struct aws_result *out) {
        char key[2400];
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        snprintf(key, sizeof key, "%sstatus.json", f->run);
        int r = s3_get_capped(f->c, &f->h, f->bucket, key, CAP_STATUS_JSON, "a status.json", &body, &len, out);
        if (r < 0)
                return r;
        f->b.status = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(f->b.status)) {
                errf(out->msg, sizeof out->msg, "s3://%s/%s is not a JSON object", f->bucket, key);
                return -MF_EPARSE;
        }
        f->b.in.status = f->b.status;
        return 0;
}

static int write_out(const char *path, const struct buf *html) {
        if (!strcmp(path, "-")) {
                size_t n = fwrite(html->data, 1, html->len, stdout);
                return n == html->len && fflush(stdout) == 0 ? 0 : -EIO;
        }
        /* presigned links are bearer tokens for the run's objects: the page is for its owner */
        int r = write_file_atomic(path, html->data, html->len, 0600);
        if (r < 0)
                log_error("cannot write %s: %s", path, strerror(-r));
        return r;
}

static int parse_args(int argc, char **argv, const char **uri, const char **outp, long *expires) {
        static const char usage[] =
                "usage: mayfly report RESULTS_URI [-o FILE] [--expires SECONDS]\n\n"
                "  Renders report.html for a run from S3: s3://bucket/prefix/NAME/RUN-ID/, or s3://bucket/prefix/NAME/\n"
                "  for the newest run of the job. Written to FILE (- for stdout; default report-NAME-RUN-ID.html, mode\n"
                "  0600: its links are presigned). --expires: how long the links work, 1..604800 s (default 86400;\n"
                "  never longer than the credentials that sign them).\n";
        static const struct option opts[] = { { "output", required_argument, NULL, 'o' },
                                              { "expires", required_argument, NULL, 'e' },
                                              { "help", no_argument, NULL, 'h' }, { 0 } };
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
                if (ch == 'o')
                        *outp = optarg;
                else if (ch == 'e' && parse_int(optarg, 1, SIGV4_MAX_PRESIGN_EXPIRES, expires) == 0)
                        continue;
                else {
                        if (ch == 'e')
                                log_error("--expires must be 1..%d seconds (7 days)", SIGV4_MAX_PRESIGN_EXPIRES);
                        fputs(usage, ch == 'h' ? stdout : stderr);
                        return ch == 'h' ? 1 : -1;
                }
        }
        if (argc - optind != 1 || !str_has_prefix(argv[optind], "s3://")) {
                fputs(usage, stderr);
                return -1;
        }
        *uri = argv[optind];
        return 0;
}

static int gather(struct fetch *f, const char *uri, char **bucket, char run[2048], struct aws_result *res) {
        int r = cli_find_run(f->c, &f->h, uri, bucket, run, res);
        if (r == 0) {
                f->bucket = *bucket;
                f->run = run;
                r = fetch_status(f, res);
        }
        if (r < 0) {
                log_error("%s", res->msg);
                return r;
        }
        r = fetch_metrics(f);
        if (r == 0)
                r = fetch_logs(f);
        if (r == 0)
                r = fetch_xmetrics(f);
        if (r == 0)
                r = fetch_files(f);
        if (r < 0)
                log_error("cannot read the run's files: %s", strerror(-r));
        return r;
}

int cmd_report(int argc, char **argv) {
        const char *uri = NULL, *outp = NULL;
        long expires = REPORT_DEFAULT_EXPIRES;
        int s = parse_args(argc, argv, &uri, &outp, &expires);
        if (s)
                return s > 0 ? EXIT_OK : EXIT_USAGE;
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct fetch f = { .c = &c, .expires = expires, .now = now_wall() };
        struct aws_result res = { 0 };
        _cleanup_free_ char *bucket = NULL;
        char run[2048];
        int r = http_client_init(&f.h);
        if (r == 0)
                r = gather(&f, uri, &bucket, run, &res);
        char note[600] = "", when[40], until[40], path[600];
        struct tm tm;
        gmtime_r(&f.now, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", &tm);
        gmtime_r(&f.until, &tm);
        strftime(until, sizeof until, "%Y-%m-%d %H:%M:%SZ", &tm);
        errf(note, sizeof note, "Rendered by mayfly report at %s from s3://%s/%s%s%s.", when, bucket ? bucket : "",
                 r == 0 ? run : "", f.until ? "; its links work until " : "", f.until ? until : "");
        f.b.in.now = f.now;
        f.b.in.note = note;
        _cleanup_(buf_freep) struct buf html = BUF_INIT(REPORT_MAX_BYTES);
        if (r == 0 && (r = report_render(&f.b.in, &html)) < 0)
                log_error("cannot render the report: %s", strerror(-r));
        if (r == 0) {
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f.b.status, "name"));
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f.b.status, "run_id"));
                snprintf(path, sizeof path, "report-%s-%s.html", name && !strchr(name, '/') ? name : "run",
                         id && !strchr(id, '/') ? id : "unknown");
                r = write_out(outp ? outp : path, &html);
                if (r == 0 && !(outp && !strcmp(outp, "-")))
                        printf("%s\n", outp ? outp : path);
        }
        report_build_free(&f.b);
        http_client_free(&f.h);
        aws_ctx_free(&c);
        return exit_code_for(r);
}
