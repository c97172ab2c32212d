/* SPDX-License-Identifier: Apache-2.0 */
/* sts.c — AssumeRole for the profile chain (one signed POST with the source credentials), and GetCallerIdentity:
 * who the laptop's credentials are (launch.json, `mayfly cancel`). */
#include "aws/sts.h"

#include "aws/query.h"

int sts_parse_credentials(const char *xml, size_t len, struct aws_creds *ret) {
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = xml_parse(xml, len, &x);
        if (r < 0)
                return -MF_EPARSE;
        struct xml_node *cr = xml_child(xml_child(x, "AssumeRoleResult"), "Credentials");
        const char *ak = xml_text(cr, "AccessKeyId"), *sk = xml_text(cr, "SecretAccessKey");
        const char *tok = xml_text(cr, "SessionToken"), *exp = xml_text(cr, "Expiration");
        time_t t;
        if (strcmp(x->name, "AssumeRoleResponse") != 0 || !ak || !*ak || !sk || !*sk || !tok || !*tok || !exp ||
            parse_iso8601(exp, &t) < 0)
                r = -MF_EPARSE;
        else
                r = aws_creds_copy(&(struct aws_creds){ .access_key = (char *)ak, .secret_key = (char *)sk,
                                                        .token = (char *)tok, .expiration = t },
                                   ret);
        struct xml_node *s = xml_child(cr, "SecretAccessKey");
        if (s && s->text)
                explicit_bzero(s->text, s->text_len);
        return r;
}

/* The STS endpoint: AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else the region's (the global one without). */
static void sts_endpoint(const struct aws_ctx *c, char *ep, size_t n) {
        if (c->sts_endpoint[0])
                snprintf(ep, n, "%s", c->sts_endpoint);
        else if (c->region[0])
                snprintf(ep, n, "https://sts.%s.amazonaws.com", c->region);
        else
                snprintf(ep, n, "https://sts.amazonaws.com");
}

int sts_parse_caller(const char *xml, size_t len, char *arn, size_t n) {
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        if (xml_parse(xml, len, &x) < 0 || strcmp(x->name, "GetCallerIdentityResponse") != 0)
                return -MF_EPARSE;
        const char *a = xml_text(xml_child(x, "GetCallerIdentityResult"), "Arn");
        if (!a || !*a || strlen(a) >= n)
                return -MF_EPARSE;
        snprintf(arn, n, "%s", a);
        return 0;
}

int sts_caller_arn(struct aws_ctx *c, char *arn, size_t n, char *err, size_t errlen) {
        char ep[320];
        sts_endpoint(c, ep, sizeof ep);
        _cleanup_(buf_freep) struct buf body = BUF_INIT(1024);
        int r = query_form("GetCallerIdentity", STS_API_VERSION, NULL, 0, &body);
        if (r < 0)
                return r;
        struct kv hdr[] = { { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" } };
        struct aws_req q = { .op = "GetCallerIdentity", .method = "POST", .service = "sts", .endpoint = ep, .path = "/",
                             .headers = hdr, .n_headers = 1, .body = body.data, .body_len = body.len, .body_fd = -1,
                             .out_fd = -1 };
        struct http_client h;
        struct http_response res = { 0 };
        struct aws_result out = { 0 };
        r = http_client_init(&h);
        if (r == 0)
                r = aws_send(c, &h, &q, &res, &out);
        http_client_free(&h);
        if (r == 0 && sts_parse_caller(res.body.data, res.body.len, arn, n) < 0) {
                snprintf(out.msg, sizeof out.msg, "GetCallerIdentity: unreadable answer from %s", ep);
                r = -MF_EPARSE;
        }
        http_response_free(&res);
        if (r < 0)
                errf(err, errlen, "%s", out.msg);
        return r;
}

int sts_assume_role(struct aws_ctx *c, const struct aws_creds *source, const struct sts_assume *a,
                    struct aws_creds *ret, char *err, size_t errlen) {
        char session[64], duration[24], ep[320];
        snprintf(session, sizeof session, "mayfly-%lld", (long long)now_wall());
        snprintf(duration, sizeof duration, "%ld", a->duration ? a->duration : STS_DEFAULT_DURATION);
        struct kv p[5] = { { "RoleArn", a->role_arn }, { "RoleSessionName", a->session_name ? a->session_name : session },
                           { "DurationSeconds", duration } };
        size_t np = 3;
        if (a->external_id)
                p[np++] = (struct kv){ "ExternalId", a->external_id };
        if (a->policy)
                p[np++] = (struct kv){ "Policy", a->policy };
        _cleanup_(buf_freep) struct buf body = BUF_INIT(16384);
        int r = query_form("AssumeRole", STS_API_VERSION, p, np, &body);
        if (r < 0)
                return r;
        struct aws_ctx sc;
        r = aws_ctx_with_creds(c, source, &sc);
        if (r < 0)
                return r;
        sts_endpoint(c, ep, sizeof ep);
        struct kv hdr[] = { { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" } };
        struct aws_req q = { .op = "AssumeRole", .method = "POST", .service = "sts", .endpoint = ep, .path = "/",
                             .headers = hdr, .n_headers = 1, .body = body.data, .body_len = body.len, .body_fd = -1,
                             .out_fd = -1 };
        struct http_client h;
        struct http_response res = { 0 };
        struct aws_result out = { 0 };
        r = http_client_init(&h);
        if (r == 0)
                r = aws_send(&sc, &h, &q, &res, &out);
        else
                snprintf(out.msg, sizeof out.msg, "AssumeRole: %s", strerror(-r));
        http_client_free(&h);
        if (r == 0 && sts_parse_credentials(res.body.data, res.body.len, ret) < 0) {
                snprintf(out.msg, sizeof out.msg, "AssumeRole: unreadable answer from %s", ep);
                r = -MF_EPARSE;
        }
        if (res.body.data)
                explicit_bzero(res.body.data, res.body.len);
        http_response_free(&res);
        aws_ctx_with_creds_free(&sc);
        if (r < 0) {
                errf(err, errlen, "%s (role %s)", out.msg, a->role_arn);
                return -MF_EAUTH;
        }
        return 0;
}
