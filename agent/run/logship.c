/* SPDX-License-Identifier: Apache-2.0 */
/* logship.c — incremental log shipping: each tick uploads only bytes not yet shipped, as
 * live/<stream>.<offset> objects; cost stays proportional to what the experiment writes. */
#include "run/logship.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "aws/s3cas.h"
#include "aws/xferdir.h"
#include "run/exptree.h"

int shipper_init(struct shipper *s, struct aws_ctx *c, const char *bucket, const char *prefix, long interval) {
        memset(s, 0, sizeof *s);
        s->c = c;
        snprintf(s->bucket, sizeof s->bucket, "%s", bucket);
        snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
        s->interval = interval > 0 ? interval : 10;
        s->ckpt_rootfd = -1;
        s->ckpt_current = -1;
        pthread_mutex_init(&s->lock, NULL);
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

void shipper_set_status(struct shipper *s, const char *json) {
        char *copy = strdup(json);
        pthread_mutex_lock(&s->lock);
        free(s->status_json);
        s->status_json = copy;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

int shipper_set_checkpoint(struct shipper *s, const struct run_user *u, int rootfd, const char *base, size_t n,
                           long interval) {
        time_t *since = calloc(n ? n : 1, sizeof *since);
        if (!since)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        snprintf(s->ckpt_base, sizeof s->ckpt_base, "%s", base ? base : "");
        s->ckpt_user = u;
        s->ckpt_rootfd = rootfd;
        s->ckpt_interval = interval;
        s->ckpt_last = now_mono();
        free(s->ckpt_since);
        s->ckpt_since = since;
        s->ckpt_n = n;
        pthread_mutex_unlock(&s->lock);
        return 0;
}

void shipper_checkpoint_current(struct shipper *s, int idx, const char *name) {
        pthread_mutex_lock(&s->lock);
        s->ckpt_current = idx;
        snprintf(s->ckpt_name, sizeof s->ckpt_name, "%s", name ? name : "");
        s->ckpt_last = now_mono();
        pthread_mutex_unlock(&s->lock);
}

bool shipper_refusal(struct shipper *s, char *dst, size_t n) {
        pthread_mutex_lock(&s->lock);
        bool any = s->refusal[0] != 0;
        if (any)
                snprintf(dst, n, "%s", s->refusal);
        pthread_mutex_unlock(&s->lock);
        return any;
}

/* The run's key for rel; -ENAMETOOLONG with out->msg when it is longer than S3 allows. */
static int run_key(const struct shipper *s, const char *rel, char key[S3_MAX_KEY + 1], struct aws_result *out) {
        int r = pathf(key, S3_MAX_KEY + 1, "%s%s", s->prefix, rel);
        if (r < 0)
                errf(out->msg, sizeof out->msg, "%s%s: longer than an S3 key may be (%d bytes)", s->prefix, rel,
                     S3_MAX_KEY);
        return r;
}

/* status.json of a run shared by instances: written only while the run's end record does not exist, and only over
 * the status.json whose ETag was read before the end record was looked for (If-Match; If-None-Match when there was
 * none). The instance that ends the run writes the end record first and its final status after it, so a running
 * view from here either lands before the final status or fails its condition: it never overwrites it. 0 when
 * written or when there is nothing to write any more (s->status_closed), -errno. */
static int put_shared_status(struct shipper *s, struct http_client *h, const char *key, const char *json,
                             struct aws_result *out) {
        char end[S3_MAX_KEY + 1];
        int r = run_key(s, "ledger/end.json", end, out);
        for (int t = 0; r == 0 && t < 3; t++) {
                char etag[128] = "";
                uint64_t size;
                r = s3_head(s->c, h, s->bucket, key, &size, etag, out);
                if (r == -MF_ENOTFOUND) {
                        etag[0] = 0;
                        r = 0;
                }
                _cleanup_free_ char *body = NULL;
                char tag[128];
                int e = r == 0 ? s3cas_get(s->c, h, s->bucket, end, &body, tag, out) : r;
                if (e == 0) {
                        s->status_closed = true; /* the run is over: its final status is the ender's */
                        return 0;
                }
                if (e != -MF_ENOTFOUND)
                        return e;
                r = s3cas_put(s->c, h, s->bucket, key, json, etag[0] ? etag : NULL, !etag[0], tag, out);
                if (r != -MF_EPRECOND && r != -MF_ECONFLICT)
                        return r;
                r = 0; /* another instance wrote it meanwhile: look again */
        }
        if (r == 0)
                errf(out->msg, sizeof out->msg, "status.json: other instances kept writing it; again later");
        return r < 0 ? r : -EAGAIN;
}

int shipper_put_status(struct shipper *s, const char *json, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = run_key(s, "status.json", key, out);
        if (r < 0)
                return r;
        if (!s->status_shared)
                return shipper_put_text(s, "status.json", json, "application/json", out);
        if (s->status_closed)
                return 0;
        struct http_client h;
        if ((r = http_client_init(&h)) < 0)
                return r;
        r = put_shared_status(s, &h, key, json, out);
        http_client_free(&h);
        return r;
}

void shipper_share_status(struct shipper *s) { s->status_shared = true; }

int shipper_put_text(struct shipper *s, const char *rel, const char *text, const char *ctype, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = run_key(s, rel, key, out);
        if (r < 0)
                return r;
        struct http_client h;
        r = http_client_init(&h);
        if (r < 0)
                return r;
        r = s3_put(s->c, &h, s->bucket, key, text, -1, 0, strlen(text), ctype, NULL, NULL, out);
        http_client_free(&h);
        return r;
}

int shipper_put_file(struct shipper *s, const char *path, const char *rel, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = run_key(s, rel, key, out);
        if (r < 0)
                return r;
        struct xfer_opts o = { .concurrency = 4 };
        return xfer_upload(s->c, path, s->bucket, key, &o, out);
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
                r = run_key(s, rel, prefix, out);
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
                        r = run_key(s, rel, key, out);
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

static bool ckpt_filter(void *ud, const char *rel, const struct stat *st) {
        time_t since = *(time_t *)ud;
        return st->st_mtime >= since;
}

struct ckpt_walk {
        char dir[4200];
        char prefix[1400];
        time_t since;
};

static int fill_ckpt(struct xfer_batch *b, void *ud, struct aws_result *out) {
        struct ckpt_walk *w = ud;
        return xfer_batch_add_tree(b, w->dir, w->prefix, ckpt_filter, &w->since, out);
}

/* One experiment's checkpoint files changed since its last sync, read as the run user beneath the workdir: a file
 * swapped for a link to /etc/shadow between the walk and the read is refused, not read as root. */
int shipper_sync_checkpoint(struct shipper *s, int idx, const char *name, struct aws_result *out) {
        struct ckpt_walk w;
        pthread_mutex_lock(&s->lock);
        bool set = s->ckpt_base[0] && s->ckpt_rootfd >= 0 && idx >= 0 && (size_t)idx < s->ckpt_n;
        if (set && (pathf(w.dir, sizeof w.dir, "%s/%s", s->ckpt_base, name) < 0 ||
                    pathf(w.prefix, sizeof w.prefix, "%scheckpoint/%s/", s->prefix, name) < 0)) {
                pthread_mutex_unlock(&s->lock);
                errf(out->msg, sizeof out->msg, "the checkpoint directory of %s: path or key too long", name);
                return -ENAMETOOLONG;
        }
        if (set)
                w.since = s->ckpt_since[idx];
        const struct run_user *u = s->ckpt_user;
        int rootfd = s->ckpt_rootfd;
        pthread_mutex_unlock(&s->lock);
        if (!set)
                return 0;
        time_t start = now_wall() - 1;
        struct xfer_batch b;
        struct xfer_opts o = { .concurrency = 4 };
        int r = xfer_batch_init(&b, s->c, s->bucket, true, &o);
        if (r == 0)
                r = exptree_transfer(u, rootfd, &b, fill_ckpt, &w, out);
        if (r == -ENOENT)
                r = 0; /* no checkpoint (yet) */
        if (b.refused) {
                pthread_mutex_lock(&s->lock);
                if (!s->refusal[0])
                        exptree_refusal(&b, s->refusal, sizeof s->refusal);
                pthread_mutex_unlock(&s->lock);
        }
        xfer_batch_free(&b);
        if (r == 0) {
                pthread_mutex_lock(&s->lock);
                if ((size_t)idx < s->ckpt_n)
                        s->ckpt_since[idx] = start;
                pthread_mutex_unlock(&s->lock);
        }
        return r;
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
                char key[S3_MAX_KEY + 1];
                int r = run_key(s, "status.json", key, &res);
                if (r == 0 && s->status_shared)
                        r = s->status_closed ? 0 : put_shared_status(s, h, key, st, &res);
                else if (r == 0)
                        r = s3_put(s->c, h, s->bucket, key, st, -1, 0, strlen(st), "application/json", NULL, NULL, &res);
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
        if (http_client_init(&h) < 0)
                return NULL;
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
        return NULL;
}

int shipper_start(struct shipper *s) {
        if (s->running)
                return 0;
        s->stop = false;
        int r = pthread_create(&s->th, NULL, ship_thread, s);
        if (r != 0)
                return -r;
        s->running = true;
        return 0;
}

void shipper_stop(struct shipper *s) {
        if (!s->running)
                return;
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->th, NULL);
        s->running = false;
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
        shipper_stop(s);
        for (size_t i = 0; i < s->n; i++) {
                free(s->streams[i].path);
                free(s->streams[i].name);
        }
        free(s->streams);
        free(s->ckpt_since);
        free(s->status_json);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
}
