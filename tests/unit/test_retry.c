/* SPDX-License-Identifier: Apache-2.0 */
/* test_retry.c — aws/retry.c: which answers are retried, how (throttling, transient), and which never are. */
#include "aws/retry.h"
#include "util.h"
#include "test.h"

static void test_retry(void) {
        struct { long st; const char *code; bool conn; enum retry_kind want; const char *name; } t[] = {
                { 0, NULL, true, RETRY_TRANSIENT, "connection error" },
                { 500, "InternalError", false, RETRY_TRANSIENT, "500 InternalError" },
                { 503, "SlowDown", false, RETRY_THROTTLE, "503 SlowDown" },
                { 503, "RequestLimitExceeded", false, RETRY_THROTTLE, "EC2 RequestLimitExceeded" },
                { 400, "RequestTimeout", false, RETRY_TRANSIENT, "400 RequestTimeout" },
                { 400, "BadDigest", false, RETRY_TRANSIENT, "400 BadDigest (corrupted on the way: sent again)" },
                { 400, "Throttling", false, RETRY_THROTTLE, "400 Throttling" },
                { 403, "RequestTimeTooSkewed", false, RETRY_SKEW, "403 RequestTimeTooSkewed" },
                { 403, "SignatureDoesNotMatch", false, RETRY_NONE, "403 SignatureDoesNotMatch" },
                { 403, "AccessDenied", false, RETRY_NONE, "403 AccessDenied" },
                { 404, "NoSuchKey", false, RETRY_NONE, "404 NoSuchKey" },
                { 502, NULL, false, RETRY_TRANSIENT, "502 no body" },
                { 504, NULL, false, RETRY_TRANSIENT, "504 no body" },
                { 501, NULL, false, RETRY_NONE, "501 NotImplemented" },
                { 200, NULL, false, RETRY_NONE, "200" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                char name[128];
                snprintf(name, sizeof name, "retry classify %s", t[i].name);
                T_EXPECT(name, retry_classify(t[i].st, t[i].code, t[i].conn) == t[i].want);
        }
        T_EXPECT("backoff attempt 1 max 1s", retry_backoff(1, 1.0) == 1.0);
        T_EXPECT("backoff attempt 3 max 4s", retry_backoff(3, 1.0) == 4.0);
        T_EXPECT("backoff capped at 20s", retry_backoff(10, 1.0) == 20.0);
        T_EXPECT("backoff full jitter", retry_backoff(4, 0.25) == 2.0 && retry_backoff(4, 0.0) == 0.0);
        T_EXPECT("max attempts default 3", retry_max_attempts(NULL) == 3 && retry_max_attempts("x") == 3);
        T_EXPECT("max attempts from env", retry_max_attempts("5") == 5 && retry_max_attempts("0") == 3);
}

int main(int argc, char **argv) {
        (void)argc;
        (void)argv;
        test_retry();
        return t_summary();
}
