/* SPDX-License-Identifier: Apache-2.0 */
/* test_ec2.c — aws/ec2.c: a StopInstances answer (botocore's recorded one) and the Query form encoding. */
#include "aws/ec2.h"
#include "aws/xml.h"
#include "util.h"
#include "test.h"
#include "vectors.h"

static void test_ec2(void) {
        _cleanup_free_ char *x = t_fixture("xml-responses/responses-ec2-stop-instances.xml", NULL);
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

int main(int argc, char **argv) {
        t_vectors_from(argc, argv);
        test_ec2();
        return t_summary();
}
