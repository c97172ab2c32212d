/* SPDX-License-Identifier: Apache-2.0 */
/* test_autoscaling.c — the Auto Scaling and launch-template parameter builders and the Describe parser (pure). */
#include "aws/autoscaling.h"
#include "aws/ec2.h"
#include "test.h"

static struct buf fb;   /* the last form built; each is read before the next */

static char *form(const char *action, const struct asg_params *a) {
        buf_free(&fb);
        fb = BUF_INIT(1 << 20);
        return asg_form(action, a->p, a->n, &fb) < 0 ? NULL : fb.data;
}

static char *ec2_form_of(const struct asg_params *a) {
        buf_free(&fb);
        fb = BUF_INIT(1 << 20);
        return ec2_form("CreateLaunchTemplate", a->p, a->n, &fb) < 0 ? NULL : fb.data;
}

static void test_group_plain(void) {
        const char *types[] = { "p3.2xlarge" };
        struct asg_group g = { .name = "mayfly-exp1-20261201T102800Z-a1b2c3", .launch_template = "mayfly-exp1-20261201T102800Z-a1b2c3",
                               .size = 1, .instance_types = types, .n_types = 1, .spot = true,
                               .run_id = "exp1-20261201T102800Z-a1b2c3" };
        struct asg_params a;
        T_EXPECT("asg: one type, no subnet: no mixed policy", !asg_is_mixed(&g));
        T_EXPECT("asg: plain group builds", asg_create_params(&g, "us-east-1", &a) == 0);
        T_EXPECT_STR("asg: plain group form", form("CreateAutoScalingGroup", &a),
                     "Action=CreateAutoScalingGroup&Version=2011-01-01"
                     "&AutoScalingGroupName=mayfly-exp1-20261201T102800Z-a1b2c3&MinSize=0&MaxSize=1&DesiredCapacity=1"
                     "&LaunchTemplate.LaunchTemplateName=mayfly-exp1-20261201T102800Z-a1b2c3"
                     "&LaunchTemplate.Version=%24Default&AvailabilityZones.member.1=us-east-1a"
                     "&Tags.member.1.ResourceId=mayfly-exp1-20261201T102800Z-a1b2c3"
                     "&Tags.member.1.ResourceType=auto-scaling-group&Tags.member.1.Key=mayfly%3Arun-id"
                     "&Tags.member.1.Value=exp1-20261201T102800Z-a1b2c3&Tags.member.1.PropagateAtLaunch=true");
        g.availability_zone = "eu-west-1c";
        g.size = 4;
        T_EXPECT("asg: plain group in a given zone builds", asg_create_params(&g, "eu-west-1", &a) == 0);
        char *f = form("CreateAutoScalingGroup", &a);
        T_EXPECT("asg: the given zone, Max = Desired = size",
                 f && strstr(f, "&AvailabilityZones.member.1=eu-west-1c&") && strstr(f, "&MaxSize=4&DesiredCapacity=4&") &&
                         !strstr(f, "eu-west-1a"));
        g.availability_zone = NULL;
        T_EXPECT("asg: no zone and no region is refused", asg_create_params(&g, NULL, &a) == -EINVAL);
}

static void test_group_mixed_spot(void) {
        const char *types[] = { "g5.xlarge", "g4dn.xlarge" };
        const char *subnets[] = { "subnet-0a", "subnet-0b" };
        struct asg_group g = { .name = "mayfly-r", .launch_template = "mayfly-r", .size = 4, .instance_types = types,
                               .n_types = 2, .subnets = subnets, .n_subnets = 2, .spot = true, .run_id = "r" };
        struct asg_params a;
        T_EXPECT("asg: two types: mixed policy", asg_is_mixed(&g));
        T_EXPECT("asg: mixed spot group builds", asg_create_params(&g, "us-east-1", &a) == 0);
        T_EXPECT_STR("asg: mixed spot group form", form("CreateAutoScalingGroup", &a),
                     "Action=CreateAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=mayfly-r&MinSize=0"
                     "&MaxSize=4&DesiredCapacity=4"
                     "&MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.LaunchTemplateName=mayfly-r"
                     "&MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.Version=%24Default"
                     "&MixedInstancesPolicy.LaunchTemplate.Overrides.member.1.InstanceType=g5.xlarge"
                     "&MixedInstancesPolicy.LaunchTemplate.Overrides.member.2.InstanceType=g4dn.xlarge"
                     "&MixedInstancesPolicy.InstancesDistribution.OnDemandBaseCapacity=0"
                     "&MixedInstancesPolicy.InstancesDistribution.OnDemandPercentageAboveBaseCapacity=0"
                     "&MixedInstancesPolicy.InstancesDistribution.SpotAllocationStrategy=price-capacity-optimized"
                     "&VPCZoneIdentifier=subnet-0a%2Csubnet-0b"
                     "&Tags.member.1.ResourceId=mayfly-r&Tags.member.1.ResourceType=auto-scaling-group"
                     "&Tags.member.1.Key=mayfly%3Arun-id&Tags.member.1.Value=r&Tags.member.1.PropagateAtLaunch=true");
        /* on demand over two types in one zone: all on demand, no spot strategy, the zone named */
        g.spot = false;
        g.n_subnets = 0;
        g.availability_zone = "us-east-1b";
        T_EXPECT("asg: mixed on-demand group builds", asg_create_params(&g, "us-east-1", &a) == 0);
        char *f = form("CreateAutoScalingGroup", &a);
        T_EXPECT("asg: on demand: 100% above base, no spot strategy, the zone",
                 f && strstr(f, "OnDemandPercentageAboveBaseCapacity=100&") && !strstr(f, "SpotAllocationStrategy") &&
                         strstr(f, "&AvailabilityZones.member.1=us-east-1b&") && !strstr(f, "VPCZoneIdentifier"));
        /* one type and a subnet: still a mixed policy (one override), the subnet as the zone */
        g.n_types = 1;
        g.n_subnets = 1;
        g.spot = true;
        T_EXPECT("asg: one type and a subnet: mixed policy", asg_is_mixed(&g));
        T_EXPECT("asg: one type and a subnet builds", asg_create_params(&g, "us-east-1", &a) == 0);
        f = form("CreateAutoScalingGroup", &a);
        T_EXPECT("asg: one override, the subnet, no AvailabilityZones",
                 f && strstr(f, "Overrides.member.1.InstanceType=g5.xlarge&") && !strstr(f, "Overrides.member.2") &&
                         strstr(f, "&VPCZoneIdentifier=subnet-0a&") && !strstr(f, "AvailabilityZones"));
}

static void test_group_refused(void) {
        const char *types[ASG_MAX_TYPES + 1] = { "a", "b", "c", "d", "e", "f", "g", "h", "i" };
        char longs[ASG_MAX_SUBNETS][80];
        const char *subnets[ASG_MAX_SUBNETS + 1];
        for (int i = 0; i < ASG_MAX_SUBNETS; i++) {
                snprintf(longs[i], sizeof longs[i], "subnet-%072d", i);
                subnets[i] = longs[i];
        }
        subnets[ASG_MAX_SUBNETS] = "subnet-x";
        struct asg_group ok = { .name = "g", .launch_template = "t", .size = 1, .instance_types = types, .n_types = 1,
                                .run_id = "r" };
        struct asg_params a;
        struct { const char *what; struct asg_group g; int want; } cases[] = {
                { "size 0", ok, -EINVAL },
                { "size 65", ok, -EINVAL },
                { "9 types", ok, -EINVAL },
                { "a subnet and no type", ok, -EINVAL },
                { "9 subnets", ok, -EINVAL },
                { "no run id", ok, -EINVAL },
                { "no launch template", ok, -EINVAL },
                { "8 subnets of 79 characters", ok, -E2BIG },
                { "64 instances, 8 types, 8 subnets", ok, 0 },
        };
        cases[0].g.size = 0;
        cases[1].g.size = ASG_MAX_MEMBERS + 1;
        cases[2].g.n_types = ASG_MAX_TYPES + 1;
        cases[3].g.n_types = 0, cases[3].g.subnets = subnets + ASG_MAX_SUBNETS, cases[3].g.n_subnets = 1;
        cases[4].g.subnets = subnets, cases[4].g.n_subnets = ASG_MAX_SUBNETS + 1;
        cases[5].g.run_id = NULL;
        cases[6].g.launch_template = "";
        cases[7].g.subnets = subnets, cases[7].g.n_subnets = ASG_MAX_SUBNETS;
        const char *short_subnets[ASG_MAX_SUBNETS] = { "subnet-1", "subnet-2", "subnet-3", "subnet-4",
                                                       "subnet-5", "subnet-6", "subnet-7", "subnet-8" };
        cases[8].g.size = ASG_MAX_MEMBERS, cases[8].g.n_types = ASG_MAX_TYPES, cases[8].g.subnets = short_subnets,
        cases[8].g.n_subnets = ASG_MAX_SUBNETS, cases[8].g.spot = true;
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char name[128];
                snprintf(name, sizeof name, "asg: %s -> %d", cases[i].what, cases[i].want);
                int r = asg_create_params(&cases[i].g, "us-east-1", &a);
                t_result(name, r == cases[i].want, "got %d", r);
        }
}

static void test_launch_template(void) {
        const char *sgs[] = { "sg-1", "sg-2" };
        struct asg_template t = { .name = "mayfly-r", .image_id = "ami-1", .instance_type = "p3.2xlarge",
                                  .user_data = "#cloud-config\n", .iam_instance_profile = "arn:aws:iam::1:instance-profile/p",
                                  .key_name = "k", .security_groups = sgs, .n_security_groups = 2, .imds_hop_limit = 2,
                                  .spot = true, .run_id = "r", .job = "exp1" };
        struct asg_params a;
        T_EXPECT("lt: spot template builds", ec2_launch_template_params(&t, "I2Nsb3Vk", "tok", &a) == 0);
        T_EXPECT_STR("lt: spot template form", ec2_form_of(&a),
                     "Action=CreateLaunchTemplate&Version=2016-11-15&ClientToken=tok&LaunchTemplateName=mayfly-r"
                     "&LaunchTemplateData.ImageId=ami-1&LaunchTemplateData.InstanceType=p3.2xlarge"
                     "&LaunchTemplateData.UserData=I2Nsb3Vk"
                     "&LaunchTemplateData.IamInstanceProfile.Arn=arn%3Aaws%3Aiam%3A%3A1%3Ainstance-profile%2Fp"
                     "&LaunchTemplateData.KeyName=k&LaunchTemplateData.SecurityGroupId.1=sg-1"
                     "&LaunchTemplateData.SecurityGroupId.2=sg-2"
                     "&LaunchTemplateData.InstanceInitiatedShutdownBehavior=terminate"
                     "&LaunchTemplateData.MetadataOptions.HttpTokens=required"
                     "&LaunchTemplateData.MetadataOptions.HttpEndpoint=enabled"
                     "&LaunchTemplateData.MetadataOptions.HttpPutResponseHopLimit=2"
                     "&LaunchTemplateData.MetadataOptions.InstanceMetadataTags=enabled"
                     "&LaunchTemplateData.InstanceMarketOptions.MarketType=spot"
                     "&LaunchTemplateData.InstanceMarketOptions.SpotOptions.SpotInstanceType=one-time"
                     "&LaunchTemplateData.InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior=terminate"
                     "&LaunchTemplateData.TagSpecification.1.ResourceType=instance"
                     "&LaunchTemplateData.TagSpecification.1.Tag.1.Key=mayfly%3Arun-id"
                     "&LaunchTemplateData.TagSpecification.1.Tag.1.Value=r"
                     "&LaunchTemplateData.TagSpecification.1.Tag.2.Key=mayfly%3Arun"
                     "&LaunchTemplateData.TagSpecification.1.Tag.2.Value=exp1"
                     "&LaunchTemplateData.TagSpecification.1.Tag.3.Key=Name"
                     "&LaunchTemplateData.TagSpecification.1.Tag.3.Value=exp1"
                     "&TagSpecification.1.ResourceType=launch-template&TagSpecification.1.Tag.1.Key=mayfly%3Arun-id"
                     "&TagSpecification.1.Tag.1.Value=r&TagSpecification.1.Tag.2.Key=mayfly%3Arun"
                     "&TagSpecification.1.Tag.2.Value=exp1&TagSpecification.1.Tag.3.Key=Name"
                     "&TagSpecification.1.Tag.3.Value=exp1");
        struct asg_template od = { .name = "mayfly-r", .image_id = "ami-1", .instance_type = "g5.xlarge",
                                   .user_data = "x", .iam_instance_profile = "prof", .run_id = "r" };
        T_EXPECT("lt: on-demand template builds", ec2_launch_template_params(&od, "eA==", "tok", &a) == 0);
        char *f = ec2_form_of(&a);
        T_EXPECT("lt: on demand: no market options, profile by name, hop limit 1, no key, no groups",
                 f && !strstr(f, "InstanceMarketOptions") && strstr(f, "&LaunchTemplateData.IamInstanceProfile.Name=prof&") &&
                         strstr(f, "HttpPutResponseHopLimit=1&") && !strstr(f, "KeyName") &&
                         !strstr(f, "SecurityGroupId") && !strstr(f, "Tag.2.") &&
                         strstr(f, "InstanceInitiatedShutdownBehavior=terminate&") &&
                         strstr(f, "InstanceMetadataTags=enabled&"));
        const char *many[ASG_MAX_SECURITY_GROUPS + 1] = { 0 };
        od.security_groups = many;
        od.n_security_groups = ASG_MAX_SECURITY_GROUPS + 1;
        T_EXPECT("lt: 17 security groups refused", ec2_launch_template_params(&od, "eA==", "tok", &a) == -EINVAL);
        od.n_security_groups = 0;
        od.image_id = NULL;
        T_EXPECT("lt: no image refused", ec2_launch_template_params(&od, "eA==", "tok", &a) == -EINVAL);
}

static void test_simple_forms(void) {
        struct asg_params a = { 0 };
        asg_param(&a, "mayfly-r", "AutoScalingGroupName");
        asg_param(&a, "AZRebalance", "ScalingProcesses.member.%d", 1);
        asg_param(&a, NULL, "Skipped");
        asg_param_int(&a, -3, "N");
        T_EXPECT_STR("asg: SuspendProcesses form", form("SuspendProcesses", &a),
                     "Action=SuspendProcesses&Version=2011-01-01&AutoScalingGroupName=mayfly-r"
                     "&ScalingProcesses.member.1=AZRebalance&N=-3");
        struct asg_params full = { 0 };
        for (int i = 0; i < ASG_MAX_PARAMS + 1; i++)
                asg_param(&full, "v", "P%d", i);
        T_EXPECT("asg: one parameter too many sticks as -E2BIG", full.r == -E2BIG && full.n == ASG_MAX_PARAMS);
        struct asg_params longname = { 0 };
        asg_param(&longname, "v", "%0100d", 1);
        T_EXPECT("asg: a name too long is -E2BIG, not a cut name", longname.r == -E2BIG && longname.n == 0);
}

static const char DESCRIBE[] =
        "<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">"
        "<DescribeAutoScalingGroupsResult><AutoScalingGroups>"
        "<member><AutoScalingGroupName>other</AutoScalingGroupName><MinSize>0</MinSize><MaxSize>9</MaxSize>"
        "<DesiredCapacity>9</DesiredCapacity></member>"
        "<member><AutoScalingGroupName>mayfly-r</AutoScalingGroupName>"
        "<Instances><member><InstanceId>i-0aaa</InstanceId><LifecycleState>InService</LifecycleState></member>"
        "<member><InstanceId>i-0bbb</InstanceId><LifecycleState>Terminating</LifecycleState></member></Instances>"
        "<MinSize>0</MinSize><MaxSize>2</MaxSize><DesiredCapacity>1</DesiredCapacity>"
        "<Status>Delete in progress</Status>"
        "<Tags><member><Key>Name</Key><Value>x</Value></member>"
        "<member><Key>mayfly:run-id</Key><Value>r</Value><PropagateAtLaunch>true</PropagateAtLaunch></member></Tags>"
        "</member></AutoScalingGroups></DescribeAutoScalingGroupsResult>"
        "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>";

static int parse(const char *xml, const char *group, struct asg_info *ret) {
        struct xml_node *x = NULL;
        int r = xml_parse(xml, strlen(xml), &x);
        if (r == 0)
                r = asg_parse_describe(x, group, ret);
        xml_free(x);
        return r;
}

static void test_describe(void) {
        struct asg_info i;
        int r = parse(DESCRIBE, "mayfly-r", &i);
        T_EXPECT("describe: the named group among others",
                 r == 0 && i.exists && i.deleting && i.desired == 1 && i.min == 0 && i.max == 2 && i.n == 2 &&
                         !strcmp(i.members[0], "i-0aaa") && !strcmp(i.lifecycle[1], "Terminating") &&
                         !strcmp(i.run_id, "r"));
        r = parse(DESCRIBE, "gone", &i);
        T_EXPECT("describe: a group not in the answer does not exist", r == 0 && !i.exists && i.n == 0);
        r = parse("<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult><AutoScalingGroups/>"
                  "</DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>", "g", &i);
        T_EXPECT("describe: an empty list", r == 0 && !i.exists);
        T_EXPECT("describe: another answer is refused",
                 parse("<ErrorResponse><Error><Code>x</Code></Error></ErrorResponse>", "g", &i) == -MF_EPARSE);
        T_EXPECT("describe: a count that is no number is refused",
                 parse("<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult><AutoScalingGroups>"
                       "<member><AutoScalingGroupName>g</AutoScalingGroupName><MinSize>0</MinSize><MaxSize>x</MaxSize>"
                       "<DesiredCapacity>1</DesiredCapacity></member></AutoScalingGroups>"
                       "</DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>", "g", &i) == -MF_EPARSE);
        struct buf b = BUF_INIT(1 << 20);
        buf_adds(&b, "<DescribeAutoScalingGroupsResponse><DescribeAutoScalingGroupsResult><AutoScalingGroups><member>"
                     "<AutoScalingGroupName>g</AutoScalingGroupName><MinSize>0</MinSize><MaxSize>70</MaxSize>"
                     "<DesiredCapacity>70</DesiredCapacity><Instances>");
        for (int k = 0; k < 70; k++)
                buf_printf(&b, "<member><InstanceId>i-%04d</InstanceId></member>", k);
        buf_adds(&b, "</Instances></member></AutoScalingGroups></DescribeAutoScalingGroupsResult>"
                     "</DescribeAutoScalingGroupsResponse>");
        r = parse(b.data, "g", &i);
        T_EXPECT("describe: 70 members: the first 64 kept", r == 0 && i.n == ASG_MAX_MEMBERS &&
                                                                    !strcmp(i.members[63], "i-0063") && !i.run_id[0]);
        buf_free(&b);
}

/* DescribeScalingActivities as EC2 Auto Scaling answers it (the AWS CLI reference's example, and a launch that
 * failed for capacity with the message EC2 gives). */
#define ACTIVITIES                                                                                                 \
        "<DescribeScalingActivitiesResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">"             \
        "<DescribeScalingActivitiesResult><Activities>"                                                             \
        "<member><ActivityId>a1</ActivityId><AutoScalingGroupName>mayfly-r</AutoScalingGroupName>"                  \
        "<Description>Launching a new EC2 instance.  Status Reason: We currently do not have sufficient p3.2xlarge " \
        "capacity in the Availability Zone you requested (us-east-1a).\nLaunching EC2 instance failed.</Description>" \
        "<Cause>At 2026-12-07T10:00:00Z an instance was started in response to a difference between desired and "    \
        "actual capacity, increasing the capacity from 0 to 1.</Cause><StartTime>2026-12-07T10:00:05.100Z</StartTime>" \
        "<EndTime>2026-12-07T10:00:05Z</EndTime><StatusCode>Failed</StatusCode><StatusMessage>We currently do not "   \
        "have sufficient p3.2xlarge capacity in the Availability Zone you requested (us-east-1a).</StatusMessage>"   \
        "<Progress>100</Progress></member>"                                                                         \
        "<member><ActivityId>a0</ActivityId><AutoScalingGroupName>mayfly-r</AutoScalingGroupName>"                  \
        "<Description>Launching a new EC2 instance: i-0d44425630326060f</Description><Cause>c</Cause>"              \
        "<StartTime>2026-12-07T09:36:09.766Z</StartTime><StatusCode>Successful</StatusCode><Progress>100</Progress>" \
        "</member></Activities></DescribeScalingActivitiesResult></DescribeScalingActivitiesResponse>"

static int parse_acts(const char *xml, struct asg_activity *a, size_t max, size_t *n) {
        struct xml_node *x = NULL;
        int r = xml_parse(xml, strlen(xml), &x);
        if (r == 0)
                r = asg_parse_activities(x, a, max, n);
        xml_free(x);
        return r;
}

static void test_activities(void) {
        struct asg_activity a[ASG_MAX_ACTIVITIES];
        size_t n = 9;
        int r = parse_acts(ACTIVITIES, a, ARRAY_SIZE(a), &n);
        T_EXPECT("activities: both, newest first", r == 0 && n == 2 && !strcmp(a[0].status, "Failed") &&
                                                           !strcmp(a[1].status, "Successful") &&
                                                           !strcmp(a[0].start, "2026-12-07T10:00:05.100Z"));
        T_EXPECT("activities: why the launch failed",
                 n == 2 && str_has_prefix(a[0].message, "We currently do not have sufficient p3.2xlarge capacity") &&
                         !strcmp(a[1].message, "") && !strcmp(a[1].description,
                                                               "Launching a new EC2 instance: i-0d44425630326060f"));
        T_EXPECT("activities: no control character reaches the terminal",
                 n == 2 && !strchr(a[0].description, '\n') && strstr(a[0].description, "). Launching EC2"));
        r = parse_acts(ACTIVITIES, a, 1, &n);
        T_EXPECT("activities: at most max", r == 0 && n == 1 && !strcmp(a[0].status, "Failed"));
        r = parse_acts("<DescribeScalingActivitiesResponse><DescribeScalingActivitiesResult><Activities/>"
                       "</DescribeScalingActivitiesResult></DescribeScalingActivitiesResponse>", a, 8, &n);
        T_EXPECT("activities: none", r == 0 && n == 0);
        T_EXPECT("activities: another answer is refused",
                 parse_acts("<DescribeAutoScalingGroupsResponse/>", a, 8, &n) == -MF_EPARSE);
        T_EXPECT("activities: one without a status code is refused",
                 parse_acts("<DescribeScalingActivitiesResponse><DescribeScalingActivitiesResult><Activities><member>"
                            "<Description>d</Description></member></Activities></DescribeScalingActivitiesResult>"
                            "</DescribeScalingActivitiesResponse>", a, 8, &n) == -MF_EPARSE);
        struct buf b = BUF_INIT(1 << 20);
        buf_adds(&b, "<DescribeScalingActivitiesResponse><DescribeScalingActivitiesResult><Activities><member>"
                     "<StatusCode>Failed</StatusCode><StatusMessage>");
        for (int i = 0; i < 2000; i++)
                buf_adds(&b, "x");
        buf_adds(&b, "</StatusMessage></member></Activities></DescribeScalingActivitiesResult>"
                     "</DescribeScalingActivitiesResponse>");
        r = b.data ? parse_acts(b.data, a, 8, &n) : -1;
        T_EXPECT("activities: a long message is cut to fit", r == 0 && n == 1 && strlen(a[0].message) == 511);
        buf_free(&b);
}

int main(int argc, char **argv) {
        test_group_plain();
        test_group_mixed_spot();
        test_group_refused();
        test_launch_template();
        test_simple_forms();
        test_describe();
        test_activities();
        buf_free(&fb);
        return t_summary();
}
