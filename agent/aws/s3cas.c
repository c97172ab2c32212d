/* SPDX-License-Identifier: Apache-2.0 */
/* s3cas.c — conditional PUT/DELETE and ETag-returning GET for the ledger's small records. */
#include "aws/s3cas.h"

#include "aws/s3.h"
#include "aws/s3traits.h"
#include "log.h"

static int classify(int r, const struct aws_result *out) {
        if (r >= 0)
                return r;
        if (out->status == 412)
                return -MF_EPRECOND;
        if (out->status == 409)
                return -MF_ECONFLICT;
        if (out->status == 404)
                return -MF_ENOTFOUND;
        return r;
}

static int req(struct aws_ctx *c, struct http_client *h, const char *op, const char *method, const char *bucket,
               const char *key, const struct kv *hdr, size_t nh, const char *body, struct http_response *res,
               struct aws_result *out) {
        char endpoint[320];
        _cleanup_(buf_freep) struct buf path = BUF_INIT(4 * S3_MAX_KEY);
        int r = aws_region(c, out->msg, sizeof out->msg);
        if (r == 0)
                r = s3_target(c, bucket, key, endpoint, sizeof endpoint, &path);
        if (r < 0)
                return r;
        struct aws_req q = { .op = op, .method = method, .service = "s3", .endpoint = endpoint, .path = path.data,
                             .headers = hdr, .n_headers = nh, .body = body ? body : "",
                             .body_len = body ? strlen(body) : 0, .body_fd = -1, .out_fd = -1,
                             .max_body = S3CAS_MAX_BODY };
        r = classify(aws_send(c, h, &q, res, out), out);
        if (r == -EFBIG) {
                char sz[32];
                fmt_bytes(out->size >= 0 ? (uint64_t)out->size : (uint64_t)S3CAS_MAX_BODY, sz);
                errf(out->msg, sizeof out->msg, "s3://%s/%s is %s%s, more than a ledger record may be (%d bytes): "
                     "not read", bucket, key, out->size >= 0 ? "" : "over ", sz, S3CAS_MAX_BODY);
        }
        return r;
}

int s3cas_get(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, char **ret_body,
              char *etag, struct aws_result *out) {
        struct http_response res;
        int r = req(c, h, "GetObject", "GET", bucket, key, NULL, 0, NULL, &res, out);
        if (r == 0 && res.body.len > S3CAS_MAX_BODY) {
                errf(out->msg, sizeof out->msg, "s3://%s/%s: larger than %d bytes", bucket, key, S3CAS_MAX_BODY);
                r = -EFBIG;
        }
        if (r == 0) {
                snprintf(etag, 128, "%s", res.etag);
                *ret_body = buf_steal(&res.body);
                if (!*ret_body)
                        *ret_body = strdup("");
                if (!*ret_body)
                        r = -ENOMEM;
        }
        http_response_free(&res);
        return r;
}

/* One PUT; if_match is sent as given (the form the store compares). */
static int put_once(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *body,
                    const char *if_match, bool if_none_match, char *etag, struct aws_result *out) {
        struct kv hdr[2] = { { "Content-Type", "application/json" } };
        size_t nh = 1;
        if (if_match)
                hdr[nh++] = (struct kv){ "If-Match", if_match };
        else if (if_none_match)
                hdr[nh++] = (struct kv){ "If-None-Match", "*" };
        struct http_response res;
        int r = req(c, h, "PutObject", "PUT", bucket, key, hdr, nh, body, &res, out);
        if (r == 0)
                snprintf(etag, 128, "%s", res.etag);
        http_response_free(&res);
        return r;
}

/* If-Match's value: the ETag as S3 gives it (quoted), or without its quotes for a store that compares that form. */
static void if_match_form(const char *etag, bool unquoted, char out[160]) {
        char bare[160];
        s3_etag_unquoted(etag, bare, sizeof bare);
        snprintf(out, 160, unquoted ? "%s" : "\"%s\"", bare);
}

/* After a 412: what the object is now. 1: it holds exactly body (an earlier attempt took, its answer was lost: the
 * ETag into etag); 2: the condition holds after all (the object still has the ETag if_match names, or does not exist
 * under If-None-Match): the store refused a write AWS accepts; 0: the condition really failed (or the read did). */
static int after_refusal(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key,
                         const char *body, const char *if_match, char *etag) {
        _cleanup_free_ char *now = NULL;
        char tag[128];
        struct aws_result o = { 0 };
        int g = s3cas_get(c, h, bucket, key, &now, tag, &o);
        if (g == 0 && !strcmp(now, body)) {
                snprintf(etag, 128, "%s", tag);
                return 1;
        }
        if (if_match)
                return g == 0 && s3_etag_same(tag, if_match) ? 2 : 0;
        return g == -MF_ENOTFOUND ? 2 : 0;
}

int s3cas_put(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *body,
              const char *if_match, bool if_none_match, char *etag, struct aws_result *out) {
        bool unquoted = s3traits_get(c, bucket) & S3T_IFMATCH_UNQUOTED;
        char im[160] = "";
        if (if_match)
                if_match_form(if_match, unquoted, im);
        int r = put_once(c, h, bucket, key, body, if_match ? im : NULL, if_none_match, etag, out);
        if (r != -MF_EPRECOND)
                return r;
        int a = after_refusal(c, h, bucket, key, body, if_match, etag);
        if (a != 2)
                return a == 1 ? 0 : r;
        /* refused though its condition holds: once more, If-Match in the other form (RGW 16.2 and Spaces compare
         * the ETag without quotes; AWS with them) */
        if (if_match)
                if_match_form(if_match, !unquoted, im);
        struct aws_result o2 = { 0 };
        r = put_once(c, h, bucket, key, body, if_match ? im : NULL, if_none_match, etag, &o2);
        if (r == 0) {
                /* the form that took is the bucket's from now on (a 412 a proxy made up may teach a wrong one: the
                 * next refusal teaches it back) */
                if (if_match && (unquoted ? s3traits_del(c, bucket, S3T_IFMATCH_UNQUOTED)
                                          : s3traits_add(c, bucket, S3T_IFMATCH_UNQUOTED)))
                        log_warn("s3://%s: this S3 store compares If-Match %s quotes: conditional writes use that "
                                 "form from now on", bucket, unquoted ? "with" : "without (AWS S3 compares it with)");
                return 0;
        }
        if (r != -MF_EPRECOND) {
                *out = o2;
                return r;
        }
        a = after_refusal(c, h, bucket, key, body, if_match, etag);
        if (a != 2)
                return a == 1 ? 0 : r;
        /* once more as first sent: a refusal a proxy made up once, or a lease created and deleted in between (under
         * If-None-Match), is not the store's rule */
        if (if_match)
                if_match_form(if_match, unquoted, im);
        r = put_once(c, h, bucket, key, body, if_match ? im : NULL, if_none_match, etag, &o2);
        if (r != -MF_EPRECOND) {
                if (r < 0)
                        *out = o2;
                return r;
        }
        a = after_refusal(c, h, bucket, key, body, if_match, etag);
        if (a != 2)
                return a == 1 ? 0 : r;
        errf(out->msg, sizeof out->msg, "this S3 store refuses conditional writes that AWS accepts: PUT s3://%s/%s "
             "with %s%s answered 412 PreconditionFailed while the object %s; a run shared through its ledger cannot "
             "be kept on it", bucket, key, if_match ? "If-Match " : "If-None-Match *", if_match ? if_match : "",
             if_match ? "still has that ETag (quoted and unquoted both refused)" : "does not exist");
        return -MF_ESTORE;
}

int s3cas_delete(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *if_match,
                 struct aws_result *out) {
        char im[160] = "";
        if (if_match)
                if_match_form(if_match, s3traits_get(c, bucket) & S3T_IFMATCH_UNQUOTED, im);
        struct kv hdr[1] = { { "If-Match", im } };
        struct http_response res;
        int r = req(c, h, "DeleteObject", "DELETE", bucket, key, if_match ? hdr : NULL, if_match ? 1 : 0, NULL, &res,
                    out);
        http_response_free(&res);
        return r == -MF_ENOTFOUND ? 0 : r;
}

int s3cas_probe_delete(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *scratch_key,
                       struct aws_result *out) {
        unsigned t = s3traits_get(c, bucket);
        if (t & S3T_DELETE_PROBED)
                return !!(t & S3T_DELETE_IGNORES_IFMATCH);
        char tag[128];
        int r = put_once(c, h, bucket, scratch_key, "{}", NULL, false, tag, out);
        if (r < 0)
                return r;
        /* an ETag no object has: a store that keeps the condition answers 412 and keeps the object */
        r = s3cas_delete(c, h, bucket, scratch_key, "\"00000000000000000000000000000000\"", out);
        bool ignores = r == 0;
        if (r < 0 && r != -MF_EPRECOND)
                return r;
        if (!ignores) {
                struct aws_result o2 = { 0 };
                s3cas_delete(c, h, bucket, scratch_key, NULL, &o2);
        }
        if (s3traits_add(c, bucket, S3T_DELETE_PROBED | (ignores ? S3T_DELETE_IGNORES_IFMATCH : 0)) && ignores)
                log_warn("s3://%s: this S3 store ignores If-Match on DELETE (AWS S3 keeps it): claims are given back "
                         "by overwriting them as released, never by a delete", bucket);
        return ignores;
}
