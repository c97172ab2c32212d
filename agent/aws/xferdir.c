/* xferdir.c — directory trees and prefixes as batches of file transfers. */
#include "aws/xferdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>

int xfer_batch_init(struct xfer_batch *b, struct aws_ctx *c, const char *bucket, bool upload,
                    const struct xfer_opts *o) {
        *b = (struct xfer_batch){ .c = c, .upload = upload };
        if (o)
                b->opts = *o;
        if (b->opts.concurrency <= 0)
                b->opts.concurrency = xfer_default_concurrency();
        b->bucket = strdup(bucket);
        return b->bucket ? 0 : -ENOMEM;
}

int xfer_batch_add(struct xfer_batch *b, const char *key, const char *path, uint64_t size) {
        if (b->n >= XFER_MAX_FILES)
                return -E2BIG;
        if (b->n == b->alloc) {
                size_t na = b->alloc ? b->alloc * 2 : 64;
                struct xfer_item *it = realloc(b->items, na * sizeof *it);
                if (!it)
                        return -ENOMEM;
                b->items = it;
                b->alloc = na;
        }
        struct xfer_item *it = &b->items[b->n];
        it->key = strdup(key);
        it->path = strdup(path);
        it->size = size;
        if (!it->key || !it->path) {
                free(it->key);
                free(it->path);
                return -ENOMEM;
        }
        b->n++;
        b->total += size;
        return 0;
}

void xfer_batch_free(struct xfer_batch *b) {
        for (size_t i = 0; i < b->n; i++) {
                free(b->items[i].key);
                free(b->items[i].path);
        }
        free(b->items);
        free(b->bucket);
        memset(b, 0, sizeof *b);
}


static int one(struct xfer_batch *b, const struct xfer_item *it, const struct xfer_opts *o, struct aws_result *out) {
        if (b->upload)
                return xfer_upload(b->c, it->path, b->bucket, it->key, o, out);
        int r = mkdir_parents(it->path, 0755);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot create the directory for %s: %s", it->path, strerror(-r));
                return r;
        }
        return xfer_download(b->c, b->bucket, it->key, it->path, o, out);
}

struct pool {
        struct xfer_batch *b;
        _Atomic size_t next;
        _Atomic int failed;
        pthread_mutex_t lock;
        int first_rc;
        struct aws_result first;
};

static void *file_worker(void *ud) {
        struct pool *p = ud;
        struct xfer_opts o = p->b->opts;
        o.concurrency = 1;
        for (;;) {
                size_t i = atomic_fetch_add(&p->next, 1);
                if (i >= p->b->n || atomic_load(&p->failed))
                        break;
                struct aws_result res = { 0 };
                int r = one(p->b, &p->b->items[i], &o, &res);
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

int xfer_batch_run(struct xfer_batch *b, struct aws_result *out) {
        uint64_t part = xfer_part_size(0, b->opts.part_size);
        struct xfer_batch small = { .c = b->c, .bucket = b->bucket, .upload = b->upload, .opts = b->opts };
        int r = 0;
        for (size_t i = 0; i < b->n && r == 0; i++) {
                if (b->items[i].size > part || b->n == 1)
                        r = one(b, &b->items[i], &b->opts, out);
                else
                        r = xfer_batch_add(&small, b->items[i].key, b->items[i].path, b->items[i].size);
        }
        if (r == 0 && small.n) {
                struct pool p = { .b = &small };
                pthread_mutex_init(&p.lock, NULL);
                int nt = MIN((int)small.n, b->opts.concurrency);
                pthread_t th[XFER_MAX_CONCURRENCY];
                int started = 0;
                for (; started < nt && started < XFER_MAX_CONCURRENCY; started++)
                        if (pthread_create(&th[started], NULL, file_worker, &p) != 0)
                                break;
                if (!started)
                        file_worker(&p);
                for (int i = 0; i < started; i++)
                        pthread_join(th[i], NULL);
                pthread_mutex_destroy(&p.lock);
                if (p.first_rc) {
                        r = p.first_rc;
                        *out = p.first;
                }
        }
        small.bucket = NULL;
        xfer_batch_free(&small);
        return r;
}

struct list_ctx {
        struct xfer_batch *b;
        const char *prefix;
        const char *dir;
        char bad[512];
};

static int on_object(void *ud, const struct s3_object *o) {
        struct list_ctx *l = ud;
        const char *rel = o->key + strlen(l->prefix);
        while (*rel == '/')
                rel++;
        if (!*rel || str_has_suffix(rel, "/"))
                return 0; /* folder marker */
        for (const char *s = rel; *s;) {
                const char *e = strchrnul(s, '/');
                if ((e - s == 2 && s[0] == '.' && s[1] == '.') || (e - s == 1 && s[0] == '.') || e == s) {
                        snprintf(l->bad, sizeof l->bad, "refusing key '%s': it would land outside %s", o->key, l->dir);
                        return -EINVAL;
                }
                s = *e ? e + 1 : e;
        }
        char path[8192];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", l->dir, rel) >= sizeof path)
                return -ENAMETOOLONG;
        return xfer_batch_add(l->b, o->key, path, o->size);
}

int xfer_batch_add_prefix(struct xfer_batch *b, const char *prefix, const char *dir, struct aws_result *out) {
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        struct list_ctx l = { .b = b, .prefix = prefix, .dir = dir };
        r = s3_list(b->c, &h, b->bucket, prefix, on_object, &l, out);
        http_client_free(&h);
        if (l.bad[0])
                snprintf(out->msg, sizeof out->msg, "%s", l.bad);
        return r;
}

static int walk(struct xfer_batch *b, const char *root, const char *rel, const char *prefix,
                bool (*filter)(void *, const char *, const struct stat *), void *ud, int depth, struct aws_result *out) {
        char path[8192];
        snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
        if (depth > 64) {
                snprintf(out->msg, sizeof out->msg, "%s: directories nested too deep", path);
                return -ELOOP;
        }
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot read %s: %s", path, strerror(errno));
                return -errno;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char sub[4096];
                if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= sizeof sub) {
                        r = -ENAMETOOLONG;
                        break;
                }
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue; /* vanished */
                if (S_ISDIR(st.st_mode))
                        r = walk(b, root, sub, prefix, filter, ud, depth + 1, out);
                else if (S_ISREG(st.st_mode) && (!filter || filter(ud, sub, &st))) {
                        char key[S3_MAX_KEY + 2], full[8192];
                        if ((size_t)snprintf(key, sizeof key, "%s%s", prefix, sub) >= sizeof key) {
                                snprintf(out->msg, sizeof out->msg, "%s: S3 key too long", sub);
                                r = -ENAMETOOLONG;
                                break;
                        }
                        snprintf(full, sizeof full, "%s/%s", root, sub);
                        r = xfer_batch_add(b, key, full, (uint64_t)st.st_size);
                }
        }
        closedir(d);
        return r;
}

int xfer_batch_add_tree(struct xfer_batch *b, const char *dir, const char *prefix,
                        bool (*filter)(void *ud, const char *rel, const struct stat *st), void *ud,
                        struct aws_result *out) {
        return walk(b, dir, "", prefix, filter, ud, 0, out);
}
