/* SPDX-License-Identifier: Apache-2.0 */
/* gangnet.c — a run's cluster placement group and its gang security group (gangnet.h), over the EC2 Query API.
 * The parameter lists are built by pure functions (unit-tested). */
#include "aws/gangnet.h"

#include <time.h>

#include "aws/ec2.h"

/* ---------- parameters (pure) ---------- */

static void run_tags(struct asg_params *a, const char *type, const char *name, const char *run_id, const char *job) {
        size_t k = 1;
        asg_param(a, type, "TagSpecification.1.ResourceType");
        asg_param(a, ASG_RUN_TAG, "TagSpecification.1.Tag.%zu.Key", k);
        asg_param(a, run_id, "TagSpecification.1.Tag.%zu.Value", k++);
        if (job) {
                asg_param(a, "mayfly:run", "TagSpecification.1.Tag.%zu.Key", k);
                asg_param(a, job, "TagSpecification.1.Tag.%zu.Value", k++);
        }
        asg_param(a, "Name", "TagSpecification.1.Tag.%zu.Key", k);
        asg_param(a, name, "TagSpecification.1.Tag.%zu.Value", k);
}

int gangnet_pg_params(const char *name, const char *run_id, const char *job, bool dry_run, struct asg_params *ret) {
        *ret = (struct asg_params){ 0 };
        if (!name || !*name || !run_id || !*run_id)
                return -EINVAL;
        if (dry_run)
                asg_param(ret, "true", "DryRun");
        asg_param(ret, name, "GroupName");
        asg_param(ret, GANGNET_STRATEGY, "Strategy");
        run_tags(ret, "placement-group", name, run_id, job);
        return ret->r;
}

int gangnet_sg_params(const char *name, const char *vpc, const char *run_id, const char *job, bool dry_run,
                      struct asg_params *ret) {
        *ret = (struct asg_params){ 0 };
        if (!name || !*name || !run_id || !*run_id)
                return -EINVAL;
        if (dry_run)
                asg_param(ret, "true", "DryRun");
        asg_param(ret, name, "GroupName");
        asg_param(ret, GANGNET_SG_DESCRIPTION, "GroupDescription");
        asg_param(ret, vpc, "VpcId");
        run_tags(ret, "security-group", name, run_id, job);
        return ret->r;
}

int gangnet_ingress_params(const char *sg_id, struct asg_params *ret) {
        *ret = (struct asg_params){ 0 };
        if (!sg_id || !*sg_id)
                return -EINVAL;
        asg_param(ret, sg_id, "GroupId");
        asg_param(ret, "-1", "IpPermissions.1.IpProtocol");
        asg_param(ret, sg_id, "IpPermissions.1.Groups.1.GroupId");
        return ret->r;
}

/* ---------- calls ---------- */

static bool code_is(const struct aws_result *out, const char *code) { return !strcmp(out->err.code, code); }

int ec2_create_placement_group(struct aws_ctx *c, struct http_client *h, const char *name, const char *run_id,
                               const char *job, struct aws_result *out) {
        struct asg_params a;
        int r = gangnet_pg_params(name, run_id, job, false, &a);
        if (r < 0) {
                errf(out->msg, sizeof out->msg, "CreatePlacementGroup %s: a name and a run id are needed",
                     name ? name : "?");
                return r;
        }
        r = ec2_call(c, h, "CreatePlacementGroup", a.p, a.n, NULL, out);
        if (r < 0 && code_is(out, "InvalidPlacementGroup.Duplicate"))
                r = 0;
        if (r == 0)
                *out = (struct aws_result){ 0 };
        return r;
}

int ec2_delete_placement_group(struct aws_ctx *c, struct http_client *h, const char *name, struct aws_result *out) {
        struct kv p[] = { { "GroupName", name } };
        int r = ec2_call(c, h, "DeletePlacementGroup", p, 1, NULL, out);
        if (r < 0 && code_is(out, "InvalidPlacementGroup.Unknown"))
                r = 1;
        else if (r < 0 && code_is(out, "InvalidPlacementGroup.InUse"))
                return -EBUSY;
        if (r >= 0)
                *out = (struct aws_result){ 0 };
        return r;
}

int ec2_vpc_of(struct aws_ctx *c, struct http_client *h, const char *subnet, char *vpc, size_t n,
               struct aws_result *out) {
        struct kv sp[] = { { "SubnetId.1", subnet } };
        struct kv dp[] = { { "Filter.1.Name", "is-default" }, { "Filter.1.Value.1", "true" } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = subnet ? ec2_call(c, h, "DescribeSubnets", sp, 1, &x, out)
                       : ec2_call(c, h, "DescribeVpcs", dp, ARRAY_SIZE(dp), &x, out);
        if (r < 0)
                return r;
        const char *got = xml_text(xml_child(xml_child(x, subnet ? "subnetSet" : "vpcSet"), "item"), "vpcId");
        if (!got || !*got || strlen(got) >= n) {
                errf(out->msg, sizeof out->msg, subnet ? "the subnet %s has no VPC in %s"
                                                       : "%sno default VPC in %s: give --subnet-id",
                     subnet ? subnet : "", c->region);
                return -MF_ENOTFOUND;
        }
        str_copy(vpc, n, got);
        return 0;
}

/* The id of the group named name in vpc, or -MF_ENOTFOUND. */
static int sg_by_name(struct aws_ctx *c, struct http_client *h, const char *name, const char *vpc, char *id,
                      size_t idlen, struct aws_result *out) {
        struct kv p[] = { { "Filter.1.Name", "group-name" }, { "Filter.1.Value.1", name },
                          { "Filter.2.Name", "vpc-id" }, { "Filter.2.Value.1", vpc } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = ec2_call(c, h, "DescribeSecurityGroups", p, vpc ? 4 : 2, &x, out);
        if (r < 0)
                return r;
        const char *got = xml_text(xml_child(xml_child(x, "securityGroupInfo"), "item"), "groupId");
        if (!got || strlen(got) >= idlen) {
                errf(out->msg, sizeof out->msg, "DescribeSecurityGroups: no group %s", name);
                return -MF_ENOTFOUND;
        }
        str_copy(id, idlen, got);
        return 0;
}

int ec2_create_gang_sg(struct aws_ctx *c, struct http_client *h, const char *name, const char *vpc, const char *run_id,
                       const char *job, char *id, size_t idlen, struct aws_result *out) {
        struct asg_params a;
        int r = gangnet_sg_params(name, vpc, run_id, job, false, &a);
        if (r < 0) {
                errf(out->msg, sizeof out->msg, "CreateSecurityGroup %s: a name and a run id are needed",
                     name ? name : "?");
                return r;
        }
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        r = ec2_call(c, h, "CreateSecurityGroup", a.p, a.n, &x, out);
        const char *got = r == 0 ? xml_text(x, "groupId") : NULL;
        if (r == 0 && (!got || strlen(got) >= idlen)) {
                errf(out->msg, sizeof out->msg, "CreateSecurityGroup: the answer has no group id for %s", name);
                return -MF_EPARSE;
        }
        if (r == 0)
                str_copy(id, idlen, got);
        else if (code_is(out, "InvalidGroup.Duplicate"))
                r = sg_by_name(c, h, name, vpc, id, idlen, out);
        if (r < 0)
                return r;
        if ((r = gangnet_ingress_params(id, &a)) < 0)
                return r;
        r = ec2_call(c, h, "AuthorizeSecurityGroupIngress", a.p, a.n, NULL, out);
        if (r < 0 && code_is(out, "InvalidPermission.Duplicate"))
                r = 0;
        if (r == 0)
                *out = (struct aws_result){ 0 };
        return r;
}

int ec2_delete_security_group(struct aws_ctx *c, struct http_client *h, const char *id, struct aws_result *out) {
        struct kv p[] = { { "GroupId", id } };
        int r = ec2_call(c, h, "DeleteSecurityGroup", p, 1, NULL, out);
        if (r < 0 && (code_is(out, "InvalidGroup.NotFound") || code_is(out, "InvalidGroupId.NotFound")))
                r = 1;
        else if (r < 0 && code_is(out, "DependencyViolation"))
                return -EBUSY;
        if (r >= 0)
                *out = (struct aws_result){ 0 };
        return r;
}

int ec2_security_groups_of_run(struct aws_ctx *c, struct http_client *h, const char *run_id, char ids[][32],
                               size_t max, size_t *n, struct aws_result *out) {
        struct kv p[] = { { "Filter.1.Name", "tag:" ASG_RUN_TAG }, { "Filter.1.Value.1", run_id } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        *n = 0;
        int r = ec2_call(c, h, "DescribeSecurityGroups", p, ARRAY_SIZE(p), &x, out);
        if (r < 0)
                return r;
        for (const struct xml_node *it = xml_child(xml_child(x, "securityGroupInfo"), "item"); it && *n < max;
             it = xml_next_named(it)) {
                const char *id = xml_text(it, "groupId");
                if (id && strlen(id) < sizeof ids[0])
                        str_copy(ids[(*n)++], sizeof ids[0], id);
        }
        return 0;
}

/* ---------- the whole gang network, retried while instances hold it ---------- */

/* What is to go: the placement group (if any) first in pending[0] ("" when none), then the security groups. */
static int gather(struct aws_ctx *c, struct http_client *h, const struct gangnet *g,
                  char pending[][GANGNET_NAME_MAX], size_t max, size_t *n, struct aws_result *out) {
        *n = 1;
        str_copy(pending[0], sizeof pending[0], g->placement_group ? g->placement_group : "");
        if (g->placement_group && strlen(g->placement_group) >= sizeof pending[0])
                return -ENAMETOOLONG;
        if (g->security_group)
                str_copy(pending[(*n)++], sizeof pending[0], g->security_group);
        if (!g->run_id)
                return 0;
        char found[GANGNET_MAX_SGS][32];
        size_t nf = 0;
        int r = ec2_security_groups_of_run(c, h, g->run_id, found, ARRAY_SIZE(found), &nf, out);
        for (size_t i = 0; r == 0 && i < nf && *n < max; i++) {
                bool dup = false;
                for (size_t j = 1; j < *n; j++)
                        dup = dup || !strcmp(pending[j], found[i]);
                if (!dup)
                        str_copy(pending[(*n)++], sizeof pending[0], found[i]);
        }
        return r;
}

static void say(char *msg, size_t msglen, const char *fmt, const char *what) {
        size_t l = strnlen(msg, msglen);
        if (l + 1 < msglen)
                snprintf(msg + l, msglen - l, fmt, l ? "; " : "", what);
}

/* One round: deletes what it can of pending (done ones become ""), -EBUSY while one is in use. */
static int one_round(struct aws_ctx *c, struct http_client *h, char pending[][GANGNET_NAME_MAX], size_t n,
                     char *msg, size_t msglen, struct aws_result *out) {
        int busy = 0;
        for (size_t i = 0; i < n; i++) {
                if (!pending[i][0])
                        continue;
                int r = i == 0 ? ec2_delete_placement_group(c, h, pending[i], out)
                               : ec2_delete_security_group(c, h, pending[i], out);
                if (r == -EBUSY) {
                        busy = -EBUSY;
                        continue;
                }
                if (r < 0)
                        return r;
                say(msg, msglen, i == 0 ? (r ? "%sthe placement group %s was gone already" : "%sdeleted the placement "
                                                                                            "group %s")
                                        : (r ? "%sthe security group %s was gone already" : "%sdeleted the security "
                                                                                           "group %s"),
                    pending[i]);
                pending[i][0] = 0;
        }
        return busy;
}

int gangnet_delete(struct aws_ctx *c, struct http_client *h, const struct gangnet *g, long wait_s, char *msg,
                   size_t msglen) {
        char pending[1 + GANGNET_MAX_SGS][GANGNET_NAME_MAX];
        size_t n = 0;
        struct aws_result out = { 0 };
        msg[0] = 0;
        int r = gather(c, h, g, pending, ARRAY_SIZE(pending), &n, &out);
        if (r < 0) {
                errf(msg, msglen, "finding the run's security groups: %s", out.msg);
                return r;
        }
        double deadline = now_mono() + (double)wait_s;
        while ((r = one_round(c, h, pending, n, msg, msglen, &out)) == -EBUSY && now_mono() < deadline) {
                if (g->nap)
                        g->nap(GANGNET_POLL);
                else
                        nanosleep(&(struct timespec){ .tv_sec = GANGNET_POLL }, NULL);
        }
        if (r == 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                if (!pending[i][0])
                        continue;
                char what[3 * GANGNET_NAME_MAX];
                snprintf(what, sizeof what, i == 0 ? "the placement group %s is left (%s): aws ec2 "
                                                     "delete-placement-group --group-name %s"
                                                   : "the security group %s is left (%s): aws ec2 "
                                                     "delete-security-group --group-id %s",
                         pending[i], r == -EBUSY ? "instances still in it" : "refused", pending[i]);
                say(msg, msglen, "%s%s", what);
        }
        if (r != -EBUSY)
                say(msg, msglen, "%s%s", out.msg);
        return r;
}
