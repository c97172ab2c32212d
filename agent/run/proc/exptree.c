/* SPDX-License-Identifier: Apache-2.0 */
/* exptree.c — the workdir, the checkpoint and the outputs: as the run user, beneath the workdir's fd. */
#include "run/proc/exptree.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "beneath.h"
#include "run/proc/archive_x.h"
#include "run/proc/asuser.h"

bool exptree_user_in_group(const struct run_user *u, gid_t g) {
        if (g == u->gid)
                return true;
        for (int i = 0; i < u->ngroups && i < RUN_USER_MAX_GROUPS; i++)
                if (u->groups[i] == g)
                        return true;
        return false;
}

enum ancestor_verdict exptree_ancestor(const struct stat *st, const struct run_user *u) {
        if (!S_ISDIR(st->st_mode))
                return ANC_NOT_DIR;
        if (!u || !u->switch_user || u->uid == 0)
                return ANC_OK; /* the agent runs as the user itself (not root), or the job asks for root */
        if (st->st_uid == u->uid)
                return ANC_OWNED;
        bool gw = (st->st_mode & S_IWGRP) && exptree_user_in_group(u, st->st_gid);
        bool ow = st->st_mode & S_IWOTH;
        if (!gw && !ow)
                return ANC_OK;
        /* sticky and root's (/tmp, /var/tmp): the user may add entries but neither rename nor remove root's, and the
         * entry below it is checked in its turn (a root-owned real directory, or one made now) */
        if ((st->st_mode & S_ISVTX) && st->st_uid == 0)
                return ANC_OK;
        return ANC_WRITABLE;
}

const char *exptree_ancestor_why(enum ancestor_verdict v) {
        switch (v) {
        case ANC_OK: return "fine";
        case ANC_NOT_DIR: return "not a directory";
        case ANC_LINK: return "a symbolic link";
        case ANC_OWNED: return "owned by the run user";
        case ANC_WRITABLE: return "writable by the run user";
        }
        return "?";
}

/* One component below cur: opened, made (mode 0755, root's) when missing. *ret_made: made by this call. */
static int step(int cur, const char *name, bool *ret_made) {
        *ret_made = false;
        for (int tries = 0; tries < 4; tries++) {
                int fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0)
                        return fd;
                int e = errno;
                struct stat st;
                if ((e == ELOOP || e == ENOTDIR) && fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                        return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
                if (e != ENOENT)
                        return -e;
                if (mkdirat(cur, name, 0755) == 0)
                        *ret_made = true;
                else if (errno != EEXIST)
                        return -errno;
        }
        return -EAGAIN; /* made and gone again, four times: someone races us */
}

/* The workdir alone, through its fd, and only when this start made it: one that exists is the run user's (an
 * earlier start handed it over) or stays as it is. */
static int hand_over(int fd, const char *path, bool made, const struct run_user *u, char *err, size_t errlen) {
        struct stat st;
        if (fstat(fd, &st) < 0) {
                snprintf(err, errlen, "cannot open the workdir %s: %s", path, strerror(errno));
                return -errno;
        }
        if (!u || !u->switch_user)
                return 0;
        if (made && fchown(fd, u->uid, u->gid) < 0) {
                int r = -errno;
                snprintf(err, errlen, "cannot hand the workdir %s to %s: %s", path, u->name, strerror(-r));
                return r;
        }
        if (!made && st.st_uid != u->uid) {
                snprintf(err, errlen, "the workdir %s exists and is not %s's (owner uid %u): mayfly hands over only "
                         "a workdir it creates", path, u->name, (unsigned)st.st_uid);
                return -EPERM;
        }
        return 0;
}

int exptree_open(const char *path, const struct run_user *u, char *err, size_t errlen) {
        if (path[0] != '/') {
                snprintf(err, errlen, "the workdir %s is not an absolute path", path);
                return -EINVAL;
        }
        _cleanup_close_ int cur = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0) {
                snprintf(err, errlen, "cannot open /: %s", strerror(errno));
                return -errno;
        }
        char sofar[4096] = "";
        size_t len = 0;
        bool made = false;
        /* from / down, one real directory at a time through the fd of the one above (never a path resolved again):
         * a link anywhere is refused, and so is an ancestor the run user could swap what lies below (sshd's
         * StrictModes rule, docs/security.md) */
        for (const char *p = path;;) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                const char *e = strchrnul(p, '/');
                size_t l = (size_t)(e - p);
                if (l > NAME_MAX || len + 1 + l >= sizeof sofar) {
                        snprintf(err, errlen, "the workdir %s: path too long", path);
                        return -ENAMETOOLONG;
                }
                size_t plen = len; /* sofar[0..plen): the directory cur is */
                sofar[len++] = '/';
                memcpy(sofar + len, p, l);
                len += l;
                sofar[len] = 0;
                if ((l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.')) {
                        snprintf(err, errlen, "the workdir %s: '.' and '..' are not allowed in it", path);
                        return -EINVAL;
                }
                struct stat st;
                if (fstat(cur, &st) < 0)
                        return -errno;
                enum ancestor_verdict v = exptree_ancestor(&st, u);
                if (v != ANC_OK && !made) {
                        snprintf(err, errlen, "the workdir's parent %.*s is %s: refused (the experiment could swap "
                                 "what lies below it; choose a workdir whose parents only root can change)",
                                 plen ? (int)plen : 1, plen ? sofar : "/", exptree_ancestor_why(v));
                        return -EPERM;
                }
                char name[NAME_MAX + 1];
                memcpy(name, p, l);
                name[l] = 0;
                int fd = step(cur, name, &made);
                if (fd < 0) {
                        snprintf(err, errlen, "cannot %s the workdir %s: %s%s", fd == -ELOOP ? "open" : "create", path,
                                 sofar, fd == -ELOOP ? " is a symbolic link (give the real path; a link is never "
                                                       "followed)" : fd == -ENOTDIR ? " is not a directory" : "");
                        if (fd != -ELOOP && fd != -ENOTDIR)
                                snprintf(err + strlen(err), errlen - strlen(err), ": %s", strerror(-fd));
                        return fd;
                }
                close(cur);
                cur = fd;
                p = e;
        }
        int r = hand_over(cur, path, made, u, err, errlen);
        if (r < 0)
                return r;
        int fd = cur;
        cur = -1; /* taken */
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
