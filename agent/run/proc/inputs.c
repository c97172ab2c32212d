/* SPDX-License-Identifier: Apache-2.0 */
/* inputs.c — an input staged from S3, as the run user beneath its tree, with only what changed downloaded again. */
#include "run/proc/inputs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/s3.h"
#include "aws/xferdir.h"
#include "beneath.h"
#include "log.h"
#include "run/proc/asuser.h"
#include "run/proc/manifest.h"
#include "util.h"

#define WALK_MAX_DEPTH 64

int inputs_place(const struct job_input *in, char *buf, size_t len) {
        if (in->prefix || !str_has_suffix(in->path, "/"))
                return pathf(buf, len, "%s", in->path);
        const char *key = strchr(in->source + 5, '/');
        const char *base = strrchr(key ? key : "", '/');
        return pathf(buf, len, "%s%s", in->path, base ? base + 1 : "");
}

struct stage {
        struct aws_ctx *c;
        const struct job_input *in;
        int rootfd;
        const char *bucket, *key;     /* the prefix, or the one object's key */
        char place[4096];             /* where it goes, relative to the tree */
        struct manifest *old, *now;
        struct xfer_batch b;
        struct stage_progress *pg;
        struct stage_stats *st;
        bool listed_all;              /* the listing ended: now holds every object S3 has */
        char bad[700];
        struct aws_result res;
};

/* What the file at rel is (not following a link at its end), beneath the tree. */
static int lstat_beneath(int rootfd, const char *rel, struct stat *st) {
        _cleanup_close_ int fd = beneath_open(rootfd, rel, O_PATH | O_NOFOLLOW, 0);
        if (fd < 0)
                return fd;
        return fstat(fd, st) < 0 ? -errno : 0;
}

static int rel_of(const struct stage *s, const char *key, char *path, size_t n) {
        if (!s->in->prefix)
                return pathf(path, n, "%s", s->place);
        const char *rel = key + strlen(s->key);
        while (*rel == '/')
                rel++;
        return pathf(path, n, "%s/%s", s->place, rel);
}

static int on_listed(void *ud, const struct s3_object *o) {
        struct stage *s = ud;
        if (s->in->prefix) {
                const char *rel = o->key + strlen(s->key);
                while (*rel == '/')
                        rel++;
                if (!*rel || str_has_suffix(rel, "/"))
                        return 0; /* a folder marker */
                if (!beneath_rel_ok(rel)) {
                        errf(s->bad, sizeof s->bad, "refusing the key '%s': it would land outside %s", o->key,
                             s->place);
                        return -EINVAL;
                }
        }
        char path[8192];
        if (rel_of(s, o->key, path, sizeof path) < 0) {
                errf(s->bad, sizeof s->bad, "the key '%s' makes too long a path", o->key);
                return -ENAMETOOLONG;
        }
        s->st->listed++;
        struct staged *e = manifest_find(s->old, o->key);
        struct stat st;
        if (e)
                e->seen = true;
        if (e && lstat_beneath(s->rootfd, path, &st) == 0 && manifest_unchanged(e, o->size, o->etag, &st)) {
                s->st->kept++;
                long r = manifest_add(s->now, o->key, o->size, o->etag, e->lsize, e->lmtime, true);
                return r < 0 ? (int)r : 0;
        }
        long i = manifest_add(s->now, o->key, o->size, o->etag, 0, 0, false);
        if (i < 0)
                return (int)i;
        int r = xfer_batch_add(&s->b, o->key, path, o->size);
        if (r < 0)
                return r;
        s->b.items[s->b.n - 1].tag = (size_t)i;
        atomic_fetch_add(&s->pg->objects_total, 1);
        xfer_progress_expect(s->pg->bytes, o->size);
        return 0;
}

/* An object downloaded (a transfer thread): its file's size and mtime are what the manifest keeps. */
static void on_fetched(void *ud, const struct xfer_item *it) {
        struct stage *s = ud;
        struct staged *e = &s->now->v[it->tag];
        struct stat st;
        if (lstat_beneath(s->rootfd, it->path, &st) == 0 && S_ISREG(st.st_mode)) {
                e->lsize = (uint64_t)st.st_size;
                e->lmtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
                e->has_file = true;
        }
        atomic_fetch_add(&s->pg->objects_done, 1);
}

/* Modes under the directory dfd: directories 0755 (final false: writable again, so files can be replaced) or, with
 * final, 0555 and regular files 0444. Links are not followed; the user's own files only (the thread is the user). */
static int set_modes(int dfd, bool final, int depth) {
        if (depth > WALK_MAX_DEPTH)
                return -ELOOP;
        int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return -errno;
        DIR *d = fdopendir(dup_fd);
        if (!d) {
                close(dup_fd);
                return -errno;
        }
        int r = 0;
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                struct stat st;
                if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                continue;
                        if (!final)
                                fchmod(sub, 0755);
                        r = set_modes(sub, final, depth + 1);
                        if (final)
                                fchmod(sub, 0555);
                        close(sub);
                } else if (S_ISREG(st.st_mode) && final && (st.st_mode & 07777) != 0444 &&
                           fchmodat(dfd, de->d_name, 0444, 0) < 0)
                        r = -errno;
        }
        closedir(d);
        return r;
}

static int modes_of(struct stage *s, bool final) {
        if (!s->in->prefix) {
                _cleanup_close_ int fd = beneath_open(s->rootfd, s->place, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
                return final && fd >= 0 ? (fchmod(fd, 0444) < 0 ? -errno : 0) : 0;
        }
        _cleanup_close_ int fd = beneath_open(s->rootfd, s->place, O_RDONLY | O_DIRECTORY, 0);
        if (fd < 0)
                return fd == -ENOENT ? 0 : fd;
        if (!final)
                fchmod(fd, 0755);
        int r = set_modes(fd, final, 0);
        if (final)
                fchmod(fd, 0555);
        return r;
}

/* Files staged before whose objects S3 no longer holds, left as staged: removed (a changed one stays). */
static void remove_gone(struct stage *s) {
        for (size_t i = 0; i < s->old->n; i++) {
                struct staged *e = &s->old->v[i];
                char path[8192];
                struct stat st;
                if (e->seen || !e->has_file || rel_of(s, e->key, path, sizeof path) < 0 ||
                    lstat_beneath(s->rootfd, path, &st) < 0 || !manifest_unchanged(e, e->size, e->etag, &st))
                        continue;
                char *slash = strrchr(path, '/');
                const char *name = slash ? slash + 1 : path;
                if (slash)
                        *slash = 0;
                _cleanup_close_ int dfd = beneath_open(s->rootfd, slash ? path : "", O_RDONLY | O_DIRECTORY, 0);
                if (dfd >= 0 && unlinkat(dfd, name, 0) == 0)
                        s->st->removed++;
        }
}

/* The staging itself, on a thread with the run user's identity (its transfer threads inherit it). */
static int stage_fn(void *ud) {
        struct stage *s = ud;
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        if (s->in->prefix)
                r = s3_list(s->c, &h, s->bucket, s->key, on_listed, s, &s->res);
        else {
                struct s3_object o = { .key = s->key };
                char etag[128] = "";
                r = s3_head(s->c, &h, s->bucket, s->key, &o.size, etag, &s->res);
                o.etag = etag;
                if (r == 0)
                        r = on_listed(s, &o);
        }
        http_client_free(&h);
        if (r < 0)
                return r;
        s->listed_all = true;
        if (!s->st->listed) {
                errf(s->bad, sizeof s->bad, "%s holds no objects", s->in->source);
                return -MF_ENOTFOUND;
        }
        if (s->b.n && s->in->read_only)
                modes_of(s, false);
        if (s->b.n) {
                r = xfer_batch_run(&s->b, &s->res);
                if (r == 0 && s->b.refused) {
                        errf(s->bad, sizeof s->bad, "%s: a link out of the tree is in the way (not followed)",
                             s->b.refused_path);
                        r = -EXDEV;
                }
        }
        if (r == 0) {
                remove_gone(s);
                int m = s->in->read_only && (s->b.n || s->st->removed || !s->old->complete) ? modes_of(s, true) : 0;
                if (m < 0)
                        log_warn("input %s: not all of it could be made read-only: %s", s->in->name, strerror(-m));
        }
        return r;
}

int inputs_stage(struct aws_ctx *c, const struct job_input *in, const struct run_user *u, int rootfd,
                 const char *root_path, const char *manifest_path, struct stage_progress *pg, struct stage_stats *st,
                 char *err, size_t errlen) {
        *st = (struct stage_stats){ 0 };
        err[0] = 0;
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        char e2[600];
        int r = s3_parse_uri(in->source, &bucket, &key, e2, sizeof e2);
        if (r < 0) {
                errf(err, errlen, "input %s: %s", in->name, e2);
                return r;
        }
        struct stage s = { .c = c, .in = in, .rootfd = rootfd, .bucket = bucket, .key = key, .pg = pg, .st = st };
        char place[8192];
        if (inputs_place(in, s.place, sizeof s.place) < 0 ||
            pathf(place, sizeof place, "%s/%s", root_path, s.place) < 0) {
                errf(err, errlen, "input %s: its path is too long", in->name);
                return -ENAMETOOLONG;
        }
        struct manifest old, now;
        if ((r = manifest_init(&old, in->source, place)) < 0)
                return r;
        if ((r = manifest_init(&now, in->source, place)) < 0) {
                manifest_free(&old);
                return r;
        }
        s.old = &old, s.now = &now;
        if (manifest_load(&old, manifest_path, e2, sizeof e2) < 0) {
                /* a manifest that cannot be read is no manifest: everything is downloaded again */
                manifest_free(&old);
                manifest_init(&old, in->source, place);
        }
        if (!in->sync && old.complete && old.n) {
                st->skipped = true;
                st->kept = st->listed = old.n;
                goto out;
        }
        struct xfer_opts o = { .concurrency = MIN(XFER_MAX_CONCURRENCY, MAX(16, 2 * xfer_default_concurrency())),
                               .progress = pg->bytes, .md5_etag = true };
        r = xfer_batch_init(&s.b, c, bucket, false, &o);
        if (r < 0)
                goto out;
        xfer_batch_beneath(&s.b, rootfd);
        s.b.done = on_fetched;
        s.b.done_ud = &s;
        s.b.cancel = &pg->cancel;
        r = as_user(u, -1, stage_fn, &s);
        st->fetched = 0;
        for (size_t i = 0; i < s.b.n; i++)
                if (now.v[s.b.items[i].tag].has_file) {
                        st->fetched++;
                        st->bytes += s.b.items[i].size;
                }
        xfer_batch_free(&s.b);
        if (r < 0)
                errf(err, errlen, "input %s: %s", in->name, s.bad[0] ? s.bad : s.res.msg[0] ? s.res.msg : strerror(-r));
        if (s.listed_all) {
                /* what was staged is kept, even when the staging failed: the next start goes on from there */
                now.complete = r == 0;
                if (manifest_save(&now, manifest_path, e2, sizeof e2) < 0)
                        log_warn("input %s: what was staged is not remembered (the next start downloads it all "
                                 "again): %s", in->name, e2);
        }
out:
        manifest_free(&old);
        manifest_free(&now);
        return r;
}
