/* SPDX-License-Identifier: Apache-2.0 */
/* asgctl.c — a driver for tests/blackbox/test_autoscaling.py: one Auto Scaling or launch-template call of
 * aws/autoscaling.h per command line, with the credentials and endpoints of the environment, as the agent makes
 * them. Exit 0, 3 for "not found", 1 for any other failure (its message on stderr); describe prints JSON. */
#include <cjson/cJSON.h>

#include "aws/autoscaling.h"
#include "aws/chain.h"

static int describe(struct aws_ctx *c, struct http_client *h, const char *group, struct aws_result *out) {
        struct asg_info i;
        int r = asg_describe(c, h, group, &i, out);
        if (r < 0)
                return r;
        cJSON *o = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(o, "members"),
              *l = cJSON_AddArrayToObject(o, "lifecycle");
        cJSON_AddBoolToObject(o, "exists", i.exists);
        cJSON_AddBoolToObject(o, "deleting", i.deleting);
        cJSON_AddNumberToObject(o, "desired", i.desired);
        cJSON_AddNumberToObject(o, "min", i.min);
        cJSON_AddNumberToObject(o, "max", i.max);
        cJSON_AddStringToObject(o, "run_id", i.run_id);
        for (size_t k = 0; k < i.n; k++) {
                cJSON_AddItemToArray(m, cJSON_CreateString(i.members[k]));
                cJSON_AddItemToArray(l, cJSON_CreateString(i.lifecycle[k]));
        }
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        return 0;
}

int main(int argc, char **argv) {
        if (argc < 3) {
                fprintf(stderr, "usage: asgctl describe|delete GROUP | suspend GROUP PROCESS | terminate INSTANCE "
                                "[decrement] | detach GROUP INSTANCE [decrement] | create GROUP TEMPLATE RUN_ID SIZE | "
                                "lt-exists|lt-delete NAME\n");
                return 2;
        }
        struct aws_ctx c;
        struct http_client h;
        struct aws_result out = { 0 };
        if (aws_ctx_init(&c) < 0 || http_client_init(&h) < 0) {
                fprintf(stderr, "asgctl: cannot initialise\n");
                return 1;
        }
        const char *cmd = argv[1], *a = argv[2], *b = argc > 3 ? argv[3] : NULL;
        bool dec = argc > 3 && !strcmp(argv[argc - 1], "decrement");
        int r = -EINVAL;
        if (!strcmp(cmd, "describe"))
                r = describe(&c, &h, a, &out);
        else if (!strcmp(cmd, "delete"))
                r = asg_delete(&c, &h, a, &out);
        else if (!strcmp(cmd, "suspend") && b)
                r = asg_suspend(&c, &h, a, b, &out);
        else if (!strcmp(cmd, "terminate"))
                r = asg_terminate_instance(&c, &h, a, dec, &out);
        else if (!strcmp(cmd, "detach") && b)
                r = asg_detach_instance(&c, &h, a, b, dec, &out);
        else if (!strcmp(cmd, "create") && argc == 6) {
                const char *types[] = { "p3.2xlarge" };
                long size = 0;
                struct asg_group g = { .name = a, .launch_template = b, .run_id = argv[4], .instance_types = types,
                                       .n_types = 1 };
                r = parse_int(argv[5], 1, ASG_MAX_MEMBERS, &size);
                g.size = (int)size;
                if (r == 0)
                        r = asg_create(&c, &h, &g, &out);
        } else if (!strcmp(cmd, "lt-exists")) {
                r = ec2_launch_template_exists(&c, &h, a, &out);
                if (r >= 0)
                        printf("%d\n", r);
        } else if (!strcmp(cmd, "lt-delete"))
                r = ec2_delete_launch_template(&c, &h, a, &out);
        if (r < 0)
                fprintf(stderr, "asgctl %s: %s\n", cmd, out.msg[0] ? out.msg : strerror(-r));
        http_client_free(&h);
        aws_ctx_free(&c);
        return r >= 0 ? 0 : r == -MF_ENOTFOUND ? 3 : 1;
}
