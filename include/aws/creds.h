/* SPDX-License-Identifier: Apache-2.0 */
/* creds.h — the credentials in use, refreshed before they expire: from the environment (fixed), from a source
 * that aws_ctx_init sets up (a profile of ~/.aws: chain.c), or else the instance role from IMDS. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "aws/imds.h"

#define CREDS_REFRESH_WINDOW 900   /* refresh when less than 15 minutes remain */
#define CREDS_MIN_VALID 10         /* never hand out a key with less than this left */
#define CREDS_MAX_JSON (64 * 1024)

/* One set of credentials: what a request is signed with (sigv4.h). */
struct aws_creds {
        char *access_key;
        char *secret_key;
        char *token;          /* NULL when none */
        time_t expiration;    /* 0 when it never expires */
};
/* Wipes and frees the secrets; the struct is then empty. */
void aws_creds_clear(struct aws_creds *c);
int aws_creds_copy(const struct aws_creds *from, struct aws_creds *to);

struct creds_provider {
        pthread_mutex_t lock;
        struct aws_creds cur;
        bool fixed;                /* from the environment or a profile's keys: never refreshed */
        struct imds *imds;
        /* When set, refreshed credentials come from here instead of IMDS; ones without an expiration are fixed. */
        int (*source)(void *ud, struct aws_creds *ret, char *err, size_t errlen);
        void *source_ud;
        char role[256];
        double last_fetch;         /* monotonic */
        unsigned long fetches;
};

/* Pure: parse the IMDS role-credentials JSON. */
int creds_parse_imds_json(const char *json, size_t len, struct aws_creds *ret, char *err, size_t errlen);
/* Pure: does a key expiring at `expiration` need a refresh at `now`? */
bool creds_need_refresh(time_t expiration, time_t now);

/* The environment's keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) when set, else nothing yet. */
int creds_init(struct creds_provider *p, struct imds *imds);
/* Credentials that are never refreshed (a copy is kept). */
int creds_init_fixed(struct creds_provider *p, const struct aws_creds *c);
void creds_set_source(struct creds_provider *p, int (*fn)(void *ud, struct aws_creds *ret, char *err, size_t errlen),
                      void *ud);
void creds_free(struct creds_provider *p);
/* A copy of valid credentials (caller clears it), refreshed from the source or IMDS when needed. */
int creds_get(struct creds_provider *p, time_t now, struct aws_creds *ret, char *err, size_t errlen);
/* The server said the key expired or is unknown: refetch on the next creds_get. */
void creds_invalidate(struct creds_provider *p);
