/* creds.h — credential chain: environment variables, then the instance role from IMDS. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "aws/imds.h"
#include "aws/sigv4.h"

#define CREDS_REFRESH_WINDOW 900   /* refresh when less than 15 minutes remain */
#define CREDS_MIN_VALID 10         /* never hand out a key with less than this left */
#define CREDS_MAX_JSON (64 * 1024)

struct creds_provider {
        pthread_mutex_t lock;
        struct aws_creds cur;
        bool from_env;
        struct imds *imds;
        char role[256];
        double last_fetch;         /* monotonic */
        unsigned long fetches;
};

/* Pure: parse the IMDS role-credentials JSON. */
int creds_parse_imds_json(const char *json, size_t len, struct aws_creds *ret, char *err, size_t errlen);
/* Pure: does a key expiring at `expiration` need a refresh at `now`? */
bool creds_need_refresh(time_t expiration, time_t now);

int creds_init(struct creds_provider *p, struct imds *imds);
void creds_free(struct creds_provider *p);
/* A copy of valid credentials (caller clears it), refreshed from IMDS when needed. */
int creds_get(struct creds_provider *p, time_t now, struct aws_creds *ret, char *err, size_t errlen);
/* The server said the key expired or is unknown: refetch on the next creds_get. */
void creds_invalidate(struct creds_provider *p);
