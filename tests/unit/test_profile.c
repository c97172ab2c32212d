/* SPDX-License-Identifier: Apache-2.0 */
/* test_profile.c — the pure parts of the credential chain: the AWS config and credentials files (libinih, with
 * values longer than its 200-byte lines), credential_process's command splitting and JSON answer, the AssumeRole
 * answer, the error hints. */
#include "aws/aws.h"
#include "aws/credproc.h"
#include "aws/profile.h"
#include "aws/sts.h"
#include "test.h"

static void test_files(void) {
        char token[1201];
        for (size_t i = 0; i < sizeof token - 1; i++)
                token[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
        token[sizeof token - 1] = 0;
        char creds[2048];
        snprintf(creds, sizeof creds,
                 "# a comment\n[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key=secret/with+chars\n"
                 "\n[dev]\naws_access_key_id = AKIDEV\naws_secret_access_key = s2\naws_session_token = %s\n"
                 "region = eu-west-1\n", token);
        const char *config =
                "[default]\nregion = us-west-2\noutput = json\ns3 =\n  addressing_style = path\n"
                "[profile dev]\nregion = eu-central-1\n"
                "[profile  assumed]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = default\n"
                "duration_seconds = 900\n"
                "[profile proc]\ncredential_process = /usr/bin/get-creds --name \"a b\"\n"
                "[sso-session corp]\nsso_start_url = https://example.awsapps.com/start\n"
                "[plain]\nregion = ignored-not-a-profile\n";
        struct profile_set s = { 0 };
        char err[256] = "";
        int r = profile_parse(&s, config, false, err, sizeof err);
        T_EXPECT("config file parses", r == 0);
        r = profile_parse(&s, creds, true, err, sizeof err);
        T_EXPECT("credentials file parses", r == 0);
        const struct profile *d = profile_find(&s, "default"), *dev = profile_find(&s, "dev");
        T_EXPECT_STR("default region from config", profile_get(d, PK_REGION), "us-west-2");
        T_EXPECT_STR("default key from credentials", profile_get(d, PK_ACCESS_KEY), "AKIDEFAULT");
        T_EXPECT_STR("secret with / and + kept", profile_get(d, PK_SECRET_KEY), "secret/with+chars");
        T_EXPECT("key marked as from the credentials file", d && d->from_credentials[PK_ACCESS_KEY]);
        T_EXPECT_STR("credentials file wins over config", profile_get(dev, PK_REGION), "eu-west-1");
        T_EXPECT_STR("a 1200-byte session token survives libinih's 200-byte lines", profile_get(dev, PK_TOKEN), token);
        T_EXPECT_STR("[profile  NAME] with two spaces", profile_get(profile_find(&s, "assumed"), PK_ROLE_ARN),
                     "arn:aws:iam::123456789012:role/r");
        T_EXPECT_STR("credential_process kept whole",
                     profile_get(profile_find(&s, "proc"), PK_CREDENTIAL_PROCESS),
                     "/usr/bin/get-creds --name \"a b\"");
        T_EXPECT("[sso-session] is no profile", !profile_find(&s, "sso-session corp") && !profile_find(&s, "corp"));
        T_EXPECT("[plain] in the config file is no profile", !profile_find(&s, "plain"));
        T_EXPECT("keys are credentials", profile_has_credentials(profile_find(&s, "dev")));
        profile_set_free(&s);

        struct profile_set b = { 0 };
        r = profile_parse(&b, "[default]\nthis line has no equals sign\n", false, err, sizeof err);
        T_EXPECT("a broken line is an error naming the line", r == -EINVAL && strstr(err, "line 2"));
        profile_set_free(&b);
        struct profile_set only = { 0 };
        profile_parse(&only, "[profile x]\nregion = ap-south-1\n", false, err, sizeof err);
        T_EXPECT("region only: no credentials", !profile_has_credentials(profile_find(&only, "x")));
        profile_set_free(&only);
}

static void test_split(void) {
        struct { const char *cmd; const char *want[8]; int r; } t[] = {
                { "aws configure export-credentials --profile dev --format process",
                  { "aws", "configure", "export-credentials", "--profile", "dev", "--format", "process", NULL }, 0 },
                { "/opt/x 'a b' \"c \\\"d\\\"\" e\\ f", { "/opt/x", "a b", "c \"d\"", "e f", NULL }, 0 },
                { "  tool ''  \"\" ", { "tool", "", "", NULL }, 0 },
                { "\"x\\n\"", { "x\\n", NULL }, 0 },
                { "tool 'unclosed", { NULL }, -EINVAL },
                { "   ", { NULL }, -EINVAL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                char **argv = NULL, name[160];
                int r = credproc_split(t[i].cmd, &argv);
                snprintf(name, sizeof name, "split %s", t[i].cmd);
                bool ok = r == t[i].r;
                for (size_t k = 0; ok && r == 0 && (t[i].want[k] || argv[k]); k++)
                        ok = t[i].want[k] && argv[k] && strcmp(t[i].want[k], argv[k]) == 0;
                t_result(name, ok, "r=%d", r);
                credproc_argv_free(argv);
        }
}

static void test_process_json(void) {
        struct { const char *json; int r; const char *why; } t[] = {
                { "{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SK\", \"SessionToken\": \"T\", "
                  "\"Expiration\": \"2030-01-01T00:00:00+00:00\"}", 0, NULL },
                { "{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SK\"}", 0, NULL },
                { "{\"Version\": 2, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SK\"}", -EINVAL, "Version" },
                { "{\"Version\": 1, \"AccessKeyId\": \"AK\"}", -EINVAL, "SecretAccessKey" },
                { "{\"Version\": 1, \"AccessKeyId\": \"AK\", \"SecretAccessKey\": \"SK\", \"Expiration\": \"soon\"}",
                  -EINVAL, "Expiration" },
                { "not json", -EINVAL, "JSON" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                struct aws_creds c = { 0 };
                char err[200] = "", name[200];
                int r = credproc_parse(t[i].json, strlen(t[i].json), &c, err, sizeof err);
                snprintf(name, sizeof name, "credential_process answer %zu", i);
                t_result(name, r == t[i].r && (!t[i].why || strstr(err, t[i].why)) && !strstr(err, "SK"),
                         "r=%d err=%s", r, err);
                if (i == 0)
                        T_EXPECT("Expiration with +00:00", r == 0 && c.expiration == 1893456000 && c.token &&
                                 !strcmp(c.token, "T"));
                if (i == 1)
                        T_EXPECT("no Expiration: never expires", r == 0 && c.expiration == 0 && !c.token);
                aws_creds_clear(&c);
        }
}

static void test_assume_role_answer(void) {
        const char *ok = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>"
                         "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>sk</SecretAccessKey>"
                         "<SessionToken>tok</SessionToken><Expiration>2030-01-01T01:00:00Z</Expiration></Credentials>"
                         "<AssumedRoleUser><Arn>arn</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>";
        struct aws_creds c = { 0 };
        int r = sts_parse_credentials(ok, strlen(ok), &c);
        T_EXPECT("AssumeRole answer", r == 0 && !strcmp(c.access_key, "ASIAX") && !strcmp(c.token, "tok") &&
                 c.expiration == 1893459600);
        aws_creds_clear(&c);
        const char *bad = "<AssumeRoleResponse><AssumeRoleResult></AssumeRoleResult></AssumeRoleResponse>";
        T_EXPECT("AssumeRole answer without credentials", sts_parse_credentials(bad, strlen(bad), &c) == -MF_EPARSE);
        const char *e = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed"
                        "</Message></Error><RequestId>r-1</RequestId></ErrorResponse>";
        struct aws_error ae;
        T_EXPECT("STS <ErrorResponse>", aws_error_parse(e, strlen(e), &ae) == 0 && !strcmp(ae.code, "AccessDenied") &&
                 !strcmp(ae.request_id, "r-1"));
}

static void test_hints(void) {
        const char *codes[] = { "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "RequestTimeTooSkewed",
                                "ExpiredToken" };
        for (size_t i = 0; i < ARRAY_SIZE(codes); i++) {
                char name[80];
                snprintf(name, sizeof name, "hint for %s", codes[i]);
                T_EXPECT(name, aws_error_hint(codes[i]) && !strchr(aws_error_hint(codes[i]), '\n'));
        }
        T_EXPECT("no hint for NoSuchKey", !aws_error_hint("NoSuchKey") && !aws_error_is_auth("NoSuchKey"));
        T_EXPECT("ExpiredToken is a refused credential", aws_error_is_auth("ExpiredToken"));
        T_EXPECT("a skewed clock is not", !aws_error_is_auth("RequestTimeTooSkewed"));
        struct aws_result out = { .status = 403, .err = { .code = "SignatureDoesNotMatch", .message = "m" } };
        aws_describe_error("HeadObject", "RID", &out);
        T_EXPECT_STR("message", out.msg, "HeadObject failed: HTTP 403 SignatureDoesNotMatch: m (request id RID). Hint: "
                     "the secret access key does not belong to this access key id: check AWS_SECRET_ACCESS_KEY or the "
                     "profile's aws_secret_access_key");
}

int main(void) {
        test_files();
        test_split();
        test_process_json();
        test_assume_role_answer();
        test_hints();
        return t_summary();
}
