/* SPDX-License-Identifier: Apache-2.0 */
/* s3cas.c — conditional PUT/DELETE and ETag-returning GET for the ledger's small records. */
#include "aws/s3cas.h"

#include "aws/s3.h"

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

int s3cas_put(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *body,
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
        if (r != -MF_EPRECOND)
                return r;
        /* an earlier attempt may have taken and its answer been lost: then the object is what we wrote */
        _cleanup_free_ char *now = NULL;
        char tag[128];
        struct aws_result res2 = { 0 };
        if (s3cas_get(c, h, bucket, key, &now, tag, &res2) == 0 && !strcmp(now, body)) {
                snprintf(etag, 128, "%s", tag);
                return 0;
        }
        return r;
}

int s3cas_delete(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *if_match,
                 struct aws_result *out) {
        struct kv hdr[1] = { { "If-Match", if_match } };
        struct http_response res;
        int r = req(c, h, "DeleteObject", "DELETE", bucket, key, if_match ? hdr : NULL, if_match ? 1 : 0, NULL, &res,
                    out);
        http_response_free(&res);
        return r == -MF_ENOTFOUND ? 0 : r;
}
