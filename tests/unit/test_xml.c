/* SPDX-License-Identifier: Apache-2.0 */
/* test_xml.c — aws/xml.c: S3, EC2 and Query error bodies (botocore's recorded answers), and what the parser refuses
 * (a DTD, garbage, a nesting past its cap). */
#include "aws/xml.h"
#include "util.h"
#include "test.h"
#include "vectors.h"

static void test_errors(void) {
        struct { const char *file, *code, *msg, *rid; } t[] = {
                { "xml-responses/errors-s3-list-objects.xml", "AccessDenied", "Access Denied", "9C7D5181867045BB" },
                { "xml-responses/errors-ec2-describe-instances.xml", "InvalidInstanceID.Malformed",
                  "Invalid id: \"foobar\"", "dfb14b43-9a55-4d8e-b676-e8034d12bbeb" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
                _cleanup_free_ char *x = t_fixture(t[i].file, NULL);
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

int main(int argc, char **argv) {
        t_vectors_from(argc, argv);
        test_errors();
        return t_summary();
}
