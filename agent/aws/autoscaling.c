/* SPDX-License-Identifier: Apache-2.0 */
/* autoscaling.c — the EC2 Auto Scaling Query API: the group that relaunches a run's instances. The parameter lists
 * are built by pure functions (unit-tested); the calls go through query.c. */
#include "aws/autoscaling.h"

#include <stdarg.h>

#include "aws/query.h"

/* ---------- building parameters ---------- */

static const char *keep(struct asg_params *a, const char *fmt, va_list ap) {
        if (a->r < 0)
                return NULL;
        if (a->n_text >= ARRAY_SIZE(a->text)) {
                a->r = -E2BIG;
                return NULL;
        }
        char *t = a->text[a->n_text];
        int l = vsnprintf(t, sizeof a->text[0], fmt, ap);
        if (l < 0 || (size_t)l >= sizeof a->text[0]) {
                a->r = -E2BIG;
                return NULL;
        }
        a->n_text++;
        return t;
}

static void push(struct asg_params *a, const char *name, const char *value) {
        if (a->r < 0 || !name || !value)
                return;
        if (a->n >= ARRAY_SIZE(a->p)) {
                a->r = -E2BIG;
                return;
        }
        a->p[a->n++] = (struct kv){ name, value };
}

void asg_param(struct asg_params *a, const char *value, const char *name_fmt, ...) {
        if (!value)
                return;
        va_list ap;
        va_start(ap, name_fmt);
        const char *name = keep(a, name_fmt, ap);
        va_end(ap);
        push(a, name, value);
}

static const char *keepf(struct asg_params *a, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        const char *t = keep(a, fmt, ap);
        va_end(ap);
        return t;
}

void asg_param_int(struct asg_params *a, long value, const char *name_fmt, ...) {
        va_list ap;
        va_start(ap, name_fmt);
        const char *name = keep(a, name_fmt, ap);
        va_end(ap);
        push(a, name, keepf(a, "%ld", value));
}

int asg_form(const char *action, const struct kv *params, size_t n, struct buf *out) {
        return query_form(action, ASG_API_VERSION, params, n, out);
}

bool asg_is_mixed(const struct asg_group *g) { return g->n_types > 1 || g->n_subnets > 0; }

static bool good_name(const char *s) { return s && *s; }

int asg_create_params(const struct asg_group *g, const char *region, struct asg_params *ret) {
        struct asg_params *a = ret;
        *a = (struct asg_params){ 0 };
        if (!good_name(g->name) || !good_name(g->launch_template) || !good_name(g->run_id) || g->size < 1 ||
            g->size > ASG_MAX_MEMBERS || g->n_types > ASG_MAX_TYPES || g->n_subnets > ASG_MAX_SUBNETS ||
            (asg_is_mixed(g) && g->n_types < 1))
                return -EINVAL;
        for (size_t i = 0; i < g->n_types; i++)
                if (!good_name(g->instance_types[i]))
                        return -EINVAL;
        asg_param(a, g->name, "AutoScalingGroupName");
        asg_param_int(a, 0, "MinSize");
        asg_param_int(a, g->size, "MaxSize");
        asg_param_int(a, g->size, "DesiredCapacity");
        if (!asg_is_mixed(g)) {
                asg_param(a, g->launch_template, "LaunchTemplate.LaunchTemplateName");
                asg_param(a, "$Default", "LaunchTemplate.Version");
        } else {
                const char *lt = "MixedInstancesPolicy.LaunchTemplate";
                const char *dist = "MixedInstancesPolicy.InstancesDistribution";
                asg_param(a, g->launch_template, "%s.LaunchTemplateSpecification.LaunchTemplateName", lt);
                asg_param(a, "$Default", "%s.LaunchTemplateSpecification.Version", lt);
                for (size_t i = 0; i < g->n_types; i++)
                        asg_param(a, g->instance_types[i], "%s.Overrides.member.%zu.InstanceType", lt, i + 1);
                asg_param_int(a, 0, "%s.OnDemandBaseCapacity", dist);
                asg_param_int(a, g->spot ? 0 : 100, "%s.OnDemandPercentageAboveBaseCapacity", dist);
                if (g->spot)
                        asg_param(a, "price-capacity-optimized", "%s.SpotAllocationStrategy", dist);
        }
        if (g->n_subnets) {
                /* the subnets decide the zones */
                size_t l = 0;
                for (size_t i = 0; i < g->n_subnets; i++) {
                        if (!good_name(g->subnets[i]))
                                return -EINVAL;
                        int w = snprintf(a->vpc_zones + l, sizeof a->vpc_zones - l, "%s%s", i ? "," : "", g->subnets[i]);
                        if (w < 0 || (size_t)w >= sizeof a->vpc_zones - l)
                                return -E2BIG;
                        l += (size_t)w;
                }
                push(a, "VPCZoneIdentifier", a->vpc_zones);
        } else if (g->availability_zone)
                asg_param(a, g->availability_zone, "AvailabilityZones.member.1");
        else if (region && *region)
                push(a, "AvailabilityZones.member.1", keepf(a, "%sa", region));
        else
                return -EINVAL;
        asg_param(a, g->name, "Tags.member.1.ResourceId");
        asg_param(a, "auto-scaling-group", "Tags.member.1.ResourceType");
        asg_param(a, ASG_RUN_TAG, "Tags.member.1.Key");
        asg_param(a, g->run_id, "Tags.member.1.Value");
        asg_param(a, "true", "Tags.member.1.PropagateAtLaunch");
        return a->r;
}

/* ---------- reading answers ---------- */

static int parse_count(const char *s, int *ret) {
        long v;
        if (!s || parse_int(s, 0, 1000000, &v) < 0)
                return -MF_EPARSE;
        *ret = (int)v;
        return 0;
}

int asg_parse_describe(const struct xml_node *root, const char *group, struct asg_info *ret) {
        if (!root || strcmp(root->name, "DescribeAutoScalingGroupsResponse") != 0)
                return -MF_EPARSE;
        const struct xml_node *groups = xml_child(xml_child(root, "DescribeAutoScalingGroupsResult"), "AutoScalingGroups");
        struct asg_info info = { 0 };
        for (const struct xml_node *m = xml_child(groups, "member"); m; m = xml_next_named(m)) {
                const char *name = xml_text(m, "AutoScalingGroupName");
                if (!name || strcmp(name, group) != 0)
                        continue;
                info.exists = true;
                const char *st = xml_text(m, "Status");
                info.deleting = st && strcmp(st, "Delete in progress") == 0;
                if (parse_count(xml_text(m, "DesiredCapacity"), &info.desired) < 0 ||
                    parse_count(xml_text(m, "MinSize"), &info.min) < 0 ||
                    parse_count(xml_text(m, "MaxSize"), &info.max) < 0)
                        return -MF_EPARSE;
                for (const struct xml_node *i = xml_child(xml_child(m, "Instances"), "member");
                     i && info.n < ASG_MAX_MEMBERS; i = xml_next_named(i)) {
                        const char *id = xml_text(i, "InstanceId"), *ls = xml_text(i, "LifecycleState");
                        if (!id || !*id || strlen(id) >= sizeof info.members[0])
                                return -MF_EPARSE;
                        str_copy(info.members[info.n], sizeof info.members[0], id);
                        str_copy(info.lifecycle[info.n], sizeof info.lifecycle[0], ls ? ls : "");
                        info.n++;
                }
                for (const struct xml_node *t = xml_child(xml_child(m, "Tags"), "member"); t; t = xml_next_named(t)) {
                        const char *k = xml_text(t, "Key"), *v = xml_text(t, "Value");
                        if (k && v && strcmp(k, ASG_RUN_TAG) == 0 && strlen(v) < sizeof info.run_id)
                                str_copy(info.run_id, sizeof info.run_id, v);
                }
                break;
        }
        *ret = info;
        return 0;
}

/* An activity's text as a person will read it on a terminal: cut to fit, no control characters. */
static void copy_text(char *dst, size_t n, const char *src) {
        str_copy(dst, n, src ? src : "");
        for (char *p = dst; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
}

int asg_parse_activities(const struct xml_node *root, struct asg_activity *acts, size_t max, size_t *n) {
        *n = 0;
        if (!root || strcmp(root->name, "DescribeScalingActivitiesResponse") != 0)
                return -MF_EPARSE;
        const struct xml_node *list = xml_child(xml_child(root, "DescribeScalingActivitiesResult"), "Activities");
        for (const struct xml_node *m = xml_child(list, "member"); m && *n < max; m = xml_next_named(m)) {
                const char *st = xml_text(m, "StatusCode");
                if (!st)
                        return -MF_EPARSE;
                struct asg_activity *a = &acts[(*n)++];
                copy_text(a->status, sizeof a->status, st);
                copy_text(a->start, sizeof a->start, xml_text(m, "StartTime"));
                copy_text(a->description, sizeof a->description, xml_text(m, "Description"));
                copy_text(a->message, sizeof a->message, xml_text(m, "StatusMessage"));
        }
        return 0;
}

/* ---------- the calls ---------- */

int asg_endpoint(struct aws_ctx *c, char *ep, size_t n, char *err, size_t errlen) {
        int r = aws_region(c, err, errlen);
        if (r < 0)
                return r;
        char host[128];
        snprintf(host, sizeof host, "autoscaling.%s.amazonaws.com%s", c->region,
                 str_has_prefix(c->region, "cn-") ? ".cn" : "");
        aws_endpoint_for("AUTO_SCALING", host, ep, n);
        return 0;
}

static int call(struct aws_ctx *c, struct http_client *h, const char *action, const struct asg_params *a,
                struct xml_node **ret, struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        if (a->r < 0) {
                errf(out->msg, sizeof out->msg, "%s: too many parameters or a name too long", action);
                return a->r;
        }
        char ep[320];
        int r = asg_endpoint(c, ep, sizeof ep, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        struct query_service s = { .service = "autoscaling", .version = ASG_API_VERSION, .endpoint = ep };
        return query_call(c, h, &s, action, a->p, a->n, ret, out);
}

/* The Query API says "not there" as a 400 ValidationError with words, not a code of its own. */
static bool says_not_found(const struct aws_result *out) {
        return strcmp(out->err.code, "ValidationError") == 0 &&
               (strstr(out->err.message, "not found") || strstr(out->err.message, "No managed instance") ||
                strstr(out->err.message, "is not part of"));
}

int asg_describe(struct aws_ctx *c, struct http_client *h, const char *group, struct asg_info *ret,
                 struct aws_result *out) {
        struct asg_params a = { 0 };
        asg_param(&a, group, "AutoScalingGroupNames.member.1");
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = call(c, h, "DescribeAutoScalingGroups", &a, &x, out);
        if (r < 0)
                return r;
        struct asg_info info;
        if (asg_parse_describe(x, group, &info) < 0) {
                errf(out->msg, sizeof out->msg, "DescribeAutoScalingGroups: unreadable answer about %s", group);
                return -MF_EPARSE;
        }
        *ret = info;
        return 0;
}

int asg_activities(struct aws_ctx *c, struct http_client *h, const char *group, struct asg_activity *acts,
                   size_t max, size_t *n, struct aws_result *out) {
        *n = 0;
        max = max < ASG_MAX_ACTIVITIES ? max : ASG_MAX_ACTIVITIES;
        struct asg_params a = { 0 };
        asg_param(&a, group, "AutoScalingGroupName");
        asg_param_int(&a, (long)max, "MaxRecords");
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = call(c, h, "DescribeScalingActivities", &a, &x, out);
        if (r < 0)
                return says_not_found(out) ? 0 : r;
        if (asg_parse_activities(x, acts, max, n) < 0) {
                errf(out->msg, sizeof out->msg, "DescribeScalingActivities: unreadable answer about %s", group);
                return -MF_EPARSE;
        }
        return 0;
}

int asg_create(struct aws_ctx *c, struct http_client *h, const struct asg_group *g, struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        int r = aws_region(c, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        struct asg_params a;
        r = asg_create_params(g, c->region, &a);
        if (r < 0) {
                errf(out->msg, sizeof out->msg, "CreateAutoScalingGroup %s: %s", g->name ? g->name : "?",
                     r == -E2BIG ? "too many parameters or a name too long"
                                 : "needs a name, a launch template, a run id, 1..64 instances and an instance type");
                return r;
        }
        r = call(c, h, "CreateAutoScalingGroup", &a, NULL, out);
        if (r < 0 && strcmp(out->err.code, "AlreadyExists") == 0) {
                struct aws_result dres;
                struct asg_info info;
                if (asg_describe(c, h, g->name, &info, &dres) == 0 && info.exists && !info.deleting &&
                    strcmp(info.run_id, g->run_id) == 0) {
                        *out = (struct aws_result){ 0 };
                        return 0;
                }
        }
        return r;
}

int asg_suspend(struct aws_ctx *c, struct http_client *h, const char *group, const char *process,
                struct aws_result *out) {
        struct asg_params a = { 0 };
        asg_param(&a, group, "AutoScalingGroupName");
        asg_param(&a, process, "ScalingProcesses.member.1");
        return call(c, h, "SuspendProcesses", &a, NULL, out);
}

int asg_delete(struct aws_ctx *c, struct http_client *h, const char *group, struct aws_result *out) {
        struct asg_params a = { 0 };
        asg_param(&a, group, "AutoScalingGroupName");
        asg_param(&a, "true", "ForceDelete");
        int r = call(c, h, "DeleteAutoScalingGroup", &a, NULL, out);
        if (r < 0 && says_not_found(out))
                r = 0;
        else if (r < 0 && (strcmp(out->err.code, "ScalingActivityInProgress") == 0 ||
                           strcmp(out->err.code, "ResourceInUse") == 0)) {
                /* a delete already under way (ours, sent again, or another instance's) */
                struct aws_result dres;
                struct asg_info info;
                if (asg_describe(c, h, group, &info, &dres) == 0 && (!info.exists || info.deleting))
                        r = 0;
        }
        if (r == 0)
                *out = (struct aws_result){ 0 };
        return r;
}

int asg_terminate_instance(struct aws_ctx *c, struct http_client *h, const char *instance_id, bool decrement,
                           struct aws_result *out) {
        struct asg_params a = { 0 };
        asg_param(&a, instance_id, "InstanceId");
        asg_param(&a, decrement ? "true" : "false", "ShouldDecrementDesiredCapacity");
        int r = call(c, h, "TerminateInstanceInAutoScalingGroup", &a, NULL, out);
        return r < 0 && says_not_found(out) ? -MF_ENOTFOUND : r;
}

int asg_detach_instance(struct aws_ctx *c, struct http_client *h, const char *group, const char *instance_id,
                        bool decrement, struct aws_result *out) {
        struct asg_params a = { 0 };
        asg_param(&a, group, "AutoScalingGroupName");
        asg_param(&a, instance_id, "InstanceIds.member.1");
        asg_param(&a, decrement ? "true" : "false", "ShouldDecrementDesiredCapacity");
        int r = call(c, h, "DetachInstances", &a, NULL, out);
        return r < 0 && says_not_found(out) ? -MF_ENOTFOUND : r;
}
