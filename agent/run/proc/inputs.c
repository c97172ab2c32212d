/* SPDX-License-Identifier: Apache-2.0 */
/* inputs.c — an input staged from S3, as the run user beneath its tree, with only what changed downloaded again. */
#include "run/proc/inputs.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
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

void stage_progress_end(struct stage_progress *pg) {
        atomic_store(&pg->input, -1);
        xfer_progress_done(pg->bytes);
        pg->bytes = NULL;
        atomic_store(&pg->objects_done, 0);
        atomic_store(&pg->objects_total, 0);
        atomic_store(&pg->cancel, false);
}

int stage_progress_reset(struct stage_progress *pg, int input) {
        stage_progress_end(pg);
        pg->bytes = xfer_progress_new(0, -1);
        atomic_store(&pg->input, input);
        return pg->bytes ? 0 : -ENOMEM;
}

cJSON *stage_progress_json(const struct stage_progress *pg, const char *name, int n) {
        int i = atomic_load(&pg->input);
        if (i < 0 || !pg->bytes)
                return NULL;
        uint64_t done, total;
        double secs;
        xfer_progress_read(pg->bytes, &done, &total, &secs);
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return NULL;
        cJSON_AddStringToObject(o, "input", name);
        cJSON_AddNumberToObject(o, "inputs_done", i);
        cJSON_AddNumberToObject(o, "inputs", n);
        cJSON_AddNumberToObject(o, "objects_done", (double)atomic_load(&pg->objects_done));
        cJSON_AddNumberToObject(o, "objects_total", (double)atomic_load(&pg->objects_total));
        cJSON_AddNumberToObject(o, "bytes_done", (double)done);
        cJSON_AddNumberToObject(o, "bytes_total", (double)total);
        double rate = secs > 0 ? (double)done / secs : 0;
        cJSON_AddNumberToObject(o, "bytes_per_second", (double)(uint64_t)rate);
        if (rate > 0 && total >= done)
                cJSON_AddNumberToObject(o, "eta_seconds", (double)(uint64_t)((double)(total - done) / rate + 0.5));
        return o;
}

struct stage {
        struct aws_ctx *c;
        const struct job_input *in;
        int rootfd;
        const char *bucket, *key;     /* the prefix, or the one object's key */
        char place[4096];             /* where it goes, relative to the tree */
        struct manifest *old, *now;
        struct xfer_opts opts;
        struct stage_progress *pg;
        struct stage_stats *st;
        bool sweep;                   /* an earlier staging was cut short: its temporary files are removed */
        bool skip;                    /* "sync": false, staged before, and there */
        bool listed_all;              /* the listing ended: now holds every object S3 has */
        size_t pending;               /* objects of now to download */
        _Atomic size_t fetched;
        _Atomic uint64_t fetched_bytes;
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

/* The key below the prefix, or NULL (bad set) when the key is not one that can be staged. */
static const char *rel_key(struct stage *s, const char *key) {
        if (!str_has_prefix(key, s->key)) {
                errf(s->bad, sizeof s->bad, "the listing of %s answered the key '%s', which is not under it",
                     s->in->source, key);
                return NULL;
        }
        const char *rel = key + strlen(s->key);
        if (*rel && !str_has_suffix(rel, "/") && !beneath_rel_ok(rel)) {
                /* "..", "." or an empty segment ("p//x" would be the file p/x that "p/x" is too) */
                errf(s->bad, sizeof s->bad, "refusing the key '%s': it would land outside %s, or on another key's "
                     "file (an empty, '.' or '..' path segment)", key, s->place);
                return NULL;
        }
        return rel;
}

static int rel_of(const struct stage *s, const char *key, char *path, size_t n) {
        if (!s->in->prefix)
                return pathf(path, n, "%s", s->place);
        return pathf(path, n, "%s/%s", s->place, key + strlen(s->key));
}

static int on_listed(void *ud, const struct s3_object *o) {
        struct stage *s = ud;
        if (s->in->prefix) {
                const char *rel = rel_key(s, o->key);
                if (!rel)
                        return -EINVAL;
                if (!*rel || str_has_suffix(rel, "/"))
                        return 0; /* a folder marker */
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
        long r = manifest_add(s->now, o->key, o->size, o->etag, 0, 0, false);
        if (r < 0) {
                errf(s->bad, sizeof s->bad, "%s: %s", s->in->source, r == -E2BIG ? "more objects than mayfly stages "
                     "(10,000,000)" : "out of memory");
                return (int)r;
        }
        s->pending++;
        atomic_fetch_add(&s->pg->objects_total, 1);
        xfer_progress_expect(s->pg->bytes, o->size);
        return 0;
}

/* An object downloaded (a transfer thread): its file's size and mtime are what the manifest keeps. */
static void on_fetched(void *ud, const struct xfer_item *it) {
        struct stage *s = ud;
        struct staged *e = &s->now->v[it->tag];
        struct stat st;
        if (lstat_beneath(s->rootfd, it->path, &st) == 0 && S_ISREG(st.st_mode) && manifest_mtime(&st, &e->lmtime)) {
                e->lsize = (uint64_t)st.st_size;
                e->has_file = true;
        }
        atomic_fetch_add(&s->fetched, 1);
        atomic_fetch_add(&s->fetched_bytes, it->size);
        atomic_fetch_add(&s->pg->objects_done, 1);
}

/* The objects to download, STAGE_CHUNK at a time (a batch holds at most XFER_MAX_FILES, and each is a copy). */
#define STAGE_CHUNK 50000
static int fetch_pending(struct stage *s) {
        int r = 0;
        for (size_t i = 0; i < s->now->n && r == 0;) {
                struct xfer_batch b;
                if ((r = xfer_batch_init(&b, s->c, s->bucket, false, &s->opts)) < 0)
                        return r;
                xfer_batch_beneath(&b, s->rootfd);
                b.done = on_fetched;
                b.done_ud = s;
                for (; i < s->now->n && b.n < STAGE_CHUNK && r == 0; i++) {
                        const struct staged *e = &s->now->v[i];
                        char path[8192];
                        if (e->has_file)
                                continue;
                        if ((r = rel_of(s, e->key, path, sizeof path)) == 0 &&
                            (r = xfer_batch_add(&b, e->key, path, e->size)) == 0)
                                b.items[b.n - 1].tag = i;
                }
                if (r == 0 && b.n)
                        r = xfer_batch_run(&b, &s->res);
                if (r == 0 && b.refused) {
                        errf(s->bad, sizeof s->bad, "%s: a link out of the tree is in the way (not followed)",
                             b.refused_path);
                        r = -EXDEV;
                }
                xfer_batch_free(&b);
        }
        return r;
}

/* Modes beneath the directory dfd (rel: its path in the tree's terms): with final, the files the manifest holds
 * 0444 and the directories the thread's user owns 0555; without, those directories 0755 again (files are replaced
 * and removed in them). Links are not followed; nothing else in the directory is touched. */
static int set_modes(struct stage *s, int dfd, const char *rel, bool final, uid_t me, int depth) {
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
                struct stat st;
                char key[8192];
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
                    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    pathf(key, sizeof key, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0)
                        continue;
                if (S_ISDIR(st.st_mode) && st.st_uid == me) {
                        int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0)
                                continue;
                        if (!final && fchmod(sub, 0755) < 0)
                                r = -errno;
                        if (r == 0)
                                r = set_modes(s, sub, key, final, me, depth + 1);
                        if (r == 0 && final && fchmod(sub, 0555) < 0)
                                r = -errno;
                        close(sub);
                } else if (S_ISREG(st.st_mode) && final && (st.st_mode & 07777) != 0444) {
                        char full[8400];
                        struct staged *e = pathf(full, sizeof full, "%s%s", s->key, key) == 0 ?
                                           manifest_find(s->now, full) : NULL;
                        if (e && e->has_file && fchmodat(dfd, de->d_name, 0444, 0) < 0)
                                r = -errno;
                }
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
        uid_t me = (uid_t)setfsuid((uid_t)-1); /* the thread's (the run user's) */
        int r = !final && fchmod(fd, 0755) < 0 ? -errno : set_modes(s, fd, "", final, me, 0);
        if (r == 0 && final && fchmod(fd, 0555) < 0)
                r = -errno;
        return r;
}

/* Whether name is a download's temporary file (transfer.c: ".<name>.mayfly-XXXXXX"). Pure. */
static bool temp_name(const char *name) {
        size_t n = strlen(name);
        return name[0] == '.' && n > 16 && !strncmp(name + n - 14, ".mayfly-", 8);
}

/* An earlier staging cut short (killed, a power loss) left its downloads' temporary files, each as big as its
 * object: removed, in the input's directory and below (depth-first, links not followed). */
static void sweep_temps(int dfd, int depth) {
        int dup_fd = depth <= WALK_MAX_DEPTH ? fcntl(dfd, F_DUPFD_CLOEXEC, 3) : -1;
        DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
        if (!d) {
                if (dup_fd >= 0)
                        close(dup_fd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                struct stat st;
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
                    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISREG(st.st_mode) && temp_name(de->d_name))
                        unlinkat(dfd, de->d_name, 0);
                else if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0) {
                                sweep_temps(sub, depth + 1);
                                close(sub);
                        }
                }
        }
        closedir(d);
}

/* rel's directories, from the deepest up to the input's own (not it), removed while empty. */
static void prune_dirs(struct stage *s, char *rel) {
        size_t top = strlen(s->place);
        for (char *slash = strrchr(rel, '/'); slash && (size_t)(slash - rel) > top; slash = strrchr(rel, '/')) {
                *slash = 0;
                char *up = strrchr(rel, '/');
                const char *name = up ? up + 1 : rel;
                if (up)
                        *up = 0;
                _cleanup_close_ int dfd = beneath_open(s->rootfd, up ? rel : "", O_RDONLY | O_DIRECTORY, 0);
                bool gone = dfd >= 0 && unlinkat(dfd, name, AT_REMOVEDIR) == 0;
                if (up)
                        *up = '/';
                if (!gone)
                        return;
        }
}

/* Files staged before whose objects S3 no longer holds, left as staged: removed, and the directories they leave
 * empty (a changed file stays; so does whatever else is there). Before the downloads: an object that became a
 * directory (a -> a/b) or the other way round finds its place free. */
static void remove_gone(struct stage *s) {
        for (size_t i = 0; i < s->old->n; i++) {
                struct staged *e = &s->old->v[i];
                char path[8192];
                struct stat st;
                if (e->seen || !e->has_file || !str_has_prefix(e->key, s->key) ||
                    rel_of(s, e->key, path, sizeof path) < 0 || lstat_beneath(s->rootfd, path, &st) < 0 ||
                    !manifest_unchanged(e, e->size, e->etag, &st))
                        continue;
                char *slash = strrchr(path, '/');
                const char *name = slash ? slash + 1 : path;
                if (slash)
                        *slash = 0;
                _cleanup_close_ int dfd = beneath_open(s->rootfd, slash ? path : "", O_RDONLY | O_DIRECTORY, 0);
                bool done = dfd >= 0 && unlinkat(dfd, name, 0) == 0;
                if (slash)
                        *slash = '/';
                if (done) {
                        s->st->removed++;
                        if (s->in->prefix)
                                prune_dirs(s, path);
                }
        }
}

static int list_all(struct stage *s) {
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
        return r;
}

/* The staging itself, on a thread with the run user's identity (its transfer threads inherit it). */
static int stage_fn(void *ud) {
        struct stage *s = ud;
        struct stat st;
        if (s->skip && lstat_beneath(s->rootfd, s->place, &st) == 0)
                return 0; /* "sync": false: staged before, and there */
        s->skip = false;
        if (s->sweep && s->in->prefix) {
                _cleanup_close_ int fd = beneath_open(s->rootfd, s->place, O_RDONLY | O_DIRECTORY, 0);
                if (fd >= 0)
                        sweep_temps(fd, 0);
        }
        int r = list_all(s);
        if (r < 0)
                return r;
        s->listed_all = true;
        if (!s->st->listed) {
                errf(s->bad, sizeof s->bad, "%s holds no objects", s->in->source);
                return -MF_ENOTFOUND;
        }
        size_t gone = 0;
        for (size_t i = 0; i < s->old->n; i++)
                gone += s->old->v[i].has_file && !s->old->v[i].seen;
        if ((s->pending || gone) && s->in->read_only)
                modes_of(s, false); /* files are replaced and removed in directories that are 0555 */
        if (gone)
                remove_gone(s);
        if (s->pending && (r = fetch_pending(s)) < 0)
                return r;
        int m = s->in->read_only && (s->pending || gone || !s->old->complete) ? modes_of(s, true) : 0;
        if (m < 0)
                log_warn("input %s: not all of it could be made read-only: %s", s->in->name, strerror(-m));
        return 0;
}

/* <manifest>.staging: there while a staging is under way (its temporary files may be left when it is cut short) */
static int marker(const char *manifest_path, bool set, bool *was) {
        char p[4200];
        if (pathf(p, sizeof p, "%s.staging", manifest_path) < 0)
                return -ENAMETOOLONG;
        struct stat st;
        if (was)
                *was = lstat(p, &st) == 0;
        if (!set)
                return unlink(p) < 0 && errno != ENOENT ? -errno : 0;
        int fd = open(p, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        close(fd);
        return 0;
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
        _cleanup_free_ struct stage *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        *s = (struct stage){ .c = c, .in = in, .rootfd = rootfd, .bucket = bucket, .key = key, .pg = pg, .st = st };
        char place[8192];
        if (job_input_place(in, s->place, sizeof s->place) < 0 ||
            pathf(place, sizeof place, "%s/%s", root_path, s->place) < 0) {
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
        s->old = &old, s->now = &now;
        if (manifest_load(&old, manifest_path, e2, sizeof e2) < 0) {
                log_warn("input %s: what was staged before is not known (everything is downloaded again): %s",
                         in->name, e2);
                manifest_free(&old);
                manifest_init(&old, in->source, place);
        }
        s->skip = !in->sync && old.complete && old.n;
        /* also when skipped: a place that is gone is staged again, and may be cut short */
        if (marker(manifest_path, true, &s->sweep) < 0)
                log_warn("input %s: cannot mark the staging as under way", in->name);
        s->opts = (struct xfer_opts){ .concurrency = MIN(XFER_MAX_CONCURRENCY, MAX(16, 2 * xfer_default_concurrency())),
                                      .progress = pg->bytes, .md5_etag = true, .cancel = &pg->cancel };
        r = as_user(u, -1, stage_fn, s);
        st->fetched = atomic_load(&s->fetched);
        st->bytes = atomic_load(&s->fetched_bytes);
        if (r == 0 && s->skip) {
                marker(manifest_path, false, NULL);
                st->skipped = true;
                st->kept = st->listed = old.n;
                goto out;
        }
        if (r < 0)
                errf(err, errlen, "input %s: %s", in->name,
                     s->bad[0] ? s->bad : s->res.msg[0] ? s->res.msg : strerror(-r));
        if (s->listed_all) {
                /* what was staged is kept, even when the staging failed: the next start goes on from there */
                now.complete = r == 0;
                if (manifest_save(&now, manifest_path, e2, sizeof e2) < 0)
                        log_warn("input %s: what was staged is not remembered (the next start downloads it all "
                                 "again): %s", in->name, e2);
                else if (r == 0)
                        marker(manifest_path, false, NULL);
        }
out:
        manifest_free(&old);
        manifest_free(&now);
        return r;
}
