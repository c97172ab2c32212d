/* SPDX-License-Identifier: Apache-2.0 */
/* retry.h — the AWS SDK "standard" retry mode as pure functions (randomness passed in). */
#pragma once
#include <stdbool.h>

#define RETRY_DEFAULT_ATTEMPTS 3
#define RETRY_MAX_BACKOFF_S 20.0

enum retry_kind {
        RETRY_NONE = 0,     /* success or a client error: do not retry */
        RETRY_TRANSIENT,    /* 5xx, connection errors, RequestTimeout */
        RETRY_THROTTLE,     /* SlowDown, Throttling, RequestLimitExceeded, ... */
        RETRY_SKEW,         /* RequestTimeTooSkewed / RequestExpired: correct the clock, retry */
};

/* status: HTTP status (0 when no response); code: AWS error code or NULL; conn_error: transport failed. */
enum retry_kind retry_classify(long status, const char *code, bool conn_error);
/* Delay before attempt n+1 after attempt n (1-based) failed: rand01 * min(2^(n-1), 20). */
double retry_backoff(int attempt, double rand01);
/* AWS_MAX_ATTEMPTS, 1..100, else the default. */
int retry_max_attempts(const char *env_value);
