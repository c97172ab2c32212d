/* SPDX-License-Identifier: Apache-2.0 */
/* exptree.c — the workdir, the checkpoint and the outputs: as the run user, beneath the workdir's fd. */
#include "run/proc/exptree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "beneath.h"
#include "run/proc/archive_x.h"
#include "run/proc/asuser.h"

int exptree_open(const char *path, const struct run_user *u, char *err, size_t errlen) {
        int r = mkdir_parents(path, 0755);
        if (r == 0 && mkdir(path, 0755) < 0 && errno != EEXIST)
                r = -errno;
        if (r < 0) {
                snprintf(err, errlen, "cannot create the workdir %s: %s", path, strerror(-r));
                return r;
        }
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot open the workdir %s: %s", path,
                         r == -ELOOP || r == -ENOTDIR ? "it is not a directory (a symbolic link? give the real path)"
                                                      : strerror(-r));
                return r;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                snprintf(err, errlen, "cannot open the workdir %s: %s", path, strerror(-r));
                return r;
        }
        /* the directory alone, through its fd: a real directory made by root (now or by an earlier start) */
        if (u && u->switch_user && st.st_uid == 0 && fchown(fd, u->uid, u->gid) < 0) {
                r = -errno;
                close(fd);
                snprintf(err, errlen, "cannot hand the workdir %s to %s: %s", path, u->name, strerror(-r));
                return r;
        }
        return fd;
}

struct mk {
        int rootfd;
        const char *rel;
};

static int mkdir_fn(void *ud) {
        struct mk *m = ud;
        int fd = beneath_mkdirs(m->rootfd, m->rel, 0755);
        if (fd >= 0)
                close(fd);
        return fd < 0 ? fd : 0;
}

int exptree_mkdir(const struct run_user *u, int rootfd, const char *rel) {
        struct mk m = { .rootfd = rootfd, .rel = rel };
        return as_user(u, -1, mkdir_fn, &m);
}

static int open_read_fn(void *ud) {
        struct mk *m = ud;
        int fd = beneath_open(m->rootfd, m->rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return -EINVAL;
        }
        return fd;
}

int exptree_open_read(const struct run_user *u, int rootfd, const char *rel) {
        struct mk m = { .rootfd = rootfd, .rel = rel };
        return as_user(u, -1, open_read_fn, &m);
}

static int empty_fn(void *ud) {
        struct mk *m = ud;
        int fd = beneath_open(m->rootfd, m->rel, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return 1;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return 1;
        }
        int empty = 1;
        struct dirent *de;
        while (empty && (de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        empty = 0;
        closedir(d);
        return empty;
}

bool exptree_empty(const struct run_user *u, int rootfd, const char *rel) {
        struct mk m = { .rootfd = rootfd, .rel = rel };
        return as_user(u, -1, empty_fn, &m) != 0;
}

struct ex {
        int rootfd, afd;
        char *err;
        size_t errlen;
};

static int extract_fn(void *ud) {
        struct ex *x = ud;
        return archive_extract(x->afd, x->rootfd, x->err, x->errlen);
}

int exptree_extract(const struct run_user *u, int rootfd, int afd, char *err, size_t errlen) {
        struct ex x = { .rootfd = rootfd, .afd = afd, .err = err, .errlen = errlen };
        int r = as_user(u, rootfd, extract_fn, &x);
        if (r < 0 && !err[0])
                snprintf(err, errlen, "cannot extract as %s: %s", u ? u->name : "the agent", strerror(-r));
        return r;
}

struct tr {
        struct xfer_batch *b;
        int (*fill)(struct xfer_batch *, void *, struct aws_result *);
        void *ud;
        struct aws_result *out;
};

static int transfer_fn(void *ud) {
        struct tr *t = ud;
        int r = t->fill(t->b, t->ud, t->out);
        if (r >= 0 && t->b->n)
                r = xfer_batch_run(t->b, t->out);
        return r < 0 ? r : 0;
}

int exptree_transfer(const struct run_user *u, int rootfd, struct xfer_batch *b,
                     int (*fill)(struct xfer_batch *b, void *ud, struct aws_result *out), void *ud,
                     struct aws_result *out) {
        xfer_batch_beneath(b, rootfd);
        struct tr t = { .b = b, .fill = fill, .ud = ud, .out = out };
        int r = as_user(u, -1, transfer_fn, &t);
        if (r < 0 && !out->msg[0])
                snprintf(out->msg, sizeof out->msg, "as %s: %s", u ? u->name : "the agent", strerror(-r));
        return r;
}

void exptree_refusal(const struct xfer_batch *b, char *dst, size_t n) {
        snprintf(dst, n, "%s: %s", b->refused_path,
                 b->refused_rc == -EXDEV ? "a link out of the workdir"
                 : b->refused_rc == -ELOOP ? "a symbolic link (this kernel has no openat2: links are not followed)"
                 : b->refused_rc == -MF_ENOTREG ? "not a regular file (a FIFO? not read)"
                                           : strerror(-b->refused_rc));
}

static int fill_source(struct xfer_batch *b, void *ud, struct aws_result *out) {
        return xfer_batch_add_prefix(b, ud, "", out);
}

int exptree_fetch(struct aws_ctx *c, const char *source, const char *cache_dir, const struct run_user *u, int rootfd,
                  char *err, size_t errlen) {
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        int r = s3_parse_uri(source, &bucket, &key, err, errlen);
        if (r < 0)
                return r;
        struct aws_result res = { 0 };
        struct xfer_opts o = { .concurrency = 8 };
        if (str_has_suffix(source, "/")) {
                struct xfer_batch b;
                r = xfer_batch_init(&b, c, bucket, false, &o);
                if (r == 0)
                        r = exptree_transfer(u, rootfd, &b, fill_source, key, &res);
                if (r == 0 && b.n == 0) {
                        snprintf(res.msg, sizeof res.msg, "source %s holds no objects", source);
                        r = -MF_ENOTFOUND;
                }
                xfer_batch_free(&b);
                if (r < 0)
                        snprintf(err, errlen, "fetching %s: %s", source, res.msg);
                return r;
        }
        /* the archive is the agent's own file (in its cache); what comes out of it is the run user's */
        const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
        char local[4300];
        if (pathf(local, sizeof local, "%s/source-%s", cache_dir, base) < 0) {
                errf(err, errlen, "fetching %s: the cache path for it is too long", source);
                return -ENAMETOOLONG;
        }
        r = xfer_download(c, bucket, key, local, &o, &res);
        if (r < 0) {
                snprintf(err, errlen, "fetching %s: %s", source, res.msg);
                return r;
        }
        _cleanup_close_ int afd = open(local, O_RDONLY | O_CLOEXEC);
        int e = errno;
        unlink(local);
        if (afd < 0) {
                snprintf(err, errlen, "cannot open the downloaded archive %s: %s", local, strerror(e));
                return -e;
        }
        return exptree_extract(u, rootfd, afd, err, errlen);
}

struct restore {
        const char *prefix;
        const char *dir;
};

static int fill_restore(struct xfer_batch *b, void *ud, struct aws_result *out) {
        struct restore *rs = ud;
        return xfer_batch_add_prefix(b, rs->prefix, rs->dir, out);
}

int exptree_restore(struct aws_ctx *c, const char *bucket, const char *prefix, const struct run_user *u, int rootfd,
                    const char *dir, size_t *ret_n, char *refused, size_t refusedlen, struct aws_result *out) {
        struct restore rs = { .prefix = prefix, .dir = dir };
        struct xfer_batch b;
        int r = xfer_batch_init(&b, c, bucket, false, NULL);
        if (r == 0)
                r = exptree_transfer(u, rootfd, &b, fill_restore, &rs, out);
        refused[0] = 0;
        if (b.refused)
                exptree_refusal(&b, refused, refusedlen);
        *ret_n = b.n;
        xfer_batch_free(&b);
        return r;
}
