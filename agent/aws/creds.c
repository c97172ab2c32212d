/* SPDX-License-Identifier: Apache-2.0 */
/* creds.c — fixed credentials, or credentials from a source or the instance role, refreshed before they expire. */
#include "aws/creds.h"
#include "jsonx.h"

#include <cjson/cJSON.h>

int creds_parse_imds_json(const char *json, size_t len, struct aws_creds *ret, char *err, size_t errlen) {
        if (len > CREDS_MAX_JSON) {
                snprintf(err, errlen, "IMDS credentials document too large");
                return -E2BIG;
        }
        _cleanup_(cjson_deletep) cJSON *j = cJSON_ParseWithLength(json, len);
        if (!cJSON_IsObject(j)) {
                snprintf(err, errlen, "IMDS credentials are not a JSON object");
                return -MF_EPARSE;
        }
        const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Code"));
        if (code && strcmp(code, "Success") != 0) {
                snprintf(err, errlen, "IMDS credentials Code is %.64s, not Success", code);
                return -MF_EAUTH;
        }
        const char *ak = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId"));
        const char *sk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey"));
        const char *tok = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Token"));
        const char *exp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Expiration"));
        if (!ak || !*ak || !sk || !*sk || !exp) {
                snprintf(err, errlen, "IMDS credentials lack AccessKeyId, SecretAccessKey or Expiration");
                return -MF_EPARSE;
        }
        time_t t;
        if (parse_iso8601(exp, &t) < 0) {
                snprintf(err, errlen, "IMDS credentials have an unreadable Expiration");
                return -MF_EPARSE;
        }
        struct aws_creds tmp = { .access_key = (char *)ak, .secret_key = (char *)sk,
                                 .token = tok && *tok ? (char *)tok : NULL, .expiration = t };
        int r = aws_creds_copy(&tmp, ret);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
        if (cJSON_IsString(s))
                memset(s->valuestring, 0, strlen(s->valuestring));
        return r;
}

bool creds_need_refresh(time_t expiration, time_t now) {
        return expiration != 0 && expiration - now < CREDS_REFRESH_WINDOW;
}

int creds_init(struct creds_provider *p, struct imds *imds) {
        memset(p, 0, sizeof *p);
        pthread_mutex_init(&p->lock, NULL);
        p->imds = imds;
        const char *ak = env_nonempty("AWS_ACCESS_KEY_ID"), *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
        if (ak && sk) {
                struct aws_creds e = { .access_key = (char *)ak, .secret_key = (char *)sk,
                                       .token = (char *)env_nonempty("AWS_SESSION_TOKEN") };
                p->fixed = true;
                return aws_creds_copy(&e, &p->cur);
        }
        return 0;
}

int creds_init_fixed(struct creds_provider *p, const struct aws_creds *c) {
        memset(p, 0, sizeof *p);
        pthread_mutex_init(&p->lock, NULL);
        p->fixed = true;
        return aws_creds_copy(c, &p->cur);
}

void creds_set_source(struct creds_provider *p, int (*fn)(void *ud, struct aws_creds *ret, char *err, size_t errlen),
                      void *ud) {
        p->source = fn;
        p->source_ud = ud;
}

void creds_free(struct creds_provider *p) {
        aws_creds_clear(&p->cur);
        pthread_mutex_destroy(&p->lock);
}

static void take(struct creds_provider *p, struct aws_creds *c) {
        aws_creds_clear(&p->cur);
        p->cur = *c;
        p->last_fetch = now_mono();
        p->fetches++;
}

static int fetch_source(struct creds_provider *p, char *err, size_t errlen) {
        struct aws_creds c = { 0 };
        int r = p->source(p->source_ud, &c, err, errlen);
        if (r < 0)
                return r;
        take(p, &c);
        p->fixed = c.expiration == 0;
        return 0;
}

#define NO_CREDS "no credentials: none in the environment (AWS_ACCESS_KEY_ID), no profile with credentials in " \
                 "~/.aws/credentials or ~/.aws/config (AWS_PROFILE), and "

static int fetch_role(struct creds_provider *p, char *err, size_t errlen) {
        if (!p->imds) {
                snprintf(err, errlen, NO_CREDS "no instance role");
                return -MF_EAUTH;
        }
        int r;
        if (!p->role[0]) {
                _cleanup_free_ char *list = NULL;
                r = imds_get(p->imds, "meta-data/iam/security-credentials/", &list, NULL, err, errlen);
                if (r == -MF_ENOTFOUND) {
                        snprintf(err, errlen, NO_CREDS "the instance has no IAM role (IMDS iam/security-credentials/ "
                                              "is 404)");
                        return -MF_EAUTH;
                }
                if (r == -ENODEV) {
                        snprintf(err, errlen, NO_CREDS "IMDS is disabled by AWS_EC2_METADATA_DISABLED");
                        return -MF_EAUTH;
                }
                if (r == -EIO && !p->fetches) { /* not on an instance (a laptop), or IMDS blocked */
                        char why[256];
                        snprintf(why, sizeof why, "%s", err);
                        snprintf(err, errlen, NO_CREDS "no instance role (%s)", why);
                        return -MF_EAUTH;
                }
                if (r < 0)
                        return r;
                char *nl = strchr(list, '\n');
                if (nl)
                        *nl = 0;
                char *role = str_trim(list);
                if (!*role || strchr(role, '/') || strlen(role) >= sizeof p->role) {
                        snprintf(err, errlen, "IMDS lists no usable role name");
                        return -MF_EPARSE;
                }
                snprintf(p->role, sizeof p->role, "%s", role);
        }
        char path[400];
        snprintf(path, sizeof path, "meta-data/iam/security-credentials/%s", p->role);
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        r = imds_get(p->imds, path, &json, &len, err, errlen);
        if (r == -MF_ENOTFOUND)
                p->role[0] = 0; /* the role changed: discover it again next time */
        if (r < 0)
                return r;
        struct aws_creds c;
        r = creds_parse_imds_json(json, len, &c, err, errlen);
        memset(json, 0, len);
        if (r < 0)
                return r;
        take(p, &c);
        return 0;
}

int creds_get(struct creds_provider *p, time_t now, struct aws_creds *ret, char *err, size_t errlen) {
        pthread_mutex_lock(&p->lock);
        int r = 0;
        if (!p->fixed) {
                bool have = p->cur.access_key != NULL;
                bool stale = !have || creds_need_refresh(p->cur.expiration, now);
                /* Inside the refresh window, do not ask IMDS more than every 2 s while the key has time left. */
                if (stale && have && p->cur.expiration - now > CREDS_MIN_VALID && now_mono() - p->last_fetch < 2)
                        stale = false;
                if (stale) {
                        r = p->source ? fetch_source(p, err, errlen) : fetch_role(p, err, errlen);
                        /* IMDS hiccup: keep using a key that is still valid */
                        if (r < 0 && have && p->cur.access_key && p->cur.expiration - now > CREDS_MIN_VALID)
                                r = 0;
                }
                if (r == 0 && p->cur.expiration && p->cur.expiration - now <= 0) {
                        snprintf(err, errlen, "the credentials have expired (%s)",
                                 p->source ? "the profile's source gave no newer ones" : "IMDS gave no newer ones");
                        r = -MF_EAUTH;
                }
        }
        if (r == 0)
                r = aws_creds_copy(&p->cur, ret);
        pthread_mutex_unlock(&p->lock);
        return r;
}

void creds_invalidate(struct creds_provider *p) {
        pthread_mutex_lock(&p->lock);
        if (!p->fixed)
                p->last_fetch = -1e9, p->cur.expiration = p->cur.expiration ? 1 : 0;
        pthread_mutex_unlock(&p->lock);
}

void aws_creds_clear(struct aws_creds *c) {
        if (!c)
                return;
        free_secret(c->access_key);
        free_secret(c->secret_key);
        free_secret(c->token);
        c->access_key = c->secret_key = c->token = NULL;
        c->expiration = 0;
}

int aws_creds_copy(const struct aws_creds *from, struct aws_creds *to) {
        struct aws_creds c = { .expiration = from->expiration };
        c.access_key = strdup_or_null(from->access_key);
        c.secret_key = strdup_or_null(from->secret_key);
        c.token = strdup_or_null(from->token);
        if (!c.access_key || !c.secret_key || (from->token && !c.token)) {
                aws_creds_clear(&c);
                return -ENOMEM;
        }
        *to = c;
        return 0;
}
