/* SPDX-License-Identifier: Apache-2.0 */
/* test_xcreds.c — the experiment kept from the instance role: IMDS targets and the nftables rule (imdsblock.c), the
 * role a session belongs to, the session policy's document, the container provider's answer and its request check
 * (expcreds.c). */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "run/proc/expcreds.h"
#include "run/proc/imdsblock.h"
#include "util.h"
#include "test.h"

static void test_targets(void) {
        struct imds_target t[3];
        char err[256];
        T_EXPECT("default: AWS's two addresses", imds_block_targets(NULL, t, err, sizeof err) == 2 &&
                 !strcmp(t[0].host, "169.254.169.254") && t[0].port == 80 && !t[0].v6 &&
                 !strcmp(t[1].host, "fd00:ec2::254") && t[1].v6);
        T_EXPECT("another endpoint: AWS's two and it", imds_block_targets("http://127.0.0.1:36643", t, err,
                                                                          sizeof err) == 3 &&
                 !strcmp(t[0].host, "169.254.169.254") && !strcmp(t[2].host, "127.0.0.1") && t[2].port == 36643);
        T_EXPECT("endpoint with a path", imds_block_targets("http://10.0.0.5:8080/", t, err, sizeof err) == 3 &&
                 t[2].port == 8080);
        T_EXPECT("AWS's IPv6 endpoint: IPv4 is refused as well",
                 imds_block_targets("http://[fd00:ec2::254]/", t, err, sizeof err) == 2 &&
                 !strcmp(t[0].host, "169.254.169.254") && t[1].v6);
        T_EXPECT("AWS's IPv4 endpoint named: the two", imds_block_targets("http://169.254.169.254", t, err,
                                                                          sizeof err) == 2);
        T_EXPECT("a host name is refused, named",
                 imds_block_targets("http://imds.local:80", t, err, sizeof err) == -EINVAL &&
                 strstr(err, "imds.local") && strstr(err, "not an IP address"));
        T_EXPECT("a bad port is refused", imds_block_targets("http://127.0.0.1:99999", t, err, sizeof err) < 0);
        T_EXPECT("garbage after the host is refused", imds_block_targets("http://1.2.3.4x", t, err, sizeof err) < 0);
}

static void test_nft(void) {
        struct imds_target t[3];
        char err[256], cmd[1024];
        imds_block_targets(NULL, t, err, sizeof err);
        T_EXPECT("nft command fits", imds_block_nft(1001, t, 2, cmd, sizeof cmd) == 0);
        T_EXPECT_STR("nft command: one table per uid, replaced in one transaction; the agent's marked sockets pass", cmd,
                     "add table inet mayfly_u1001; delete table inet mayfly_u1001; add table inet mayfly_u1001; "
                     "add chain inet mayfly_u1001 out { type filter hook output priority 0; policy accept; }; "
                     "add rule inet mayfly_u1001 out meta skuid 1001 meta mark != 0x6d66 ip daddr 169.254.169.254 "
                     "tcp dport 80 reject with tcp reset; add rule inet mayfly_u1001 out meta skuid 1001 meta mark "
                     "!= 0x6d66 ip6 daddr fd00:ec2::254 tcp dport 80 reject with tcp reset; ");
        char small[64];
        T_EXPECT("nft command too long for its buffer", imds_block_nft(1001, t, 2, small, sizeof small) == -ENOBUFS);
}

static void test_role_of(void) {
        char r[256];
        T_EXPECT("assumed role -> its role",
                 expcreds_role_of("arn:aws:sts::123456789012:assumed-role/mayfly-instance-role/i-0abc", r,
                                  sizeof r) == 0 && !strcmp(r, "arn:aws:iam::123456789012:role/mayfly-instance-role"));
        T_EXPECT("another partition kept",
                 expcreds_role_of("arn:aws-cn:sts::123456789012:assumed-role/R/s", r, sizeof r) == 0 &&
                 !strcmp(r, "arn:aws-cn:iam::123456789012:role/R"));
        T_EXPECT("a user is no role", expcreds_role_of("arn:aws:iam::123456789012:user/admin", r, sizeof r) < 0);
        T_EXPECT("no session part", expcreds_role_of("arn:aws:sts::123456789012:assumed-role/R", r, sizeof r) < 0);
        T_EXPECT("a short account", expcreds_role_of("arn:aws:sts::1234:assumed-role/R/s", r, sizeof r) < 0);
        T_EXPECT("NULL", expcreds_role_of(NULL, r, sizeof r) < 0);
}

/* Whether the policy allows action on resource: a statement whose Action lists it and whose Resource is it or
 * a prefix with '*' (the only wildcard the document uses, at its end). */
static bool allows(const cJSON *doc, const char *action, const char *resource) {
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(doc, "Statement")) {
                bool act = false;
                const cJSON *a;
                cJSON_ArrayForEach(a, cJSON_GetObjectItem(s, "Action"))
                        act |= !strcmp(a->valuestring, action);
                const char *res = cJSON_GetStringValue(cJSON_GetObjectItem(s, "Resource"));
                size_t n = strlen(res);
                bool match = res[n - 1] == '*' ? !strncmp(res, resource, n - 1) : !strcmp(res, resource);
                if (act && match && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "Effect")), "Allow"))
                        return true;
        }
        return false;
}

static void test_policy(void) {
        _cleanup_free_ char *p = expcreds_policy("src", "jobs/exp.tar.gz", "res", "results/t/r-1/outputs/");
        cJSON *doc = p ? cJSON_Parse(p) : NULL;
        T_EXPECT("policy is JSON, version 2012-10-17", doc && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(doc,
                                                                               "Version")), "2012-10-17"));
        T_EXPECT("policy fits STS's 2048 packed bytes", p && strlen(p) < 2048);
        if (!doc)
                return;
        T_EXPECT("reads the source", allows(doc, "s3:GetObject", "arn:aws:s3:::src/jobs/exp.tar.gz"));
        T_EXPECT("not another object of the source's bucket",
                 !allows(doc, "s3:GetObject", "arn:aws:s3:::src/jobs/other.tar.gz"));
        T_EXPECT("writes outputs", allows(doc, "s3:PutObject", "arn:aws:s3:::res/results/t/r-1/outputs/model.pt"));
        T_EXPECT("multipart on outputs", allows(doc, "s3:AbortMultipartUpload",
                                                "arn:aws:s3:::res/results/t/r-1/outputs/big.bin"));
        T_EXPECT("never the ledger", !allows(doc, "s3:PutObject", "arn:aws:s3:::res/results/t/r-1/ledger/end.json"));
        T_EXPECT("never status.json", !allows(doc, "s3:PutObject", "arn:aws:s3:::res/results/t/r-1/status.json"));
        T_EXPECT("never report.html", !allows(doc, "s3:PutObject", "arn:aws:s3:::res/results/t/r-1/report.html"));
        T_EXPECT("never the logs", !allows(doc, "s3:PutObject", "arn:aws:s3:::res/results/t/r-1/logs/a/stdout.log"));
        T_EXPECT("never another run's outputs",
                 !allows(doc, "s3:PutObject", "arn:aws:s3:::res/results/t/r-2/outputs/x"));
        T_EXPECT("no delete, no EC2", !allows(doc, "s3:DeleteObject", "arn:aws:s3:::res/results/t/r-1/outputs/x") &&
                 !strstr(p, "ec2:") && !strstr(p, "autoscaling:") && !strstr(p, "sts:"));
        cJSON_Delete(doc);
        _cleanup_free_ char *q = expcreds_policy("src", "jobs/", "res", "results/t/r-1/outputs/");
        T_EXPECT("a source prefix: its objects and a listing limited to it",
                 q && strstr(q, "\"arn:aws:s3:::src/jobs/*\"") && strstr(q, "\"s3:prefix\":\"jobs/*\""));
}

static void test_answer_and_check(void) {
        struct aws_creds c = { .access_key = "ASIAEXAMPLE", .secret_key = "s3cr3t", .token = "tok",
                               .expiration = 1767225600 };
        _cleanup_free_ char *a = expcreds_answer(&c);
        T_EXPECT_STR("the container provider's answer", a,
                     "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"s3cr3t\",\"Token\":\"tok\","
                     "\"Expiration\":\"2026-01-01T00:00:00Z\"}");
        const char *tok = "0123abcd";
        T_EXPECT("GET with the token: 200",
                 expcreds_check("GET /v1/credentials HTTP/1.1\r\nHost: x\r\nAuthorization: 0123abcd\r\n\r\n", tok) == 200);
        T_EXPECT("header name in any case, spaces around",
                 expcreds_check("GET /v1/credentials HTTP/1.1\r\nauthorization:   0123abcd  \r\n\r\n", tok) == 200);
        T_EXPECT("without the token: 401", expcreds_check("GET /v1/credentials HTTP/1.1\r\nHost: x\r\n\r\n", tok) == 401);
        T_EXPECT("another token: 403",
                 expcreds_check("GET /v1/credentials HTTP/1.1\r\nAuthorization: 0123abce\r\n\r\n", tok) == 403);
        T_EXPECT("a prefix of the token: 403",
                 expcreds_check("GET /v1/credentials HTTP/1.1\r\nAuthorization: 0123\r\n\r\n", tok) == 403);
        T_EXPECT("the token and more: 403",
                 expcreds_check("GET /v1/credentials HTTP/1.1\r\nAuthorization: 0123abcdX\r\n\r\n", tok) == 403);
        T_EXPECT("another path: 404",
                 expcreds_check("GET /latest/meta-data/ HTTP/1.1\r\nAuthorization: 0123abcd\r\n\r\n", tok) == 404);
        T_EXPECT("another method: 405",
                 expcreds_check("PUT /v1/credentials HTTP/1.1\r\nAuthorization: 0123abcd\r\n\r\n", tok) == 405);
        T_EXPECT("garbage: 400", expcreds_check("\x01\x02", tok) == 400 && expcreds_check("GET\r\n\r\n", tok) == 400);
}

int main(void) {
        test_targets();
        test_nft();
        test_role_of();
        test_policy();
        test_answer_and_check();
        return t_summary();
}
