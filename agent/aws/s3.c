/* SPDX-License-Identifier: Apache-2.0 */
/* s3.c — GetObject, HeadObject, PutObject, multipart upload, ListObjectsV2. */
#include "aws/s3.h"
#include "log.h"
#include "crypto.h"
#include "aws/s3traits.h"

#include "checksum.h"

#include <strings.h>

int s3_parse_uri(const char *uri, char **ret_bucket, char **ret_key, char *err, size_t errlen) {
        if (!str_has_prefix(uri, "s3://")) {
                snprintf(err, errlen, "'%s' is not an s3://BUCKET/KEY URI", uri);
                return -EINVAL;
        }
        const char *b = uri + 5;
        const char *slash = strchrnul(b, '/');
        size_t bl = (size_t)(slash - b);
        if (bl < 3 || bl > 63) {
                snprintf(err, errlen, "'%s': bucket name must be 3 to 63 characters", uri);
                return -EINVAL;
        }
        for (size_t i = 0; i < bl; i++)
                if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' || b[i] == '.')) {
                        snprintf(err, errlen, "'%s': invalid character in bucket name", uri);
                        return -EINVAL;
                }
        const char *key = *slash ? slash + 1 : "";
        if (strlen(key) > S3_MAX_KEY) {
                snprintf(err, errlen, "'%s': key longer than %d bytes", uri, S3_MAX_KEY);
                return -EINVAL;
        }
        char *bb = strndup(b, bl), *kk = strdup(key);
        if (!bb || !kk) {
                free(bb);
                free(kk);
                return -ENOMEM;
        }
        *ret_bucket = bb;
        *ret_key = kk;
        return 0;
}

int s3_target(struct aws_ctx *c, const char *bucket, const char *key, char *endpoint, size_t n, struct buf *path) {
        int r;
        if (c->s3_endpoint[0] || strchr(bucket, '.')) {
                if (c->s3_endpoint[0])
                        snprintf(endpoint, n, "%s", c->s3_endpoint);
                else
                        snprintf(endpoint, n, "https://s3.%s.amazonaws.com", c->region);
                r = buf_printf(path, "/%s/%s", bucket, key);
        } else {
                snprintf(endpoint, n, "https://%s.s3.%s.amazonaws.com", bucket, c->region);
                r = buf_printf(path, "/%s", key);
        }
        return r;
}

struct target {
        char endpoint[320];
        struct buf path;
};

static int target(struct aws_ctx *c, const char *bucket, const char *key, struct target *t, struct aws_result *out) {
        t->path = BUF_INIT(4 * S3_MAX_KEY);
        int r = aws_region(c, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        return s3_target(c, bucket, key, t->endpoint, sizeof t->endpoint, &t->path);
}

static void target_free(struct target *t) { buf_free(&t->path); }

/* The part count of a multipart ETag ("…-N"), else 0. */
static unsigned etag_parts(const char *etag) {
        const char *d = strrchr(etag, '-');
        if (!d)
                return 0;
        char num[16];
        size_t l = strspn(d + 1, "0123456789");
        if (l == 0 || l >= sizeof num || (d[1 + l] && strcmp(d + 1 + l, "\"") != 0))
                return 0;
        memcpy(num, d + 1, l);
        num[l] = 0;
        uint64_t n;
        return parse_u64(num, &n) == 0 && n <= S3_MAX_PARTS ? (unsigned)n : 0;
}

void s3_checksum_of(const char *value, const char *type, const char *etag, struct s3_meta *m) {
        uint32_t crc;
        unsigned parts;
        m->has_crc = false;
        if (!value || !*value || crc32_parse(value, &crc, &parts) < 0)
                return;
        bool full = type && strcasecmp(type, "FULL_OBJECT") == 0;
        bool composite = type && strcasecmp(type, "COMPOSITE") == 0;
        if (full)
                parts = 0;
        bool either = false;
        if (!full && parts == 0 && (composite || !type || !*type)) {
                /* a composite written without its "-N" (moto's HEAD); with no type at all it may also be a
                 * full-object checksum of a multipart upload (FULL_OBJECT), so either reading is accepted */
                parts = etag_parts(etag ? etag : "");
                either = !composite && parts > 0;
        }
        if (composite && parts == 0)
                return; /* a composite of unknown parts cannot be checked */
        m->has_crc = true;
        m->crc = crc;
        m->crc_parts = parts;
        m->crc_either = either;
}

static int stat_once(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, unsigned part_number,
                     struct s3_meta *ret, struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        int r = target(c, bucket, key, &t, out);
        if (r < 0)
                return r;
        char pn[16];
        snprintf(pn, sizeof pn, "%u", part_number);
        struct kv q[] = { { "partNumber", pn } };
        struct kv hdr[] = { { "x-amz-checksum-mode", "ENABLED" } };
        struct aws_req rq = { .op = "HeadObject", .method = "HEAD", .service = "s3", .endpoint = t.endpoint,
                              .path = t.path.data, .query = q, .n_query = part_number ? 1 : 0, .headers = hdr,
                              .n_headers = 1, .body_fd = -1, .out_fd = -1 };
        struct http_response res;
        r = aws_send(c, h, &rq, &res, out);
        if (r == 0) {
                if (res.content_length < 0) {
                        snprintf(out->msg, sizeof out->msg, "HeadObject: no Content-Length for s3://%s/%s", bucket, key);
                        r = -MF_EPARSE;
                } else {
                        struct s3_meta m = { .size = (uint64_t)res.content_length, .parts_count = res.parts_count,
                                             .etag_opaque = res.etag_opaque };
                        snprintf(m.etag, sizeof m.etag, "%s", res.etag);
                        s3_checksum_of(res.checksum_crc32, res.checksum_type, res.etag, &m);
                        *ret = m;
                }
        } else if (r == -MF_ENOTFOUND)
                snprintf(out->msg, sizeof out->msg, "s3://%s/%s does not exist (HeadObject: 404 NotFound)", bucket, key);
        http_response_free(&res);
        return r;
}

/* A HEAD answer has no body, so a 403 (or a 400) does not say why. One GET of the first byte learns the error code
 * (SignatureDoesNotMatch, AccessDenied, ExpiredToken…). When that GET works instead — aws_send corrected a skewed
 * clock on it, or the object is empty (416) — the HEAD is asked once more. 1: nothing better learnt. */
static int head_probe(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key,
                      unsigned part_number, struct s3_meta *ret, struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        struct aws_result g = { 0 };
        int r = target(c, bucket, key, &t, &g);
        if (r < 0)
                return 1;
        struct kv hdr[] = { { "Range", "bytes=0-0" } };
        struct aws_req q = { .op = "GetObject", .method = "GET", .service = "s3", .endpoint = t.endpoint,
                             .path = t.path.data, .headers = hdr, .n_headers = 1, .body_fd = -1, .out_fd = -1 };
        struct http_response res;
        r = aws_send(c, h, &q, &res, &g);
        http_response_free(&res);
        if (r == 0 || g.status == 416)
                return stat_once(c, h, bucket, key, part_number, ret, out);
        if (!g.status || !g.err.code[0] || !aws_error_hint(g.err.code))
                return 1;
        char op[S3_MAX_KEY + 128];
        snprintf(op, sizeof op, "HeadObject s3://%s/%s (error code from a ranged GET)", bucket, key);
        out->status = g.status;
        out->err = g.err;
        aws_describe_error(op, NULL, out);
        return r;
}

int s3_stat(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, unsigned part_number,
            struct s3_meta *ret, struct aws_result *out) {
        int r = stat_once(c, h, bucket, key, part_number, ret, out);
        if (r < 0 && r != -MF_EREGION && (out->status == 403 || out->status == 400)) {
                int p = head_probe(c, h, bucket, key, part_number, ret, out);
                if (p <= 0)
                        r = p;
        }
        return r;
}

int s3_head(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, uint64_t *ret_size,
            char etag[128], struct aws_result *out) {
        struct s3_meta m;
        int r = s3_stat(c, h, bucket, key, 0, &m, out);
        if (r == 0) {
                *ret_size = m.size;
                if (etag)
                        snprintf(etag, 128, "%s", m.etag);
        }
        return r;
}

int s3_get_range(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, uint64_t off,
                 uint64_t len, int fd, off_t fd_off, const char *if_match, uint32_t *ret_crc,
                 void (*progress)(void *, int64_t), void *ud, struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        int r = target(c, bucket, key, &t, out);
        if (r < 0)
                return r;
        char range[80];
        struct kv hdr[2];
        size_t nh = 0;
        if (len) {
                snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)off,
                         (unsigned long long)(off + len - 1));
                hdr[nh++] = (struct kv){ "Range", range };
        }
        if (if_match && *if_match)
                hdr[nh++] = (struct kv){ "If-Match", if_match };
        struct aws_req q = { .op = "GetObject", .method = "GET", .service = "s3", .endpoint = t.endpoint,
                             .path = t.path.data, .headers = hdr, .n_headers = nh, .body_fd = -1, .out_fd = fd,
                             .out_off = fd_off, .progress = progress, .progress_ud = ud, .want_crc = ret_crc != NULL };
        struct http_response res;
        r = aws_send(c, h, &q, &res, out);
        if (r == 0 && ret_crc)
                *ret_crc = res.crc;
        if (r == 0 && len && res.written != len) {
                snprintf(out->msg, sizeof out->msg, "GetObject s3://%s/%s: got %llu bytes of range %llu+%llu", bucket,
                         key, (unsigned long long)res.written, (unsigned long long)off, (unsigned long long)len);
                r = -MF_ESIZE;
        }
        if (r == -MF_ENOTFOUND)
                snprintf(out->msg, sizeof out->msg, "s3://%s/%s does not exist (GetObject: 404 %s)", bucket, key,
                         out->err.code);
        http_response_free(&res);
        return r;
}

int s3_get_object(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, int fd,
                  struct s3_meta *ret_meta, uint32_t *ret_crc, void (*progress)(void *, int64_t), void *ud,
                  struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        int r = target(c, bucket, key, &t, out);
        if (r < 0)
                return r;
        struct kv hdr[] = { { "x-amz-checksum-mode", "ENABLED" } };
        struct aws_req q = { .op = "GetObject", .method = "GET", .service = "s3", .endpoint = t.endpoint,
                             .path = t.path.data, .headers = hdr, .n_headers = 1, .body_fd = -1, .out_fd = fd,
                             .progress = progress, .progress_ud = ud, .want_crc = true };
        struct http_response res;
        r = aws_send(c, h, &q, &res, out);
        if (r == 0) {
                if (res.content_length < 0 || res.written != (uint64_t)res.content_length) {
                        snprintf(out->msg, sizeof out->msg, "GetObject s3://%s/%s: got %llu bytes of %lld", bucket,
                                 key, (unsigned long long)res.written, (long long)res.content_length);
                        r = -MF_ESIZE;
                } else {
                        struct s3_meta m = { .size = res.written, .etag_opaque = res.etag_opaque };
                        snprintf(m.etag, sizeof m.etag, "%s", res.etag);
                        s3_checksum_of(res.checksum_crc32, res.checksum_type, res.etag, &m);
                        *ret_meta = m;
                        *ret_crc = res.crc;
                }
        } else if (r == -MF_ENOTFOUND)
                snprintf(out->msg, sizeof out->msg, "s3://%s/%s does not exist (GetObject: 404 %s)", bucket, key,
                         out->err.code);
        http_response_free(&res);
        return r;
}

int s3_get_buffer(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, char **ret,
                  size_t *ret_len, struct aws_result *out) {
        return s3_get_capped(c, h, bucket, key, HTTP_MAX_BODY, "an object read into memory", ret, ret_len, out);
}

int s3_get_capped(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, size_t cap,
                  const char *what, char **ret, size_t *ret_len, struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        int r = target(c, bucket, key, &t, out);
        if (r < 0)
                return r;
        struct kv hdr[] = { { "x-amz-checksum-mode", "ENABLED" } };
        struct aws_req q = { .op = "GetObject", .method = "GET", .service = "s3", .endpoint = t.endpoint,
                             .path = t.path.data, .headers = hdr, .n_headers = 1, .body_fd = -1, .out_fd = -1,
                             .max_body = cap };
        /* a body whose CRC32 differs from S3's is a corrupt transfer: fetched again, like a truncated one */
        for (int attempt = 1;; attempt++) {
                struct http_response res;
                r = aws_send(c, h, &q, &res, out);
                if (r == -EFBIG) {
                        char sz[32], lim[32];
                        fmt_bytes((uint64_t)cap, lim);
                        if (out->size >= 0)
                                fmt_bytes((uint64_t)out->size, sz);
                        errf(out->msg, sizeof out->msg, "s3://%s/%s is %s%s, more than %s may be (%s): not read",
                             bucket, key, out->size >= 0 ? "" : "over ", out->size >= 0 ? sz : lim, what, lim);
                }
                if (r < 0) {
                        http_response_free(&res);
                        return r;
                }
                if (res.content_length >= 0 && (uint64_t)res.content_length != res.body.len) {
                        snprintf(out->msg, sizeof out->msg, "GetObject s3://%s/%s: short body", bucket, key);
                        http_response_free(&res);
                        return -MF_ESIZE;
                }
                struct s3_meta m = { 0 };
                s3_checksum_of(res.checksum_crc32, res.checksum_type, res.etag, &m);
                uint32_t got = crc32_update(0, res.body.data, res.body.len);
                bool md5_bad = false;
                if (!m.has_crc && (s3traits_get(c, bucket) & S3T_NO_CRC)) {
                        /* a store that keeps no CRC32: a single PUT's ETag is the MD5 of its bytes */
                        char bare[160];
                        unsigned char md5[16];
                        s3_etag_unquoted(res.etag, bare, sizeof bare);
                        md5_bad = crypto_md5(res.body.data ? res.body.data : "", res.body.len, md5) == 0 &&
                                  strlen(bare) == 32 && !strchr(bare, '-') && !s3_etag_is_md5(res.etag, md5);
                }
                if (!md5_bad && (!m.has_crc || m.crc_parts || got == m.crc)) {
                        if (ret_len)
                                *ret_len = res.body.len;
                        *ret = buf_steal(&res.body);
                        http_response_free(&res);
                        return 0;
                }
                http_response_free(&res);
                char g[CRC32_B64_LEN + 1], w[CRC32_B64_LEN + 1];
                crc32_to_base64(got, g);
                crc32_to_base64(m.crc, w);
                if (md5_bad)
                        snprintf(out->msg, sizeof out->msg, "GetObject s3://%s/%s: the body's MD5 differs from its "
                                 "ETag (%d attempt%s)", bucket, key, attempt, attempt == 1 ? "" : "s");
                else
                        snprintf(out->msg, sizeof out->msg,
                                 "GetObject s3://%s/%s: the body's CRC32 %s differs from S3's %s (%d attempt%s)", bucket,
                                 key, g, w, attempt, attempt == 1 ? "" : "s");
                if (attempt >= c->max_attempts)
                        return -MF_ECHECKSUM;
                atomic_fetch_add(&c->retries, 1);
        }
}

/* A store that keeps no flexible checksums (s3traits.h) is sent Content-MD5 (which it checks) in their place. */
static int body_md5(const void *mem, int fd, off_t off, uint64_t len, unsigned char md5[16]) {
        if (mem)
                return crypto_md5(mem, len, md5);
        return crypto_md5_fd(fd, off, len, md5);
}

/* Whether a PUT of these bytes to bucket carries Content-MD5 (its store keeps no CRC32): the digest and its base64
 * into md5 and b64 when it does. */
static bool content_md5(const struct aws_ctx *c, const char *bucket, const void *mem, int fd, off_t off, uint64_t len,
                        unsigned char md5[16], char b64[32]) {
        if (!(s3traits_get(c, bucket) & S3T_NO_CRC) || body_md5(mem, fd, off, len, md5) < 0)
                return false;
        crypto_base64_encode(md5, 16, b64);
        return true;
}

bool s3_etag_is_md5(const char *etag, const unsigned char md5[16]) {
        char bare[160], hex[33];
        s3_etag_unquoted(etag, bare, sizeof bare);
        hex_encode(md5, 16, hex);
        return strlen(bare) == 32 && !strcasecmp(bare, hex);
}

/* A PUT's answer: one that echoes the CRC32 sent comes from a store that keeps it (it checked the bytes); one that
 * echoes none teaches that the bucket's store does not, and the ETag, where it is an MD5 (a single PUT or a part),
 * is checked against the bytes' MD5 instead: -MF_ECHECKSUM when they differ (corrupted on the way). */
static int check_put_answer(struct aws_ctx *c, const char *bucket, const char *key, const char *op,
                            const struct http_response *res, const unsigned char *sent_md5, const void *mem, int fd,
                            off_t off, uint64_t len, struct aws_result *out) {
        if (res->checksum_crc32[0]) {
                s3traits_add(c, bucket, S3T_CRC_SEEN);
                return 0;
        }
        if (!(s3traits_get(c, bucket) & S3T_CRC_SEEN) && s3traits_add(c, bucket, S3T_NO_CRC))
                log_warn("s3://%s: this S3 store echoes no CRC32 checksum (it keeps none): uploads to it are sent "
                         "with Content-MD5 and checked against their MD5 ETag from now on", bucket);
        unsigned char md5[16];
        if (sent_md5)
                memcpy(md5, sent_md5, 16);
        else if (body_md5(mem, fd, off, len, md5) < 0)
                return 0; /* the source cannot be read again: the store's answer is all there is */
        char bare[160];
        s3_etag_unquoted(res->etag, bare, sizeof bare);
        if (strlen(bare) != 32 || strchr(bare, '-') || s3_etag_is_md5(res->etag, md5))
                return 0; /* no MD5 ETag to compare (or the same) */
        char hex[33];
        hex_encode(md5, 16, hex);
        snprintf(out->msg, sizeof out->msg, "%s s3://%s/%s: the store's ETag %s is not the MD5 %s of the bytes sent "
                 "(corrupted on the way)", op, bucket, key, bare, hex);
        return -MF_ECHECKSUM;
}

int s3_put(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const void *mem, int fd,
           off_t off, uint64_t len, const char *content_type, void (*progress)(void *, int64_t), void *ud,
           struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        int r = target(c, bucket, key, &t, out);
        if (r < 0)
                return r;
        uint32_t crc = 0;
        if (mem)
                crc = crc32_update(0, mem, len);
        else
                r = crc32_of_fd(fd, off, len, &crc);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "PutObject: cannot read the source: %s", strerror(-r));
                return r;
        }
        char b64[CRC32_B64_LEN + 1];
        crc32_to_base64(crc, b64);
        for (int attempt = 1;; attempt++) {
                unsigned char md5[16];
                char md5_b64[32];
                bool with_md5 = content_md5(c, bucket, mem, fd, off, len, md5, md5_b64);
                struct kv hdr[4] = { { "x-amz-checksum-crc32", b64 }, { "x-amz-sdk-checksum-algorithm", "CRC32" } };
                size_t nh = 2;
                if (content_type)
                        hdr[nh++] = (struct kv){ "Content-Type", content_type };
                if (with_md5)
                        hdr[nh++] = (struct kv){ "Content-MD5", md5_b64 };
                struct aws_req q = { .op = "PutObject", .method = "PUT", .service = "s3", .endpoint = t.endpoint,
                                     .path = t.path.data, .headers = hdr, .n_headers = nh, .body = mem ? mem : "",
                                     .body_len = len, .body_fd = mem ? -1 : fd, .body_off = off,
                                     .payload_hash = mem ? NULL : SIGV4_UNSIGNED_PAYLOAD, .out_fd = -1,
                                     .progress = progress, .progress_ud = ud };
                struct http_response res;
                r = aws_send(c, h, &q, &res, out);
                if (r == 0)
                        r = check_put_answer(c, bucket, key, "PutObject", &res, with_md5 ? md5 : NULL, mem, fd, off,
                                             len, out);
                http_response_free(&res);
                if (r != -MF_ECHECKSUM || attempt >= c->max_attempts)
                        return r;
                atomic_fetch_add(&c->retries, 1);
                if (progress)
                        progress(ud, -(int64_t)len); /* sent again */
        }
}

static int mpu_xml(struct aws_ctx *c, struct http_client *h, const char *op, const char *method, const char *bucket,
                   const char *key, const struct kv *query, size_t nq, const struct kv *extra, const void *body,
                   size_t blen, struct xml_node **ret, struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        int r = target(c, bucket, key, &t, out);
        if (r < 0)
                return r;
        struct kv hdr[2];
        size_t nh = 0;
        if (body)
                hdr[nh++] = (struct kv){ "Content-Type", "application/xml" };
        if (extra)
                hdr[nh++] = *extra;
        struct aws_req q = { .op = op, .method = method, .service = "s3", .endpoint = t.endpoint,
                             .path = t.path.data, .query = query, .n_query = nq, .headers = hdr,
                             .n_headers = nh, .body = body, .body_len = blen, .body_fd = -1, .out_fd = -1,
                             .check_200_error = true };
        struct http_response res;
        r = aws_send(c, h, &q, &res, out);
        if (r == 0 && ret) {
                r = xml_parse(res.body.data, res.body.len, ret);
                if (r < 0)
                        snprintf(out->msg, sizeof out->msg, "%s: unreadable XML answer", op);
        }
        http_response_free(&res);
        return r;
}

int s3_mpu_create(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, char **ret_upload_id,
                  struct aws_result *out) {
        struct kv q[] = { { "uploads", "" } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        /* the parts carry CRC32s; S3 keeps their composite ("<base64>-N") as the object's checksum */
        struct kv alg = { "x-amz-checksum-algorithm", "CRC32" };
        int r = mpu_xml(c, h, "CreateMultipartUpload", "POST", bucket, key, q, 1, &alg, NULL, 0, &x, out);
        if (r < 0)
                return r;
        const char *id = xml_text(x, "UploadId");
        if (!id || !*id) {
                snprintf(out->msg, sizeof out->msg, "CreateMultipartUpload: no UploadId in the answer");
                return -MF_EPARSE;
        }
        *ret_upload_id = strdup(id);
        return *ret_upload_id ? 0 : -ENOMEM;
}

int s3_mpu_part(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *upload_id,
                unsigned part, int fd, off_t off, uint64_t len, char etag[128], uint32_t *ret_crc,
                void (*progress)(void *, int64_t), void *ud, struct aws_result *out) {
        _cleanup_(target_free) struct target t = { 0 };
        int r = target(c, bucket, key, &t, out);
        if (r < 0)
                return r;
        char b64[CRC32_B64_LEN + 1], pn[16];
        uint32_t crc;
        r = crc32_of_fd(fd, off, len, &crc);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "UploadPart: cannot read the source: %s", strerror(-r));
                return r;
        }
        snprintf(pn, sizeof pn, "%u", part);
        struct kv q[] = { { "partNumber", pn }, { "uploadId", upload_id } };
        crc32_to_base64(crc, b64);
        for (int attempt = 1;; attempt++) {
                unsigned char md5[16];
                char md5_b64[32];
                bool with_md5 = content_md5(c, bucket, NULL, fd, off, len, md5, md5_b64);
                struct kv hdr[3] = { { "x-amz-checksum-crc32", b64 }, { "x-amz-sdk-checksum-algorithm", "CRC32" },
                                     { "Content-MD5", md5_b64 } };
                struct aws_req rq = { .op = "UploadPart", .method = "PUT", .service = "s3", .endpoint = t.endpoint,
                                      .path = t.path.data, .query = q, .n_query = 2, .headers = hdr,
                                      .n_headers = with_md5 ? 3 : 2, .body_len = len, .body_fd = fd, .body_off = off,
                                      .payload_hash = SIGV4_UNSIGNED_PAYLOAD, .out_fd = -1, .progress = progress,
                                      .progress_ud = ud };
                struct http_response res;
                r = aws_send(c, h, &rq, &res, out);
                if (r == 0 && !res.etag[0]) {
                        snprintf(out->msg, sizeof out->msg, "UploadPart %u: no ETag in the answer", part);
                        r = -MF_EPARSE;
                }
                if (r == 0)
                        r = check_put_answer(c, bucket, key, "UploadPart", &res, with_md5 ? md5 : NULL, NULL, fd, off,
                                             len, out);
                if (r == 0) {
                        snprintf(etag, 128, "%s", res.etag);
                        *ret_crc = crc;
                }
                http_response_free(&res);
                if (r != -MF_ECHECKSUM || attempt >= c->max_attempts)
                        return r;
                atomic_fetch_add(&c->retries, 1);
                if (progress)
                        progress(ud, -(int64_t)len);
        }
}

int s3_mpu_complete(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key,
                    const char *upload_id, char (*etags)[128], const uint32_t *crcs, unsigned nparts,
                    struct aws_result *out) {
        _cleanup_(buf_freep) struct buf b = BUF_INIT((size_t)nparts * 240 + 256);
        int r = buf_adds(&b, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (unsigned i = 0; i < nparts && r >= 0; i++) {
                char b64[CRC32_B64_LEN + 1];
                crc32_to_base64(crcs[i], b64);
                r = buf_printf(&b, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag><ChecksumCRC32>%s</ChecksumCRC32></Part>",
                               i + 1, etags[i], b64);
        }
        if (r >= 0)
                r = buf_adds(&b, "</CompleteMultipartUpload>");
        if (r < 0)
                return r;
        struct kv q[] = { { "uploadId", upload_id } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        r = mpu_xml(c, h, "CompleteMultipartUpload", "POST", bucket, key, q, 1, NULL, b.data, b.len, &x, out);
        if (r < 0)
                return r;
        /* S3 answers the composite it computed from the parts it holds: it must be ours */
        struct s3_meta m = { 0 };
        s3_checksum_of(xml_text(x, "ChecksumCRC32"), xml_text(x, "ChecksumType"), xml_text(x, "ETag"), &m);
        uint32_t want = crc32_composite(crcs, nparts);
        if (m.has_crc && m.crc_parts == nparts && m.crc != want) {
                char g[CRC32_B64_LEN + 1], w[CRC32_B64_LEN + 1];
                crc32_to_base64(m.crc, g);
                crc32_to_base64(want, w);
                snprintf(out->msg, sizeof out->msg,
                         "CompleteMultipartUpload s3://%s/%s: S3's composite CRC32 %s-%u differs from the parts' %s-%u",
                         bucket, key, g, nparts, w, nparts);
                return -MF_ECHECKSUM;
        }
        return 0;
}

int s3_mpu_abort(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *upload_id,
                 struct aws_result *out) {
        struct kv q[] = { { "uploadId", upload_id } };
        return mpu_xml(c, h, "AbortMultipartUpload", "DELETE", bucket, key, q, 1, NULL, NULL, 0, NULL, out);
}

/* One ListObjectsV2 page: each object to cb, each common prefix to dir_cb (either may be NULL). */
static int parse_page(const char *xml, size_t len, int (*cb)(void *ud, const struct s3_object *o),
                      int (*dir_cb)(void *ud, const char *dir), void *ud, bool *ret_truncated, char **ret_token) {
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = xml_parse(xml, len, &x);
        if (r < 0)
                return r;
        if (strcmp(x->name, "ListBucketResult") != 0)
                return -MF_EPARSE;
        const char *enc = xml_text(x, "EncodingType");
        bool url = enc && strcmp(enc, "url") == 0;
        for (struct xml_node *n = xml_child(x, "Contents"); n && cb; n = xml_next_named(n)) {
                const char *k = xml_text(n, "Key"), *sz = xml_text(n, "Size");
                uint64_t size;
                if (!k || !sz || parse_u64(sz, &size) < 0)
                        return -MF_EPARSE;
                _cleanup_free_ char *dk = NULL;
                if (url) {
                        r = uri_decode(k, strlen(k), &dk);
                        if (r < 0)
                                return r;
                        k = dk;
                }
                struct s3_object o = { .key = k, .size = size, .etag = xml_text(n, "ETag") };
                const char *lm = xml_text(n, "LastModified");
                if (lm && parse_iso8601(lm, &o.mtime) < 0)
                        o.mtime = 0;
                r = cb(ud, &o);
                if (r < 0)
                        return r;
        }
        for (struct xml_node *n = xml_child(x, "CommonPrefixes"); n && dir_cb; n = xml_next_named(n)) {
                const char *p = xml_text(n, "Prefix");
                if (!p)
                        return -MF_EPARSE;
                _cleanup_free_ char *dp = NULL;
                if (url) {
                        r = uri_decode(p, strlen(p), &dp);
                        if (r < 0)
                                return r;
                        p = dp;
                }
                r = dir_cb(ud, p);
                if (r < 0)
                        return r;
        }
        const char *tr = xml_text(x, "IsTruncated");
        bool truncated = tr && strcmp(tr, "true") == 0;
        const char *tok = xml_text(x, "NextContinuationToken");
        if (truncated && (!tok || !*tok))
                return -MF_EPARSE; /* would loop forever */
        *ret_truncated = truncated;
        *ret_token = truncated ? strdup(tok) : NULL;
        return truncated && !*ret_token ? -ENOMEM : 0;
}

int s3_parse_list(const char *xml, size_t len, int (*cb)(void *ud, const struct s3_object *o), void *ud,
                  bool *ret_truncated, char **ret_token) {
        return parse_page(xml, len, cb, NULL, ud, ret_truncated, ret_token);
}

static int list_pages(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *prefix,
                      const char *delimiter, int (*cb)(void *ud, const struct s3_object *o),
                      int (*dir_cb)(void *ud, const char *dir), void *ud, struct aws_result *out) {
        _cleanup_free_ char *token = NULL;
        for (unsigned page = 0;; page++) {
                _cleanup_(target_free) struct target t = { 0 };
                int r = target(c, bucket, "", &t, out);
                if (r < 0)
                        return r;
                struct kv q[6] = { { "list-type", "2" }, { "encoding-type", "url" }, { "max-keys", "1000" } };
                size_t nq = 3;
                if (prefix && *prefix)
                        q[nq++] = (struct kv){ "prefix", prefix };
                if (delimiter)
                        q[nq++] = (struct kv){ "delimiter", delimiter };
                if (token)
                        q[nq++] = (struct kv){ "continuation-token", token };
                struct aws_req rq = { .op = "ListObjectsV2", .method = "GET", .service = "s3",
                                      .endpoint = t.endpoint, .path = t.path.data, .query = q, .n_query = nq,
                                      .body_fd = -1, .out_fd = -1 };
                struct http_response res;
                r = aws_send(c, h, &rq, &res, out);
                if (r < 0) {
                        http_response_free(&res);
                        return r;
                }
                bool more = false;
                char *next = NULL;
                r = parse_page(res.body.data, res.body.len, cb, dir_cb, ud, &more, &next);
                http_response_free(&res);
                if (r < 0) {
                        if (!out->msg[0] || r == -MF_EPARSE || r == -EBADMSG)
                                snprintf(out->msg, sizeof out->msg, "ListObjectsV2 s3://%s/%s: unreadable answer",
                                         bucket, prefix ? prefix : "");
                        return r;
                }
                free(token);
                token = next;
                if (!more)
                        return 0;
                if (page > 1000000)
                        return -ELOOP;
        }
}

int s3_list(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *prefix,
            int (*cb)(void *ud, const struct s3_object *o), void *ud, struct aws_result *out) {
        return list_pages(c, h, bucket, prefix, NULL, cb, NULL, ud, out);
}

int s3_list_dirs(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *prefix,
                 int (*cb)(void *ud, const char *dir), void *ud, struct aws_result *out) {
        return list_pages(c, h, bucket, prefix, "/", NULL, cb, ud, out);
}

int s3_presign_get(struct aws_ctx *c, const char *bucket, const char *key, long expires, time_t now, struct buf *url,
                   time_t *ret_until, char *err, size_t errlen) {
        struct aws_creds cr = { 0 };
        char endpoint[320], host[256];
        struct buf path = BUF_INIT(4 * S3_MAX_KEY + 64);
        struct sigv4_result res = { 0 };
        int r = aws_region(c, err, errlen);
        if (r == 0)
                r = creds_get(&c->creds, now, &cr, err, errlen);
        if (r == 0)
                r = s3_target(c, bucket, key, endpoint, sizeof endpoint, &path);
        if (r == 0) {
                /* a URL signed with a session token stops working when the token expires, whatever it says */
                if (cr.expiration && cr.expiration - now < expires)
                        expires = MAX((long)(cr.expiration - now), 1L);
                expires = MIN(MAX(expires, 1L), (long)SIGV4_MAX_PRESIGN_EXPIRES);
                const char *h = strstr(endpoint, "://") + 3;
                snprintf(host, sizeof host, "%.*s", (int)strcspn(h, "/"), h);
                struct kv hdr[] = { { "host", host } };
                struct sigv4_request q = { .method = "GET", .path = path.data, .headers = hdr, .n_headers = 1,
                                           .payload_hash = SIGV4_UNSIGNED_PAYLOAD, .region = c->region,
                                           .service = "s3", .now = now };
                r = sigv4_presign(&q, &cr, (unsigned)expires, &res);
                if (r < 0)
                        errf(err, errlen, "cannot presign: %s", strerror(-r));
        }
        if (r == 0)
                r = buf_printf(url, "%s%s?%s", endpoint, res.encoded_path, res.query_string);
        if (r == 0 && ret_until)
                *ret_until = now + expires;
        sigv4_result_clear(&res);
        aws_creds_clear(&cr);
        buf_free(&path);
        return r;
}
