/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_logs.c — `mayfly logs`: every experiment's stdout and stderr from S3, interleaved by the time their pieces
 * reached S3 (the live chunks while the run goes on, the complete logs for what the chunks do not have), with the
 * attempts marked where each began (the instances' records in the ledger); --follow from the launch until the final
 * status, then the run's exit code. */
#include <getopt.h>
#include <sys/mman.h>

#include "caps.h"
#include "cmd/cli.h"
#include "cmd/logview.h"
#include "termsafe.h"
#include "exitcode.h"
#include "jsonx.h"
#include "run/base/job.h"
#include "aws/s3.h"

#define LOGS_FOLLOW_SECONDS 2
#define LOGS_MAX_CHUNKS 8192          /* listed per stream and round */

struct piece {
        uint64_t off, size;
        time_t mtime;
        bool whole;                   /* the complete log (logs/<exp>/<stream>.log), else a live chunk */
};

struct stream_list {
        struct piece v[LOGS_MAX_CHUNKS];
        size_t n;
        struct piece whole;
        bool have_whole;
};

struct logs {
        struct aws_ctx *c;
        struct http_client *h;
        const char *bucket;
        char run[2048];
        char *names[LV_MAX_EXPS];
        size_t n_names;
        int shown[LV_MAX_EXPS];      /* indexes into names of the experiments printed */
        size_t n_shown;
        bool streams[2];              /* which of stdout, stderr */
        time_t since;
        struct logview v;
        bool started;
        struct stream_list *lists[LV_MAX_EXPS][2];
        time_t newest_beat;
        long ttl;
        bool have_records;
        bool status_error;            /* status.json could not be read (too big): said, not waited on */
        bool raw;                     /* --raw: the bytes as stored */
};

static const char *const stream_names[2] = { "stdout", "stderr" };

/* ---------- what there is ---------- */

struct chunk_ud {
        struct stream_list *l[2];
        uint64_t at[2];               /* what is printed already: chunks wholly before it are not kept */
        size_t skip;
};

static int on_chunk(void *ud, const struct s3_object *o) {
        struct chunk_ud *u = ud;
        const char *rel = o->key + u->skip;
        for (int k = 0; k < 2; k++) {
                size_t sl = strlen(stream_names[k]);
                uint64_t off;
                if (strncmp(rel, stream_names[k], sl) || rel[sl] != '.' || parse_u64(rel + sl + 1, &off) < 0 ||
                    u->l[k]->n >= LOGS_MAX_CHUNKS || !o->size || off + o->size <= u->at[k] || off + o->size < off)
                        continue;
                u->l[k]->v[u->l[k]->n++] = (struct piece){ .off = off, .size = o->size, .mtime = o->mtime };
        }
        return 0;
}

static int on_whole(void *ud, const struct s3_object *o) {
        struct chunk_ud *u = ud;
        const char *rel = o->key + u->skip;
        for (int k = 0; k < 2; k++) {
                char want[16];
                snprintf(want, sizeof want, "%s.log", stream_names[k]);
                if (!strcmp(rel, want)) {
                        u->l[k]->whole = (struct piece){ .off = 0, .size = o->size, .mtime = o->mtime, .whole = true };
                        u->l[k]->have_whole = true;
                }
        }
        return 0;
}

static int by_off(const void *a, const void *b) {
        const struct piece *x = a, *y = b;
        return x->off < y->off ? -1 : x->off > y->off;
}

/* The live chunks (from where shown experiment x is printed to) and the complete logs of experiment i, listed
 * again. */
static int list_streams(struct logs *g, size_t x, int i, struct aws_result *out) {
        char prefix[2600];
        struct chunk_ud u = { .l = { g->lists[i][0], g->lists[i][1] }, .at = { g->v.s[x][0].at, g->v.s[x][1].at } };
        for (int k = 0; k < 2; k++) {
                g->lists[i][k]->n = 0;
                g->lists[i][k]->have_whole = false;
        }
        if (pathf(prefix, sizeof prefix, "%slive/%s/", g->run, g->names[i]) < 0)
                return -ENAMETOOLONG;
        u.skip = strlen(prefix);
        int r = s3_list(g->c, g->h, g->bucket, prefix, on_chunk, &u, out);
        if (r == 0 && pathf(prefix, sizeof prefix, "%slogs/%s/", g->run, g->names[i]) == 0) {
                u.skip = strlen(prefix);
                r = s3_list(g->c, g->h, g->bucket, prefix, on_whole, &u, out);
        }
        for (int k = 0; k < 2; k++)
                qsort(g->lists[i][k]->v, g->lists[i][k]->n, sizeof(struct piece), by_off);
        return r;
}

/* The next piece of a stream from byte `at`: the chunk that holds it, else the complete log. */
static bool next_piece(const struct stream_list *l, uint64_t at, struct piece *ret) {
        for (size_t k = 0; k < l->n; k++)
                if (l->v[k].off <= at && l->v[k].off + l->v[k].size > at) {
                        *ret = l->v[k];
                        return true;
                }
        if (l->have_whole && l->whole.size > at) {
                *ret = l->whole;
                return true;
        }
        return false;
}

/* ---------- printing ---------- */

static int print_range(struct logs *g, int i, int k, const struct piece *p, struct aws_result *out) {
        char key[2700];
        if (p->whole ? pathf(key, sizeof key, "%slogs/%s/%s.log", g->run, g->names[i], stream_names[k])
                     : pathf(key, sizeof key, "%slive/%s/%s.%012llu", g->run, g->names[i], stream_names[k],
                             (unsigned long long)p->off) < 0)
                return -ENAMETOOLONG;
        int si = -1;
        for (size_t x = 0; x < g->n_shown; x++)
                if (g->shown[x] == i)
                        si = (int)x;
        uint64_t at = g->v.s[si][k].at;
        if (g->since && p->mtime && p->mtime < g->since) {
                lv_skip(&g->v, si, k, p->off + p->size);
                return 0;
        }
        if (!p->whole && p->size > CAP_LIVE_CHUNK) {
                char sz[32], lim[32];
                fmt_bytes(p->size, sz);
                fmt_bytes(CAP_LIVE_CHUNK, lim);
                errf(out->msg, sizeof out->msg, "s3://%s/%s is %s, more than a live log chunk may be (%s): not read",
                     g->bucket, key, sz, lim);
                return -EFBIG;
        }
        /* in ranges: what is held in memory stays CAP_LOG_READ, whatever the object's size */
        _cleanup_close_ int fd = memfd_create("mayfly-logs", MFD_CLOEXEC);
        _cleanup_free_ char *buf = malloc(CAP_LOG_READ);
        if (fd < 0 || !buf) {
                errf(out->msg, sizeof out->msg, "reading %s: %s", key, fd < 0 ? strerror(errno) : "out of memory");
                return fd < 0 ? -errno : -ENOMEM;
        }
        uint64_t end = p->off + p->size;
        while (at < end) {
                uint64_t len = MIN(end - at, (uint64_t)CAP_LOG_READ);
                if (ftruncate(fd, 0) < 0) {
                        errf(out->msg, sizeof out->msg, "reading %s: %s", key, strerror(errno));
                        return -errno;
                }
                int r = s3_get_range(g->c, g->h, g->bucket, key, at - p->off, len, fd, 0, NULL, NULL, NULL, NULL, out);
                if (r == -MF_ESIZE || r == -MF_ENOTFOUND || out->status == 416)
                        return 0; /* replaced or gone since it was listed: listed again next round */
                if (r < 0)
                        return r;
                ssize_t got = pread(fd, buf, len, 0);
                if (got <= 0) {
                        errf(out->msg, sizeof out->msg, "reading %s: %s", key, got < 0 ? strerror(errno) : "no bytes");
                        return got < 0 ? -errno : -EIO;
                }
                lv_feed(&g->v, si, k, at, buf, (size_t)got);
                at += (uint64_t)got;
        }
        return 0;
}

/* Every stream shown, from where it was printed to, merged by the time each piece reached S3 (a stream's own
 * pieces in their order). */
static int print_round(struct logs *g, struct aws_result *out) {
        for (size_t x = 0; x < g->n_shown; x++) {
                int r = list_streams(g, x, g->shown[x], out);
                if (r < 0)
                        return r;
        }
        for (;;) {
                int best_x = -1, best_k = -1;
                struct piece best = { 0 };
                for (size_t x = 0; x < g->n_shown; x++)
                        for (int k = 0; k < 2; k++) {
                                struct piece p;
                                if (!g->streams[k] ||
                                    !next_piece(g->lists[g->shown[x]][k], g->v.s[x][k].at, &p))
                                        continue;
                                if (best_x < 0 || p.mtime < best.mtime) {
                                        best = p;
                                        best_x = (int)x;
                                        best_k = k;
                                }
                        }
                if (best_x < 0)
                        return 0;
                uint64_t before = g->v.s[best_x][best_k].at;
                int r = print_range(g, g->shown[best_x], best_k, &best, out);
                if (r < 0)
                        return r;
                if (g->v.s[best_x][best_k].at == before)
                        return 0; /* nothing came of it (an object shorter than listed): again next round */
        }
}

/* ---------- the run: its experiments, its instances' records ---------- */

static int index_of(const struct logs *g, const char *name) {
        for (size_t i = 0; i < g->n_names; i++)
                if (!strcmp(g->names[i], name))
                        return (int)i;
        return -1;
}

static void add_name(struct logs *g, const char *name) {
        char safe[256];
        if (!name || strlen(name) >= sizeof safe)
                return;
        safe[term_safe(name, strlen(name), false, safe)] = 0; /* it prefixes every line */
        if (*safe && index_of(g, safe) < 0 && g->n_names < LV_MAX_EXPS)
                g->names[g->n_names++] = strdup(safe);
}

static int on_dir(void *ud, const char *dir) {
        struct logs *g = ud;
        const char *b = dir + strlen(dir);
        while (b > dir && b[-1] == '/')
                b--;
        const char *a = b;
        while (a > dir && a[-1] != '/')
                a--;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(b - a), a);
        add_name(g, name);
        return 0;
}

/* The attempts the instances' records list: markers where each began; the newest heartbeat. */
static void read_records(struct logs *g, struct aws_result *out);

/* status.json (NULL before the first): its outcome, and the experiments' names (else those with logs in S3). */
static cJSON *read_status(struct logs *g, struct aws_result *out) {
        char key[2100];
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        cJSON *st = NULL;
        int r = pathf(key, sizeof key, "%sstatus.json", g->run);
        if (r == 0)
                r = s3_get_capped(g->c, g->h, g->bucket, key, CAP_STATUS_JSON, "a status.json", &body, &len, out);
        if (r == 0)
                st = cJSON_ParseWithLength(body, len);
        g->status_error = r == -EFBIG; /* out->msg says which and how big */
        if (g->status_error)
                return NULL;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(st, "experiments"))
                add_name(g, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name")));
        if (!g->n_names && pathf(key, sizeof key, "%slive/", g->run) == 0)
                s3_list_dirs(g->c, g->h, g->bucket, key, on_dir, g, out);
        return st;
}

struct rec_ud {
        struct logs *g;
        char keys[64][2200];
        size_t n;
};

static int on_record(void *ud, const struct s3_object *o) {
        struct rec_ud *u = ud;
        if (u->n < ARRAY_SIZE(u->keys) && str_has_suffix(o->key, ".json"))
                snprintf(u->keys[u->n++], sizeof u->keys[0], "%s", o->key);
        return 0;
}

static void record_marks(struct logs *g, const cJSON *rec) {
        const char *inst = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "instance"));
        const cJSON *a;
        time_t t = (time_t)json_int(rec, "time", 0, JSON_TIME_MAX, 0);
        if (t > g->newest_beat) {
                g->newest_beat = t;
                g->ttl = (long)json_int(rec, "ttl", 1, 86400, 60);
        }
        g->have_records = true;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(rec, "attempts")) {
                const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "experiment"));
                int n = (int)json_int(a, "attempt", 0, INT_MAX, 0);
                long long off = json_int(a, "stdout_from", 0, 1LL << 53, -1);
                /* a gang's rank > 0 wrote its own log (logs/<experiment>/node-<r>/): no mark in rank 0's */
                int i = e && json_int(a, "node", 0, INT_MAX, 0) == 0 ? index_of(g, e) : -1;
                for (size_t x = 0; i >= 0 && x < g->n_shown; x++)
                        if (g->shown[x] == i && n > 0 && off >= 0)
                                lv_mark(&g->v, (int)x, n, inst, (uint64_t)off);
        }
}

static void read_records(struct logs *g, struct aws_result *out) {
        char prefix[2100];
        struct rec_ud *u = calloc(1, sizeof *u);
        if (!u || pathf(prefix, sizeof prefix, "%sledger/instances/", g->run) < 0 ||
            s3_list(g->c, g->h, g->bucket, prefix, on_record, u, out) < 0) {
                free(u);
                return;
        }
        for (size_t k = 0; k < u->n; k++) {
                _cleanup_free_ char *body = NULL;
                size_t len = 0;
                struct aws_result o2 = { 0 };
                if (s3_get_capped(g->c, g->h, g->bucket, u->keys[k], CAP_LEDGER_RECORD, "a ledger record", &body, &len,
                                  &o2) < 0) {
                        if (o2.size > 0) { /* a record nobody may write that big: left out */
                                term_safe_str(o2.msg);
                                log_warn("%s", o2.msg);
                        }
                        continue;
                }
                _cleanup_(cjson_deletep) cJSON *rec = cJSON_ParseWithLength(body, len);
                if (cJSON_IsObject(rec))
                        record_marks(g, rec);
        }
        free(u);
}

/* --since: a duration back from now (90s, 10m, 2h, 1d) or a UTC time (2026-12-07T15:30:00Z). */
static int parse_since(const char *s, time_t *ret) {
        if (parse_iso8601(s, ret) == 0)
                return 0;
        char *end = NULL;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (errno || end == s || n < 0 || n > 100LL * 365 * 86400)
                return -EINVAL;
        long long mul = !*end || !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600
                        : !strcmp(end, "d")        ? 86400
                                                   : 0;
        if (!mul)
                return -EINVAL;
        *ret = now_wall() - (time_t)(n * mul);
        return 0;
}

/* The run under uri: the newest with a status.json, else (a run just launched) the one whose launch.json is there. */
static int find_run(struct logs *g, const char *uri, char **bucket, struct aws_result *out) {
        int r = cli_find_run(g->c, g->h, uri, bucket, g->run, out);
        if (r != -MF_ENOTFOUND)
                return r;
        _cleanup_free_ char *b = NULL, *key = NULL;
        char lk[S3_MAX_KEY + 1], err[256];
        uint64_t size;
        char etag[128];
        struct aws_result o2 = { 0 };
        if (s3_parse_uri(uri, &b, &key, err, sizeof err) < 0 ||
            pathf(g->run, sizeof g->run, "%s%s", key, *key && !str_has_suffix(key, "/") ? "/" : "") < 0 ||
            pathf(lk, sizeof lk, "%slaunch.json", g->run) < 0 || s3_head(g->c, g->h, b, lk, &size, etag, &o2) < 0)
                return r; /* no run there: cli_find_run's message */
        free(*bucket);
        *bucket = TAKE_PTR(b);
        return 0;
}

/* What is shown, once the experiments' names are known: 0, or -EINVAL for an unknown --experiment. */
static int choose(struct logs *g, const char *exp, size_t tail) {
        if (exp) {
                int i = index_of(g, exp);
                const char *node = strstr(exp, "/node-");
                if (i < 0 && node) { /* a gang's rank > 0 (logs/<experiment>/node-<r>/): its experiment's */
                        char base[256];
                        snprintf(base, sizeof base, "%.*s", (int)(node - exp), exp);
                        if (index_of(g, base) >= 0) {
                                add_name(g, exp);
                                i = index_of(g, exp);
                        }
                }
                if (i < 0) {
                        char list[1024] = "";
                        for (size_t k = 0; k < g->n_names; k++)
                                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "",
                                         g->names[k]);
                        log_error("no experiment '%s' in this run; its experiments: %s", exp, list);
                        return -EINVAL;
                }
                g->shown[g->n_shown++] = i;
        } else
                for (size_t i = 0; i < g->n_names; i++)
                        g->shown[g->n_shown++] = (int)i;
        const char *names[LV_MAX_EXPS];
        for (size_t x = 0; x < g->n_shown; x++) {
                names[x] = g->names[g->shown[x]];
                for (int k = 0; k < 2; k++)
                        if (!g->lists[g->shown[x]][k] && !(g->lists[g->shown[x]][k] = calloc(1, sizeof(struct stream_list))))
                                return -ENOMEM;
        }
        int r = lv_init(&g->v, stdout, names, g->n_shown, tail);
        g->started = r == 0;
        g->v.raw = g->raw;
        return r;
}

struct logs_opts {
        const char *exp;
        bool follow;
        size_t tail;
};

/* Rounds until the logs are printed (once, or with --follow until the final status). The exit code. */
static int follow_run(struct logs *g, const struct logs_opts *o, struct aws_result *out) {
        for (bool first = true;; first = false) {
                _cleanup_(cjson_deletep) cJSON *st = read_status(g, out);
                if (g->status_error) {
                        term_safe_str(out->msg);
                        log_error("%s", out->msg);
                        return EXIT_FAIL;
                }
                const char *outcome = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "outcome"));
                bool final = outcome && strcmp(outcome, "running");
                int r = 0;
                if (!g->started && g->n_names && (st || !o->exp) && (r = choose(g, o->exp, o->tail)) < 0)
                        return exit_code_for(r);
                if (g->started) {
                        read_records(g, out);
                        if ((r = print_round(g, out)) < 0) {
                                term_safe_str(out->msg);
                                log_error("%s", out->msg);
                                return exit_code_for(r);
                        }
                        if (final || !o->follow)
                                lv_flush(&g->v);
                        lv_tail_done(&g->v);
                }
                fflush(stdout);
                if (!o->follow) {
                        if (!g->started)
                                log_info("the run has not written any log yet");
                        return EXIT_OK;
                }
                if (final)
                        return strcmp(outcome, "succeeded") ? EXIT_RUN_FAILED : EXIT_OK;
                if (g->have_records && now_wall() - g->newest_beat > g->ttl * 3 + 30) {
                        log_error("the run is LOST: no instance has beaten its heartbeat for %llds (mayfly status "
                                  "says more)", (long long)(now_wall() - g->newest_beat));
                        return EXIT_RUN_FAILED;
                }
                (void)first;
                sleep(LOGS_FOLLOW_SECONDS);
        }
}

static const char logs_usage[] =
        "usage: mayfly logs RESULTS_URI [--experiment NAME [--node R]] [--stdout|--stderr] [--follow]\n"
        "                   [--since WHEN] [--tail N] [--raw]\n\n"
        "  Prints a run's logs from S3: every experiment's stdout and stderr, interleaved in the order they\n"
        "  reached S3, each line prefixed with its experiment ('|' stdout, '!' stderr) unless --experiment\n"
        "  chooses one; '-- attempt N on INSTANCE (resumed)' where an attempt began on another instance.\n"
        "  --follow starts as soon as the run is launched and returns once the run has ended: 0 when it\n"
        "  succeeded, 6 otherwise. --since 10m (or 2h, 1d, a UTC time); --tail N: the last N lines.\n"
        "  Escape sequences other than colours are dropped (the logs are the experiment's words, and it\n"
        "  may not drive your terminal); --raw prints the bytes as stored. --node R: rank R's logs of a gang\n"
        "  (an experiment with \"nodes\"; without it, rank 0's).\n";

/* What the command line asks for. */
struct logs_args {
        struct logs_opts o;
        bool streams[2], raw;
        time_t since;
        uint64_t tail, node;
        char exp_node[300];
};

/* -1: go on; else the exit code (usage, or --help). */
static int logs_parse(int argc, char **argv, struct logs_args *a) {
        static const struct option opts[] = { { "experiment", required_argument, NULL, 'x' },
                                              { "stderr", no_argument, NULL, 'E' }, { "stdout", no_argument, NULL, 'O' },
                                              { "follow", no_argument, NULL, 'f' }, { "since", required_argument, NULL, 's' },
                                              { "tail", required_argument, NULL, 'n' }, { "raw", no_argument, NULL, 'R' },
                                              { "node", required_argument, NULL, 'N' },
                                              { "help", no_argument, NULL, 'h' }, { 0 } };
        *a = (struct logs_args){ .streams = { true, true } };
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "fhn:", opts, NULL)) != -1) {
                switch (ch) {
                case 'x': a->o.exp = optarg; break;
                case 'E': a->streams[0] = false; break;
                case 'O': a->streams[1] = false; break;
                case 'f': a->o.follow = true; break;
                case 'R': a->raw = true; break;
                case 's':
                        if (parse_since(optarg, &a->since) < 0) {
                                log_error("--since %s: not a duration (90s, 10m, 2h, 1d) or a UTC time", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 'n':
                        if (parse_u64(optarg, &a->tail) < 0 || a->tail > 1000000) {
                                log_error("--tail %s: not a number of lines (at most 1000000)", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 'N':
                        if (parse_u64(optarg, &a->node) < 0 || a->node >= JOB_MAX_NODES) {
                                log_error("--node %s: not a rank (0..%d)", optarg, JOB_MAX_NODES - 1);
                                return EXIT_USAGE;
                        }
                        break;
                case 'h': fputs(logs_usage, stdout); return EXIT_OK;
                default: fputs(logs_usage, stderr); return EXIT_USAGE;
                }
        }
        if (argc - optind != 1 || (!a->streams[0] && !a->streams[1]) || (a->node && !a->o.exp)) {
                fputs(logs_usage, stderr);
                return EXIT_USAGE;
        }
        if (a->node) { /* rank R's own logs: logs/<experiment>/node-<R>/ */
                snprintf(a->exp_node, sizeof a->exp_node, "%s/node-%llu", a->o.exp, (unsigned long long)a->node);
                a->o.exp = a->exp_node;
        }
        a->o.tail = (size_t)a->tail;
        return -1;
}

int cmd_logs(int argc, char **argv) {
        struct logs_args args;
        int pr = logs_parse(argc, argv, &args);
        if (pr >= 0)
                return pr;
        struct logs_opts o = args.o;
        bool *streams = args.streams, raw = args.raw;
        time_t since = args.since;
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct http_client h;
        struct aws_result res = { 0 };
        _cleanup_free_ char *bucket = NULL;
        struct logs *g = calloc(1, sizeof *g);
        int rc = EXIT_FAIL, r = g ? http_client_init(&h) : -ENOMEM;
        if (g && r == 0) {
                g->c = &c; /* (field by field: the struct is megabytes, never a temporary on the stack) */
                g->h = &h;
                g->streams[0] = streams[0];
                g->streams[1] = streams[1];
                g->since = since;
                g->ttl = 60;
                g->raw = raw;
                r = find_run(g, argv[optind], &bucket, &res);
                if (r < 0)
                        log_error("%s", res.msg);
                else {
                        g->bucket = bucket;
                        rc = follow_run(g, &o, &res);
                }
                http_client_free(&h);
        }
        if (g) {
                if (g->started)
                        lv_free(&g->v);
                for (size_t i = 0; i < g->n_names; i++) {
                        free(g->names[i]);
                        free(g->lists[i][0]);
                        free(g->lists[i][1]);
                }
                free(g);
        }
        aws_ctx_free(&c);
        return r < 0 ? exit_code_for(r) : rc;
}
