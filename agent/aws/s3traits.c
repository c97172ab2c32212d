/* SPDX-License-Identifier: Apache-2.0 */
/* s3traits.c — what a store was seen to do, per endpoint and bucket: a small table under one lock (the ledger's
 * keeper, the shipper and the driver all write through it). */
#include "aws/s3traits.h"

#include <pthread.h>
#include <string.h>

#include "util.h"

static struct {
        pthread_mutex_t lock;
        struct {
                char endpoint[256];
                char bucket[64];
                unsigned traits;
        } v[S3_TRAITS_MAX];
        size_t n;
} T = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* under T.lock: the entry's index, -1 when unknown */
static int find(const struct aws_ctx *c, const char *bucket) {
        for (size_t i = 0; i < T.n; i++)
                if (!strcmp(T.v[i].endpoint, c->s3_endpoint) && !strcmp(T.v[i].bucket, bucket))
                        return (int)i;
        return -1;
}

unsigned s3traits_get(const struct aws_ctx *c, const char *bucket) {
        pthread_mutex_lock(&T.lock);
        int i = find(c, bucket);
        unsigned t = i >= 0 ? T.v[i].traits : 0;
        pthread_mutex_unlock(&T.lock);
        return t;
}

bool s3traits_add(const struct aws_ctx *c, const char *bucket, unsigned traits) {
        bool fresh = false;
        pthread_mutex_lock(&T.lock);
        int i = find(c, bucket);
        if (i < 0 && T.n < S3_TRAITS_MAX && strlen(bucket) < sizeof T.v[0].bucket) {
                i = (int)T.n++;
                snprintf(T.v[i].endpoint, sizeof T.v[i].endpoint, "%s", c->s3_endpoint);
                snprintf(T.v[i].bucket, sizeof T.v[i].bucket, "%s", bucket);
                T.v[i].traits = 0;
        }
        if (i >= 0) {
                fresh = (T.v[i].traits & traits) != traits;
                T.v[i].traits |= traits;
        }
        pthread_mutex_unlock(&T.lock);
        return fresh;
}

bool s3traits_del(const struct aws_ctx *c, const char *bucket, unsigned traits) {
        pthread_mutex_lock(&T.lock);
        int i = find(c, bucket);
        bool had = i >= 0 && (T.v[i].traits & traits);
        if (i >= 0)
                T.v[i].traits &= ~traits;
        pthread_mutex_unlock(&T.lock);
        return had;
}

void s3traits_reset(void) {
        pthread_mutex_lock(&T.lock);
        T.n = 0;
        pthread_mutex_unlock(&T.lock);
}

void s3_etag_unquoted(const char *etag, char *out, size_t n) {
        size_t len = strlen(etag);
        if (len >= 2 && etag[0] == '"' && etag[len - 1] == '"') {
                etag++;
                len -= 2;
        }
        snprintf(out, n, "%.*s", (int)MIN(len, n - 1), etag);
}

bool s3_etag_same(const char *a, const char *b) {
        char x[160], y[160];
        s3_etag_unquoted(a, x, sizeof x);
        s3_etag_unquoted(b, y, sizeof y);
        return x[0] && !strcmp(x, y);
}
