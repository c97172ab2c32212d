/* SPDX-License-Identifier: Apache-2.0 */
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
#define ASG_MAX_SECURITY_GROUPS 16
#define ASG_MAX_PARAMS 128           /* parameters of one call */
#define ASG_PARAM_TEXT 96            /* a parameter name or number made by the builders */

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
        bool spot;                    /* InstanceMarketOptions spot: only for a group without a mixed policy (AWS
                                       * refuses a template that asks for spot in a MixedInstancesPolicy) */
        const char *run_id;
        size_t user_data_len;         /* 0: strlen(user_data); gzipped user-data has NUL bytes */
        const char *job;              /* the job's name: also tags mayfly:run and Name (as RunInstances); NULL: not */
        const char *placement_group;  /* Placement.GroupName (a cluster placement group); NULL: none */
        bool efa;                     /* the primary interface an EFA (NetworkInterface 1: DeviceIndex 0, InterfaceType
                                       * efa, the security groups on it rather than the instance; the group's subnets
                                       * decide the subnet) */
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
/* Pure: does the group need a MixedInstancesPolicy (more than one type, or subnets)? */
bool asg_is_mixed(const struct asg_group *g);
/* CreateAutoScalingGroup. A group of that name already there with this run's tag is 0 (a create whose answer was
 * lost and was sent again); one of another run is an error. */
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
        size_t n;                     /* members listed (the first ASG_MAX_MEMBERS) */
        char members[ASG_MAX_MEMBERS][32];   /* instance ids */
        char lifecycle[ASG_MAX_MEMBERS][40]; /* their LifecycleState: "Pending", "InService", "Terminating"... */
        char run_id[160];             /* the group's ASG_RUN_TAG, "" when it has none */
};
/* DescribeAutoScalingGroups for one name; a group that is not there is 0 with ret->exists false. */
int asg_describe(struct aws_ctx *c, struct http_client *h, const char *group, struct asg_info *ret,
                 struct aws_result *out);
/* One scaling activity of a group, as DescribeScalingActivities gives it (newest first): where a launch that
 * failed says why (capacity, quota, a bad template). */
#define ASG_MAX_ACTIVITIES 8
struct asg_activity {
        char status[40];              /* StatusCode: "Successful", "Failed", "InProgress", "Cancelled"... */
        char start[40];               /* StartTime, ISO 8601 */
        char description[256];        /* "Launching a new EC2 instance: i-…", "Launching a new EC2 instance.  Status…" */
        char message[512];            /* StatusMessage: why it failed, "" when none */
};
/* Pure: a DescribeScalingActivities answer, at most max activities (texts cut to fit, control characters made
 * spaces); the count into *n. */
int asg_parse_activities(const struct xml_node *root, struct asg_activity *acts, size_t max, size_t *n);
/* DescribeScalingActivities of the group, its newest max (at most ASG_MAX_ACTIVITIES). A group that is not there has
 * none (0, *n 0). */
int asg_activities(struct aws_ctx *c, struct http_client *h, const char *group, struct asg_activity *acts,
                   size_t max, size_t *n, struct aws_result *out);
/* TerminateInstanceInAutoScalingGroup: the instance ends; decrement: the group shrinks by one (no replacement).
 * An instance in no group is -MF_ENOTFOUND. */
int asg_terminate_instance(struct aws_ctx *c, struct http_client *h, const char *instance_id, bool decrement,
                           struct aws_result *out);
/* DetachInstances: the instance leaves the group (decrement: the group shrinks, no replacement is launched), so
 * that stopping it to keep its disk does not make the group replace it. */
int asg_detach_instance(struct aws_ctx *c, struct http_client *h, const char *group, const char *instance_id,
                        bool decrement, struct aws_result *out);

/* Pure: the form of one call (Action, Version, params); for the unit tests. */
int asg_form(const char *action, const struct kv *params, size_t n, struct buf *out);

/* The parameters of one call, built without allocating: names and numbers made here live in text[], other values
 * are the caller's strings (kept by pointer). The first error (-E2BIG: too many, or a name too long) sticks in r. */
struct asg_params {
        struct kv p[ASG_MAX_PARAMS];
        size_t n;
        char text[2 * ASG_MAX_PARAMS][ASG_PARAM_TEXT];
        size_t n_text;
        char vpc_zones[ASG_MAX_SUBNETS * 64];   /* VPCZoneIdentifier: the subnets, comma-separated */
        int r;
};
/* Appends name (a printf format) = value; a NULL value appends nothing. */
void asg_param(struct asg_params *a, const char *value, const char *name_fmt, ...)
        __attribute__((format(printf, 3, 4)));
void asg_param_int(struct asg_params *a, long value, const char *name_fmt, ...) __attribute__((format(printf, 3, 4)));
/* Pure: CreateAutoScalingGroup's parameters (region: for the default zone, "<region>a"). */
int asg_create_params(const struct asg_group *g, const char *region, struct asg_params *ret);
/* Pure: CreateLaunchTemplate's parameters, the user-data already base64-encoded; token: its ClientToken (the same
 * for the retries of one call, so that a create whose answer was lost does not make a second one). */
int ec2_launch_template_params(const struct asg_template *t, const char *user_data_b64, const char *token,
                               struct asg_params *ret);
/* Pure: a DescribeAutoScalingGroups answer, the group named `group` in it. */
int asg_parse_describe(const struct xml_node *root, const char *group, struct asg_info *ret);
/* $AWS_ENDPOINT_URL_AUTO_SCALING, else $AWS_ENDPOINT_URL, else https://autoscaling.<region>.amazonaws.com[.cn]. */
int asg_endpoint(struct aws_ctx *c, char *ep, size_t n, char *err, size_t errlen);
