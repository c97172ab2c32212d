/* SPDX-License-Identifier: Apache-2.0 */
/* preflight.c — launch's checks before it spends anything (preflight.h). */
#include "cmd/preflight.h"

#include <stdarg.h>
#include <sys/random.h>

#include "aws/ec2.h"
#include "aws/gangnet.h"
#include "aws/iam.h"
#include "aws/s3.h"
#include "aws/s3cas.h"
#include "aws/xml.h"
#include "exitcode.h"
#include "jsonx.h"
#include "log.h"

#define PF_MAX_ZONES 16
#define JOB_MAX_NODES_CAP 1000000 /* a "nodes" past this is the spec check's to refuse */

int preflight_arch_mismatch(const char *image_arch, const char *const *type_archs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bool found = false;
                const char *a = type_archs[i];
                size_t l = strlen(image_arch);
                for (const char *p = a; p && *p; p = strchr(p, ' '), p = p ? p + 1 : NULL)
                        if (!strncmp(p, image_arch, l) && (p[l] == ' ' || p[l] == 0))
                                found = true;
                if (!found)
                        return (int)i;
        }
        return -1;
}

static int refuse(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int refuse(char *err, size_t errlen, int code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        return code;
}

int preflight_max_nodes(const cJSON *job) {
        int most = 1;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(job, "experiments")) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "nodes");
                if (cJSON_IsNumber(n) && n->valuedouble > most && n->valuedouble <= JOB_MAX_NODES_CAP)
                        most = (int)n->valuedouble;
        }
        return most;
}

int preflight_gang_fits(const cJSON *job, long instances, char *err, size_t errlen) {
        long have = instances > 0 ? instances : 1;
        size_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(job, "experiments")) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "nodes");
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
                char given[48];
                snprintf(given, sizeof given, instances > 0 ? "--instances %ld" : "no --instances: one instance",
                         instances);
                if (cJSON_IsNumber(n) && n->valuedouble > (double)have)
                        return refuse(err, errlen, EXIT_USAGE, "experiment %s ($.experiments[%zu]) needs %.0f instances "
                                      "at once (\"nodes\": %.0f) and this launch starts %ld (%s): the gang could "
                                      "never form; launch it with --instances %.0f or more", name ? name : "?", i,
                                      n->valuedouble, n->valuedouble, have, given, n->valuedouble);
                i++;
        }
        return 0;
}

/* An AWS refusal's exit code: missing permissions 4, anything else 1. */
static int code_of(const struct aws_result *out) {
        return out->status == 403 || aws_error_is_auth(out->err.code) || !strcmp(out->err.code, "UnauthorizedOperation")
                       ? EXIT_AUTH
                       : EXIT_FAIL;
}

/* The results location takes writes: a probe object written and deleted. */
static int check_results(struct aws_ctx *c, struct http_client *h, const char *results, char *err, size_t errlen) {
        _cleanup_free_ char *bucket = NULL, *prefix = NULL;
        if (s3_parse_uri(results, &bucket, &prefix, err, errlen) < 0)
                return EXIT_USAGE;
        unsigned char rnd[6] = { 0 };
        char hex[13], key[S3_MAX_KEY + 1];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
                memset(rnd, 7, sizeof rnd);
        hex_encode(rnd, sizeof rnd, hex);
        if (pathf(key, sizeof key, "%s%s.mayfly-preflight-%s", prefix, *prefix && !str_has_suffix(prefix, "/") ? "/" : "",
                  hex) < 0)
                return refuse(err, errlen, EXIT_USAGE, "$.results: %s is too long for an S3 key", results);
        struct aws_result out = { 0 };
        static const char probe[] = "mayfly launch's preflight: can this location take the run's results?\n";
        int r = s3_put(c, h, bucket, key, probe, -1, 0, sizeof probe - 1, "text/plain", NULL, NULL, &out);
        if (r < 0 && !strcmp(out.err.code, "NoSuchBucket"))
                return refuse(err, errlen, EXIT_NOTFOUND, "the results bucket %s does not exist: create it, or fix the "
                              "job's results (%s)", bucket, results);
        if (r < 0)
                return refuse(err, errlen, code_of(&out), "cannot write the results location %s: %s", results, out.msg);
        out = (struct aws_result){ 0 };
        if (s3cas_delete(c, h, bucket, key, NULL, &out) < 0)
                log_error("warning: the preflight's probe s3://%s/%s is left (%s)", bucket, key, out.msg);
        return 0;
}

static int check_source(struct aws_ctx *c, struct http_client *h, const char *source, char *err, size_t errlen) {
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        if (s3_parse_uri(source, &bucket, &key, err, errlen) < 0)
                return EXIT_USAGE;
        uint64_t size = 0;
        struct aws_result out = { 0 };
        int r = s3_head(c, h, bucket, key, &size, NULL, &out);
        if (r == -MF_ENOTFOUND || (r < 0 && !strcmp(out.err.code, "NoSuchBucket")))
                return refuse(err, errlen, EXIT_NOTFOUND, "the job's source %s does not exist: upload it, or fix the "
                              "job's source", source);
        if (r < 0)
                return refuse(err, errlen, code_of(&out), "cannot read the job's source %s: %s", source, out.msg);
        return 0;
}

static int first_object(void *ud, const struct s3_object *o) {
        (void)ud;
        return str_has_suffix(o->key, "/") ? 0 : -ECANCELED; /* one is enough (a folder marker is none) */
}

static int check_input(struct aws_ctx *c, struct http_client *h, const char *uri, char *err, size_t errlen) {
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        if (s3_parse_uri(uri, &bucket, &key, err, errlen) < 0)
                return EXIT_USAGE;
        struct aws_result out = { 0 };
        int r;
        if (str_has_suffix(uri, "/") || !*key) {
                r = s3_list(c, h, bucket, key, first_object, NULL, &out);
                if (r == 0)
                        return refuse(err, errlen, EXIT_NOTFOUND, "the input %s holds no objects: upload the data, or "
                                      "fix the input's source", uri);
                if (r == -ECANCELED)
                        return 0;
        } else {
                uint64_t size = 0;
                r = s3_head(c, h, bucket, key, &size, NULL, &out);
                if (r == 0)
                        return 0;
        }
        if (r == -MF_ENOTFOUND || !strcmp(out.err.code, "NoSuchBucket"))
                return refuse(err, errlen, EXIT_NOTFOUND, "the input %s does not exist: upload it, or fix the input's "
                              "source", uri);
        return refuse(err, errlen, code_of(&out), "cannot read the input %s (the instance role needs s3:GetObject and "
                      "s3:ListBucket on it too: docs/iam.md): %s", uri, out.msg);
}

static int check_profile(struct aws_ctx *c, struct http_client *h, const char *profile, char *err, size_t errlen) {
        if (!profile)
                return refuse(err, errlen, EXIT_USAGE, "no --iam-instance-profile: the instance writes its results and "
                              "ends itself with its role (docs/iam.md gives the policy)");
        struct aws_result out = { 0 };
        int r = iam_instance_profile_exists(c, h, profile, &out);
        if (r == -MF_ENOTFOUND)
                return refuse(err, errlen, EXIT_NOTFOUND, "the instance profile %s does not exist: create it with the "
                              "instance role of docs/iam.md, or fix --iam-instance-profile", profile);
        if (r == -MF_EAUTH)
                log_error("warning: cannot check that the instance profile %s exists (you may not call "
                          "iam:GetInstanceProfile); going on", profile);
        else if (r < 0)
                log_error("warning: cannot check the instance profile %s: %s; going on", profile, out.msg);
        return 0;
}

/* The first of the first n types whose DescribeInstanceTypes entry does not say EfaSupported, or -1. */
static int efa_missing(const struct xml_node *t, const struct preflight *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bool ok = false;
                for (const struct xml_node *it = xml_child(xml_child(t, "instanceTypeSet"), "item"); it;
                     it = xml_next_named(it)) {
                        const char *name = xml_text(it, "instanceType"), *efa = xml_text(it, "networkInfo/efaSupported");
                        ok = ok || (name && efa && !strcmp(name, p->types[i]) && !strcmp(efa, "true"));
                }
                if (!ok)
                        return (int)i;
        }
        return -1;
}

/* The image exists here, and every instance type runs its architecture (and has EFA, for --efa). */
static int check_image(struct aws_ctx *c, struct http_client *h, const struct preflight *p, char *err, size_t errlen) {
        struct kv ip[] = { { "ImageId.1", p->image } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        struct aws_result out = { 0 };
        int r = ec2_call(c, h, "DescribeImages", ip, 1, &x, &out);
        const struct xml_node *img = xml_child(xml_child(x, "imagesSet"), "item");
        if ((r < 0 && str_has_prefix(out.err.code, "InvalidAMIID")) || (r == 0 && !img))
                return refuse(err, errlen, EXIT_NOTFOUND, "the image %s does not exist in %s (AMIs are per region)",
                              p->image, c->region);
        if (r < 0)
                return refuse(err, errlen, code_of(&out), "cannot describe the image %s: %s", p->image, out.msg);
        const char *arch = xml_text(img, "architecture");
        struct kv tp[16];
        size_t n = 0;
        char names[16][24];
        for (size_t i = 0; i < p->n_types && n < ARRAY_SIZE(tp); i++, n++) {
                snprintf(names[n], sizeof names[n], "InstanceType.%zu", i + 1);
                tp[n] = (struct kv){ names[n], p->types[i] };
        }
        _cleanup_(xml_freep) struct xml_node *t = NULL;
        out = (struct aws_result){ 0 };
        r = ec2_call(c, h, "DescribeInstanceTypes", tp, n, &t, &out);
        if (r < 0 && !strcmp(out.err.code, "InvalidInstanceType"))
                return refuse(err, errlen, EXIT_USAGE, "an instance type that %s does not have: %s", c->region, out.msg);
        if (r < 0)
                return refuse(err, errlen, code_of(&out), "cannot describe the instance types: %s", out.msg);
        char archs[16][64] = { { 0 } };
        const char *list[16];
        for (size_t i = 0; i < n; i++) {
                list[i] = archs[i];
                for (const struct xml_node *it = xml_child(xml_child(t, "instanceTypeSet"), "item"); it;
                     it = xml_next_named(it)) {
                        const char *name = xml_text(it, "instanceType");
                        if (!name || strcmp(name, p->types[i]))
                                continue;
                        const struct xml_node *sa = xml_child(xml_child(it, "processorInfo"), "supportedArchitectures");
                        size_t o = 0;
                        for (const struct xml_node *a = xml_child(sa, "item"); a && a->text; a = xml_next_named(a))
                                o += (size_t)snprintf(archs[i] + o, sizeof archs[i] - MIN(o, sizeof archs[i]), "%s%s",
                                                      o ? " " : "", a->text);
                }
                if (!archs[i][0])
                        return refuse(err, errlen, EXIT_USAGE, "no instance type %s in %s", p->types[i], c->region);
        }
        int bad = arch ? preflight_arch_mismatch(arch, list, n) : -1;
        if (bad >= 0)
                return refuse(err, errlen, EXIT_USAGE, "%s runs %s, and the image %s is %s: pick an image or a type "
                              "of the same architecture", p->types[bad], archs[bad], p->image, arch);
        bad = p->efa ? efa_missing(t, p, n) : -1;
        if (bad >= 0)
                return refuse(err, errlen, EXIT_USAGE, "--efa: %s has no Elastic Fabric Adapter (DescribeInstanceTypes: "
                              "NetworkInfo.EfaSupported is not true): pick a type with EFA (p4d.24xlarge, "
                              "p5.48xlarge, g5.48xlarge…) or drop --efa", p->types[bad]);
        return 0;
}

/* The zones the instances may land in: the subnets', --availability-zone, or none (the whole region). */
static int zones_of(struct aws_ctx *c, struct http_client *h, const struct preflight *p, char zones[][32],
                    const char *why[], size_t *n, char *err, size_t errlen) {
        *n = 0;
        if (p->zone) {
                snprintf(zones[0], 32, "%s", p->zone);
                why[(*n)++] = "--availability-zone";
                return 0;
        }
        for (size_t i = 0; i < p->n_subnets && *n < PF_MAX_ZONES; i++) {
                struct kv sp[] = { { "SubnetId.1", p->subnets[i] } };
                _cleanup_(xml_freep) struct xml_node *x = NULL;
                struct aws_result out = { 0 };
                int r = ec2_call(c, h, "DescribeSubnets", sp, 1, &x, &out);
                const char *az = xml_text(xml_child(xml_child(x, "subnetSet"), "item"), "availabilityZone");
                if ((r < 0 && str_has_prefix(out.err.code, "InvalidSubnetID")) || (r == 0 && !az))
                        return refuse(err, errlen, EXIT_NOTFOUND, "the subnet %s does not exist in %s", p->subnets[i],
                                      c->region);
                if (r < 0)
                        return refuse(err, errlen, code_of(&out), "cannot describe the subnet %s: %s", p->subnets[i],
                                      out.msg);
                snprintf(zones[*n], 32, "%s", az);
                why[(*n)++] = p->subnets[i];
        }
        return 0;
}

/* Each instance type is offered in each zone the instances may land in (or in the region). */
static int check_offered(struct aws_ctx *c, struct http_client *h, const struct preflight *p, char *err,
                         size_t errlen) {
        char zones[PF_MAX_ZONES][32];
        const char *why[PF_MAX_ZONES];
        size_t nz = 0;
        int code = zones_of(c, h, p, zones, why, &nz, err, errlen);
        if (code)
                return code;
        for (size_t z = 1; p->cluster && z < nz; z++)
                if (strcmp(zones[z], zones[0]))
                        return refuse(err, errlen, EXIT_USAGE, "--placement-group cluster keeps the instances in one "
                                      "availability zone, and %s is in %s, %s in %s: give subnets of one zone",
                                      why[0], zones[0], why[z], zones[z]);
        for (size_t t = 0; t < p->n_types; t++)
                for (size_t z = 0; z < MAX(nz, (size_t)1); z++) {
                        struct kv op[] = { { "LocationType", nz ? "availability-zone" : "region" },
                                           { "Filter.1.Name", "instance-type" }, { "Filter.1.Value.1", p->types[t] },
                                           { "Filter.2.Name", "location" },
                                           { "Filter.2.Value.1", nz ? zones[z] : c->region } };
                        _cleanup_(xml_freep) struct xml_node *x = NULL;
                        struct aws_result out = { 0 };
                        int r = ec2_call(c, h, "DescribeInstanceTypeOfferings", op, ARRAY_SIZE(op), &x, &out);
                        if (r < 0)
                                return refuse(err, errlen, code_of(&out), "cannot look up where %s is offered: %s",
                                              p->types[t], out.msg);
                        if (!xml_child(xml_child(x, "instanceTypeOfferingSet"), "item"))
                                return refuse(err, errlen, EXIT_NOTFOUND, "%s is not offered in %s%s%s%s: pick "
                                              "another type or %s", p->types[t], nz ? zones[z] : c->region,
                                              nz ? " (" : "", nz ? why[z] : "", nz ? ")" : "",
                                              nz ? "another subnet" : "another region");
                }
        return 0;
}

/* RunInstances or CreateLaunchTemplate with DryRun: the EC2 permissions (and iam:PassRole for the profile). */
static int check_dry_run(struct aws_ctx *c, struct http_client *h, const struct preflight *p, char *err,
                         size_t errlen) {
        struct kv q[10];
        size_t n = 0;
        const char *action = p->group ? "CreateLaunchTemplate" : "RunInstances";
        q[n++] = (struct kv){ "DryRun", "true" };
        if (p->group) {
                q[n++] = (struct kv){ "LaunchTemplateName", "mayfly-preflight" };
                q[n++] = (struct kv){ "LaunchTemplateData.ImageId", p->image };
                q[n++] = (struct kv){ "LaunchTemplateData.InstanceType", p->types[0] };
                if (p->profile)
                        q[n++] = (struct kv){ str_has_prefix(p->profile, "arn:") ? "LaunchTemplateData.IamInstanceProfile.Arn"
                                                                                  : "LaunchTemplateData.IamInstanceProfile.Name",
                                              p->profile };
        } else {
                q[n++] = (struct kv){ "ImageId", p->image };
                q[n++] = (struct kv){ "InstanceType", p->types[0] };
                q[n++] = (struct kv){ "MinCount", "1" };
                q[n++] = (struct kv){ "MaxCount", "1" };
                if (p->profile)
                        q[n++] = (struct kv){ str_has_prefix(p->profile, "arn:") ? "IamInstanceProfile.Arn"
                                                                                  : "IamInstanceProfile.Name",
                                              p->profile };
                if (p->n_subnets)
                        q[n++] = (struct kv){ "SubnetId", p->subnets[0] };
        }
        struct aws_result out = { 0 };
        int r = ec2_call(c, h, action, q, n, NULL, &out);
        if (r < 0 && !strcmp(out.err.code, "DryRunOperation"))
                return 0;
        if (r == 0)
                return 0; /* an endpoint that ignores DryRun created nothing it was not asked to */
        return refuse(err, errlen, code_of(&out), "%s would be refused (DryRun): %s", action, out.msg);
}

/* --placement-group cluster, --gang-sg: CreatePlacementGroup and CreateSecurityGroup with DryRun (the
 * permissions), and a VPC to make the group in (the first subnet's, else the default one). */
static int check_gang_net(struct aws_ctx *c, struct http_client *h, const struct preflight *p, char *err,
                          size_t errlen) {
        struct asg_params a;
        struct aws_result out = { 0 };
        char vpc[64] = "";
        if (p->gang_sg) {
                int r = ec2_vpc_of(c, h, p->n_subnets ? p->subnets[0] : NULL, vpc, sizeof vpc, &out);
                if (r == -MF_ENOTFOUND)
                        return refuse(err, errlen, EXIT_USAGE, "--gang-sg: %s", out.msg);
                if (r < 0)
                        return refuse(err, errlen, code_of(&out), "--gang-sg: cannot find the VPC: %s", out.msg);
        }
        for (int i = 0; i < 2; i++) {
                const char *action = i == 0 ? "CreatePlacementGroup" : "CreateSecurityGroup";
                if (!(i == 0 ? p->cluster : p->gang_sg))
                        continue;
                int r = i == 0 ? gangnet_pg_params("mayfly-preflight", "preflight", NULL, true, &a)
                               : gangnet_sg_params("mayfly-preflight", vpc, "preflight", NULL, true, &a);
                out = (struct aws_result){ 0 };
                if (r == 0)
                        r = ec2_call(c, h, action, a.p, a.n, NULL, &out);
                if (r < 0 && strcmp(out.err.code, "DryRunOperation"))
                        return refuse(err, errlen, code_of(&out), "%s would be refused (DryRun): %s", action, out.msg);
        }
        return 0;
}

int preflight_run(struct aws_ctx *c, const struct preflight *p, char *err, size_t errlen) {
        if (!p->install_given)
                return refuse(err, errlen, EXIT_USAGE, "how does mayfly get onto the instance? --install static (the "
                              "static build, uploaded next to the job's sources and pinned by its sha256) works on any "
                              "x86_64 Linux image; --install preinstalled says the image (%s) carries it", p->image);
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return refuse(err, errlen, EXIT_FAIL, "cannot set up HTTP: %s", strerror(-r));
        int code = check_results(c, &h, p->results, err, errlen);
        if (!code && p->source)
                code = check_source(c, &h, p->source, err, errlen);
        for (size_t i = 0; !code && i < p->n_inputs; i++)
                code = check_input(c, &h, p->inputs[i], err, errlen);
        if (!code)
                code = check_profile(c, &h, p->profile, err, errlen);
        if (!code)
                code = check_image(c, &h, p, err, errlen);
        if (!code)
                code = check_offered(c, &h, p, err, errlen);
        if (!code)
                code = check_dry_run(c, &h, p, err, errlen);
        if (!code)
                code = check_gang_net(c, &h, p, err, errlen);
        http_client_free(&h);
        return code;
}
