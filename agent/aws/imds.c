/* SPDX-License-Identifier: Apache-2.0 */
/* imds.c — IMDSv2 only (no v1 fallback), 1 s connect timeout, backoff on 429/5xx. */
#include "aws/imds.h"

#include <strings.h>

#include "aws/retry.h"

int imds_init(struct imds *m) {
        memset(m, 0, sizeof *m);
        pthread_mutex_init(&m->lock, NULL);
        const char *ep = env_nonempty("AWS_EC2_METADATA_SERVICE_ENDPOINT");
        snprintf(m->endpoint, sizeof m->endpoint, "%s", ep ? ep : IMDS_DEFAULT_ENDPOINT);
        size_t n = strlen(m->endpoint);
        while (n && m->endpoint[n - 1] == '/')
                m->endpoint[--n] = 0;
        const char *dis = env_nonempty("AWS_EC2_METADATA_DISABLED");
        m->disabled = dis && strcasecmp(dis, "true") == 0;
        m->seed = (unsigned)getpid() ^ (unsigned)time(NULL);
        int r = http_client_init(&m->http);
        if (r < 0)
                return r;
        m->http.connect_timeout_ms = 1000;
        m->http.total_timeout_ms = 10000;
        m->http.so_mark = IMDS_SO_MARK; /* through the run user's IMDS rule when this thread works as that user */
        return 0;
}

void imds_free(struct imds *m) {
        http_client_free(&m->http);
        memset(m->token, 0, sizeof m->token);
        pthread_mutex_destroy(&m->lock);
}

static void backoff(struct imds *m, int attempt) {
        double d = retry_backoff(attempt, (double)rand_r(&m->seed) / RAND_MAX) * 0.5 + 0.05;
        usleep((useconds_t)(d * 1e6));
}

static int fetch_token(struct imds *m, char *err, size_t errlen) {
        char url[320], hdr[64];
        snprintf(url, sizeof url, "%s/latest/api/token", m->endpoint);
        snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token-ttl-seconds: %d", IMDS_TOKEN_TTL);
        struct curl_slist *h = curl_slist_append(NULL, hdr);
        int r = -EIO;
        for (int attempt = 1; attempt <= IMDS_ATTEMPTS; attempt++) {
                struct http_response res;
                struct http_request req = { .method = "PUT", .url = url, .headers = h, .body = "", .body_len = 0,
                                            .body_fd = -1, .out_fd = -1 };
                int pr = http_perform(&m->http, &req, &res);
                if (pr == 0 && res.status == 200 && res.body.len > 0 && res.body.len < sizeof m->token) {
                        snprintf(m->token, sizeof m->token, "%s", res.body.data);
                        m->token_expiry = now_mono() + IMDS_TOKEN_TTL - 60;
                        m->token_fetches++;
                        http_response_free(&res);
                        r = 0;
                        break;
                }
                if (pr < 0)
                        snprintf(err, errlen, "IMDS %s unreachable: %s", m->endpoint, res.curl_error);
                else
                        snprintf(err, errlen, "IMDS token request to %s failed: HTTP %ld", m->endpoint, res.status);
                long st = res.status;
                http_response_free(&res);
                if (pr == 0 && st == 403) {
                        r = -EACCES;
                        snprintf(err, errlen, "IMDS at %s refused the token request (403): instance metadata is off",
                                 m->endpoint);
                        break;
                }
                if (pr == 0 && st != 429 && st < 500) {
                        r = -MF_EHTTP;
                        break;
                }
                if (attempt < IMDS_ATTEMPTS)
                        backoff(m, attempt);
        }
        curl_slist_free_all(h);
        return r;
}

static int get_locked(struct imds *m, const char *path, char **ret, size_t *ret_len, char *err, size_t errlen) {
        char url[1024];
        snprintf(url, sizeof url, "%s/latest/%s", m->endpoint, path);
        bool refetched = false;
        for (int attempt = 1; attempt <= IMDS_ATTEMPTS;) {
                if (!m->token[0] || now_mono() >= m->token_expiry) {
                        int r = fetch_token(m, err, errlen);
                        if (r < 0)
                                return r;
                }
                char hdr[600];
                snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %s", m->token);
                struct curl_slist *h = curl_slist_append(NULL, hdr);
                struct http_request req = { .method = "GET", .url = url, .headers = h, .body_fd = -1, .out_fd = -1 };
                struct http_response res;
                int pr = http_perform(&m->http, &req, &res);
                curl_slist_free_all(h);
                long st = res.status;
                if (pr == 0 && st == 200) {
                        if (res.body.len > IMDS_MAX_BODY) {
                                http_response_free(&res);
                                snprintf(err, errlen, "IMDS answer for %s too large", path);
                                return -E2BIG;
                        }
                        if (ret_len)
                                *ret_len = res.body.len;
                        *ret = buf_steal(&res.body);
                        return 0;
                }
                http_response_free(&res);
                if (pr == 0 && st == 401 && !refetched) {
                        m->token[0] = 0; /* expired or rejected token: get a new one, once */
                        refetched = true;
                        continue;
                }
                if (pr == 0 && st == 404) {
                        snprintf(err, errlen, "IMDS has no %s (404)", path);
                        return -MF_ENOTFOUND;
                }
                if (pr == 0 && st == 403) {
                        snprintf(err, errlen, "IMDS refused %s (403): instance metadata is off", path);
                        return -EACCES;
                }
                if (pr < 0)
                        snprintf(err, errlen, "IMDS %s unreachable: %s", m->endpoint, res.curl_error);
                else
                        snprintf(err, errlen, "IMDS answered HTTP %ld for %s", st, path);
                if (pr == 0 && st != 429 && st < 500)
                        return -MF_EHTTP;
                if (++attempt <= IMDS_ATTEMPTS)
                        backoff(m, attempt - 1);
        }
        return -EIO;
}

int imds_get(struct imds *m, const char *path, char **ret, size_t *ret_len, char *err, size_t errlen) {
        if (m->disabled) {
                snprintf(err, errlen, "IMDS is disabled by AWS_EC2_METADATA_DISABLED");
                return -ENODEV;
        }
        pthread_mutex_lock(&m->lock);
        int r = get_locked(m, path, ret, ret_len, err, errlen);
        pthread_mutex_unlock(&m->lock);
        return r;
}
