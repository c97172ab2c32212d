/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_xml.c — S3/EC2 XML answers: errors, ListObjectsV2 pages, multipart and terminate answers. */
#include <assert.h>

#include "aws/ec2.h"
#include "aws/s3.h"
#include "aws/xml.h"

static int count_cb(void *ud, const struct s3_object *o) {
        (*(size_t *)ud)++;
        assert(o->key);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *)data;
        struct aws_error e;
        if (aws_error_parse(s, size, &e) == 0)
                assert(e.code[0] && strlen(e.message) < sizeof e.message);
        size_t n = 0;
        bool more = false;
        char *tok = NULL;
        if (s3_parse_list(s, size, count_cb, &n, &more, &tok) == 0)
                assert(!more || tok);
        free(tok);
        struct xml_node *x = NULL;
        if (xml_parse(s, size, &x) == 0) {
                char st[64];
                ec2_parse_state_change(x, "i-1234567890abcdef0", st, sizeof st);
                (void)xml_text(x, "UploadId");
                (void)xml_text(x, "instancesSet/item/currentState/name");
                xml_free(x);
        }
        return 0;
}
