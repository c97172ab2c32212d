/* SPDX-License-Identifier: Apache-2.0 */
/* ec2.c — TerminateInstances, StopInstances, DescribeInstances, and the launch templates of Auto Scaling groups
 * (declared in autoscaling.h) over the Query protocol. */
#include "aws/ec2.h"

#include <sys/random.h>

#include "aws/autoscaling.h"
#include "aws/query.h"
#include "crypto.h"

int ec2_form(const char *action, const struct kv *params, size_t n, struct buf *out) {
        return query_form(action, EC2_API_VERSION, params, n, out);
}

void ec2_endpoint(struct aws_ctx *c, char *ep, size_t n) {
        if (c->ec2_endpoint[0])
                snprintf(ep, n, "%s", c->ec2_endpoint);
        else
                snprintf(ep, n, "https://ec2.%s.amazonaws.com", c->region);
}

int ec2_call(struct aws_ctx *c, struct http_client *h, const char *action, const struct kv *params, size_t n,
             struct xml_node **ret, struct aws_result *out) {
        int r = aws_region(c, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        _cleanup_(buf_freep) struct buf body = BUF_INIT(1 << 20);
        r = ec2_form(action, params, n, &body);
        if (r < 0)
                return r;
        char ep[320];
        ec2_endpoint(c, ep, sizeof ep);
        struct kv hdr[] = { { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" } };
        struct aws_req q = { .op = action, .method = "POST", .service = "ec2", .endpoint = ep, .path = "/",
                             .headers = hdr, .n_headers = 1, .body = body.data, .body_len = body.len, .body_fd = -1,
                             .out_fd = -1 };
        struct http_response res;
        r = aws_send(c, h, &q, &res, out);
        if (r == 0 && ret) {
                r = xml_parse(res.body.data, res.body.len, ret);
                if (r < 0) {
                        snprintf(out->msg, sizeof out->msg, "%s: unreadable XML answer from %s", action, ep);
                        r = -MF_EPARSE;
                }
        }
        http_response_free(&res);
        return r;
}

int ec2_parse_state_change(const struct xml_node *root, const char *instance_id, char *state, size_t n) {
        const struct xml_node *set = xml_child(root, "instancesSet");
        for (const struct xml_node *it = xml_child(set, "item"); it; it = xml_next_named(it)) {
                const char *id = xml_text(it, "instanceId");
                const char *st = xml_text(it, "currentState/name");
                if (id && st && strcmp(id, instance_id) == 0) {
                        snprintf(state, n, "%s", st);
                        return 0;
                }
        }
        return -MF_EPARSE;
}

static int state_change(struct aws_ctx *c, struct http_client *h, const char *action, const char *instance_id,
                        bool dry_run, char *state, size_t n, struct aws_result *out) {
        struct kv p[2] = { { "InstanceId.1", instance_id }, { "DryRun", "true" } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = ec2_call(c, h, action, p, dry_run ? 2 : 1, &x, out);
        if (dry_run && r < 0 && strcmp(out->err.code, "DryRunOperation") == 0) {
                snprintf(state, n, "dry-run-ok");
                return 0;
        }
        if (r < 0)
                return r;
        if (ec2_parse_state_change(x, instance_id, state, n) < 0) {
                snprintf(out->msg, sizeof out->msg, "%s: the answer does not mention %s", action, instance_id);
                return -MF_EPARSE;
        }
        return 0;
}

int ec2_terminate(struct aws_ctx *c, struct http_client *h, const char *instance_id, bool dry_run, char *state,
                  size_t n, struct aws_result *out) {
        return state_change(c, h, "TerminateInstances", instance_id, dry_run, state, n, out);
}

int ec2_stop(struct aws_ctx *c, struct http_client *h, const char *instance_id, char *state, size_t n,
             struct aws_result *out) {
        return state_change(c, h, "StopInstances", instance_id, false, state, n, out);
}

int ec2_instances_of_run(struct aws_ctx *c, struct http_client *h, const char *run_id, bool ended_too, char ids[][32],
                         char (*states)[24], size_t max, size_t *n, struct aws_result *out) {
        struct kv p[] = { { "Filter.1.Name", "tag:mayfly:run-id" }, { "Filter.1.Value.1", run_id },
                          { "Filter.2.Name", "instance-state-name" }, { "Filter.2.Value.1", "pending" },
                          { "Filter.2.Value.2", "running" }, { "Filter.2.Value.3", "stopping" },
                          { "Filter.2.Value.4", "stopped" }, { "Filter.2.Value.5", "shutting-down" },
                          { "Filter.2.Value.6", "terminated" } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        *n = 0;
        int r = ec2_call(c, h, "DescribeInstances", p, ended_too ? ARRAY_SIZE(p) : ARRAY_SIZE(p) - 2, &x, out);
        if (r < 0)
                return r;
        for (const struct xml_node *res = xml_child(xml_child(x, "reservationSet"), "item"); res;
             res = xml_next_named(res))
                for (const struct xml_node *it = xml_child(xml_child(res, "instancesSet"), "item"); it;
                     it = xml_next_named(it)) {
                        const char *id = xml_text(it, "instanceId"), *st = xml_text(it, "instanceState/name");
                        if (!id || *n >= max || strlen(id) >= sizeof ids[0])
                                continue;
                        if (states)
                                snprintf(states[*n], sizeof states[0], "%s", st ? st : "?");
                        snprintf(ids[(*n)++], sizeof ids[0], "%s", id);
                }
        return 0;
}

int ec2_console_output(struct aws_ctx *c, struct http_client *h, const char *instance_id, char **ret,
                       struct aws_result *out) {
        struct kv p[] = { { "InstanceId", instance_id } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = ec2_call(c, h, "GetConsoleOutput", p, 1, &x, out);
        if (r < 0)
                return r;
        const char *b64 = xml_text(x, "output");
        size_t n = b64 ? strlen(b64) : 0;
        char *text = malloc(n / 4 * 3 + 4);
        if (!text)
                return -ENOMEM;
        ssize_t m = n ? crypto_base64_decode(b64, n, (unsigned char *)text) : 0;
        text[m > 0 ? m : 0] = 0;
        *ret = text;
        return 0;
}

int ec2_describe_state(struct aws_ctx *c, struct http_client *h, const char *instance_id, char *state, size_t n,
                       struct aws_result *out) {
        struct kv p[] = { { "InstanceId.1", instance_id } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = ec2_call(c, h, "DescribeInstances", p, 1, &x, out);
        if (r < 0)
                return r;
        const struct xml_node *res = xml_child(xml_child(x, "reservationSet"), "item");
        for (; res; res = xml_next_named(res))
                for (const struct xml_node *it = xml_child(xml_child(res, "instancesSet"), "item"); it;
                     it = xml_next_named(it)) {
                        const char *id = xml_text(it, "instanceId"), *st = xml_text(it, "instanceState/name");
                        if (id && st && strcmp(id, instance_id) == 0) {
                                snprintf(state, n, "%s", st);
                                return 0;
                        }
                }
        snprintf(out->msg, sizeof out->msg, "DescribeInstances: %s not found", instance_id);
        return -MF_ENOTFOUND;
}

/* ---------- launch templates (autoscaling.h) ---------- */

static void tags(struct asg_params *a, const char *prefix, size_t spec, const char *type, const struct asg_template *t) {
        size_t k = 1;
        asg_param(a, type, "%sTagSpecification.%zu.ResourceType", prefix, spec);
        asg_param(a, ASG_RUN_TAG, "%sTagSpecification.%zu.Tag.%zu.Key", prefix, spec, k);
        asg_param(a, t->run_id, "%sTagSpecification.%zu.Tag.%zu.Value", prefix, spec, k++);
        if (t->job) {
                asg_param(a, "mayfly:run", "%sTagSpecification.%zu.Tag.%zu.Key", prefix, spec, k);
                asg_param(a, t->job, "%sTagSpecification.%zu.Tag.%zu.Value", prefix, spec, k++);
                asg_param(a, "Name", "%sTagSpecification.%zu.Tag.%zu.Key", prefix, spec, k);
                asg_param(a, t->job, "%sTagSpecification.%zu.Tag.%zu.Value", prefix, spec, k++);
        }
}

int ec2_launch_template_params(const struct asg_template *t, const char *user_data_b64, const char *token,
                               struct asg_params *ret) {
        struct asg_params *a = ret;
        *a = (struct asg_params){ 0 };
        if (!t->name || !*t->name || !t->image_id || !*t->image_id || !t->instance_type || !*t->instance_type ||
            !t->run_id || !*t->run_id || !user_data_b64 || t->n_security_groups > ASG_MAX_SECURITY_GROUPS ||
            t->imds_hop_limit < 0 || t->imds_hop_limit > 64)
                return -EINVAL;
        const char *d = "LaunchTemplateData.";
        asg_param(a, token, "ClientToken");
        asg_param(a, t->name, "LaunchTemplateName");
        asg_param(a, t->image_id, "%sImageId", d);
        asg_param(a, t->instance_type, "%sInstanceType", d);
        asg_param(a, user_data_b64, "%sUserData", d);
        if (t->iam_instance_profile)
                asg_param(a, t->iam_instance_profile, "%sIamInstanceProfile.%s", d,
                          str_has_prefix(t->iam_instance_profile, "arn:") ? "Arn" : "Name");
        asg_param(a, t->key_name, "%sKeyName", d);
        /* a template with network interfaces names its groups on them (EC2 refuses both) */
        for (size_t i = 0; i < t->n_security_groups; i++)
                asg_param(a, t->security_groups[i], t->efa ? "%sNetworkInterface.1.SecurityGroupId.%zu"
                                                            : "%sSecurityGroupId.%zu", d, i + 1);
        if (t->efa) {
                asg_param(a, "0", "%sNetworkInterface.1.DeviceIndex", d);
                asg_param(a, "efa", "%sNetworkInterface.1.InterfaceType", d);
                asg_param(a, "true", "%sNetworkInterface.1.DeleteOnTermination", d);
        }
        asg_param(a, t->placement_group, "%sPlacement.GroupName", d);
        asg_param(a, "terminate", "%sInstanceInitiatedShutdownBehavior", d);
        asg_param(a, "required", "%sMetadataOptions.HttpTokens", d);
        asg_param(a, "enabled", "%sMetadataOptions.HttpEndpoint", d);
        asg_param_int(a, t->imds_hop_limit ? t->imds_hop_limit : 1, "%sMetadataOptions.HttpPutResponseHopLimit", d);
        asg_param(a, "enabled", "%sMetadataOptions.InstanceMetadataTags", d);
        if (t->spot) {
                asg_param(a, "spot", "%sInstanceMarketOptions.MarketType", d);
                asg_param(a, "one-time", "%sInstanceMarketOptions.SpotOptions.SpotInstanceType", d);
                asg_param(a, "terminate", "%sInstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", d);
        }
        tags(a, d, 1, "instance", t);
        tags(a, "", 1, "launch-template", t);
        return a->r;
}

static bool lt_not_found(const struct aws_result *out) {
        return !strcmp(out->err.code, "InvalidLaunchTemplateName.NotFoundException") ||
               !strcmp(out->err.code, "InvalidLaunchTemplateId.NotFound");
}

int ec2_create_launch_template(struct aws_ctx *c, struct http_client *h, const struct asg_template *t, char *id,
                               size_t idlen, struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        size_t len = t->user_data_len ? t->user_data_len : t->user_data ? strlen(t->user_data) : 0;
        _cleanup_free_ char *b64 = NULL;
        int r = t->user_data ? base64_encode((const unsigned char *)t->user_data, len, &b64) : -EINVAL;
        unsigned char rnd[16] = { 0 };
        char token[2 * sizeof rnd + 1];
        if (r >= 0)
                r = getrandom(rnd, sizeof rnd, 0) == (ssize_t)sizeof rnd ? 0 : -EIO;
        hex_encode(rnd, sizeof rnd, token);
        struct asg_params a;
        if (r >= 0)
                r = ec2_launch_template_params(t, b64, token, &a);
        if (r < 0) {
                errf(out->msg, sizeof out->msg, "CreateLaunchTemplate %s: %s", t->name ? t->name : "?",
                     r == -E2BIG ? "too many parameters or a name too long"
                                 : "needs a name, an image, an instance type, user-data and a run id");
                return r;
        }
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        r = ec2_call(c, h, "CreateLaunchTemplate", a.p, a.n, &x, out);
        if (r < 0)
                return r;
        const char *got = xml_text(x, "launchTemplate/launchTemplateId");
        if (!got || !*got || strlen(got) >= idlen) {
                errf(out->msg, sizeof out->msg, "CreateLaunchTemplate: the answer has no template id for %s", t->name);
                return -MF_EPARSE;
        }
        str_copy(id, idlen, got);
        return 0;
}

int ec2_launch_template_exists(struct aws_ctx *c, struct http_client *h, const char *name, struct aws_result *out) {
        struct kv p[] = { { "LaunchTemplateName.1", name } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = ec2_call(c, h, "DescribeLaunchTemplates", p, 1, &x, out);
        if (r < 0 && lt_not_found(out)) {
                *out = (struct aws_result){ 0 };
                return 0;
        }
        if (r < 0)
                return r;
        for (const struct xml_node *it = xml_child(xml_child(x, "launchTemplates"), "item"); it;
             it = xml_next_named(it)) {
                const char *n = xml_text(it, "launchTemplateName");
                if (n && strcmp(n, name) == 0)
                        return 1;
        }
        return 0;
}

int ec2_delete_launch_template(struct aws_ctx *c, struct http_client *h, const char *name, struct aws_result *out) {
        struct kv p[] = { { "LaunchTemplateName", name } };
        int r = ec2_call(c, h, "DeleteLaunchTemplate", p, 1, NULL, out);
        if (r < 0 && lt_not_found(out))
                r = 0;
        else if (r == -MF_EHTTP) {
                /* another 4xx (moto 5.2.1 answers MissingParameter for a name it does not know): gone is gone */
                struct aws_result dres;
                if (ec2_launch_template_exists(c, h, name, &dres) == 0)
                        r = 0;
        }
        if (r == 0)
                *out = (struct aws_result){ 0 };
        return r;
}
