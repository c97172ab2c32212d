/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_cp.c — `mayfly cp SRC DST [--recursive]`: S3 <-> local, files and prefixes. */
#include <getopt.h>
#include <libgen.h>
#include <sys/stat.h>

#include "beneath.h"
#include "cmd/cli.h"
#include "aws/xferdir.h"

#define CP_MAX_FILES 1000000

static void cp_usage(FILE *f) {
        fprintf(f, "usage: mayfly cp SRC DST [--recursive [--all]] [--concurrency N] [--part-size MIB] [--quiet]\n\n"
                   "  SRC and DST: one is s3://BUCKET/KEY, the other a local path.\n"
                   "  --recursive      copy a prefix to a directory, or a directory to a prefix. A run's folder\n"
                   "                   (RESULTS_URI/RUN-ID/) brings what a person wants: status.json, report.html,\n"
                   "                   logs/, outputs/ (at outputs/<path>), metrics; not ledger/, live/, checkpoint/\n"
                   "  --all            with a run's folder: all of it, ledger, live chunks and checkpoints too\n"
                   "  --concurrency N  parallel connections (default 2 per CPU, 4..16; here %d; max %d)\n"
                   "  --part-size MIB  part size for ranged GETs and multipart uploads (default 8, min 5)\n"
                   "  --quiet          no progress line (there is none unless stderr is a terminal)\n",
                xfer_default_concurrency(), XFER_MAX_CONCURRENCY);
}

/* A run's folder: the objects below the run, keys relative to it. */
struct run_listing {
        struct cp_obj {
                char *rel;
                uint64_t size;
        } *v;
        size_t n, alloc, skip;
        bool run;                        /* status.json or launch.json: a run's folder */
};

const char *cp_run_path(const char *rel, bool all) {
        static const char *const left_out[] = { "ledger/", "live/", "checkpoint/" };
        for (size_t i = 0; !all && i < ARRAY_SIZE(left_out); i++)
                if (str_has_prefix(rel, left_out[i]))
                        return NULL;
        /* outputs ship at outputs/<path in the workdir>: what a glob outputs/... matched at outputs/outputs/x */
        return str_has_prefix(rel, "outputs/outputs/") ? rel + strlen("outputs/") : rel;
}

static int on_run_object(void *ud, const struct s3_object *o) {
        struct run_listing *l = ud;
        const char *rel = o->key + l->skip;
        struct cp_obj *v = array_room(l->v, l->n, &l->alloc, sizeof *v, 256);
        if (!v)
                return -ENOMEM;
        l->v = v;
        if (!(v[l->n].rel = strdup(rel)))
                return -ENOMEM;
        v[l->n++].size = o->size;
        l->run |= !strcmp(rel, "status.json") || !strcmp(rel, "launch.json");
        return 0;
}

static int cmp_obj(const void *a, const void *b) {
        return strcmp(((const struct cp_obj *)a)->rel, ((const struct cp_obj *)b)->rel);
}

/* Each object of the listing into dir: a run's folder through cp_run_path (outputs/outputs/x stays nested when
 * outputs/x exists too); a key that would land outside dir refused. */
static int add_listing(struct xfer_batch *p, const char *prefix, struct run_listing *l, const char *dir, bool all,
                       struct aws_result *out) {
        qsort(l->v, l->n, sizeof *l->v, cmp_obj);
        for (size_t i = 0; i < l->n; i++) {
                const char *rel = l->v[i].rel, *to = l->run ? cp_run_path(rel, all) : rel;
                struct cp_obj want = { .rel = (char *)to };
                if (to && to != rel && bsearch(&want, l->v, l->n, sizeof *l->v, cmp_obj))
                        to = rel; /* both there: each keeps its own path */
                if (!to || !*rel || str_has_suffix(rel, "/"))
                        continue;
                if (!beneath_rel_ok(to)) {
                        snprintf(out->msg, sizeof out->msg, "refusing key '%s%s': it would land outside %s", prefix,
                                 rel, dir);
                        return -EINVAL;
                }
                size_t n = strlen(prefix) + strlen(rel) + 1, m = strlen(dir) + strlen(to) + 2;
                _cleanup_free_ char *key = malloc(n), *path = malloc(m);
                if (!key || !path)
                        return -ENOMEM;
                snprintf(key, n, "%s%s", prefix, rel);
                snprintf(path, m, "%s%s%s", dir, str_has_suffix(dir, "/") ? "" : "/", to);
                int r = xfer_batch_add(p, key, path, l->v[i].size);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_prefix(struct xfer_batch *p, const char *prefix, const char *dir, bool all, struct aws_result *out) {
        struct run_listing l = { .skip = strlen(prefix) };
        struct http_client h;
        int r = http_client_init(&h);
        if (r == 0)
                r = s3_list(p->c, &h, p->bucket, prefix, on_run_object, &l, out);
        http_client_free(&h);
        if (r == 0)
                r = add_listing(p, prefix, &l, dir, all, out);
        for (size_t i = 0; i < l.n; i++)
                free(l.v[i].rel);
        free(l.v);
        return r;
}

static char *join_key(const char *prefix, const char *name) {
        size_t n = strlen(prefix) + strlen(name) + 2;
        char *k = malloc(n);
        if (k)
                snprintf(k, n, "%s%s%s", prefix, *prefix && !str_has_suffix(prefix, "/") ? "/" : "", name);
        return k;
}

int cmd_cp(int argc, char **argv) {
        static const struct option opts[] = {
                { "recursive", no_argument, NULL, 'r' }, { "concurrency", required_argument, NULL, 'c' },
                { "part-size", required_argument, NULL, 'p' }, { "quiet", no_argument, NULL, 'q' },
                { "all", no_argument, NULL, 'a' }, { "help", no_argument, NULL, 'h' }, { 0 },
        };
        bool recursive = false, quiet = false, all = false;
        struct xfer_opts xo = { .concurrency = xfer_default_concurrency() };
        long v;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "rqh", opts, NULL)) != -1) {
                switch (ch) {
                case 'r': recursive = true; break;
                case 'q': quiet = true; break;
                case 'a': all = true; break;
                case 'c':
                        if (parse_int(optarg, 1, XFER_MAX_CONCURRENCY, &v) < 0) {
                                log_error("--concurrency must be 1..%d", XFER_MAX_CONCURRENCY);
                                return EXIT_USAGE;
                        }
                        xo.concurrency = (int)v;
                        break;
                case 'p':
                        if (parse_int(optarg, 5, 5120, &v) < 0) {
                                log_error("--part-size must be 5..5120 (MiB)");
                                return EXIT_USAGE;
                        }
                        xo.part_size = (uint64_t)v << 20;
                        break;
                case 'h': cp_usage(stdout); return EXIT_OK;
                default: cp_usage(stderr); return EXIT_USAGE;
                }
        }
        if (argc - optind != 2) {
                cp_usage(stderr);
                return EXIT_USAGE;
        }
        const char *src = argv[optind], *dst = argv[optind + 1];
        bool s3src = str_has_prefix(src, "s3://"), s3dst = str_has_prefix(dst, "s3://");
        if (s3src == s3dst) {
                log_error("cp needs exactly one s3:// side (got '%s' and '%s')", src, dst);
                return EXIT_USAGE;
        }
        char err[512];
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        if (s3_parse_uri(s3src ? src : dst, &bucket, &key, err, sizeof err) < 0) {
                log_error("%s", err);
                return EXIT_USAGE;
        }
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct xfer_batch p;
        struct aws_result res = { 0 };
        int r = xfer_batch_init(&p, &c, bucket, s3dst, &xo);
        if (r < 0) {
                aws_ctx_free(&c);
                return EXIT_FAIL;
        }
        if (s3src && recursive) {
                _cleanup_free_ char *prefix = *key && !str_has_suffix(key, "/") ? join_key(key, "") : strdup(key);
                r = prefix ? add_prefix(&p, prefix, dst, all, &res) : -ENOMEM;
                if (r == 0 && p.n == 0) {
                        snprintf(res.msg, sizeof res.msg, "no objects under s3://%s/%s", bucket, prefix);
                        r = -MF_ENOTFOUND;
                }
        } else if (s3src) {
                struct stat st;
                _cleanup_free_ char *kb = strdup(key), *path = NULL;
                const char *base = kb ? basename(kb) : "";
                if (!*key || str_has_suffix(key, "/")) {
                        snprintf(res.msg, sizeof res.msg, "'%s' names a prefix: use --recursive", src);
                        r = -EINVAL;
                } else if (str_has_suffix(dst, "/") || (stat(dst, &st) == 0 && S_ISDIR(st.st_mode))) {
                        size_t n = strlen(dst) + strlen(base) + 2;
                        path = malloc(n);
                        if (path)
                                snprintf(path, n, "%s%s%s", dst, str_has_suffix(dst, "/") ? "" : "/", base);
                        r = path ? xfer_batch_add(&p, key, path, 0) : -ENOMEM;
                } else
                        r = xfer_batch_add(&p, key, dst, 0);
                p.opts.size_unknown = true; /* the download's HEAD tells the progress line */
        } else if (recursive) {
                struct stat st;
                if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        snprintf(res.msg, sizeof res.msg, "%s is not a directory", src);
                        r = -ENOENT;
                } else {
                        _cleanup_free_ char *prefix = *key && !str_has_suffix(key, "/") ? join_key(key, "") : strdup(key);
                        r = prefix ? xfer_batch_add_tree(&p, src, prefix, NULL, NULL, &res) : -ENOMEM;
                }
        } else {
                struct stat st;
                if (stat(src, &st) < 0) {
                        r = -errno;
                        snprintf(res.msg, sizeof res.msg, "cannot read %s: %s", src, strerror(errno));
                } else if (S_ISDIR(st.st_mode)) {
                        snprintf(res.msg, sizeof res.msg, "%s is a directory: use --recursive", src);
                        r = -EINVAL;
                } else {
                        _cleanup_free_ char *sb = strdup(src);
                        _cleanup_free_ char *k = !*key || str_has_suffix(key, "/") ? join_key(key, basename(sb))
                                                                                  : strdup(key);
                        r = k ? xfer_batch_add(&p, k, src, (uint64_t)st.st_size) : -ENOMEM;
                }
        }
        if (r == 0) {
                if (!quiet)
                        p.opts.progress = xfer_progress_new(p.total, STDERR_FILENO);
                r = xfer_batch_run(&p, &res);
                xfer_progress_done(p.opts.progress);
        }
        if (r < 0)
                log_error("%s", res.msg[0] ? res.msg : strerror(-r));
        xfer_batch_free(&p);
        aws_ctx_free(&c);
        return exit_code_for(r);
}
