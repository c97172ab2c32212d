/* SPDX-License-Identifier: Apache-2.0 */
/* imds.h — IMDSv2 client: session token (TTL 21600, cached, renewed before expiry, refetched on 401). */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "aws/http.h"

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
/* SO_MARK on the agent's IMDS sockets: the rule that closes IMDS to the run user lets them through (imdsblock.h);
 * setting it needs CAP_NET_ADMIN, which the experiment never has ('mf') */
#define IMDS_SO_MARK 0x6d66
#define IMDS_TOKEN_TTL 21600
#define IMDS_MAX_BODY (1u << 20)
#define IMDS_ATTEMPTS 4

struct imds {
        pthread_mutex_t lock;
        char endpoint[256];
        bool disabled;
        char token[512];
        double token_expiry;      /* monotonic seconds */
        struct http_client http;
        unsigned seed;
        unsigned long token_fetches;
};

int imds_init(struct imds *m);
void imds_free(struct imds *m);
/* GET /latest/<path>. 0 and the body; -MF_ENOTFOUND on 404; -EACCES on 403 (IMDS off);
 * -ENODEV when disabled by AWS_EC2_METADATA_DISABLED; -EIO/-MF_EHTTP otherwise, with a message in err. */
int imds_get(struct imds *m, const char *path, char **ret, size_t *ret_len, char *err, size_t errlen);
