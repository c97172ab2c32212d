/* SPDX-License-Identifier: Apache-2.0 */
/* test_gangnet.c — a gang's network (pure parts): the placement group, security group and ingress parameters, the
 * launch template's Placement and EFA interface, and launch's check that every gang fits the instances launched. */
#include <cjson/cJSON.h>

#include "aws/ec2.h"
#include "aws/gangnet.h"
#include "cmd/preflight.h"
#include "exitcode.h"
#include "test.h"

static struct buf fb;

static char *form(const char *action, const struct asg_params *a) {
        buf_free(&fb);
        fb = BUF_INIT(1 << 20);
        return ec2_form(action, a->p, a->n, &fb) < 0 ? NULL : fb.data;
}

static void test_params(void) {
        struct asg_params a;
        T_EXPECT("pg: builds", gangnet_pg_params("mayfly-r1", "r1", "exp1", false, &a) == 0);
        T_EXPECT_STR("pg: form", form("CreatePlacementGroup", &a),
                     "Action=CreatePlacementGroup&Version=2016-11-15&GroupName=mayfly-r1&Strategy=cluster"
                     "&TagSpecification.1.ResourceType=placement-group&TagSpecification.1.Tag.1.Key=mayfly%3Arun-id"
                     "&TagSpecification.1.Tag.1.Value=r1&TagSpecification.1.Tag.2.Key=mayfly%3Arun"
                     "&TagSpecification.1.Tag.2.Value=exp1&TagSpecification.1.Tag.3.Key=Name"
                     "&TagSpecification.1.Tag.3.Value=mayfly-r1");
        T_EXPECT("pg: dry run, no job", gangnet_pg_params("mayfly-p", "p", NULL, true, &a) == 0);
        char *f = form("CreatePlacementGroup", &a);
        T_EXPECT("pg: DryRun first, Name tag second", f && strstr(f, "Version=2016-11-15&DryRun=true&GroupName=") &&
                         strstr(f, "Tag.2.Key=Name&") && !strstr(f, "mayfly%3Arun&"));
        T_EXPECT("pg: no name refused", gangnet_pg_params("", "r", NULL, false, &a) == -EINVAL);
        T_EXPECT("pg: no run id refused", gangnet_pg_params("n", NULL, NULL, false, &a) == -EINVAL);
        T_EXPECT("sg: builds", gangnet_sg_params("mayfly-r1", "vpc-1", "r1", "exp1", false, &a) == 0);
        f = form("CreateSecurityGroup", &a);
        T_EXPECT("sg: name, description, VPC, tagged",
                 f && strstr(f, "&GroupName=mayfly-r1&GroupDescription=mayfly%3A+all+traffic") &&
                         strstr(f, "&VpcId=vpc-1&TagSpecification.1.ResourceType=security-group&") &&
                         strstr(f, "Tag.1.Value=r1&"));
        T_EXPECT("sg: default VPC: no VpcId", gangnet_sg_params("n", NULL, "r", NULL, false, &a) == 0 &&
                                                       (f = form("CreateSecurityGroup", &a)) && !strstr(f, "VpcId"));
        T_EXPECT("ingress: builds", gangnet_ingress_params("sg-1", &a) == 0);
        T_EXPECT_STR("ingress: every protocol from its own members", form("AuthorizeSecurityGroupIngress", &a),
                     "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId=sg-1"
                     "&IpPermissions.1.IpProtocol=-1&IpPermissions.1.Groups.1.GroupId=sg-1");
        T_EXPECT("ingress: no group refused", gangnet_ingress_params(NULL, &a) == -EINVAL);
}

static void test_template(void) {
        const char *sgs[] = { "sg-user", "sg-gang" };
        struct asg_template t = { .name = "mayfly-r", .image_id = "ami-1", .instance_type = "p4d.24xlarge",
                                  .user_data = "x", .security_groups = sgs, .n_security_groups = 2, .run_id = "r",
                                  .placement_group = "mayfly-r" };
        struct asg_params a;
        T_EXPECT("lt: placement group builds", ec2_launch_template_params(&t, "eA==", "tok", &a) == 0);
        char *f = form("CreateLaunchTemplate", &a);
        T_EXPECT("lt: Placement.GroupName, groups on the instance",
                 f && strstr(f, "&LaunchTemplateData.Placement.GroupName=mayfly-r&") &&
                         strstr(f, "&LaunchTemplateData.SecurityGroupId.2=sg-gang&") && !strstr(f, "NetworkInterface"));
        t.efa = true;
        t.placement_group = NULL;
        T_EXPECT("lt: EFA builds", ec2_launch_template_params(&t, "eA==", "tok", &a) == 0);
        f = form("CreateLaunchTemplate", &a);
        T_EXPECT("lt: EFA: interface 1 at device 0, type efa, the groups on it, none on the instance",
                 f && strstr(f, "&LaunchTemplateData.NetworkInterface.1.SecurityGroupId.1=sg-user"
                                "&LaunchTemplateData.NetworkInterface.1.SecurityGroupId.2=sg-gang"
                                "&LaunchTemplateData.NetworkInterface.1.DeviceIndex=0"
                                "&LaunchTemplateData.NetworkInterface.1.InterfaceType=efa"
                                "&LaunchTemplateData.NetworkInterface.1.DeleteOnTermination=true&") &&
                         !strstr(f, "&LaunchTemplateData.SecurityGroupId") && !strstr(f, "Placement"));
}

static void test_gang_fits(void) {
        static const char job[] = "{\"experiments\":[{\"name\":\"prep\",\"command\":\"true\"},"
                                  "{\"name\":\"train\",\"command\":\"true\",\"nodes\":4}]}";
        cJSON *j = cJSON_Parse(job);
        char err[512] = "";
        T_EXPECT("gang: largest nodes", preflight_max_nodes(j) == 4);
        T_EXPECT("gang: 4 over --instances 4 fits", preflight_gang_fits(j, 4, err, sizeof err) == 0);
        T_EXPECT("gang: 4 over --instances 8 fits", preflight_gang_fits(j, 8, err, sizeof err) == 0);
        T_EXPECT("gang: 4 over --instances 2 refused", preflight_gang_fits(j, 2, err, sizeof err) == EXIT_USAGE);
        T_EXPECT_STR("gang: the refusal names the experiment and both numbers", err,
                     "experiment train ($.experiments[1]) needs 4 instances at once (\"nodes\": 4) and this launch "
                     "starts 2 (--instances 2): the gang could never form; launch it with --instances 4 or more");
        T_EXPECT("gang: without --instances, one instance", preflight_gang_fits(j, 0, err, sizeof err) == EXIT_USAGE &&
                                                                   strstr(err, "starts 1 (no --instances: one instance)"));
        cJSON *none = cJSON_Parse("{\"experiments\":[{\"name\":\"a\",\"command\":\"true\"}]}");
        T_EXPECT("gang: none: nodes 1, fits one instance",
                 preflight_max_nodes(none) == 1 && preflight_gang_fits(none, 0, err, sizeof err) == 0);
        T_EXPECT("gang: no experiments at all", preflight_max_nodes(NULL) == 1 &&
                                                        preflight_gang_fits(NULL, 0, err, sizeof err) == 0);
        cJSON_Delete(none);
        cJSON_Delete(j);
}

int main(void) {
        test_params();
        test_template();
        test_gang_fits();
        buf_free(&fb);
        return t_summary();
}
