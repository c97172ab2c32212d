/* SPDX-License-Identifier: Apache-2.0 */
/* retry.c — classification and backoff of the SDK standard retry mode (PROTOCOL.md §4). */
#include "aws/retry.h"

#include <string.h>

#include "util.h"

static const char *const throttle_codes[] = {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
        "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
};
/* BadDigest: the body's Content-MD5 or checksum differed from what arrived: corrupted on the way, sent again */
static const char *const transient_codes[] = {
        "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError", "BadDigest",
};

static bool in_list(const char *code, const char *const *list, size_t n) {
        for (size_t i = 0; code && i < n; i++)
                if (strcmp(code, list[i]) == 0)
                        return true;
        return false;
}

enum retry_kind retry_classify(long status, const char *code, bool conn_error) {
        if (conn_error)
                return RETRY_TRANSIENT;
        if (in_list(code, throttle_codes, ARRAY_SIZE(throttle_codes)) || status == 429)
                return RETRY_THROTTLE;
        if (code && (strcmp(code, "RequestTimeTooSkewed") == 0 || strcmp(code, "RequestExpired") == 0))
                return RETRY_SKEW;
        if (in_list(code, transient_codes, ARRAY_SIZE(transient_codes)))
                return RETRY_TRANSIENT;
        if (status == 500 || status == 502 || status == 503 || status == 504)
                return RETRY_TRANSIENT;
        return RETRY_NONE;
}

double retry_backoff(int attempt, double rand01) {
        double cap = 1.0;
        for (int i = 1; i < attempt && cap < RETRY_MAX_BACKOFF_S; i++)
                cap *= 2;
        if (cap > RETRY_MAX_BACKOFF_S)
                cap = RETRY_MAX_BACKOFF_S;
        if (rand01 < 0)
                rand01 = 0;
        if (rand01 > 1)
                rand01 = 1;
        return rand01 * cap;
}

int retry_max_attempts(const char *env_value) {
        long v;
        if (env_value && parse_int(env_value, 1, 100, &v) == 0)
                return (int)v;
        return RETRY_DEFAULT_ATTEMPTS;
}
