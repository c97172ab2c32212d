/* SPDX-License-Identifier: Apache-2.0 */
/* test_creds.c — aws/creds.c: the IMDS credentials document (the EC2 User Guide's example), bad ones refused without
 * the secret in the message, and when to refresh. */
#include "aws/creds.h"
#include "util.h"
#include "test.h"
#include "vectors.h"

static void test_creds(void) {
        _cleanup_free_ char *j = t_fixture("imds/iam-security-credentials.json", NULL);
        struct aws_creds c = { 0 };
        char err[256];
        int r = j ? creds_parse_imds_json(j, strlen(j), &c, err, sizeof err) : -1;
        T_EXPECT("IMDS creds doc (spaces around colons) parses",
                 r == 0 && !strcmp(c.access_key, "ASIAIOSFODNN7EXAMPLE") && !strcmp(c.token, "token") &&
                         c.expiration == 1495033794);
        aws_creds_clear(&c);
        const char *bad[] = { "{}", "[]", "{\"Code\":\"Failure\"}", "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\","
                              "\"Expiration\":\"soon\"}", "not json" };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                char name[128];
                snprintf(name, sizeof name, "bad creds doc %zu refused with a message", i);
                err[0] = 0;
                T_EXPECT(name, creds_parse_imds_json(bad[i], strlen(bad[i]), &c, err, sizeof err) < 0 && err[0] &&
                                       !strstr(err, "wJalr"));
        }
        T_EXPECT("refresh when < 15 min remain", creds_need_refresh(1000, 1000 - 899) &&
                                                     !creds_need_refresh(1000, 1000 - 901) && !creds_need_refresh(0, 5));
}

int main(int argc, char **argv) {
        t_vectors_from(argc, argv);
        test_creds();
        return t_summary();
}
