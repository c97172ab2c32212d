/* SPDX-License-Identifier: Apache-2.0 */
/* test_units.c — table-driven tests of the pure modules: retry policy, XML/error parsing, ListObjectsV2,
 * EC2 answers and form encoding, IMDS credential JSON, part sizing, encodings. */
#include <cjson/cJSON.h>

#include "aws/creds.h"
#include "aws/ec2.h"
#include "aws/retry.h"
#include "aws/s3.h"
#include "test.h"
#include "aws/transfer.h"
#include "aws/xml.h"

static const char *vec;

static char *fixture(const char *rel) {
        char p[1024];
        char *s = NULL;
        snprintf(p, sizeof p, "%s/%s", vec, rel);
        if (read_file_capped(p, 1 << 20, &s, NULL) < 0)
                return NULL;
        return s;
}

static void test_retry(void) {
        struct { long st; const char *code; bool conn; enum retry_kind want; const char *name; } t[] = {
                { 0, NULL, true, RETRY_TRANSIENT, "connection error" },
                { 500, "InternalError", false, RETRY_TRANSIENT, "500 InternalError" },
                { 503, "SlowDown", false, RETRY_THROTTLE, "503 SlowDown" },
                { 503, "RequestLimitExceeded", false, RETRY_THROTTLE, "EC2 RequestLimitExceeded" },
                { 400, "RequestTimeout", false, RETRY_TRANSIENT, "400 RequestTimeout" },
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

static void test_errors(void) {
        struct { const char *file, *code, *msg, *rid; } t[] = {
                { "xml-responses/errors-s3-list-objects.xml", "AccessDenied", "Access Denied", "9C7D5181867045BB" },
                { "xml-responses/errors-ec2-describe-instances.xml", "InvalidInstanceID.Malformed",
                  "Invalid id: \"foobar\"", "dfb14b43-9a55-4d8e-b676-e8034d12bbeb" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                _cleanup_free_ char *x = fixture(t[i].file);
                struct aws_error e;
                int r = x ? aws_error_parse(x, strlen(x), &e) : -1;
                char name[256];
                snprintf(name, sizeof name, "error parse %s", t[i].file);
                T_EXPECT(name, r == 0 && !strcmp(e.code, t[i].code) && !strcmp(e.message, t[i].msg) &&
                                   !strcmp(e.request_id, t[i].rid));
        }
        struct aws_error e;
        const char *ws = "\n   \n<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>m</Message></Error>";
        T_EXPECT("200-with-error after keep-alive whitespace", aws_error_parse(ws, strlen(ws), &e) == 0 &&
                                                                   !strcmp(e.code, "InternalError"));
        const char *ok = "<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>";
        T_EXPECT("success body is not an error", aws_error_parse(ok, strlen(ok), &e) < 0);
        const char *dtd = "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><Error><Code>&a;</Code></Error>";
        T_EXPECT("DTD refused", aws_error_parse(dtd, strlen(dtd), &e) < 0);
        T_EXPECT("garbage refused", aws_error_parse("<<<", 3, &e) < 0 && aws_error_parse("", 0, &e) < 0);
        _cleanup_(buf_freep) struct buf deep = BUF_INIT(1 << 16);
        for (int i = 0; i < 100; i++)
                buf_adds(&deep, "<a>");
        struct xml_node *n = NULL;
        T_EXPECT("depth cap", xml_parse(deep.data, deep.len, &n) == -E2BIG);
}

struct listed {
        int n;
        uint64_t total;
        char keys[8][64];
};

static int on_obj(void *ud, const struct s3_object *o) {
        struct listed *l = ud;
        if (l->n < 8)
                snprintf(l->keys[l->n], sizeof l->keys[0], "%s", o->key);
        l->n++;
        l->total += o->size;
        return 0;
}

static void test_list(void) {
        _cleanup_free_ char *x = fixture("xml-responses/responses-s3-list-objects.xml");
        _cleanup_free_ char *j = fixture("xml-responses/responses-s3-list-objects.json");
        struct listed l = { 0 };
        bool more = true;
        char *tok = NULL;
        int r = x ? s3_parse_list(x, strlen(x), on_obj, &l, &more, &tok) : -1;
        cJSON *want = j ? cJSON_Parse(j) : NULL;
        cJSON *contents = cJSON_GetObjectItem(want, "Contents");
        int wn = cJSON_GetArraySize(contents);
        T_EXPECT("list fixture parses", r == 0 && !more && !tok);
        T_EXPECT("list fixture object count matches botocore's parse", l.n == wn && wn > 0);
        T_EXPECT("list fixture first key", wn > 0 && !strcmp(l.keys[0], cJSON_GetStringValue(cJSON_GetObjectItem(
                                                                           cJSON_GetArrayItem(contents, 0), "Key"))));
        cJSON_Delete(want);
        const char *page = "<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
                           "<NextContinuationToken>tok/=+</NextContinuationToken>"
                           "<Contents><Key>a%20b%2Bc%3D%E2%9C%93</Key><Size>5</Size></Contents></ListBucketResult>";
        struct listed l2 = { 0 };
        r = s3_parse_list(page, strlen(page), on_obj, &l2, &more, &tok);
        T_EXPECT("url-encoded keys decoded", r == 0 && !strcmp(l2.keys[0], "a b+c=\xe2\x9c\x93"));
        T_EXPECT("continuation token kept verbatim", more && tok && !strcmp(tok, "tok/=+"));
        free(tok);
        const char *bad = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        T_EXPECT("truncated without token refused", s3_parse_list(bad, strlen(bad), on_obj, &l2, &more, &tok) < 0);
        const char *badsize = "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>";
        T_EXPECT("negative size refused", s3_parse_list(badsize, strlen(badsize), on_obj, &l2, &more, &tok) < 0);
}

static void test_ec2(void) {
        _cleanup_free_ char *x = fixture("xml-responses/responses-ec2-stop-instances.xml");
        struct xml_node *root = NULL;
        char st[64] = "";
        int r = x ? xml_parse(x, strlen(x), &root) : -1;
        T_EXPECT("stop answer state", r == 0 && ec2_parse_state_change(root, "i-10a64379", st, sizeof st) == 0 &&
                                          !strcmp(st, "stopping"));
        T_EXPECT("other instance not found", ec2_parse_state_change(root, "i-nope", st, sizeof st) < 0);
        xml_free(root);
        struct kv p[] = { { "InstanceId.1", "i-123" }, { "UserData", "a+b/c=" } };
        _cleanup_(buf_freep) struct buf b = BUF_INIT(4096);
        ec2_form("TerminateInstances", p, 2, &b);
        T_EXPECT_STR("ec2 form encoding", b.data,
                     "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-123&UserData=a%2Bb%2Fc%3D");
}

static void test_creds(void) {
        _cleanup_free_ char *j = fixture("imds/iam-security-credentials.json");
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

static void test_parts(void) {
        const uint64_t M = 1ull << 20;
        T_EXPECT("default part 8 MiB", xfer_part_size(100 * M, 0) == 8 * M);
        T_EXPECT("part at least 5 MiB", xfer_part_size(100 * M, 1 * M) == 5 * M);
        uint64_t big = 200ull << 30; /* 200 GiB */
        uint64_t p = xfer_part_size(big, 0);
        T_EXPECT("200 GiB stays within 10,000 parts", (big + p - 1) / p <= 10000 && p % M == 0);
        uint64_t huge = 5ull << 40;
        p = xfer_part_size(huge, 0);
        T_EXPECT("5 TiB stays within 10,000 parts", (huge + p - 1) / p <= 10000);
}

static void test_encoding(void) {
        char *b = NULL, *k = NULL, err[256];
        T_EXPECT("s3 uri", s3_parse_uri("s3://my.bucket/a/b c", &b, &k, err, sizeof err) == 0 && !strcmp(b, "my.bucket") &&
                                   !strcmp(k, "a/b c"));
        free(b);
        free(k);
        T_EXPECT("s3 uri bad bucket", s3_parse_uri("s3://AB/x", &b, &k, err, sizeof err) == -EINVAL);
        T_EXPECT("not s3 uri", s3_parse_uri("http://x/y", &b, &k, err, sizeof err) == -EINVAL);
        char *d = NULL;
        uri_decode("%41%2x%", 8, &d);
        T_EXPECT_STR("uri_decode leaves bad escapes", d, "A%2x%");
        free(d);
        time_t t;
        T_EXPECT("iso8601 parse", parse_iso8601("2015-08-30T12:36:00Z", &t) == 0 && t == 1440938160);
        T_EXPECT("iso8601 fractional", parse_iso8601("2015-08-30T12:36:00.123Z", &t) == 0 && t == 1440938160);
        T_EXPECT("iso8601 garbage", parse_iso8601("yesterday", &t) < 0);
        struct buf cap = BUF_INIT(4);
        T_EXPECT("buffer cap enforced", buf_adds(&cap, "abc") == 0 && buf_adds(&cap, "d") == -E2BIG);
        buf_free(&cap);
        /* array_room: the first allocation, doubling, and an impossible size leaving the array as it was */
        int *v = NULL;
        size_t n = 0, alloc = 0;
        bool grew = true;
        for (int e = 0; e < 20 && grew; e++) {
                int *g = array_room(v, n, &alloc, sizeof *v, 4);
                grew = g != NULL;
                if (g) {
                        v = g;
                        v[n++] = e;
                }
        }
        T_EXPECT("array_room grows by doubling", grew && n == 20 && alloc == 32 && v[19] == 19);
        size_t before = alloc;
        n = alloc;
        T_EXPECT("array_room refuses an overflowing size", array_room(v, n, &alloc, SIZE_MAX / 2, 4) == NULL &&
                                                               alloc == before && v[0] == 0);
        free(v);
}

int main(int argc, char **argv) {
        vec = argc > 1 ? argv[1] : "tests/vectors";
        test_retry();
        test_errors();
        test_list();
        test_ec2();
        test_creds();
        test_parts();
        test_encoding();
        return t_summary();
}
