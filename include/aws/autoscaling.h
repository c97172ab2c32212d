/* autoscaling.h — the EC2 Auto Scaling Query API (Version 2011-01-01, SigV4 service "autoscaling", endpoint
 * $AWS_ENDPOINT_URL_AUTO_SCALING, else $AWS_ENDPOINT_URL, else https://autoscaling.<region>.amazonaws.com), and the
 * EC2 launch templates a group launches from. The engine that relaunches a run's instances
 * (shared/aws/COORDINATION.md §1). Every call: 0, or -errno with out->msg one line. */
#pragma once
#include <stdbool.h>

#include "aws/aws.h"

#define ASG_API_VERSION "2011-01-01"
#define ASG_MAX_TYPES 8              /* instance types in a mixed-instances policy */
#define ASG_MAX_SUBNETS 8
#define ASG_MAX_MEMBERS 64
#define ASG_RUN_TAG "mayfly:run-id"   /* on the group, its template and (propagated) its instances */

/* A launch template for the run: its user-data (raw, base64-encoded here), instance profile, the IMDS settings
 * (IMDSv2 required, hop limit, instance tags in IMDS), InstanceInitiatedShutdownBehavior=terminate, spot market
 * options when spot, tagged with ASG_RUN_TAG. */
struct asg_template {
        const char *name;             /* "mayfly-<run id>" */
        const char *image_id;
        const char *instance_type;    /* the first type; a mixed policy overrides it per type */
        const char *user_data;
        const char *iam_instance_profile;  /* name or ARN, NULL: none */
        const char *key_name;         /* NULL: none */
        const char *const *security_groups; size_t n_security_groups;
        int imds_hop_limit;           /* 1 by default */
        bool spot;
        const char *run_id;
};
/* CreateLaunchTemplate; its id (lt-…) into id. */
int ec2_create_launch_template(struct aws_ctx *c, struct http_client *h, const struct asg_template *t, char *id,
                               size_t idlen, struct aws_result *out);
/* DeleteLaunchTemplate by name; a template that is not there (already deleted) is 0. */
int ec2_delete_launch_template(struct aws_ctx *c, struct http_client *h, const char *name, struct aws_result *out);
/* DescribeLaunchTemplates by name: 1 when it exists, 0 when not. */
int ec2_launch_template_exists(struct aws_ctx *c, struct http_client *h, const char *name, struct aws_result *out);

/* An Auto Scaling group of `size` (MinSize 0, MaxSize = DesiredCapacity = size) from the template, tagged with
 * ASG_RUN_TAG (propagated at launch); with more than one type or any subnet, a MixedInstancesPolicy: the types as
 * overrides, the subnets as VPCZoneIdentifier, spot with the price-capacity-optimized allocation strategy. */
struct asg_group {
        const char *name;             /* "mayfly-<run id>" */
        const char *launch_template;  /* its name */
        int size;
        const char *const *instance_types; size_t n_types;
        const char *const *subnets; size_t n_subnets;
        const char *availability_zone; /* without subnets: the group's one AZ (e.g. "us-east-1a"); NULL: region's a */
        bool spot;
        const char *run_id;
};
int asg_create(struct aws_ctx *c, struct http_client *h, const struct asg_group *g, struct aws_result *out);
/* SuspendProcesses (e.g. "AZRebalance", so that shrinking the group never terminates an instance elsewhere). */
int asg_suspend(struct aws_ctx *c, struct http_client *h, const char *group, const char *process,
                struct aws_result *out);
/* DeleteAutoScalingGroup ForceDelete=true (its instances are terminated); a group that is not there is 0. */
int asg_delete(struct aws_ctx *c, struct http_client *h, const char *group, struct aws_result *out);

struct asg_info {
        bool exists;
        bool deleting;                /* Status "Delete in progress" */
        int desired, min, max;
        size_t n;
        char members[ASG_MAX_MEMBERS][32];   /* instance ids */
};
/* DescribeAutoScalingGroups for one name. */
int asg_describe(struct aws_ctx *c, struct http_client *h, const char *group, struct asg_info *ret,
                 struct aws_result *out);
/* TerminateInstanceInAutoScalingGroup: the instance ends; decrement: the group shrinks by one (no replacement). */
int asg_terminate_instance(struct aws_ctx *c, struct http_client *h, const char *instance_id, bool decrement,
                           struct aws_result *out);
/* DetachInstances: the instance leaves the group (decrement: the group shrinks, no replacement is launched), so
 * that stopping it to keep its disk does not make the group replace it. */
int asg_detach_instance(struct aws_ctx *c, struct http_client *h, const char *group, const char *instance_id,
                        bool decrement, struct aws_result *out);

/* Pure: the form of one call (Action, Version, params); for the unit tests. */
int asg_form(const char *action, const struct kv *params, size_t n, struct buf *out);
