/* SPDX-License-Identifier: Apache-2.0 */
/* query.c — one Query-protocol call: form body, SigV4 for the service, XML answer. */
#include "aws/query.h"

/* application/x-www-form-urlencoded as the SDKs write it (Python's urlencode in botocore): RFC 3986 escapes, a
 * space as '+'. AWS hashes the bytes as sent, so either form of a space signs; this one is what moto rebuilds. */
static int form_encode(struct buf *out, const char *s) {
        int r = 0;
        while (r >= 0 && *s) {
                size_t n = strcspn(s, " ");
                r = uri_encode(out, s, n, false);
                s += n;
                if (r >= 0 && *s == ' ') {
                        r = buf_addc(out, '+');
                        s++;
                }
        }
        return r;
}

int query_form(const char *action, const char *version, const struct kv *params, size_t n, struct buf *out) {
        int r = buf_adds(out, "Action=");
        if (r >= 0)
                r = form_encode(out, action);
        if (r >= 0)
                r = buf_adds(out, "&Version=");
        if (r >= 0)
                r = form_encode(out, version);
        for (size_t i = 0; i < n && r >= 0; i++) {
                r = buf_addc(out, '&');
                if (r >= 0)
                        r = form_encode(out, params[i].name);
                if (r >= 0)
                        r = buf_addc(out, '=');
                if (r >= 0)
                        r = form_encode(out, params[i].value);
        }
        return r;
}

int query_call(struct aws_ctx *c, struct http_client *h, const struct query_service *s, const char *action,
               const struct kv *params, size_t n, struct xml_node **ret, struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        if (!s->region) {
                int r = aws_region(c, out->msg, sizeof out->msg);
                if (r < 0)
                        return r;
        }
        _cleanup_(buf_freep) struct buf body = BUF_INIT(1 << 20);
        int r = query_form(action, s->version, params, n, &body);
        if (r < 0) {
                snprintf(out->msg, sizeof out->msg, "%s: request too large", action);
                return r;
        }
        struct kv hdr[] = { { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" } };
        struct aws_req q = { .op = action, .method = "POST", .service = s->service, .endpoint = s->endpoint,
                             .path = "/", .headers = hdr, .n_headers = 1, .body = body.data, .body_len = body.len,
                             .body_fd = -1, .out_fd = -1, .region = s->region, .max_attempts = s->max_attempts };
        long saved = h->total_timeout_ms;
        if (s->timeout_ms)
                h->total_timeout_ms = s->timeout_ms;
        struct http_response res;
        r = aws_send(c, h, &q, &res, out);
        h->total_timeout_ms = saved;
        if (r == 0 && ret && xml_parse(res.body.data, res.body.len, ret) < 0) {
                snprintf(out->msg, sizeof out->msg, "%s: unreadable XML answer from %s", action, s->endpoint);
                r = -MF_EPARSE;
        }
        http_response_free(&res);
        return r;
}
