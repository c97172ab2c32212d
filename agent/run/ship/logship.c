/* SPDX-License-Identifier: Apache-2.0 */
/* logship.c — incremental log shipping: each tick uploads only bytes not yet shipped, as
 * live/<stream>.<offset> objects; cost stays proportional to what the experiment writes. */
#include "run/ship/logship.h"

#include "caps.h"

#include <fcntl.h>

#include "aws/xferdir.h"
#include "run/base/job.h"
#include "run/proc/exptree.h"

int shipper_init(struct shipper *s, struct aws_ctx *c, const char *bucket, const char *prefix, long interval) {
        memset(s, 0, sizeof *s);
        s->c = c;
        snprintf(s->bucket, sizeof s->bucket, "%s", bucket);
        snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
        s->interval = interval > 0 ? interval : 10;
        s->ckpt_rootfd = -1;
        s->ckpt_current = -1;
        pthread_mutex_init(&s->lock, NULL);
        pthread_mutex_init(&s->mirror_lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&s->cond, &ca);
        pthread_condattr_destroy(&ca);
        return 0;
}

int shipper_add_stream(struct shipper *s, const char *path, const char *name) {
        pthread_mutex_lock(&s->lock);
        int r = 0;
        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->streams[i].name, name))
                        goto out; /* already known (resume): keep its offset */
        if (s->n == s->alloc) {
                size_t na = s->alloc ? s->alloc * 2 : 16;
                struct logstream *v = realloc(s->streams, na * sizeof *v);
                if (!v) {
                        r = -ENOMEM;
                        goto out;
                }
                s->streams = v;
                s->alloc = na;
        }
        struct logstream l = { .path = strdup(path), .name = strdup(name) };
        if (!l.path || !l.name) {
                free(l.path);
                free(l.name);
                r = -ENOMEM;
                goto out;
        }
        s->streams[s->n++] = l;
out:
        pthread_mutex_unlock(&s->lock);
        return r;
}

/* The size of rel in the tree now (0 when there is none). */
static uint64_t src_size(const struct run_user *u, int rootfd, const char *rel) {
        _cleanup_close_ int fd = exptree_open_read(u, rootfd, rel);
        struct stat st;
        return fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int shipper_add_mirror(struct shipper *s, const char *path, const char *name, const struct run_user *u, int rootfd,
                       const char *rel) {
        uint64_t from = src_size(u, rootfd, rel);
        char *src = strdup(rel);
        int r = src ? shipper_add_stream(s, path, name) : -ENOMEM;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; r == 0 && i < s->n; i++)
                if (!strcmp(s->streams[i].name, name) && !s->streams[i].src) {
                        s->streams[i].src = TAKE_PTR(src);
                        s->streams[i].user = u;
                        s->streams[i].rootfd = rootfd;
                        s->streams[i].src_off = from;
                }
        pthread_mutex_unlock(&s->lock);
        free(src);
        return r;
}

/* [from, size) of the open file in onto the end of out, at most max bytes; the bytes copied, or -errno. */
static int64_t copy_range(int in, uint64_t from, uint64_t size, int out, uint64_t max) {
        char b[65536];
        uint64_t done = 0;
        while (from + done < size && done < max) {
                ssize_t n = pread(in, b, (size_t)MIN((uint64_t)sizeof b, MIN(size - from - done, max - done)),
                                  (off_t)(from + done));
                if (n <= 0)
                        return n < 0 ? -errno : (int64_t)done;
                for (ssize_t w = 0, k; w < n; w += k)
                        if ((k = write(out, b + w, (size_t)(n - w))) < 0 && errno != EINTR)
                                return -errno;
                        else if (k < 0)
                                k = 0;
                done += (uint64_t)n;
        }
        return (int64_t)done;
}

/* Stream i's mirror brought up to date: the file the experiment writes read through an fd opened as its user
 * beneath its tree; root writes only its own copy. */
static void mirror_one(struct shipper *s, size_t i) {
        pthread_mutex_lock(&s->mirror_lock);
        pthread_mutex_lock(&s->lock);
        struct logstream l = s->streams[i];
        pthread_mutex_unlock(&s->lock);
        _cleanup_close_ int in = l.src ? exptree_open_read(l.user, l.rootfd, l.src) : -1;
        _cleanup_close_ int out = in >= 0 ? open(l.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640) : -1;
        struct stat si, so;
        if (out >= 0 && fstat(in, &si) == 0 && fstat(out, &so) == 0) {
                uint64_t size = (uint64_t)si.st_size, have = (uint64_t)so.st_size;
                if (size < l.src_off)
                        l.src_off = 0; /* rewritten */
                int64_t n = have < XMETRICS_MAX_COPY ? copy_range(in, l.src_off, size, out, XMETRICS_MAX_COPY - have) : 0;
                if (n > 0)
                        l.src_off += (uint64_t)n;
                pthread_mutex_lock(&s->lock);
                s->streams[i].src_off = l.src_off;
                pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_unlock(&s->mirror_lock);
}

void shipper_mirror(struct shipper *s, const char *name) {
        pthread_mutex_lock(&s->lock);
        size_t n = s->n, i = 0;
        while (i < n && strcmp(s->streams[i].name, name))
                i++;
        pthread_mutex_unlock(&s->lock);
        if (i < n)
                mirror_one(s, i);
}

struct chunks {
        size_t skip;                  /* the listing's prefix length: the key's rest is the chunk's offset */
        struct chunk {
                uint64_t off, size;
        } *v;
        size_t n, alloc;
};

static int on_chunk(void *ud, const struct s3_object *o) {
        struct chunks *c = ud;
        const char *rest = o->key + c->skip;
        char *end;
        errno = 0;
        unsigned long long off = strtoull(rest, &end, 10);
        if (errno || end == rest || *end || strlen(rest) != 12 || o->size == 0)
                return 0; /* not a chunk of this stream */
        struct chunk *v = array_room(c->v, c->n, &c->alloc, sizeof *v, 64);
        if (!v)
                return -ENOMEM;
        c->v = v;
        c->v[c->n++] = (struct chunk){ off, o->size };
        return 0;
}

static int by_offset(const void *a, const void *b) {
        const struct chunk *x = a, *y = b;
        return x->off < y->off ? -1 : x->off > y->off;
}

int shipper_restore_tail(struct shipper *s, const char *path, const char *name, uint64_t *ret_added,
                         struct aws_result *out) {
        char rel[512], prefix[S3_MAX_KEY + 1];
        *ret_added = 0;
        int r = pathf(rel, sizeof rel, "live/%s.", name);
        if (r == 0)
                r = shipper_key(s, rel, prefix, out);
        if (r < 0)
                return r;
        struct http_client h;
        if ((r = http_client_init(&h)) < 0)
                return r;
        struct chunks c = { .skip = strlen(prefix) };
        _cleanup_close_ int fd = -1;
        r = s3_list(s->c, &h, s->bucket, prefix, on_chunk, &c, out);
        if (r == 0 && c.n) {
                fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
                if (fd < 0)
                        r = -errno;
        }
        struct stat st;
        if (r == 0 && fd >= 0 && fstat(fd, &st) < 0)
                r = -errno;
        if (r == 0 && fd >= 0) {
                qsort(c.v, c.n, sizeof *c.v, by_offset);
                uint64_t cur = (uint64_t)st.st_size, from = cur;
                for (size_t i = 0; r == 0 && i < c.n; i++) {
                        if (c.v[i].off > cur || c.v[i].off + c.v[i].size <= cur)
                                continue; /* a gap (the chunk between was lost), or what the file has */
                        if (c.v[i].size > CAP_LIVE_CHUNK || c.v[i].off + c.v[i].size > CAP_LOG_RESTORE) {
                                /* never shipped by an agent (it ships at most CAP_LIVE_CHUNK at a time), or past
                                 * what is brought back onto the disk: not restored, and nothing after it */
                                errf(out->msg, sizeof out->msg, "live/%s.%012llu: %llu bytes, more than a live log "
                                     "chunk may be (%u) or past %llu bytes of log: not restored", name,
                                     (unsigned long long)c.v[i].off, (unsigned long long)c.v[i].size,
                                     (unsigned)CAP_LIVE_CHUNK, (unsigned long long)CAP_LOG_RESTORE);
                                r = -EFBIG;
                                break;
                        }
                        char key[S3_MAX_KEY + 1];
                        if ((size_t)snprintf(key, sizeof key, "%s%012llu", prefix, (unsigned long long)c.v[i].off) >=
                            sizeof key) {
                                r = -ENAMETOOLONG;
                                break;
                        }
                        r = s3_get_range(s->c, &h, s->bucket, key, cur - c.v[i].off, c.v[i].off + c.v[i].size - cur,
                                         fd, (off_t)cur, NULL, NULL, NULL, NULL, out);
                        if (r == 0)
                                cur = c.v[i].off + c.v[i].size;
                }
                *ret_added = cur - from;
        }
        free(c.v);
        http_client_free(&h);
        return r;
}

/* Ship [shipped, size) of one stream as one object. Called without the lock held. */
static int ship_delta(struct shipper *s, struct http_client *h, struct logstream *l, struct aws_result *out) {
        int fd = open(l->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        struct stat st;
        int r = 0;
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > l->shipped) {
                uint64_t len = MIN((uint64_t)st.st_size - l->shipped, 64ull << 20);
                char rel[512], key[S3_MAX_KEY + 1];
                r = pathf(rel, sizeof rel, "live/%s.%012llu", l->name, (unsigned long long)l->shipped);
                if (r == 0)
                        r = shipper_key(s, rel, key, out);
                if (r == 0)
                        r = s3_put(s->c, h, s->bucket, key, NULL, fd, (off_t)l->shipped, len, "text/plain", NULL, NULL, out);
                if (r == 0) {
                        l->shipped += len;
                        s->chunks++;
                }
        }
        close(fd);
        return r;
}

static void note_failure(struct shipper *s, const struct aws_result *res) {
        pthread_mutex_lock(&s->lock);
        s->failures++;
        errf(s->last_error, sizeof s->last_error, "%s", res->msg);
        pthread_mutex_unlock(&s->lock);
}

static void tick(struct shipper *s, struct http_client *h, bool force) {
        double now = now_mono();
        for (size_t i = 0;; i++) {
                pthread_mutex_lock(&s->lock);
                if (i >= s->n) {
                        pthread_mutex_unlock(&s->lock);
                        break;
                }
                struct logstream l = s->streams[i];
                pthread_mutex_unlock(&s->lock);
                if (!force && now - l.last < (double)s->interval)
                        continue;
                if (l.src)
                        mirror_one(s, i);
                struct aws_result res;
                int r = ship_delta(s, h, &l, &res);
                l.last = now;
                if (r < 0)
                        note_failure(s, &res);
                pthread_mutex_lock(&s->lock);
                s->streams[i].shipped = l.shipped;
                s->streams[i].last = l.last;
                pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_lock(&s->lock);
        char *st = TAKE_PTR(s->status_json);
        pthread_mutex_unlock(&s->lock);
        if (st) {
                struct aws_result res = { 0 };
                int r = shipper_status_write(s, h, st, &res);
                if (r < 0) {
                        note_failure(s, &res);
                        pthread_mutex_lock(&s->lock);
                        if (!s->status_json)
                                s->status_json = TAKE_PTR(st); /* try again next tick */
                        pthread_mutex_unlock(&s->lock);
                }
                free(st);
        }
}

static void *ship_thread(void *ud) {
        struct shipper *s = ud;
        struct http_client h;
        if (http_client_init(&h) < 0) {
                pthread_mutex_lock(&s->lock);
                s->exited = true; /* nothing to wait for */
                pthread_cond_broadcast(&s->cond);
                pthread_mutex_unlock(&s->lock);
                return NULL;
        }
        for (;;) {
                pthread_mutex_lock(&s->lock);
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts); /* a clock step cannot stall shipping */
                ts.tv_sec += 1;
                if (!s->stop)
                        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
                bool stop = s->stop;
                int idx = s->ckpt_current;
                char name[80];
                snprintf(name, sizeof name, "%s", s->ckpt_name);
                bool ck = idx >= 0 && s->ckpt_interval > 0 && now_mono() - s->ckpt_last >= (double)s->ckpt_interval;
                if (ck)
                        s->ckpt_last = now_mono();
                pthread_mutex_unlock(&s->lock);
                if (stop)
                        break;
                tick(s, &h, false);
                if (ck) {
                        struct aws_result res;
                        if (shipper_sync_checkpoint(s, idx, name, &res) < 0)
                                note_failure(s, &res);
                }
        }
        http_client_free(&h);
        pthread_mutex_lock(&s->lock);
        s->exited = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return NULL;
}

int shipper_start(struct shipper *s) {
        if (s->running)
                return 0;
        if (s->abandoned)
                return -EBUSY; /* the old thread may still run */
        s->stop = false;
        s->exited = false;
        int r = pthread_create(&s->th, NULL, ship_thread, s);
        if (r != 0)
                return -r;
        s->running = true;
        return 0;
}

int shipper_stop(struct shipper *s, double deadline) {
        if (!s->running)
                return 0;
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_broadcast(&s->cond);
        /* the thread may be in a transfer that hangs (an upload stuck on S3): waited for, within the deadline */
        while (!s->exited && now_mono() < deadline) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        bool exited = s->exited;
        pthread_mutex_unlock(&s->lock);
        s->running = false;
        if (!exited) {
                pthread_detach(s->th);
                s->abandoned = true;
                return -ETIMEDOUT;
        }
        pthread_join(s->th, NULL);
        return 0;
}

int shipper_flush(struct shipper *s, struct aws_result *out) {
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        unsigned long before = s->failures;
        tick(s, &h, true);
        http_client_free(&h);
        if (s->failures != before) {
                snprintf(out->msg, sizeof out->msg, "%s", s->last_error);
                return -EIO;
        }
        return 0;
}

void shipper_free(struct shipper *s) {
        shipper_stop(s, now_mono() + SHIPPER_FREE_WAIT);
        if (s->abandoned)
                return; /* still used by the thread: left for the process's end */
        for (size_t i = 0; i < s->n; i++) {
                free(s->streams[i].path);
                free(s->streams[i].name);
                free(s->streams[i].src);
        }
        free(s->streams);
        free(s->ckpt_since);
        free(s->status_json);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->mirror_lock);
        pthread_cond_destroy(&s->cond);
}
