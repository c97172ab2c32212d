/* SPDX-License-Identifier: Apache-2.0 */
/* xferdir.c — directory trees and prefixes as batches of file transfers; beneath a tree's fd when the files are
 * not the agent's own (beneath.h). */
#include "aws/xferdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "beneath.h"

int xfer_batch_init(struct xfer_batch *b, struct aws_ctx *c, const char *bucket, bool upload,
                    const struct xfer_opts *o) {
        *b = (struct xfer_batch){ .c = c, .upload = upload, .rootfd = -1, .refuse_lock = PTHREAD_MUTEX_INITIALIZER };
        if (o)
                b->opts = *o;
        if (b->opts.concurrency <= 0)
                b->opts.concurrency = xfer_default_concurrency();
        b->bucket = strdup(bucket);
        return b->bucket ? 0 : -ENOMEM;
}

void xfer_batch_beneath(struct xfer_batch *b, int rootfd) {
        b->rootfd = rootfd;
}

int xfer_batch_add(struct xfer_batch *b, const char *key, const char *path, uint64_t size) {
        if (b->n >= XFER_MAX_FILES)
                return -E2BIG;
        struct xfer_item *items = array_room(b->items, b->n, &b->alloc, sizeof *items, 64);
        if (!items)
                return -ENOMEM;
        b->items = items;
        struct xfer_item *it = &b->items[b->n];
        it->key = strdup(key);
        it->path = strdup(path);
        it->size = size;
        it->mtime_ns = 0;
        it->tag = b->n;
        if (!it->key || !it->path) {
                free(it->key);
                free(it->path);
                return -ENOMEM;
        }
        b->n++;
        b->total += size;
        return 0;
}

/* A file a walk or a glob found: into the batch when keep lets it. */
static int add_found(struct xfer_batch *b, const char *key, const char *path, const struct stat *st) {
        if (b->keep && !b->keep(b->keep_ud, key, st))
                return 0;
        int r = xfer_batch_add(b, key, path, (uint64_t)st->st_size);
        if (r == 0)
                b->items[b->n - 1].mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
        return r;
}

void xfer_batch_free(struct xfer_batch *b) {
        for (size_t i = 0; i < b->n; i++) {
                free(b->items[i].key);
                free(b->items[i].path);
        }
        free(b->items);
        free(b->bucket);
        *b = (struct xfer_batch){ .rootfd = -1, .refuse_lock = PTHREAD_MUTEX_INITIALIZER };
}

void xfer_batch_refuse(struct xfer_batch *b, const char *path, int r) {
        pthread_mutex_lock(&b->refuse_lock);
        if (!b->refused++) {
                errf(b->refused_path, sizeof b->refused_path, "%s", path);
                b->refused_rc = r;
        }
        pthread_mutex_unlock(&b->refuse_lock);
}

/* An upload beneath the tree: opened beneath its root, read from the fd. Never blocking in open: a file swapped for
 * a FIFO since the walk would park the thread until someone opened its other end (O_NONBLOCK), and whatever is not
 * a regular file once open is refused (-MF_ENOTREG), as a link out of the tree is. O_NOFOLLOW is not added: the
 * walk takes a link inside the tree to the file it names, and RESOLVE_BENEATH (or, without openat2, the
 * per-component walk, which follows no link at all) keeps the open inside the tree. */
static int upload_beneath(struct xfer_batch *b, const struct xfer_item *it, const struct xfer_opts *o,
                          struct aws_result *out) {
        _cleanup_close_ int fd = beneath_open(b->rootfd, it->path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
        if (fd < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot open %s: %s", it->path, strerror(-fd));
                return fd;
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                snprintf(out->msg, sizeof out->msg, "%s is not a regular file", it->path);
                return -MF_ENOTREG;
        }
        return xfer_upload_fd(b->c, fd, it->path, b->bucket, it->key, o, out);
}

/* A download beneath the tree: parents made beneath its root, the file renamed into place there. */
static int download_beneath(struct xfer_batch *b, const struct xfer_item *it, const struct xfer_opts *o,
                            struct aws_result *out) {
        _cleanup_free_ char *dir = strdup(it->path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        const char *name = slash ? slash + 1 : it->path;
        if (slash)
                *slash = 0;
        else
                dir[0] = 0;
        _cleanup_close_ int dfd = beneath_mkdirs(b->rootfd, dir, 0755);
        if (dfd < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot create the directory for %s: %s", it->path, strerror(-dfd));
                return dfd;
        }
        return xfer_download_at(b->c, b->bucket, it->key, dfd, name, it->path, o, out);
}

static int one(struct xfer_batch *b, const struct xfer_item *it, const struct xfer_opts *opts,
               struct aws_result *out) {
        struct xfer_opts oi = *opts;
        const struct xfer_opts *o = &oi;
        if (!b->upload && !oi.size_unknown) {
                /* the size from the listing: a small object needs no HEAD before its GET */
                oi.size_known = true;
                oi.known_size = it->size;
        }
        if (b->rootfd >= 0)
                return b->upload ? upload_beneath(b, it, o, out) : download_beneath(b, it, o, out);
        if (b->upload)
                return xfer_upload(b->c, it->path, b->bucket, it->key, o, out);
        int r = mkdir_parents(it->path, 0755);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot create the directory for %s: %s", it->path, strerror(-r));
                return r;
        }
        return xfer_download(b->c, b->bucket, it->key, it->path, o, out);
}

/* One item; a path refused beneath the tree (a link swapped in since the walk) is noted and skipped, not a
 * failure of the batch. */
static int one_or_refuse(struct xfer_batch *b, const struct xfer_item *it, const struct xfer_opts *o,
                         struct aws_result *out) {
        if (o->cancel && atomic_load(o->cancel)) {
                snprintf(out->msg, sizeof out->msg, "stopped before %s", it->path);
                return -ECANCELED;
        }
        int r = one(b, it, o, out);
        if (r < 0 && b->rootfd >= 0 && (beneath_refused(r) || r == -MF_ENOTREG)) {
                xfer_batch_refuse(b, it->path, r);
                return 0;
        }
        if (r == 0 && b->done)
                b->done(b->done_ud, it);
        return r;
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
                int r = one_or_refuse(p->b, &p->b->items[i], &o, &res);
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
        /* the small files share the big batch's tree and refusal record */
        struct xfer_batch small = { .c = b->c, .bucket = b->bucket, .upload = b->upload, .opts = b->opts,
                                    .rootfd = b->rootfd, .refuse_lock = PTHREAD_MUTEX_INITIALIZER,
                                    .done = b->done, .done_ud = b->done_ud };
        int r = 0;
        for (size_t i = 0; i < b->n && r == 0; i++) {
                if (b->items[i].size > part || b->n == 1)
                        r = one_or_refuse(b, &b->items[i], &b->opts, out);
                else if ((r = xfer_batch_add(&small, b->items[i].key, b->items[i].path, b->items[i].size)) == 0)
                        small.items[small.n - 1].tag = b->items[i].tag;
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
        if (small.refused) {
                pthread_mutex_lock(&b->refuse_lock);
                if (!b->refused) {
                        snprintf(b->refused_path, sizeof b->refused_path, "%s", small.refused_path);
                        b->refused_rc = small.refused_rc;
                }
                b->refused += small.refused;
                pthread_mutex_unlock(&b->refuse_lock);
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
        if (!beneath_rel_ok(rel)) {
                snprintf(l->bad, sizeof l->bad, "refusing key '%s': it would land outside %s", o->key,
                         *l->dir ? l->dir : "the tree");
                return -EINVAL;
        }
        char path[8192];
        if ((size_t)snprintf(path, sizeof path, "%s%s%s", l->dir, *l->dir ? "/" : "", rel) >= sizeof path)
                return -ENAMETOOLONG;
        return xfer_batch_add(l->b, o->key, path, o->size);
}

int xfer_batch_add_prefix(struct xfer_batch *b, const char *prefix, const char *dir, struct aws_result *out) {
        if (b->rootfd >= 0 && !beneath_rel_ok(dir)) {
                snprintf(out->msg, sizeof out->msg, "'%s' is not a path inside the tree", dir);
                return -EINVAL;
        }
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

/* The directory rel, beneath the tree or as a path of its own. */
static int open_dir(struct xfer_batch *b, const char *path) {
        if (b->rootfd >= 0)
                return beneath_open(b->rootfd, path, O_RDONLY | O_DIRECTORY, 0);
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

static int join(char *dst, size_t n, const char *a, const char *b) {
        return (size_t)snprintf(dst, n, "%s%s%s", a, *a && *b ? "/" : "", b) >= n ? -ENAMETOOLONG : 0;
}

/* What a tree entry is once links inside the tree are followed: its stat, or -errno (refused: out of the tree). */
static int entry_stat(struct xfer_batch *b, int dfd, const char *name, const char *path, struct stat *st) {
        if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISLNK(st->st_mode) || b->rootfd < 0)
                return 0;
        _cleanup_close_ int fd = beneath_open(b->rootfd, path, O_PATH, 0);
        if (fd < 0)
                return fd;
        return fstat(fd, st) < 0 ? -errno : 1;
}

struct walk {
        const char *root;       /* the tree's top (a path, or relative beneath rootfd) */
        const char *prefix;
        bool (*filter)(void *, const char *, const struct stat *);
        void *ud;
};

static int walk(struct xfer_batch *b, const struct walk *w, const char *rel, int depth, struct aws_result *out) {
        char path[8192];
        if (join(path, sizeof path, w->root, rel) < 0)
                return -ENAMETOOLONG;
        if (depth > 64) {
                errf(out->msg, sizeof out->msg, "%s: directories nested too deep", path);
                return -ELOOP;
        }
        int fd = open_dir(b, path);
        if (fd < 0 && b->rootfd >= 0 && beneath_refused(fd)) {
                xfer_batch_refuse(b, *path ? path : ".", fd);
                return 0;
        }
        if (fd < 0) {
                errf(out->msg, sizeof out->msg, "cannot read %s: %s", *path ? path : ".", strerror(-fd));
                return fd;
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
                char sub[4096], full[8192];
                if (join(sub, sizeof sub, rel, de->d_name) < 0 || join(full, sizeof full, w->root, sub) < 0) {
                        r = -ENAMETOOLONG;
                        break;
                }
                struct stat st;
                int k = entry_stat(b, dirfd(d), de->d_name, full, &st);
                if (k < 0) {
                        if (beneath_refused(k))
                                xfer_batch_refuse(b, full, k);
                        continue; /* vanished */
                }
                if (S_ISDIR(st.st_mode) && k == 0)
                        r = walk(b, w, sub, depth + 1, out); /* a link to a directory is not descended */
                else if (S_ISREG(st.st_mode) && (!w->filter || w->filter(w->ud, sub, &st))) {
                        char key[S3_MAX_KEY + 2];
                        if ((size_t)snprintf(key, sizeof key, "%s%s", w->prefix, sub) >= sizeof key) {
                                errf(out->msg, sizeof out->msg, "%s: S3 key too long", sub);
                                r = -ENAMETOOLONG;
                                break;
                        }
                        r = add_found(b, key, full, &st);
                }
        }
        closedir(d);
        return r;
}

int xfer_batch_add_tree(struct xfer_batch *b, const char *dir, const char *prefix,
                        bool (*filter)(void *ud, const char *rel, const struct stat *st), void *ud,
                        struct aws_result *out) {
        struct walk w = { .root = dir, .prefix = prefix, .filter = filter, .ud = ud };
        return walk(b, &w, "", 0, out);
}

static bool has_wildcard(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == '\\')
                        return true;
        return false;
}

/* A match: a file, or a directory taken whole. */
static int add_match(struct xfer_batch *b, const char *rel, const struct stat *st, const char *prefix,
                     struct aws_result *out) {
        char key[S3_MAX_KEY + 2];
        if ((size_t)snprintf(key, sizeof key, "%s%s%s", prefix, rel, S_ISDIR(st->st_mode) ? "/" : "") >= sizeof key) {
                errf(out->msg, sizeof out->msg, "%s: S3 key too long", rel);
                return -ENAMETOOLONG;
        }
        if (S_ISDIR(st->st_mode))
                return xfer_batch_add_tree(b, rel, key, NULL, NULL, out);
        return S_ISREG(st->st_mode) ? add_found(b, key, rel, st) : 0;
}

/* Matches pattern[pi..] below the directory rel: one component at a time, fnmatch within a directory. */
static int glob_at(struct xfer_batch *b, const char *rel, const char *pat, const char *prefix, size_t *matches,
                   struct aws_result *out) {
        const char *e = strchrnul(pat, '/');
        size_t l = (size_t)(e - pat);
        char comp[NAME_MAX + 1];
        if (l == 0 || l > NAME_MAX)
                return 0;
        memcpy(comp, pat, l);
        comp[l] = 0;
        bool last = !*e;
        _cleanup_close_ int dfd = beneath_open(b->rootfd, rel, O_RDONLY | O_DIRECTORY, 0);
        if (dfd < 0) {
                if (beneath_refused(dfd))
                        xfer_batch_refuse(b, *rel ? rel : ".", dfd);
                return 0;
        }
        int dup_fd = dup(dfd);
        DIR *d = dup_fd < 0 ? NULL : fdopendir(dup_fd);
        if (!d) {
                if (dup_fd >= 0)
                        close(dup_fd);
                return -errno;
        }
        int r = 0;
        bool wild = has_wildcard(comp, l);
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (wild ? fnmatch(comp, de->d_name, FNM_PERIOD) != 0 : strcmp(comp, de->d_name) != 0)
                        continue;
                char sub[4096];
                if (join(sub, sizeof sub, rel, de->d_name) < 0) {
                        r = -ENAMETOOLONG;
                        break;
                }
                struct stat st;
                int k = entry_stat(b, dfd, de->d_name, sub, &st);
                if (k < 0) {
                        if (beneath_refused(k))
                                xfer_batch_refuse(b, sub, k);
                        continue;
                }
                if (last) {
                        (*matches)++;
                        r = add_match(b, sub, &st, prefix, out);
                } else if (S_ISDIR(st.st_mode))
                        r = glob_at(b, sub, e + 1, prefix, matches, out);
        }
        closedir(d);
        return r;
}

int xfer_batch_add_glob(struct xfer_batch *b, const char *pattern, const char *prefix, struct aws_result *out) {
        if (b->rootfd < 0 || !pattern || pattern[0] == '/') {
                snprintf(out->msg, sizeof out->msg, "'%s': a pattern relative to the tree is needed",
                         pattern ? pattern : "");
                return -EINVAL;
        }
        size_t matches = 0;
        int r = glob_at(b, "", pattern, prefix, &matches, out);
        return r < 0 ? r : (int)MIN(matches, (size_t)INT_MAX);
}
