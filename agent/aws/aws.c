/* SPDX-License-Identifier: Apache-2.0 */
/* aws.c — signing, sending and retrying one AWS request. */
#include "aws/aws.h"

#include <math.h>
#include <strings.h>

#include "aws/retry.h"

static void endpoint_from_env(char *dst, size_t n, const char *specific) {
        const char *e = env_nonempty(specific);
        if (!e)
                e = env_nonempty("AWS_ENDPOINT_URL");
        snprintf(dst, n, "%s", e ? e : "");
        size_t l = strlen(dst);
        while (l && dst[l - 1] == '/')
                dst[--l] = 0;
}

void aws_endpoint_for(const char *env_name, const char *host, char *out, size_t n) {
        char var[96];
        snprintf(var, sizeof var, "AWS_ENDPOINT_URL_%s", env_name);
        endpoint_from_env(out, n, var);
        if (!out[0])
                snprintf(out, n, "https://%s", host);
}

int aws_ctx_init_base(struct aws_ctx *c) {
        memset(c, 0, sizeof *c);
        int r = imds_init(&c->imds);
        if (r < 0)
                return r;
        r = creds_init(&c->creds, &c->imds);
        if (r < 0)
                return r;
        const char *reg = env_nonempty("AWS_REGION");
        if (!reg)
                reg = env_nonempty("AWS_DEFAULT_REGION");
        snprintf(c->region, sizeof c->region, "%s", reg ? reg : "");
        c->max_attempts = retry_max_attempts(getenv("AWS_MAX_ATTEMPTS"));
        endpoint_from_env(c->s3_endpoint, sizeof c->s3_endpoint, "AWS_ENDPOINT_URL_S3");
        endpoint_from_env(c->ec2_endpoint, sizeof c->ec2_endpoint, "AWS_ENDPOINT_URL_EC2");
        endpoint_from_env(c->sts_endpoint, sizeof c->sts_endpoint, "AWS_ENDPOINT_URL_STS");
        return 0;
}

void aws_ctx_free(struct aws_ctx *c) {
        creds_free(&c->creds);
        if (c->cleanup)
                c->cleanup(c);
        imds_free(&c->imds);
}

time_t aws_cloud_now(struct aws_ctx *c) {
        return now_wall() + (atomic_load(&c->have_offset) ? atomic_load(&c->clock_offset) : atomic_load(&c->skew));
}

int aws_ctx_with_creds(const struct aws_ctx *parent, const struct aws_creds *cr, struct aws_ctx *ret) {
        memset(ret, 0, sizeof *ret);
        int r = creds_init_fixed(&ret->creds, cr);
        if (r < 0)
                return r;
        snprintf(ret->region, sizeof ret->region, "%s", parent->region[0] ? parent->region : "us-east-1");
        ret->max_attempts = parent->max_attempts;
        atomic_store(&ret->skew, atomic_load(&parent->skew));
        memcpy(ret->s3_endpoint, parent->s3_endpoint, sizeof ret->s3_endpoint);
        memcpy(ret->ec2_endpoint, parent->ec2_endpoint, sizeof ret->ec2_endpoint);
        memcpy(ret->sts_endpoint, parent->sts_endpoint, sizeof ret->sts_endpoint);
        return 0;
}

void aws_ctx_with_creds_free(struct aws_ctx *c) { creds_free(&c->creds); }

int aws_region(struct aws_ctx *c, char *err, size_t errlen) {
        if (c->config_r < 0) {
                snprintf(err, errlen, "%s", c->config_err);
                return c->config_r;
        }
        if (c->region[0])
                return 0;
        _cleanup_free_ char *reg = NULL;
        int r = imds_get(&c->imds, "meta-data/placement/region", &reg, NULL, err, errlen);
        if (r < 0) {
                char why[256];
                snprintf(why, sizeof why, "%s", err);
                snprintf(err, errlen, "no region: set AWS_REGION or a profile's region in ~/.aws/config (IMDS: %s)",
                         why);
                return r;
        }
        snprintf(c->region, sizeof c->region, "%s", str_trim(reg));
        return 0;
}

static int host_of(const char *endpoint, char *host, size_t n) {
        const char *p = strstr(endpoint, "://");
        if (!p)
                return -EINVAL;
        p += 3;
        size_t l = strcspn(p, "/?#");
        if (l == 0 || l >= n)
                return -EINVAL;
        memcpy(host, p, l);
        host[l] = 0;
        /* drop userinfo, and a default port that the URL names explicitly */
        char *at = strrchr(host, '@');
        if (at)
                memmove(host, at + 1, strlen(at + 1) + 1);
        size_t hl = strlen(host);
        if (str_has_prefix(endpoint, "https://") && hl > 4 && strcmp(host + hl - 4, ":443") == 0)
                host[hl - 4] = 0;
        if (str_has_prefix(endpoint, "http://") && hl > 3 && strcmp(host + hl - 3, ":80") == 0)
                host[hl - 3] = 0;
        return 0;
}

static time_t parse_http_date(const char *s) {
        struct tm tm = { 0 };
        if (!s[0] || !strptime(s, "%a, %d %b %Y %H:%M:%S", &tm))
                return 0;
        return timegm(&tm);
}

static bool is_conn_error(CURLcode cc) {
        switch (cc) {
        case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_READ_ERROR: case CURLE_ABORTED_BY_CALLBACK:
                return true;
        default:
                return false;
        }
}

static const char *status_code_name(long st) {
        switch (st) {
        case 301: return "PermanentRedirect";
        case 400: return "BadRequest";
        case 403: return "Forbidden";
        case 404: return "NotFound";
        case 412: return "PreconditionFailed";
        case 416: return "InvalidRange";
        case 503: return "SlowDown";
        default: return st >= 500 ? "InternalError" : "HTTPError";
        }
}

/* Builds the header list for one attempt. */
static struct curl_slist *build_headers(const struct aws_req *r, const struct sigv4_result *s, const char *host) {
        struct curl_slist *l = NULL, *t;
        char line[8192];
#define ADD(...)                                              \
        do {                                                  \
                snprintf(line, sizeof line, __VA_ARGS__);     \
                if (!(t = curl_slist_append(l, line)))        \
                        goto fail;                            \
                l = t;                                        \
        } while (0)
        ADD("Host: %s", host);
        for (size_t i = 0; i < r->n_headers; i++)
                ADD("%s: %s", r->headers[i].name, r->headers[i].value);
        for (size_t i = 0; i < s->n_added; i++)
                ADD("%s: %s", s->added_names[i], s->added_values[i]);
        ADD("Authorization: %s", s->authorization);
        ADD("Expect:");
        ADD("Accept:");
        bool has_ct = false;
        for (size_t i = 0; i < r->n_headers; i++)
                has_ct |= strcasecmp(r->headers[i].name, "Content-Type") == 0;
        if (!has_ct)
                ADD("Content-Type:");
        return l;
#undef ADD
fail:
        curl_slist_free_all(l);
        return NULL;
}

static const struct {
        const char *code, *hint;
} hints[] = {
        { "SignatureDoesNotMatch", "the secret access key does not belong to this access key id: check "
                                   "AWS_SECRET_ACCESS_KEY or the profile's aws_secret_access_key" },
        { "InvalidAccessKeyId", "AWS knows no such access key id: it was deleted, mistyped, or belongs to another "
                                "partition or endpoint" },
        { "InvalidClientTokenId", "AWS knows no such access key id: it was deleted, mistyped, or belongs to another "
                                  "partition or endpoint" },
        { "AuthFailure", "AWS could not validate the credentials: check the access key id, the secret and the clock" },
        { "AccessDenied", "the credentials are valid but an IAM, bucket or KMS key policy does not allow this call "
                          "here (S3 also says AccessDenied for a missing key when s3:ListBucket is not allowed)" },
        { "UnauthorizedOperation", "the credentials are valid but their IAM policy does not allow this EC2 call" },
        { "RequestTimeTooSkewed", "this machine's clock is more than 15 minutes off: sync it (timedatectl set-ntp "
                                  "true, or chrony)" },
        { "ExpiredToken", "the session token has expired: get new credentials (aws sso login, a new AssumeRole), "
                          "or let an instance role refresh them" },
        { "InvalidToken", "the session token is malformed or does not go with this access key id: take "
                          "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from one set" },
};

const char *aws_error_hint(const char *code) {
        for (size_t i = 0; code && i < ARRAY_SIZE(hints); i++)
                if (strcmp(code, hints[i].code) == 0)
                        return hints[i].hint;
        return NULL;
}

bool aws_error_is_auth(const char *code) {
        return aws_error_hint(code) && strcmp(code, "RequestTimeTooSkewed") != 0;
}

void aws_describe_error(const char *op, const char *fallback_request_id, struct aws_result *out) {
        const char *hint = aws_error_hint(out->err.code);
        const char *rid = out->err.request_id[0] ? out->err.request_id
                          : fallback_request_id && fallback_request_id[0] ? fallback_request_id : "none";
        snprintf(out->msg, sizeof out->msg, "%s failed: HTTP %ld %s: %s (request id %s)%s%s", op, out->status,
                 out->err.code, out->err.message[0] ? out->err.message : "no message", rid, hint ? ". Hint: " : "",
                 hint ? hint : "");
}

static void describe(const struct aws_req *r, struct aws_result *out, const struct http_response *res) {
        if (out->status)
                aws_describe_error(r->op, res->request_id, out);
        else
                snprintf(out->msg, sizeof out->msg, "%s failed: cannot reach %s: %s", r->op, r->endpoint,
                         res->curl_error);
}

int aws_send(struct aws_ctx *c, struct http_client *h, const struct aws_req *r, struct http_response *res,
             struct aws_result *out) {
        char host[256];
        *out = (struct aws_result){ 0 };
        /* callers free *res whatever happens: it must be valid even when no request was sent */
        *res = (struct http_response){ .body = BUF_INIT(HTTP_MAX_BODY), .content_length = -1 };
        if (host_of(r->endpoint, host, sizeof host) < 0) {
                snprintf(out->msg, sizeof out->msg, "%s: bad endpoint URL '%s'", r->op, r->endpoint);
                return -EINVAL;
        }
        char payload[65];
        const char *ph = r->payload_hash;
        if (!ph && r->body_fd < 0) {
                sha256_hex(r->body ? r->body : "", r->body ? r->body_len : 0, payload);
                ph = payload;
        } else if (!ph)
                ph = SIGV4_UNSIGNED_PAYLOAD;
        const char *region = r->region ? r->region : c->region;
        int max_attempts = r->max_attempts > 0 ? MIN(r->max_attempts, c->max_attempts) : c->max_attempts;
        unsigned seed = (unsigned)(uintptr_t)h ^ (unsigned)time(NULL);
        bool refreshed_creds = false;
        int ret = -EIO;
        for (int attempt = 1;; attempt++) {
                struct aws_creds cr = { 0 };
                int rr = creds_get(&c->creds, aws_cloud_now(c), &cr, out->msg, sizeof out->msg);
                if (rr < 0)
                        return rr;
                struct sigv4_request sreq = {
                        .method = r->method, .path = r->path, .query = r->query, .n_query = r->n_query,
                        .headers = r->headers, .n_headers = r->n_headers, .payload_hash = ph, .region = region,
                        .service = r->service, .now = now_wall() + atomic_load(&c->skew),
                        .normalize_path = strcmp(r->service, "s3") != 0,
                        .add_content_sha256 = strcmp(r->service, "s3") == 0,
                };
                struct kv hosth = { "Host", host };
                struct kv all[AWS_MAX_EXTRA_HEADERS + 1];
                if (r->n_headers > AWS_MAX_EXTRA_HEADERS) {
                        aws_creds_clear(&cr);
                        return -E2BIG;
                }
                all[0] = hosth;
                if (r->n_headers)
                        memcpy(all + 1, r->headers, r->n_headers * sizeof *all);
                sreq.headers = all;
                sreq.n_headers = r->n_headers + 1;
                struct sigv4_result s = { 0 };
                rr = sigv4_sign(&sreq, &cr, &s);
                aws_creds_clear(&cr);
                if (rr < 0) {
                        snprintf(out->msg, sizeof out->msg, "%s: cannot sign request (%s)", r->op, strerror(-rr));
                        return rr;
                }
                _cleanup_(buf_freep) struct buf url = BUF_INIT(16384);
                rr = buf_printf(&url, "%s%s%s%s", r->endpoint, s.encoded_path, s.query_string[0] ? "?" : "",
                                s.query_string);
                struct curl_slist *hl = rr < 0 ? NULL : build_headers(r, &s, host);
                sigv4_result_clear(&s);
                if (!hl) {
                        snprintf(out->msg, sizeof out->msg, "%s: request too large", r->op);
                        return -E2BIG;
                }
                struct http_request hr = { .method = r->method, .url = url.data, .headers = hl, .body = r->body,
                                           .body_len = r->body_len, .body_fd = r->body_fd, .body_off = r->body_off,
                                           .out_fd = r->out_fd, .out_off = r->out_off, .progress = r->progress,
                                           .progress_ud = r->progress_ud, .want_crc = r->want_crc,
                                           .max_body = r->max_body };
                atomic_fetch_add(&c->requests, 1);
                int pr = http_perform(h, &hr, res);
                curl_slist_free_all(hl);
                out->status = pr == 0 ? res->status : 0;
                time_t server = pr == 0 && res->date[0] ? parse_http_date(res->date) : 0;
                if (server) {
                        atomic_store(&c->clock_offset, (long)(server - now_wall()));
                        atomic_store(&c->have_offset, true);
                }
                if (res->too_big && res->status >= 200 && res->status < 300) {
                        /* more than the caller reads of this kind of answer: said with its size, not retried */
                        char sz[32];
                        if (res->content_length >= 0)
                                fmt_bytes((uint64_t)res->content_length, sz);
                        snprintf(out->msg, sizeof out->msg, "%s: the answer is %s%s, more than the %zu bytes read of it",
                                 r->op, res->content_length >= 0 ? "" : "over ", res->content_length >= 0 ? sz : "the cap",
                                 r->max_body ? r->max_body : (size_t)HTTP_MAX_BODY);
                        out->size = res->content_length;
                        return -EFBIG;
                }
                if (pr == -ENOSPC || pr == -EDQUOT || pr == -EROFS || pr == -EFBIG || res->write_error) {
                        snprintf(out->msg, sizeof out->msg, "%s: cannot write the download: %s", r->op,
                                 strerror(res->write_error ? -res->write_error : -pr));
                        return res->write_error ? res->write_error : pr;
                }
                enum retry_kind k;
                out->err = (struct aws_error){ 0 };
                if (pr < 0) {
                        k = retry_classify(0, NULL, is_conn_error(res->curl_code));
                } else if (res->status >= 200 && res->status < 300) {
                        bool err200 = r->check_200_error && aws_error_parse(res->body.data, res->body.len, &out->err) == 0;
                        if (!err200 && r->out_fd >= 0 && res->content_length >= 0 &&
                            strcmp(r->method, "HEAD") != 0 && res->written != (uint64_t)res->content_length) {
                                snprintf(res->curl_error, sizeof res->curl_error, "short body: %llu of %lld bytes",
                                         (unsigned long long)res->written, (long long)res->content_length);
                                out->status = 0;
                                k = RETRY_TRANSIENT;
                        } else if (!err200)
                                return 0;
                        else
                                k = retry_classify(500, out->err.code, false);
                } else {
                        if (aws_error_parse(res->body.data, res->body.len, &out->err) < 0) {
                                snprintf(out->err.code, sizeof out->err.code, "%s", status_code_name(res->status));
                                snprintf(out->err.request_id, sizeof out->err.request_id, "%s", res->request_id);
                        }
                        k = retry_classify(res->status, out->err.code, false);
                        if (res->bucket_region[0])
                                snprintf(out->err.region, sizeof out->err.region, "%s", res->bucket_region);
                        if (!refreshed_creds && (strcmp(out->err.code, "ExpiredToken") == 0 ||
                                                 strcmp(out->err.code, "InvalidToken") == 0 ||
                                                 strcmp(out->err.code, "InvalidAccessKeyId") == 0) &&
                            !c->creds.fixed) {
                                creds_invalidate(&c->creds);
                                refreshed_creds = true;
                                k = RETRY_TRANSIENT;
                        }
                        if (k == RETRY_SKEW) {
                                if (server)
                                        atomic_store(&c->skew, (long)(server - now_wall()));
                        }
                }
                describe(r, out, res);
                ret = out->status == 404 ? -MF_ENOTFOUND
                      : out->status == 403 || aws_error_is_auth(out->err.code) ? -MF_EAUTH
                      : out->status ? -MF_EHTTP
                                    : -EIO;
                if (k == RETRY_NONE || attempt >= max_attempts)
                        break;
                atomic_fetch_add(&c->retries, 1);
                if (r->progress)
                        r->progress(r->progress_ud, -(int64_t)(res->written + res->sent));
                http_response_free(res);
                double d = k == RETRY_SKEW ? 0 : retry_backoff(attempt, (double)rand_r(&seed) / RAND_MAX);
                if (d > 0)
                        usleep((useconds_t)(d * 1e6));
        }
        if (out->status && out->err.region[0] && strcmp(out->err.region, region) != 0 &&
            (out->status == 301 || out->status == 400 || strcmp(out->err.code, "AuthorizationHeaderMalformed") == 0)) {
                snprintf(out->msg, sizeof out->msg, "%s failed: the bucket is in region %s, not %s (set AWS_REGION=%s)",
                         r->op, out->err.region, c->region, out->err.region);
                ret = -MF_EREGION;
        }
        return ret;
}
