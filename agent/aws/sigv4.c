/* SPDX-License-Identifier: Apache-2.0 */
/* sigv4.c — canonical request, string to sign, signature (header and query forms). */
#include "aws/sigv4.h"

#include "crypto.h"

#include <ctype.h>
#include <strings.h>



void sigv4_result_clear(struct sigv4_result *r) {
        free(r->canonical_request);
        free(r->string_to_sign);
        free(r->authorization);
        free(r->query_string);
        free(r->encoded_path);
        for (size_t i = 0; i < r->n_added; i++) {
                free(r->added_names[i]);
                free(r->added_values[i]);
        }
        memset(r, 0, sizeof *r);
}

void sha256_hex(const void *data, size_t n, char out[65]) {
        unsigned char md[32];
        crypto_sha256(data, n, md);
        hex_encode(md, 32, out);
}

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32]) {
        crypto_hmac_sha256(key, klen, msg, strlen(msg), out);
}

int sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                      unsigned char out[32]) {
        _cleanup_(buf_freep) struct buf k = BUF_INIT(1024);
        int r = buf_printf(&k, "AWS4%s", secret);
        if (r < 0)
                return r;
        unsigned char a[32], b[32];
        hmac256(k.data, k.len, date8, a);
        crypto_wipe(k.data, k.len);
        hmac256(a, 32, region, b);
        hmac256(b, 32, service, a);
        hmac256(a, 32, "aws4_request", out);
        crypto_wipe(a, 32);
        crypto_wipe(b, 32);
        return 0;
}

/* RFC 3986 remove_dot_segments plus collapsing of empty segments (non-S3 services). */
int sigv4_normalize_path(const char *path, char **ret) {
        size_t n = strlen(path);
        _cleanup_free_ char *out = malloc(n + 2);
        if (!out)
                return -ENOMEM;
        size_t o = 0;
        bool trailing = n > 0 && path[n - 1] == '/';
        const char *p = path;
        while (*p) {
                while (*p == '/')
                        p++;
                const char *e = strchrnul(p, '/');
                size_t sl = (size_t)(e - p);
                if (sl == 0)
                        break;
                if (sl == 1 && p[0] == '.') {
                        if (!*e)
                                trailing = true;
                } else if (sl == 2 && p[0] == '.' && p[1] == '.') {
                        while (o > 0 && out[o - 1] != '/')
                                o--;
                        if (o > 0)
                                o--;
                        if (!*e)
                                trailing = true;
                } else {
                        out[o++] = '/';
                        memcpy(out + o, p, sl);
                        o += sl;
                }
                p = e;
        }
        if (o == 0 || trailing)
                out[o++] = '/';
        out[o] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

struct hdr {
        char *name;   /* lowercased */
        char *value;  /* trimmed, inner spaces collapsed */
        size_t order;
};

static int hdr_cmp(const void *a, const void *b) {
        const struct hdr *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c)
                return c;
        return x->order < y->order ? -1 : x->order > y->order;
}

static char *canon_value(const char *v) {
        char *out = malloc(strlen(v) + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        bool space = false;
        for (const char *p = v; *p; p++) {
                if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
                        space = o > 0;
                        continue;
                }
                if (space)
                        out[o++] = ' ';
                space = false;
                out[o++] = *p;
        }
        out[o] = 0;
        return out;
}

struct qp {
        char *k;  /* encoded */
        char *v;  /* encoded */
};

static int qp_cmp(const void *a, const void *b) {
        const struct qp *x = a, *y = b;
        int c = strcmp(x->k, y->k);
        return c ? c : strcmp(x->v, y->v);
}

static int encode_dup(const char *s, char **ret) {
        struct buf b = BUF_INIT(SIGV4_MAX_TEXT);
        int r = uri_encode(&b, s ? s : "", s ? strlen(s) : 0, false);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = buf_steal(&b);
        return 0;
}

/* Canonical query string from decoded pairs plus extra (already decoded) pairs. */
static int canonical_query(const struct kv *q, size_t nq, const struct kv *extra, size_t ne, char **ret) {
        struct qp p[SIGV4_MAX_QUERY + 8] = { 0 };
        size_t n = 0;
        int r = 0;
        if (nq + ne > ARRAY_SIZE(p))
                return -E2BIG;
        for (size_t i = 0; i < nq + ne && r >= 0; i++, n++) {
                const struct kv *kv = i < nq ? &q[i] : &extra[i - nq];
                r = encode_dup(kv->name, &p[i].k);
                if (r >= 0)
                        r = encode_dup(kv->value, &p[i].v);
        }
        struct buf b = BUF_INIT(SIGV4_MAX_TEXT);
        if (r >= 0) {
                qsort(p, n, sizeof p[0], qp_cmp);
                for (size_t i = 0; i < n && r >= 0; i++)
                        r = buf_printf(&b, "%s%s=%s", i ? "&" : "", p[i].k, p[i].v);
        }
        for (size_t i = 0; i < n; i++) {
                free(p[i].k);
                free(p[i].v);
        }
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = buf_steal(&b);
        return 0;
}

static int encoded_path(const struct sigv4_request *req, char **ret) {
        _cleanup_free_ char *norm = NULL;
        const char *path = req->path && *req->path ? req->path : "/";
        if (req->normalize_path) {
                int r = sigv4_normalize_path(path, &norm);
                if (r < 0)
                        return r;
                path = norm;
        }
        struct buf b = BUF_INIT(SIGV4_MAX_TEXT);
        int r = uri_encode(&b, path, strlen(path), true);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = buf_steal(&b);
        return 0;
}

static bool has_header(const struct sigv4_request *req, const char *name) {
        for (size_t i = 0; i < req->n_headers; i++)
                if (strcasecmp(req->headers[i].name, name) == 0)
                        return true;
        return false;
}

static int add_header(struct sigv4_result *res, const char *name, const char *value) {
        if (res->n_added >= ARRAY_SIZE(res->added_names))
                return -E2BIG;
        res->added_names[res->n_added] = strdup(name);
        res->added_values[res->n_added] = strdup(value);
        res->n_added++;
        if (!res->added_names[res->n_added - 1] || !res->added_values[res->n_added - 1])
                return -ENOMEM;
        return 0;
}

/* Canonical headers block and the signed-header list; headers = request's + signer-added. */
static int canonical_headers(const struct sigv4_request *req, const struct sigv4_result *res, struct buf *out,
                             struct buf *signed_list) {
        struct hdr h[SIGV4_MAX_HEADERS + 3] = { 0 };
        size_t n = 0;
        int r = 0;
        if (req->n_headers + res->n_added > ARRAY_SIZE(h))
                return -E2BIG;
        for (size_t i = 0; i < req->n_headers + res->n_added; i++, n++) {
                const char *name = i < req->n_headers ? req->headers[i].name : res->added_names[i - req->n_headers];
                const char *val = i < req->n_headers ? req->headers[i].value : res->added_values[i - req->n_headers];
                h[n].name = strdup(name);
                h[n].value = canon_value(val ? val : "");
                h[n].order = i;
                if (!h[n].name || !h[n].value) {
                        n++;
                        r = -ENOMEM;
                        break;
                }
                for (char *c = h[n].name; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
        }
        if (r >= 0) {
                qsort(h, n, sizeof h[0], hdr_cmp);
                for (size_t i = 0; i < n && r >= 0; i++) {
                        bool first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
                        bool last = i + 1 == n || strcmp(h[i].name, h[i + 1].name) != 0;
                        if (first) {
                                r = buf_printf(out, "%s:", h[i].name);
                                if (r >= 0)
                                        r = buf_printf(signed_list, "%s%s", signed_list->len ? ";" : "", h[i].name);
                        } else
                                r = buf_addc(out, ',');
                        if (r >= 0)
                                r = buf_adds(out, h[i].value);
                        if (r >= 0 && last)
                                r = buf_addc(out, '\n');
                }
        }
        for (size_t i = 0; i < n; i++) {
                free(h[i].name);
                free(h[i].value);
        }
        return r;
}

static int finish(const struct sigv4_request *req, const struct aws_creds *creds, const char *amzdate,
                  const char *creq, struct sigv4_result *res) {
        char date8[9];
        memcpy(date8, amzdate, 8);
        date8[8] = 0;
        char creq_hash[65];
        sha256_hex(creq, strlen(creq), creq_hash);
        struct buf sts = BUF_INIT(4096);
        int r = buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amzdate, date8, req->region,
                           req->service, creq_hash);
        if (r < 0) {
                buf_free(&sts);
                return r;
        }
        res->string_to_sign = buf_steal(&sts);
        unsigned char key[32], sig[32];
        r = sigv4_signing_key(creds->secret_key, date8, req->region, req->service, key);
        if (r < 0)
                return r;
        hmac256(key, 32, res->string_to_sign, sig);
        crypto_wipe(key, 32);
        hex_encode(sig, 32, res->signature);
        return 0;
}

static int check_request(const struct sigv4_request *req, const struct aws_creds *creds) {
        if (!req->method || !req->region || !req->service || !creds || !creds->access_key || !creds->secret_key)
                return -EINVAL;
        if (req->n_headers > SIGV4_MAX_HEADERS || req->n_query > SIGV4_MAX_QUERY)
                return -E2BIG;
        return 0;
}

int sigv4_sign(const struct sigv4_request *req, const struct aws_creds *creds, struct sigv4_result *ret) {
        struct sigv4_result res = { 0 };
        char amzdate[17];
        const char *payload = req->payload_hash ? req->payload_hash : SIGV4_EMPTY_SHA256;
        _cleanup_(buf_freep) struct buf ch = BUF_INIT(SIGV4_MAX_TEXT);
        _cleanup_(buf_freep) struct buf sl = BUF_INIT(4096);
        _cleanup_(buf_freep) struct buf creq = BUF_INIT(SIGV4_MAX_TEXT);
        _cleanup_free_ char *cq = NULL;

        int r = check_request(req, creds);
        if (r < 0)
                return r;
        r = format_iso8601_basic(req->now, amzdate);
        if (r >= 0 && !has_header(req, "x-amz-date"))
                r = add_header(&res, "X-Amz-Date", amzdate);
        if (r >= 0 && creds->token && !req->omit_token && !has_header(req, "x-amz-security-token"))
                r = add_header(&res, "X-Amz-Security-Token", creds->token);
        if (r >= 0 && req->add_content_sha256 && !has_header(req, "x-amz-content-sha256"))
                r = add_header(&res, "X-Amz-Content-Sha256", payload);
        if (r >= 0)
                r = encoded_path(req, &res.encoded_path);
        if (r >= 0)
                r = canonical_query(req->query, req->n_query, NULL, 0, &cq);
        if (r >= 0)
                r = canonical_headers(req, &res, &ch, &sl);
        if (r >= 0)
                r = buf_printf(&creq, "%s\n%s\n%s\n%s\n%s\n%s", req->method, res.encoded_path, cq, ch.data, sl.data,
                               payload);
        if (r >= 0) {
                res.canonical_request = buf_steal(&creq);
                res.query_string = TAKE_PTR(cq);
                r = finish(req, creds, amzdate, res.canonical_request, &res);
        }
        if (r >= 0 && creds->token && req->omit_token && !has_header(req, "x-amz-security-token"))
                r = add_header(&res, "X-Amz-Security-Token", creds->token);
        if (r >= 0) {
                struct buf a = BUF_INIT(8192);
                char date8[9] = { 0 };
                memcpy(date8, amzdate, 8);
                r = buf_printf(&a, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                               creds->access_key, date8, req->region, req->service, sl.data, res.signature);
                res.authorization = buf_steal(&a);
        }
        if (r < 0) {
                sigv4_result_clear(&res);
                return r;
        }
        *ret = res;
        return 0;
}

int sigv4_presign(const struct sigv4_request *req, const struct aws_creds *creds, unsigned expires,
                  struct sigv4_result *ret) {
        struct sigv4_result res = { 0 };
        char amzdate[17], date8[9] = { 0 }, exp[16];
        const char *payload = req->payload_hash ? req->payload_hash : SIGV4_UNSIGNED_PAYLOAD;
        _cleanup_(buf_freep) struct buf ch = BUF_INIT(SIGV4_MAX_TEXT);
        _cleanup_(buf_freep) struct buf sl = BUF_INIT(4096);
        _cleanup_(buf_freep) struct buf cred = BUF_INIT(4096);
        _cleanup_(buf_freep) struct buf creq = BUF_INIT(SIGV4_MAX_TEXT);
        _cleanup_free_ char *cq = NULL;

        int r = check_request(req, creds);
        if (r < 0)
                return r;
        if (expires < 1 || expires > SIGV4_MAX_PRESIGN_EXPIRES)
                return -ERANGE;
        r = format_iso8601_basic(req->now, amzdate);
        if (r < 0)
                return r;
        memcpy(date8, amzdate, 8);
        snprintf(exp, sizeof exp, "%u", expires);
        r = canonical_headers(req, &res, &ch, &sl);
        if (r >= 0)
                r = buf_printf(&cred, "%s/%s/%s/%s/aws4_request", creds->access_key, date8, req->region, req->service);
        struct kv extra[6] = {
                { "X-Amz-Algorithm", "AWS4-HMAC-SHA256" },
                { "X-Amz-Credential", cred.data },
                { "X-Amz-Date", amzdate },
                { "X-Amz-Expires", exp },
                { "X-Amz-SignedHeaders", sl.data },
                { "X-Amz-Security-Token", creds->token },
        };
        size_t ne = creds->token && !req->omit_token ? 6 : 5;
        if (r >= 0)
                r = encoded_path(req, &res.encoded_path);
        if (r >= 0)
                r = canonical_query(req->query, req->n_query, extra, ne, &cq);
        if (r >= 0)
                r = buf_printf(&creq, "%s\n%s\n%s\n%s\n%s\n%s", req->method, res.encoded_path, cq, ch.data, sl.data,
                               payload);
        if (r >= 0) {
                res.canonical_request = buf_steal(&creq);
                r = finish(req, creds, amzdate, res.canonical_request, &res);
        }
        if (r >= 0) {
                struct buf q = BUF_INIT(SIGV4_MAX_TEXT);
                r = buf_printf(&q, "%s&X-Amz-Signature=%s", cq, res.signature);
                if (r >= 0 && creds->token && req->omit_token) {
                        r = buf_adds(&q, "&X-Amz-Security-Token=");
                        if (r >= 0)
                                r = uri_encode(&q, creds->token, strlen(creds->token), false);
                }
                res.query_string = buf_steal(&q);
        }
        if (r < 0) {
                sigv4_result_clear(&res);
                return r;
        }
        *ret = res;
        return 0;
}
