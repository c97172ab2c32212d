/* SPDX-License-Identifier: Apache-2.0 */
/* transfer.c — worker threads, one libcurl handle each, pulling part numbers from a shared counter. */
#include "aws/transfer.h"

#include "checksum.h"
#include "crypto.h"
#include "aws/s3traits.h"

#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <sys/stat.h>

struct xfer_progress {
        _Atomic int64_t done;
        _Atomic uint64_t total;
        int fd;
        double start;
        _Atomic double last;       /* read by every transfer thread, written by the one that prints */
        pthread_mutex_t lock;
};

struct xfer_progress *xfer_progress_new(uint64_t total, int fd) {
        if (fd >= 0 && !isatty(fd))
                return NULL;
        struct xfer_progress *p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        p->total = total;
        p->fd = fd;
        p->start = now_mono();
        atomic_store(&p->last, p->start);
        pthread_mutex_init(&p->lock, NULL);
        return p;
}

static void progress_print(struct xfer_progress *p, bool final) {
        if (p->fd < 0)
                return; /* a counter (status.json reads it) */
        double t = now_mono() - p->start;
        double mib = (double)atomic_load(&p->done) / 1048576.0;
        char line[160];
        int n = snprintf(line, sizeof line, "\r%.1f MiB / %.1f MiB  %.1f MiB/s%s", mib,
                         (double)atomic_load(&p->total) / 1048576.0, t > 0 ? mib / t : 0.0, final ? "\n" : "   ");
        if (n > 0 && write(p->fd, line, (size_t)MIN(n, (int)sizeof line - 1)) < 0) {
                /* progress is cosmetic */
        }
}

void xfer_progress_add(void *ud, int64_t n) {
        struct xfer_progress *p = ud;
        if (!p)
                return;
        atomic_fetch_add(&p->done, n);
        if (p->fd < 0)
                return; /* a counter: nothing to print */
        double now = now_mono();
        if (now - atomic_load(&p->last) >= 0.5 && pthread_mutex_trylock(&p->lock) == 0) {
                atomic_store(&p->last, now);
                progress_print(p, false);
                pthread_mutex_unlock(&p->lock);
        }
}

void xfer_progress_expect(struct xfer_progress *p, uint64_t n) {
        if (p)
                atomic_fetch_add(&p->total, n);
}

void xfer_progress_read(struct xfer_progress *p, uint64_t *ret_done, uint64_t *ret_total, double *ret_seconds) {
        int64_t d = p ? atomic_load(&p->done) : 0;
        *ret_done = d > 0 ? (uint64_t)d : 0;
        *ret_total = p ? atomic_load(&p->total) : 0;
        *ret_seconds = p ? now_mono() - p->start : 0;
}

void xfer_progress_done(struct xfer_progress *p) {
        if (!p)
                return;
        progress_print(p, true);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

int xfer_default_concurrency(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return (int)MIN(16, MAX(4, 2 * (n > 0 ? n : 1)));
}

uint64_t xfer_part_size(uint64_t size, uint64_t want) {
        const uint64_t mib = 1ull << 20;
        uint64_t p = want ? want : XFER_DEFAULT_PART;
        if (p < S3_MIN_PART)
                p = S3_MIN_PART;
        uint64_t min = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
        if (p < min)
                p = min;
        return (p + mib - 1) / mib * mib;
}

int xfer_plan(uint64_t size, uint64_t part, uint64_t up_part, struct xfer_unit **ret, size_t *ret_n) {
        if (part == 0)
                return -EINVAL;
        /* upload parts, each cut into equal ranges of at most `part` (without up_part: one "part", the object) */
        uint64_t up = up_part ? up_part : MAX(size, 1);
        uint64_t ngroups = size ? (size + up - 1) / up : 1;
        size_t n = 0;
        for (uint64_t g = 0; g < ngroups; g++) {
                uint64_t glen = MIN(up, size - g * up);
                n += glen ? (size_t)((glen + part - 1) / part) : 1;
                if (n > XFER_MAX_UNITS)
                        return -E2BIG;
        }
        struct xfer_unit *u = calloc(n, sizeof *u);
        if (!u)
                return -ENOMEM;
        size_t k = 0;
        for (uint64_t g = 0; g < ngroups; g++) {
                uint64_t goff = g * up, glen = MIN(up, size - goff);
                uint64_t pieces = glen ? (glen + part - 1) / part : 1;
                uint64_t each = up_part ? (glen + pieces - 1) / pieces : part;
                for (uint64_t o = 0; k < n && (o < glen || (glen == 0 && o == 0)); o += each) {
                        u[k++] = (struct xfer_unit){ .off = goff + o, .len = MIN(each, glen - o),
                                                     .group = (unsigned)g };
                        if (glen == 0)
                                break;
                }
        }
        *ret = u;
        *ret_n = k;
        return 0;
}

uint32_t xfer_units_crc(const struct xfer_unit *u, size_t n, bool composite) {
        uint32_t all = 0, group = 0, parts[64];
        size_t np = 0;
        if (!composite) {
                for (size_t i = 0; i < n; i++)
                        all = i ? crc32_join(all, u[i].crc, u[i].len) : u[i].crc;
                return all;
        }
        for (size_t i = 0; i < n; i++) {
                group = i && u[i].group == u[i - 1].group ? crc32_join(group, u[i].crc, u[i].len) : u[i].crc;
                if (i + 1 < n && u[i + 1].group == u[i].group)
                        continue;
                /* the composite is a CRC32 over the parts' big-endian CRC32s: fed in batches */
                parts[np++] = group;
                if (np == ARRAY_SIZE(parts) || i + 1 == n) {
                        unsigned char be[4 * ARRAY_SIZE(parts)];
                        for (size_t k = 0; k < np; k++) {
                                be[4 * k] = (unsigned char)(parts[k] >> 24);
                                be[4 * k + 1] = (unsigned char)(parts[k] >> 16);
                                be[4 * k + 2] = (unsigned char)(parts[k] >> 8);
                                be[4 * k + 3] = (unsigned char)parts[k];
                        }
                        all = crc32_update(all, be, 4 * np);
                        np = 0;
                }
        }
        return all;
}

struct job {
        struct aws_ctx *c;
        const char *bucket, *key;
        int fd;
        uint64_t size, part;
        unsigned nparts;
        _Atomic unsigned next;
        _Atomic int failed;
        bool upload;
        const char *etag;          /* download: If-Match */
        struct xfer_unit *units;   /* download: the ranges (nparts of them), each with its CRC32 */
        bool want_crc;             /* download: S3 holds a CRC32 to check them against */
        const char *upload_id;     /* upload */
        char (*etags)[128];
        uint32_t *crcs;
        struct xfer_progress *progress;
        const _Atomic bool *cancel;   /* set: no further part is begun */
        pthread_mutex_t lock;
        struct aws_result first_error;
        int first_rc;
};

static void job_fail(struct job *j, int rc, const struct aws_result *res) {
        pthread_mutex_lock(&j->lock);
        if (!j->first_rc) {
                j->first_rc = rc;
                j->first_error = *res;
        }
        pthread_mutex_unlock(&j->lock);
        atomic_store(&j->failed, 1);
}

static void *worker(void *ud) {
        struct job *j = ud;
        struct http_client h;
        struct aws_result res;
        if (http_client_init(&h) < 0) {
                res = (struct aws_result){ .msg = "out of memory" };
                job_fail(j, -ENOMEM, &res);
                return NULL;
        }
        h.bulk = true;
        for (;;) {
                unsigned i = atomic_fetch_add(&j->next, 1);
                if (i >= j->nparts || atomic_load(&j->failed))
                        break;
                if (j->cancel && atomic_load(j->cancel)) {
                        res = (struct aws_result){ 0 };
                        snprintf(res.msg, sizeof res.msg, "stopped in the middle of s3://%s/%s", j->bucket, j->key);
                        job_fail(j, -ECANCELED, &res);
                        break;
                }
                int r;
                if (j->upload) {
                        uint64_t off = (uint64_t)i * j->part;
                        uint64_t len = MIN(j->part, j->size - off);
                        r = s3_mpu_part(j->c, &h, j->bucket, j->key, j->upload_id, i + 1, j->fd, (off_t)off, len,
                                        j->etags[i], &j->crcs[i], xfer_progress_add, j->progress, &res);
                } else {
                        struct xfer_unit *u = &j->units[i];
                        r = s3_get_range(j->c, &h, j->bucket, j->key, u->off, u->len, j->fd, (off_t)u->off, j->etag,
                                         j->want_crc ? &u->crc : NULL, xfer_progress_add, j->progress, &res);
                }
                if (r < 0) {
                        job_fail(j, r, &res);
                        break;
                }
        }
        http_client_free(&h);
        return NULL;
}

/* Runs the job's parts on min(concurrency, nparts) threads; 0 or the first failure. */
static int run_parts(struct job *j, int concurrency, struct aws_result *out) {
        int n = MAX(1, MIN(concurrency, (int)j->nparts));
        pthread_t th[XFER_MAX_CONCURRENCY];
        int started = 0;
        pthread_mutex_init(&j->lock, NULL);
        for (; started < n && started < XFER_MAX_CONCURRENCY; started++)
                if (pthread_create(&th[started], NULL, worker, j) != 0)
                        break;
        if (started == 0)
                worker(j);
        for (int i = 0; i < started; i++)
                pthread_join(th[i], NULL);
        pthread_mutex_destroy(&j->lock);
        if (j->first_rc) {
                *out = j->first_error;
                return j->first_rc;
        }
        return 0;
}

static int clamp_concurrency(const struct xfer_opts *o) {
        int n = o && o->concurrency > 0 ? o->concurrency : xfer_default_concurrency();
        return MIN(n, XFER_MAX_CONCURRENCY);
}

/* A new file for the download next to its final name, in dirfd (O_EXCL, so never through a link); read-write: a
 * composite checksum is computed from it. */
static int open_temp(int dirfd, const char *name, char *tmp, size_t n) {
        for (int i = 0; i < 64; i++) {
                unsigned char rnd[6];
                if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
                        return -EIO;
                char sfx[7];
                for (size_t k = 0; k < sizeof rnd; k++)
                        sfx[k] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[rnd[k] % 62];
                sfx[6] = 0;
                if ((size_t)snprintf(tmp, n, ".%s.mayfly-%s", name, sfx) >= n)
                        return -ENAMETOOLONG;
                int fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd >= 0 || errno != EEXIST)
                        return fd < 0 ? -errno : fd;
        }
        return -EEXIST;
}

int xfer_download(struct aws_ctx *c, const char *bucket, const char *key, const char *dest,
                  const struct xfer_opts *o, struct aws_result *out) {
        _cleanup_free_ char *d1 = strdup(dest), *d2 = strdup(dest);
        if (!d1 || !d2) {
                snprintf(out->msg, sizeof out->msg, "out of memory");
                return -ENOMEM;
        }
        _cleanup_close_ int dirfd = open(dirname(d1), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot open the directory of %s: %s", dest, strerror(errno));
                return -errno;
        }
        return xfer_download_at(c, bucket, key, dirfd, basename(d2), dest, o, out);
}

static void mismatch(struct aws_result *out, const char *bucket, const char *key, uint32_t got, uint32_t want,
                     unsigned parts, int attempt) {
        char g[CRC32_B64_LEN + 1], w[CRC32_B64_LEN + 1], n[16] = "";
        crc32_to_base64(got, g);
        crc32_to_base64(want, w);
        if (parts)
                snprintf(n, sizeof n, "-%u", parts);
        snprintf(out->msg, sizeof out->msg, "s3://%s/%s: the downloaded bytes' CRC32 %s%s differs from S3's %s%s "
                 "(%d attempt%s)", bucket, key, g, n, w, n, attempt, attempt == 1 ? "" : "s");
}

static int reserve(int fd, uint64_t size, const char *bucket, const char *key, const char *dest,
                   struct aws_result *out) {
        int r = size ? posix_fallocate(fd, 0, (off_t)size) : 0;
        if (r == ENOSPC || r == EFBIG || r == EDQUOT) {
                snprintf(out->msg, sizeof out->msg, "no space for s3://%s/%s (%llu bytes) at %s: %s", bucket, key,
                         (unsigned long long)size, dest, strerror(r));
                return -r;
        }
        return 0;
}

/* The composite of a small multipart object, read back from the file in parts of part_size. */
static int composite_of_file(int fd, uint64_t size, uint64_t part_size, uint32_t *ret) {
        uint32_t parts[64], all = 0;
        size_t np = 0;
        for (uint64_t off = 0; off < size; off += part_size) {
                int r = crc32_of_fd(fd, (off_t)off, MIN(part_size, size - off), &parts[np++]);
                if (r < 0)
                        return r;
                if (np == ARRAY_SIZE(parts) || off + part_size >= size) {
                        unsigned char be[4 * ARRAY_SIZE(parts)];
                        for (size_t k = 0; k < np; k++)
                                for (int b = 0; b < 4; b++)
                                        be[4 * k + (size_t)b] = (unsigned char)(parts[k] >> (24 - 8 * b));
                        all = crc32_update(all, be, 4 * np);
                        np = 0;
                }
        }
        *ret = all;
        return 0;
}

/* An object with no CRC32 on a store that keeps none (s3traits.h), or any object without one when the caller asks
 * (o->md5_etag): its ETag, where it is an MD5 (not multipart, neither SSE-KMS nor SSE-C), is checked against the
 * bytes on the disk; -MF_ECHECKSUM when they differ. 0 when there is nothing to check. */
static int etag_md5_check(struct aws_ctx *c, const char *bucket, const char *key, int fd, uint64_t size,
                          const struct s3_meta *m, const struct xfer_opts *o, int attempt, struct aws_result *out) {
        char bare[160];
        const char *etag = m->etag;
        s3_etag_unquoted(etag, bare, sizeof bare);
        bool asked = (o && o->md5_etag) || (s3traits_get(c, bucket) & S3T_NO_CRC);
        if (!asked || m->etag_opaque || strlen(bare) != 32 || strchr(bare, '-'))
                return 0;
        unsigned char md5[16];
        int r = crypto_md5_fd(fd, 0, size, md5);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "s3://%s/%s: cannot read back what was written: %s", bucket, key,
                         strerror(-r));
                return r;
        }
        if (s3_etag_is_md5(etag, md5))
                return 0;
        char hex[33];
        hex_encode(md5, 16, hex);
        snprintf(out->msg, sizeof out->msg, "GetObject s3://%s/%s: the bytes' MD5 %s differs from the ETag %s (%d "
                 "attempt%s)", bucket, key, hex, bare, attempt, attempt == 1 ? "" : "s");
        return -MF_ECHECKSUM;
}

/* An object a listing said fits one part: one GET of the whole object, no HEAD; its answer carries the size and
 * (x-amz-checksum-mode) the CRC32 the streamed bytes are checked against. */
static int fetch_whole(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, int fd,
                       const char *dest, const struct xfer_opts *o, uint64_t *ret_size, struct aws_result *out) {
        struct xfer_progress *pg = o ? o->progress : NULL;
        int r = reserve(fd, o->known_size, bucket, key, dest, out);
        if (r < 0)
                return r;
        uint64_t part_size = 0; /* a composite's, from part 1's HEAD, asked once */
        for (int attempt = 1;; attempt++) {
                struct s3_meta m;
                uint32_t crc = 0, want;
                r = s3_get_object(c, h, bucket, key, fd, &m, &crc, xfer_progress_add, pg, out);
                if (r < 0)
                        return r;
                if (ftruncate(fd, (off_t)m.size) < 0) /* an object smaller than the listing said */
                        return -errno;
                *ret_size = m.size;
                if (!m.has_crc) {
                        r = etag_md5_check(c, bucket, key, fd, m.size, &m, o, attempt, out);
                        if (r != -MF_ECHECKSUM || attempt >= c->max_attempts)
                                return r;
                        atomic_fetch_add(&c->retries, 1);
                        xfer_progress_add(pg, -(int64_t)m.size);
                        continue;
                }
                want = m.crc;
                if (m.crc_either && crc == want)
                        return 0; /* the whole object's CRC32, read as a full-object checksum */
                if (m.crc_parts == 1)
                        crc = crc32_composite(&crc, 1);
                else if (m.crc_parts > 1) {
                        struct s3_meta p1;
                        if (!part_size && (r = s3_stat(c, h, bucket, key, 1, &p1, out)) < 0)
                                return r;
                        if (!part_size)
                                part_size = p1.size;
                        if (!part_size || (m.size + part_size - 1) / part_size != m.crc_parts)
                                return 0; /* parts of other sizes: nothing to check against */
                        r = composite_of_file(fd, m.size, part_size, &crc);
                        if (r < 0)
                                return r;
                }
                if (crc == want)
                        return 0;
                mismatch(out, bucket, key, crc, want, m.crc_parts, attempt);
                if (attempt >= c->max_attempts)
                        return -MF_ECHECKSUM;
                atomic_fetch_add(&c->retries, 1);
                xfer_progress_add(pg, -(int64_t)m.size);
        }
}

/* HeadObject for the size, ETag and checksum, then the ranges (parallel above one part), checked and fetched again
 * on a mismatch. */
static int fetch_planned(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key,
                         const struct s3_meta *m, int fd, const char *dest, const struct xfer_opts *o,
                         struct aws_result *out) {
        uint64_t up_part = 0, size = m->size;
        bool check = m->has_crc;
        if (check && m->crc_parts > 1) {
                /* a composite: the ranges follow the upload's parts, whose size part 1 tells (uniform parts only;
                 * parts of other sizes cannot be told apart from here, and go unchecked) */
                struct s3_meta p1;
                int r = s3_stat(c, h, bucket, key, 1, &p1, out);
                if (r < 0)
                        return r;
                if (p1.size && (size + p1.size - 1) / p1.size == m->crc_parts)
                        up_part = p1.size;
                else
                        check = false;
        } else if (check && m->crc_parts == 1)
                up_part = MAX(size, 1);
        _cleanup_free_ struct xfer_unit *units = NULL;
        size_t nunits = 0;
        int r = xfer_plan(size, xfer_part_size(size, o ? o->part_size : 0), up_part, &units, &nunits);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "s3://%s/%s: cannot plan the download: %s", bucket, key,
                         strerror(-r));
                return r;
        }
        r = reserve(fd, size, bucket, key, dest, out);
        if (r < 0)
                return r;
        /* bytes whose CRC32 differs from S3's are a corrupt transfer: fetched again, up to the retry limit */
        for (int attempt = 1;; attempt++) {
                if (nunits == 1) {
                        /* one GET; an empty object gets no Range (a range of zero bytes is unsatisfiable) */
                        r = s3_get_range(c, h, bucket, key, 0, size, fd, 0, m->etag, check ? &units[0].crc : NULL,
                                         xfer_progress_add, o ? o->progress : NULL, out);
                } else {
                        struct job j = { .c = c, .bucket = bucket, .key = key, .fd = fd, .size = size,
                                         .nparts = (unsigned)nunits, .etag = m->etag, .units = units,
                                         .want_crc = check, .progress = o ? o->progress : NULL,
                                         .cancel = o ? o->cancel : NULL };
                        r = run_parts(&j, clamp_concurrency(o), out);
                }
                if (r < 0)
                        return r;
                if (!check) {
                        r = etag_md5_check(c, bucket, key, fd, size, m, o, attempt, out);
                        if (r != -MF_ECHECKSUM || attempt >= c->max_attempts)
                                return r;
                        atomic_fetch_add(&c->retries, 1);
                        xfer_progress_add(o ? o->progress : NULL, -(int64_t)size);
                        continue;
                }
                uint32_t got = xfer_units_crc(units, nunits, m->crc_parts > 0);
                if (got == m->crc || (m->crc_either && xfer_units_crc(units, nunits, false) == m->crc))
                        return 0;
                mismatch(out, bucket, key, got, m->crc, m->crc_parts, attempt);
                if (attempt >= c->max_attempts)
                        return -MF_ECHECKSUM;
                atomic_fetch_add(&c->retries, 1);
                xfer_progress_add(o ? o->progress : NULL, -(int64_t)size);
        }
}

int xfer_download_at(struct aws_ctx *c, const char *bucket, const char *key, int dirfd, const char *name,
                     const char *shown, const struct xfer_opts *o, struct aws_result *out) {
        const char *dest = shown ? shown : name;
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        h.bulk = true;
        bool whole = o && o->size_known && o->known_size <= xfer_part_size(o->known_size, o->part_size);
        struct s3_meta m = { 0 };
        if (!whole) {
                r = s3_stat(c, &h, bucket, key, 0, &m, out);
                if (r < 0) {
                        http_client_free(&h);
                        return r;
                }
                if (o && o->size_unknown)
                        xfer_progress_expect(o->progress, m.size);
        }
        char tmp[NAME_MAX + 1];
        int fd = open_temp(dirfd, name, tmp, sizeof tmp);
        if (fd < 0) {
                http_client_free(&h);
                snprintf(out->msg, sizeof out->msg, "cannot create a file next to %s: %s", dest, strerror(-fd));
                return fd;
        }
        uint64_t size = m.size;
        r = whole ? fetch_whole(c, &h, bucket, key, fd, dest, o, &size, out)
                  : fetch_planned(c, &h, bucket, key, &m, fd, dest, o, out);
        if (r < 0)
                goto fail;
        struct stat st;
        if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
                snprintf(out->msg, sizeof out->msg, "s3://%s/%s: downloaded size differs from the object's %llu bytes",
                         bucket, key, (unsigned long long)size);
                r = -MF_ESIZE;
                goto fail;
        }
        if (close(fd) < 0) {
                fd = -1;
                r = -errno;
                snprintf(out->msg, sizeof out->msg, "cannot write %s: %s", dest, strerror(-r));
                goto fail;
        }
        fd = -1;
        /* renameat replaces the name itself: a link planted there is replaced, never followed */
        if (renameat(dirfd, tmp, dirfd, name) < 0) {
                r = -errno;
                snprintf(out->msg, sizeof out->msg, "cannot rename the download to %s: %s", dest, strerror(-r));
                goto fail;
        }
        http_client_free(&h);
        return 0;
fail:
        if (fd >= 0)
                close(fd);
        unlinkat(dirfd, tmp, 0);
        http_client_free(&h);
        return r;
}

int xfer_upload(struct aws_ctx *c, const char *src, const char *bucket, const char *key, const struct xfer_opts *o,
                struct aws_result *out) {
        _cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                snprintf(out->msg, sizeof out->msg, "cannot open %s: %s", src, strerror(errno));
                return -errno;
        }
        return xfer_upload_fd(c, fd, src, bucket, key, o, out);
}

int xfer_upload_fd(struct aws_ctx *c, int fd, const char *src, const char *bucket, const char *key,
                   const struct xfer_opts *o, struct aws_result *out) {
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                snprintf(out->msg, sizeof out->msg, "%s is not a regular file", src);
                return -EINVAL;
        }
        uint64_t size = (uint64_t)st.st_size;
        uint64_t part = xfer_part_size(size, o ? o->part_size : 0);
        struct xfer_progress *pg = o ? o->progress : NULL;
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        h.bulk = size > (1u << 20);
        if (size <= part) {
                r = s3_put(c, &h, bucket, key, NULL, fd, 0, size, NULL, xfer_progress_add, pg, out);
                http_client_free(&h);
                return r;
        }
        _cleanup_free_ char *upload_id = NULL;
        r = s3_mpu_create(c, &h, bucket, key, &upload_id, out);
        if (r < 0) {
                http_client_free(&h);
                return r;
        }
        unsigned nparts = (unsigned)((size + part - 1) / part);
        _cleanup_free_ char(*etags)[128] = calloc(nparts, sizeof *etags);
        _cleanup_free_ uint32_t *crcs = calloc(nparts, sizeof *crcs);
        if (!etags || !crcs) {
                r = -ENOMEM;
                snprintf(out->msg, sizeof out->msg, "out of memory");
        } else {
                struct job j = { .c = c, .bucket = bucket, .key = key, .fd = fd, .size = size, .part = part,
                                 .nparts = nparts, .upload = true, .upload_id = upload_id, .etags = etags,
                                 .crcs = crcs, .progress = pg };
                r = run_parts(&j, clamp_concurrency(o), out);
        }
        if (r == 0)
                r = s3_mpu_complete(c, &h, bucket, key, upload_id, etags, crcs, nparts, out);
        if (r < 0) {
                /* nothing may keep billing: abort the upload (its own retries) and keep the first error */
                struct aws_result ab;
                if (s3_mpu_abort(c, &h, bucket, key, upload_id, &ab) < 0) {
                        size_t l = strlen(out->msg);
                        snprintf(out->msg + l, sizeof out->msg - l, "; AbortMultipartUpload also failed: %s", ab.msg);
                }
        }
        http_client_free(&h);
        return r;
}
