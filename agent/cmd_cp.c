/* cmd_cp.c — `mayfly cp SRC DST [--recursive]`: S3 <-> local, files and prefixes. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "cli.h"
#include "transfer.h"

#define CP_MAX_FILES 1000000

static void cp_usage(FILE *f) {
        fprintf(f, "usage: mayfly cp SRC DST [--recursive] [--concurrency N] [--part-size MIB] [--quiet]\n\n"
                   "  SRC and DST: one is s3://BUCKET/KEY, the other a local path.\n"
                   "  --recursive      copy a prefix to a directory, or a directory to a prefix\n"
                   "  --concurrency N  parallel connections (default %d, max %d)\n"
                   "  --part-size MIB  part size for ranged GETs and multipart uploads (default 8, min 5)\n"
                   "  --quiet          no progress line (there is none unless stderr is a terminal)\n",
                XFER_DEFAULT_CONCURRENCY, XFER_MAX_CONCURRENCY);
}

struct item {
        char *key;      /* S3 key */
        char *path;     /* local path */
        uint64_t size;
};

struct plan {
        struct aws_ctx *c;
        const char *bucket;
        bool upload;
        struct item *items;
        size_t n, alloc;
        uint64_t total;
        struct xfer_opts opts;
        _Atomic size_t next;
        _Atomic int failed;
        pthread_mutex_t lock;
        int first_rc;
        struct aws_result first;
};

static int plan_add(struct plan *p, const char *key, const char *path, uint64_t size) {
        if (p->n >= CP_MAX_FILES)
                return -E2BIG;
        if (p->n == p->alloc) {
                size_t na = p->alloc ? p->alloc * 2 : 64;
                struct item *it = realloc(p->items, na * sizeof *it);
                if (!it)
                        return -ENOMEM;
                p->items = it;
                p->alloc = na;
        }
        struct item *it = &p->items[p->n];
        it->key = strdup(key);
        it->path = strdup(path);
        it->size = size;
        if (!it->key || !it->path) {
                free(it->key);
                free(it->path);
                return -ENOMEM;
        }
        p->n++;
        p->total += size;
        return 0;
}

static void plan_free(struct plan *p) {
        for (size_t i = 0; i < p->n; i++) {
                free(p->items[i].key);
                free(p->items[i].path);
        }
        free(p->items);
}

static int mkdir_parents(const char *path) {
        _cleanup_free_ char *d = strdup(path);
        if (!d)
                return -ENOMEM;
        for (char *s = d + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(d, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

static int one(struct plan *p, const struct item *it, const struct xfer_opts *o, struct aws_result *out) {
        if (p->upload)
                return xfer_upload(p->c, it->path, p->bucket, it->key, o, out);
        int r = mkdir_parents(it->path);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot create the directory for %s: %s", it->path, strerror(-r));
                return r;
        }
        return xfer_download(p->c, p->bucket, it->key, it->path, o, out);
}

static void *file_worker(void *ud) {
        struct plan *p = ud;
        struct xfer_opts o = p->opts;
        o.concurrency = 1;
        for (;;) {
                size_t i = atomic_fetch_add(&p->next, 1);
                if (i >= p->n || atomic_load(&p->failed))
                        break;
                struct aws_result res = { 0 };
                int r = one(p, &p->items[i], &o, &res);
                if (r < 0) {
                        pthread_mutex_lock(&p->lock);
                        if (!p->first_rc) {
                                p->first_rc = r;
                                p->first = res;
                        }
                        pthread_mutex_unlock(&p->lock);
                        atomic_store(&p->failed, 1);
                }
        }
        return NULL;
}

/* Big files one after another with parallel parts, then small files in parallel, one connection each. */
static int run_plan(struct plan *p, struct aws_result *out) {
        uint64_t part = xfer_part_size(0, p->opts.part_size);
        struct plan small = *p;
        small.items = NULL;
        small.n = small.alloc = 0;
        int r = 0;
        for (size_t i = 0; i < p->n && r == 0; i++) {
                if (p->items[i].size > part || p->n == 1)
                        r = one(p, &p->items[i], &p->opts, out);
                else
                        r = plan_add(&small, p->items[i].key, p->items[i].path, p->items[i].size);
        }
        if (r == 0 && small.n) {
                pthread_mutex_init(&small.lock, NULL);
                int nt = MIN((int)small.n, p->opts.concurrency > 0 ? p->opts.concurrency : XFER_DEFAULT_CONCURRENCY);
                pthread_t th[XFER_MAX_CONCURRENCY];
                int started = 0;
                for (; started < nt; started++)
                        if (pthread_create(&th[started], NULL, file_worker, &small) != 0)
                                break;
                if (!started)
                        file_worker(&small);
                for (int i = 0; i < started; i++)
                        pthread_join(th[i], NULL);
                pthread_mutex_destroy(&small.lock);
                if (small.first_rc) {
                        r = small.first_rc;
                        *out = small.first;
                }
        }
        plan_free(&small);
        return r;
}

struct list_ctx {
        struct plan *p;
        const char *prefix;
        const char *dir;
        int err;
        char bad[512];
};

/* A key under the prefix becomes dir/relative; keys that would escape the directory are refused. */
static int on_object(void *ud, const struct s3_object *o) {
        struct list_ctx *l = ud;
        const char *rel = o->key + strlen(l->prefix);
        while (*rel == '/')
                rel++;
        if (!*rel || str_has_suffix(rel, "/"))
                return 0; /* folder marker */
        bool escape = false;
        for (const char *s = rel; *s;) {
                const char *e = strchrnul(s, '/');
                if ((e - s == 2 && s[0] == '.' && s[1] == '.') || (e - s == 1 && s[0] == '.') || e == s)
                        escape = true;
                s = *e ? e + 1 : e;
        }
        if (escape) {
                snprintf(l->bad, sizeof l->bad, "refusing key '%s': it would land outside %s", o->key, l->dir);
                return -EINVAL;
        }
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", l->dir, rel);
        return plan_add(l->p, o->key, path, o->size);
}

static struct plan *walk_plan;
static const char *walk_root, *walk_prefix;
static int walk_err;

static int on_file(const char *fpath, const struct stat *st, int type, struct FTW *ftw) {
        if (type != FTW_F || !S_ISREG(st->st_mode))
                return 0;
        const char *rel = fpath + strlen(walk_root);
        while (*rel == '/')
                rel++;
        char key[S3_MAX_KEY + 2];
        if ((size_t)snprintf(key, sizeof key, "%s%s", walk_prefix, rel) >= sizeof key) {
                walk_err = -ENAMETOOLONG;
                return 1;
        }
        walk_err = plan_add(walk_plan, key, fpath, (uint64_t)st->st_size);
        return walk_err < 0;
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
                { "help", no_argument, NULL, 'h' }, { 0 },
        };
        bool recursive = false, quiet = false;
        struct xfer_opts xo = { .concurrency = XFER_DEFAULT_CONCURRENCY };
        long v;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "rqh", opts, NULL)) != -1) {
                switch (ch) {
                case 'r': recursive = true; break;
                case 'q': quiet = true; break;
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
        struct plan p = { .c = &c, .bucket = bucket, .upload = s3dst, .opts = xo };
        struct aws_result res = { 0 };
        int r = 0;
        if (s3src && recursive) {
                struct http_client h;
                r = http_client_init(&h);
                _cleanup_free_ char *prefix = *key && !str_has_suffix(key, "/") ? join_key(key, "") : strdup(key);
                struct list_ctx l = { .p = &p, .prefix = prefix, .dir = dst };
                if (r == 0 && prefix)
                        r = s3_list(&c, &h, bucket, prefix, on_object, &l, &res);
                http_client_free(&h);
                if (l.bad[0])
                        snprintf(res.msg, sizeof res.msg, "%s", l.bad);
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
                        r = path ? plan_add(&p, key, path, 0) : -ENOMEM;
                } else
                        r = plan_add(&p, key, dst, 0);
        } else if (recursive) {
                struct stat st;
                if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        snprintf(res.msg, sizeof res.msg, "%s is not a directory", src);
                        r = -ENOENT;
                } else {
                        _cleanup_free_ char *prefix = *key && !str_has_suffix(key, "/") ? join_key(key, "") : strdup(key);
                        walk_plan = &p;
                        walk_root = src;
                        walk_prefix = prefix;
                        walk_err = 0;
                        if (nftw(src, on_file, 32, FTW_PHYS) != 0 || walk_err < 0) {
                                r = walk_err < 0 ? walk_err : -errno;
                                snprintf(res.msg, sizeof res.msg, "cannot read %s: %s", src, strerror(-r));
                        }
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
                        r = k ? plan_add(&p, k, src, (uint64_t)st.st_size) : -ENOMEM;
                }
        }
        if (r == 0) {
                if (!quiet)
                        p.opts.progress = xfer_progress_new(p.total, STDERR_FILENO);
                r = run_plan(&p, &res);
                xfer_progress_done(p.opts.progress);
        }
        if (r < 0)
                log_error("%s", res.msg[0] ? res.msg : strerror(-r));
        plan_free(&p);
        aws_ctx_free(&c);
        return exit_code_for(r);
}
