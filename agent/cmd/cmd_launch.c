/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_launch.c — `mayfly launch` (RunInstances, or a launch template and an Auto Scaling group, with the rendered
 * user-data). No console, no SSH. `mayfly status` and `mayfly logs` are cmd_status.c. */
#include <fcntl.h>
#include <getopt.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "crypto.h"
#include "jsonx.h"
#include "run/proc/archive_x.h"
#include "cmd/cli.h"
#include "cmd/pack.h"
#include "cmd/preflight.h"
#include "aws/autoscaling.h"
#include "aws/ec2.h"
#include "aws/gangnet.h"
#include "aws/s3.h"
#include "aws/s3cas.h"
#include "aws/sts.h"
#include "run/base/job.h"
#include "run/fleet/ledger.h"
#include "aws/transfer.h"
#include "cmd/userdata.h"

#define LAUNCH_MAX_SG ASG_MAX_SECURITY_GROUPS
#define LAUNCH_MAX_GROUP_NAME 128   /* a launch template's name: "mayfly-<run id>" */
#define LAUNCH_MAX_BINARY (512u << 20)
#define LAUNCH_HOP_LIMIT 1      /* IMDS answers only the instance itself, not its containers (a hop each) */
#define LAUNCH_UNDO_WAIT 180    /* seconds a failed launch waits for the group's instances to leave its placement
                                 * group and security group before it names them as left */

/* Where launch puts what the instance fetches: <results>[/]<name>/sources/ (the role reads the results prefix). */
static int sources_prefix(cJSON *job, char **ret_bucket, char *key, size_t n, char *err, size_t errlen) {
        const char *results = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "results"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "name"));
        _cleanup_free_ char *k = NULL;
        if (!results || !name || s3_parse_uri(results, ret_bucket, &k, err, errlen) < 0) {
                if (!err[0])
                        snprintf(err, errlen, "$.results and $.name are needed to upload next to the results");
                return -EINVAL;
        }
        snprintf(key, n, "%s%s%s/sources/", k, *k && !str_has_suffix(k, "/") ? "/" : "", name);
        return 0;
}

/* A local directory as `source`: pack it, upload it next to the results, and point the job at it. */
/* A local source folder: packed (.mayflyignore honoured) and uploaded under the hash of its tree, once: a launch
 * of the same files finds it there and uploads nothing. The job then names the object. */
static int upload_local_source(struct aws_ctx *c, cJSON *job, char *err, size_t errlen) {
        cJSON *src = cJSON_GetObjectItemCaseSensitive(job, "source");
        if (!cJSON_GetStringValue(src) || str_has_prefix(cJSON_GetStringValue(src), "s3://"))
                return 0;
        char s[4096];
        snprintf(s, sizeof s, "%s", cJSON_GetStringValue(src)); /* absolute: cli_load_job resolved it */
        _cleanup_free_ char *bucket = NULL;
        char prefix[2048], skey[2200], uri[2300];
        struct pack_tree tree;
        if (sources_prefix(job, &bucket, prefix, sizeof prefix, err, errlen) < 0)
                return -EINVAL;
        int r = pack_hash(s, &tree, err, errlen);
        if (r < 0)
                return r;
        snprintf(skey, sizeof skey, "%s%.16s.tar.gz", prefix, tree.hash);
        snprintf(uri, sizeof uri, "s3://%s/%s", bucket, skey);
        struct http_client h;
        struct aws_result res = { 0 };
        uint64_t size = 0;
        bool there = http_client_init(&h) == 0 && s3_head(c, &h, bucket, skey, &size, NULL, &res) == 0;
        http_client_free(&h);
        if (there) {
                fprintf(stderr, "mayfly: %s is already at %s (the same %zu files): not uploaded again\n", s, uri,
                        tree.files);
        } else {
                char tmp[] = "/tmp/mayfly-source-XXXXXX";
                int fd = mkostemp(tmp, O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                close(fd);
                r = pack_write(s, tmp, err, errlen);
                res = (struct aws_result){ 0 };
                if (r == 0 && (r = xfer_upload(c, tmp, bucket, skey, NULL, &res)) < 0)
                        errf(err, errlen, "uploading the packed source: %s", res.msg);
                unlink(tmp);
                if (r < 0)
                        return r;
                fprintf(stderr, "mayfly: packed %s (%zu files, %.1f MiB) and uploaded it to %s\n", s, tree.files,
                        (double)tree.bytes / 1048576.0, uri);
        }
        cJSON_ReplaceItemInObjectCaseSensitive(job, "source", cJSON_CreateString(uri));
        return 0;
}

/* The static build for --install static without a PATH: this binary when it is the static build, else
 * static/mayfly next to it (build/mayfly → build/static/mayfly, what `make static` makes). */
static int static_default(char *path, size_t n, char *err, size_t errlen) {
        char self[4096];
        ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
        if (l < 0)
                return -errno;
        self[l] = 0;
#ifdef MAYFLY_STATIC
        snprintf(path, n, "%s", self);
        return 0;
#else
        char *slash = strrchr(self, '/');
        snprintf(path, n, "%.*s/static/mayfly", slash ? (int)(slash - self) : 1, slash ? self : ".");
        if (access(path, X_OK) == 0)
                return 0;
        errf(err, errlen, "--install static: this mayfly is not the static build and %s does not exist: run the "
                              "static mayfly, name one (--install static=PATH), or build it (make static)", path);
        return -ENOENT;
#endif
}

/* --install static[=PATH]: the binary uploaded next to the job's sources under a name with its sha256 (a second
 * launch of the same binary uploads nothing), for the binary route from S3 with the instance role. */
static int upload_static(struct aws_ctx *c, cJSON *job, const char *path, struct userdata_opts *uo, char uri[2300],
                         char sha[65], char *err, size_t errlen) {
        char dflt[4096];
        int r = path ? 0 : static_default(dflt, sizeof dflt, err, errlen);
        if (r < 0)
                return r;
        path = path ? path : dflt;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        r = read_file_capped(path, LAUNCH_MAX_BINARY, &data, &len);
        if (r < 0 || len < 4 || memcmp(data, "\177ELF", 4) != 0) {
                errf(err, errlen, "--install static: %s is %s", path,
                         r < 0 ? strerror(-r) : "not an ELF executable");
                return r < 0 ? r : -EINVAL;
        }
        unsigned char md[32];
        crypto_sha256(data, len, md);
        hex_encode(md, sizeof md, sha);
        _cleanup_free_ char *bucket = NULL;
        char key[2200];
        r = sources_prefix(job, &bucket, key, sizeof key, err, errlen);
        if (r < 0)
                return r;
        snprintf(key + strlen(key), sizeof key - strlen(key), "mayfly-%s-%.16s", MAYFLY_VERSION, sha);
        snprintf(uri, 2300, "s3://%s/%s", bucket, key);
        struct http_client h;
        struct aws_result res = { 0 };
        uint64_t have = 0;
        r = http_client_init(&h);
        bool there = r == 0 && s3_head(c, &h, bucket, key, &have, NULL, &res) == 0 && have == len;
        http_client_free(&h);
        if (!there) {
                r = xfer_upload(c, path, bucket, key, NULL, &res);
                if (r < 0) {
                        errf(err, errlen, "--install static: uploading %s: %s", path, res.msg);
                        return r;
                }
        }
        fprintf(stderr, "mayfly: %s %s (sha256 %s)\n", there ? "installing the copy already in" : "uploaded it to",
                uri, sha);
        uo->route = INSTALL_BINARY;
        uo->url = uri;
        uo->sha256 = sha;
        uo->region = c->region;
        return 0;
}

struct launch_opts {
        const char *image, *profile, *key_name, *zone;
        const char *types[ASG_MAX_TYPES];
        size_t n_types;
        const char *subnets[ASG_MAX_SUBNETS];
        size_t n_subnets;
        const char *sg[LAUNCH_MAX_SG];
        size_t n_sg;
        long instances;         /* 0: not given (no group unless --recover) */
        long max_attempts;      /* 0: no limit */
        long hop_limit;
        bool spot, recover;
        const char *run_id;     /* --run-id: continue that run (its ledger: finished experiments are not redone) */
        bool dry_run;           /* --dry-run: the preflight only */
        const char *placement;  /* --placement-group STRATEGY: "cluster" (the only one); NULL: none */
        bool gang_sg;           /* --gang-sg: a security group of the run's own, all traffic between its members */
        bool efa;               /* --efa: the primary interface an Elastic Fabric Adapter */
};

/* An Auto Scaling group runs the job: --recover, or --instances (even 1). */
static bool wants_group(const struct launch_opts *lo) { return lo->recover || lo->instances > 0; }

static int run_instances(struct aws_ctx *c, const struct launch_opts *lo, const char *name, const char *run_id,
                         const char *ud_b64, struct xml_node **ret, struct aws_result *out) {
        struct kv p[EC2_MAX_PARAMS];
        size_t n = 0;
        char hops[16], sgk[LAUNCH_MAX_SG][48];
        snprintf(hops, sizeof hops, "%ld", lo->hop_limit);
#define P(k, v) (p[n++] = (struct kv){ (k), (v) })
        P("ImageId", lo->image);
        P("InstanceType", lo->types[0]);
        P("MinCount", "1");
        P("MaxCount", "1");
        P("UserData", ud_b64);
        P("InstanceInitiatedShutdownBehavior", "terminate");
        P("MetadataOptions.HttpTokens", "required");
        P("MetadataOptions.HttpEndpoint", "enabled");
        P("MetadataOptions.HttpPutResponseHopLimit", hops);
        P("TagSpecification.1.ResourceType", "instance");
        P("TagSpecification.1.Tag.1.Key", "mayfly:run");
        P("TagSpecification.1.Tag.1.Value", name);
        P("TagSpecification.1.Tag.2.Key", "Name");
        P("TagSpecification.1.Tag.2.Value", name);
        P("TagSpecification.1.Tag.3.Key", ASG_RUN_TAG);
        P("TagSpecification.1.Tag.3.Value", run_id);
        if (lo->profile)
                P(str_has_prefix(lo->profile, "arn:") ? "IamInstanceProfile.Arn" : "IamInstanceProfile.Name", lo->profile);
        if (lo->key_name)
                P("KeyName", lo->key_name);
        if (lo->n_subnets)
                P("SubnetId", lo->subnets[0]);
        if (lo->zone)
                P("Placement.AvailabilityZone", lo->zone);
        for (size_t i = 0; i < lo->n_sg; i++) {
                snprintf(sgk[i], sizeof sgk[i], "SecurityGroupId.%zu", i + 1);
                P(sgk[i], lo->sg[i]);
        }
        if (lo->spot) {
                P("InstanceMarketOptions.MarketType", "spot");
                P("InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time");
                P("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "terminate");
        }
#undef P
        struct http_client h;
        int r = http_client_init(&h);
        if (r == 0)
                r = ec2_call(c, &h, "RunInstances", p, n, ret, out);
        http_client_free(&h);
        return r;
}

/* Pure: "<job name>-<UTC yyyymmddThhmmssZ>-<6 hex>": sorted by start within the job's prefix, two launches in the
 * same second apart, and short enough that "mayfly-<run id>" is a launch template name (at most 128). */
static int make_run_id(const char *name, time_t t, const unsigned char rnd[3], char *out, size_t n) {
        struct tm tm;
        char ts[32], hex[7];
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
        hex_encode(rnd, 3, hex);
        return pathf(out, n, "%s-%s-%s", name, ts, hex);
}

/* The run this launch starts: the job's run_id when it names one (a run to continue: its ledger in S3 is picked up),
 * else a new one; `fleet` when a group runs it (and never a stale one from the file). Into the job object; what
 * the user should know once the launch worked into note. */
static int set_run(cJSON *job, const struct launch_opts *lo, char *run_id, size_t n, char *group, size_t gn,
                   char *note, size_t notelen, char *err, size_t errlen) {
        const char *given = lo->run_id ? lo->run_id
                                       : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "run_id"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "name"));
        unsigned char rnd[3] = { 0 };
        int r = 0;
        if (given && !job_run_id_ok(given)) {
                errf(err, errlen, "%s: '%.200s' is not a run id (1-128 characters of A-Z a-z 0-9 . _ -)",
                     lo->run_id ? "--run-id" : "$.run_id", given);
                return -EINVAL;
        }
        if (given) {
                r = pathf(run_id, n, "%s", given);
                errf(note, notelen, "continuing run %s (%s)", given, lo->run_id ? "--run-id" : "the job's run_id");
        } else if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
                r = -errno;
        else
                r = make_run_id(name ? name : "run", now_wall(), rnd, run_id, n);
        if (r == 0 && (pathf(group, gn, "mayfly-%s", run_id) < 0 ||
                       (wants_group(lo) && strlen(group) > LAUNCH_MAX_GROUP_NAME)))
                r = -ENAMETOOLONG;
        if (r == -ENAMETOOLONG)
                errf(err, errlen, "$.run_id: '%.200s' is too long%s", given ? given : run_id,
                     wants_group(lo) ? " to name the launch template 'mayfly-<run id>' (at most 121 characters)" : "");
        else if (r < 0)
                errf(err, errlen, "no random bytes for the run id: %s", strerror(-r));
        if (r < 0)
                return r == -ENAMETOOLONG ? -EINVAL : r;
        cJSON_DeleteItemFromObjectCaseSensitive(job, "run_id");
        if (!cJSON_AddStringToObject(job, "run_id", run_id))
                return -ENOMEM;
        if (cJSON_GetObjectItemCaseSensitive(job, "fleet")) {
                if (!wants_group(lo))
                        errf(note, notelen, "dropped the job's fleet: no group runs this launch");
                cJSON_DeleteItemFromObjectCaseSensitive(job, "fleet");
        }
        if (!wants_group(lo))
                return 0;
        cJSON *f = cJSON_AddObjectToObject(job, "fleet");
        if (!f || !cJSON_AddStringToObject(f, "group", group) || !cJSON_AddStringToObject(f, "launch_template", group) ||
            !cJSON_AddNumberToObject(f, "size", lo->instances ? (double)lo->instances : 1) ||
            !cJSON_AddNumberToObject(f, "max_attempts", (double)lo->max_attempts))
                return -ENOMEM;
        return 0;
}

/* What a failed launch created is deleted again; what cannot be is named, with the command that deletes it. The
 * placement group and security group last: a group deleted with ForceDelete terminates its instances first. */
static void undo(struct aws_ctx *c, struct http_client *h, const char *group, const char *template,
                 const struct gangnet *net) {
        struct aws_result res;
        char msg[1024];
        if (group && asg_delete(c, h, group, &res) < 0)
                log_error("the Auto Scaling group %s is left (%s): aws autoscaling delete-auto-scaling-group "
                          "--force-delete --auto-scaling-group-name %s", group, res.msg, group);
        if (template && ec2_delete_launch_template(c, h, template, &res) < 0)
                log_error("the launch template %s is left (%s): aws ec2 delete-launch-template "
                          "--launch-template-name %s", template, res.msg, template);
        if (net && (net->placement_group || net->security_group) &&
            gangnet_delete(c, h, net, group ? LAUNCH_UNDO_WAIT : 0, msg, sizeof msg) < 0)
                log_error("%s", msg);
}

/* The launch template and the group (MinSize 0, Max = Desired = size), AZRebalance suspended. */
/* A run continued (--run-id) may have left its group and template behind (a lost run): they are replaced, never a
 * reason to fail. A group of that name that is not this run's is another's: refused (-EEXIST, err says so). */
static int replace_leftovers(struct aws_ctx *c, struct http_client *h, const char *group, const char *run_id,
                             char *err, size_t errlen) {
        struct asg_info info;
        struct aws_result res = { 0 };
        if (asg_describe(c, h, group, &info, &res) == 0 && info.exists) {
                if (strcmp(info.run_id, run_id)) {
                        errf(err, errlen, "an Auto Scaling group %s exists and is not run %s's: refused", group, run_id);
                        return -EEXIST;
                }
                if (asg_delete(c, h, group, &res) < 0) {
                        errf(err, errlen, "replacing the run's leftover Auto Scaling group %s: %s", group, res.msg);
                        return -EIO;
                }
                fprintf(stderr, "mayfly: replaced the run's leftover Auto Scaling group %s\n", group);
                /* a delete takes a moment: the name is free once the group is gone */
                for (int i = 0; i < 60 && asg_describe(c, h, group, &info, &res) == 0 && info.exists; i++)
                        sleep(2);
        }
        if (ec2_launch_template_exists(c, h, group, &res) > 0) {
                if (ec2_delete_launch_template(c, h, group, &res) < 0) {
                        errf(err, errlen, "replacing the run's leftover launch template %s: %s", group, res.msg);
                        return -EIO;
                }
                fprintf(stderr, "mayfly: replaced the run's leftover launch template %s\n", group);
        }
        return 0;
}

/* --placement-group cluster and --gang-sg: the run's placement group and security group (both "mayfly-<run id>"),
 * before the template that names them; what was made is in *net (a failure undoes what came before it). */
static int make_gang_net(struct aws_ctx *c, struct http_client *h, const struct launch_opts *lo, const char *group,
                         const char *run_id, const char *name, struct gangnet *net, char *sg_id, size_t sg_len,
                         char *err, size_t errlen) {
        struct aws_result res = { 0 };
        char vpc[64];
        int r = 0;
        if (lo->placement) {
                r = ec2_create_placement_group(c, h, group, run_id, name, &res);
                if (r < 0) {
                        errf(err, errlen, "creating the placement group %s: %s", group, res.msg);
                        return r;
                }
                net->placement_group = group;
        }
        if (!lo->gang_sg)
                return 0;
        net->run_id = run_id; /* a group made whose rule was refused is found by its tag */
        r = ec2_vpc_of(c, h, lo->n_subnets ? lo->subnets[0] : NULL, vpc, sizeof vpc, &res);
        if (r == 0)
                r = ec2_create_gang_sg(c, h, group, vpc, run_id, name, sg_id, sg_len, &res);
        if (r == 0) {
                net->security_group = sg_id;
                return 0;
        }
        errf(err, errlen, "creating the security group %s: %s", group, res.msg);
        log_error("%s", err);
        err[0] = 0;   /* said; what follows is the clean-up */
        undo(c, h, NULL, NULL, net);
        return r;
}

/* The template, the group, AZRebalance suspended; a failure undoes what was made (net included). */
static int make_group(struct aws_ctx *c, struct http_client *h, const struct asg_template *t,
                      const struct asg_group *g, const struct gangnet *net, char *lt_id, size_t lt_len, char *err,
                      size_t errlen) {
        struct aws_result res = { 0 };
        int r = ec2_create_launch_template(c, h, t, lt_id, lt_len, &res);
        if (r == -EEXIST)
                return r;
        if (r < 0) {
                errf(err, errlen, "creating the launch template %s: %s", t->name, res.msg);
                if (net->placement_group || net->security_group) {
                        log_error("%s", err);
                        err[0] = 0;
                        undo(c, h, NULL, NULL, net);
                }
                return r;
        }
        r = asg_create(c, h, g, &res);
        if (r == 0) {
                r = asg_suspend(c, h, g->name, "AZRebalance", &res);
                if (r < 0)
                        errf(err, errlen, "suspending AZRebalance on the group %s: %s", g->name, res.msg);
        } else
                errf(err, errlen, "creating the Auto Scaling group %s: %s", g->name, res.msg);
        if (r < 0) {
                log_error("%s", err);
                err[0] = 0;   /* said; what follows is the clean-up */
                undo(c, h, g->name, t->name, net);
        }
        return r;
}

static void print_group(const struct launch_opts *lo, const char *run_id, const struct asg_group *g,
                        const char *lt_id, const struct gangnet *net) {
        printf("run:      %s\ngroup:    %s (%d x ", run_id, g->name, g->size);
        for (size_t i = 0; i < lo->n_types; i++)
                printf("%s%s", i ? " or " : "", lo->types[i]);
        printf("%s, launch template %s%s)\n", lo->spot ? ", spot" : "", lt_id, lo->efa ? ", EFA" : "");
        if (net->placement_group)
                printf("placement group: %s (%s)\n", net->placement_group, GANGNET_STRATEGY);
        if (net->security_group)
                printf("security group:  %s (all traffic between the run's instances)\n", net->security_group);
}

static int launch_group(struct aws_ctx *c, const struct launch_opts *lo, const char *name, const char *run_id,
                        bool continuing, const char *group, const char *ud, size_t udlen, char *sg_id, size_t sg_len,
                        char *err, size_t errlen) {
        struct asg_group g = { .name = group, .launch_template = group, .size = lo->instances ? (int)lo->instances : 1,
                               .instance_types = lo->types, .n_types = lo->n_types, .subnets = lo->subnets,
                               .n_subnets = lo->n_subnets, .availability_zone = lo->zone, .spot = lo->spot,
                               .run_id = run_id };
        const char *sgs[LAUNCH_MAX_SG + 1];
        for (size_t i = 0; i < lo->n_sg; i++)
                sgs[i] = lo->sg[i];
        /* a mixed policy asks for spot in its instances distribution; AWS refuses a template that asks too */
        struct asg_template t = { .name = group, .image_id = lo->image, .instance_type = lo->types[0], .user_data = ud,
                                  .user_data_len = udlen, .iam_instance_profile = lo->profile, .key_name = lo->key_name,
                                  .security_groups = sgs, .n_security_groups = lo->n_sg,
                                  .imds_hop_limit = (int)lo->hop_limit, .spot = lo->spot && !asg_is_mixed(&g),
                                  .run_id = run_id, .job = name, .placement_group = lo->placement ? group : NULL,
                                  .efa = lo->efa };
        struct gangnet net = { 0 };
        struct http_client h;
        char lt_id[64] = "";
        int r = http_client_init(&h);
        if (r < 0) {
                errf(err, errlen, "cannot set up HTTP: %s", strerror(-r));
                return r;
        }
        r = continuing ? replace_leftovers(c, &h, group, run_id, err, errlen) : 0;
        if (r == 0)
                r = make_gang_net(c, &h, lo, group, run_id, name, &net, sg_id, sg_len, err, errlen);
        if (r == 0 && net.security_group)
                sgs[t.n_security_groups++] = net.security_group;
        if (r == 0)
                r = make_group(c, &h, &t, &g, &net, lt_id, sizeof lt_id, err, errlen);
        http_client_free(&h);
        if (r == 0)
                print_group(lo, run_id, &g, lt_id, &net);
        return r;
}

/* Options that need each other, checked before anything is uploaded. */
static int check_opts(const struct launch_opts *lo) {
        if (!wants_group(lo) && (lo->n_types > 1 || lo->n_subnets > 1)) {
                log_error("several --instance-type or --subnet-id need an Auto Scaling group: add --recover or "
                          "--instances N");
                return -EINVAL;
        }
        if (!wants_group(lo) && lo->max_attempts) {
                log_error("--max-attempts counts attempts across a group's instances: add --recover or --instances N");
                return -EINVAL;
        }
        if (lo->zone && lo->n_subnets) {
                log_error("--availability-zone and --subnet-id: the subnets decide the zones, drop one");
                return -EINVAL;
        }
        if (lo->placement && strcmp(lo->placement, GANGNET_STRATEGY)) {
                log_error("--placement-group %s: only cluster is supported (the instances close together in one "
                          "zone, for a gang's network)", lo->placement);
                return -EINVAL;
        }
        if (!wants_group(lo) && (lo->placement || lo->gang_sg || lo->efa)) {
                log_error("--placement-group, --gang-sg and --efa are for a gang of instances: add --instances N");
                return -EINVAL;
        }
        if (lo->gang_sg && lo->n_sg >= LAUNCH_MAX_SG) {
                log_error("--gang-sg adds a security group: at most %d --security-group-id with it", LAUNCH_MAX_SG - 1);
                return -EINVAL;
        }
        return 0;
}

/* 0, 1 for --help, 2 for the usage, -EINVAL when an option's value was wrong (said). */
static int parse_launch_args(int argc, char **argv, struct launch_opts *lo, struct userdata_opts *uo,
                             const char **install, const char **env) {
        static const struct option opts[] = {
                { "image-id", required_argument, NULL, 'a' },  { "instance-type", required_argument, NULL, 't' },
                { "spot", no_argument, NULL, 'S' },             { "subnet-id", required_argument, NULL, 'n' },
                { "security-group-id", required_argument, NULL, 'g' },
                { "iam-instance-profile", required_argument, NULL, 'p' },
                { "key-name", required_argument, NULL, 'k' },   { "count", required_argument, NULL, 'c' },
                { "install", required_argument, NULL, 'i' },   { "sha256", required_argument, NULL, 's' },
                { "env", required_argument, NULL, 'e' },        { "backstop-margin", required_argument, NULL, 'm' },
                { "imds-hop-limit", required_argument, NULL, 'H' },
                { "recover", no_argument, NULL, 'R' },          { "instances", required_argument, NULL, 'N' },
                { "max-attempts", required_argument, NULL, 'M' },
                { "availability-zone", required_argument, NULL, 'z' },
                { "run-id", required_argument, NULL, 'r' },     { "dry-run", no_argument, NULL, 'D' },
                { "placement-group", required_argument, NULL, 'P' }, { "gang-sg", no_argument, NULL, 'G' },
                { "efa", no_argument, NULL, 'E' },
                { "help", no_argument, NULL, 'h' },             { 0 } };
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'a': lo->image = optarg; break;
                case 'r': lo->run_id = optarg; break;
                case 'D': lo->dry_run = true; break;
                case 'P': lo->placement = optarg; break;
                case 'G': lo->gang_sg = true; break;
                case 'E': lo->efa = true; break;
                case 't':
                        if (lo->n_types >= ASG_MAX_TYPES) {
                                log_error("at most %d --instance-type", ASG_MAX_TYPES);
                                return -EINVAL;
                        }
                        lo->types[lo->n_types++] = optarg;
                        break;
                case 'S': lo->spot = true; break;
                case 'n':
                        if (lo->n_subnets >= ASG_MAX_SUBNETS) {
                                log_error("at most %d --subnet-id", ASG_MAX_SUBNETS);
                                return -EINVAL;
                        }
                        lo->subnets[lo->n_subnets++] = optarg;
                        break;
                case 'g':
                        if (lo->n_sg >= LAUNCH_MAX_SG) {
                                log_error("too many --security-group-id");
                                return -EINVAL;
                        }
                        lo->sg[lo->n_sg++] = optarg;
                        break;
                case 'p': lo->profile = optarg; break;
                case 'k': lo->key_name = optarg; break;
                case 'z': lo->zone = optarg; break;
                case 'R': lo->recover = true; break;
                case 'c':
                        log_error("--count is gone (each instance ran the whole job as a run of its own): --instances N "
                                  "runs one job over N instances, one run");
                        return -EINVAL;
                case 'N':
                        if (parse_int(optarg, 1, ASG_MAX_MEMBERS, &lo->instances) < 0) {
                                log_error("--instances must be 1..%d", ASG_MAX_MEMBERS);
                                return -EINVAL;
                        }
                        break;
                case 'M':
                        if (parse_int(optarg, 1, 1000, &lo->max_attempts) < 0) {
                                log_error("--max-attempts must be 1..1000");
                                return -EINVAL;
                        }
                        break;
                case 'H':
                        if (parse_int(optarg, 1, 64, &lo->hop_limit) < 0) {
                                log_error("--imds-hop-limit must be 1..64");
                                return -EINVAL;
                        }
                        break;
                case 'i': *install = optarg; break;
                case 's': uo->sha256 = optarg; break;
                case 'm':
                        if (userdata_set_margin(optarg, uo) < 0)
                                return -EINVAL;
                        break;
                case 'e':
                        if (uo->n_env >= USERDATA_MAX_ENV)
                                return -EINVAL;
                        env[uo->n_env++] = optarg;
                        break;
                case 'h': return 1;
                default: return 2;
                }
        }
        return 0;
}

/* A run continued (--run-id, the job's run_id) must not have ended: its agents would only find it over. */
static int check_not_ended(struct aws_ctx *c, const cJSON *job, const char *run_id, char *err, size_t errlen) {
        const char *results = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "results"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "name"));
        _cleanup_free_ char *bucket = NULL, *prefix = NULL, *body = NULL;
        char key[S3_MAX_KEY + 1], tag[128];
        if (!results || !name || s3_parse_uri(results, &bucket, &prefix, err, errlen) < 0 ||
            pathf(key, sizeof key, "%s%s%s/%s/ledger/end.json", prefix, *prefix && !str_has_suffix(prefix, "/") ? "/" : "",
                  name, run_id) < 0)
                return 0; /* the job's own check says what is wrong with it */
        struct http_client h;
        struct aws_result out = { 0 };
        int r = http_client_init(&h);
        if (r == 0)
                r = s3cas_get(c, &h, bucket, key, &body, tag, &out);
        http_client_free(&h);
        if (r < 0)
                return 0; /* not ended (or not readable: the agents will find out) */
        _cleanup_(cjson_deletep) cJSON *o = cJSON_Parse(body);
        const char *oc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "outcome"));
        errf(err, errlen, "run %s has ended (%s): it cannot go on; launch without --run-id for a new run", run_id,
             oc ? oc : "?");
        return -EPERM;
}

/* launch.json under the run's prefix: the run is visible (status, logs, cancel) before its first instance
 * reports. What was launched, by whom, when. */
static int write_launch_json(struct aws_ctx *c, const cJSON *job, const struct launch_opts *lo, const char *run_id,
                             const char *group, const char *sg_id, const struct xml_node *instances, char *err,
                             size_t errlen) {
        const char *results = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "results"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "name"));
        _cleanup_free_ char *bucket = NULL, *prefix = NULL;
        char key[S3_MAX_KEY + 1], arn[600] = "", why[512];
        if (!results || !name || s3_parse_uri(results, &bucket, &prefix, err, errlen) < 0)
                return -EINVAL;
        if (pathf(key, sizeof key, "%s%s%s/%s/launch.json", prefix, *prefix && !str_has_suffix(prefix, "/") ? "/" : "",
                  name, run_id) < 0)
                return -ENAMETOOLONG;
        if (sts_caller_arn(c, arn, sizeof arn, why, sizeof why) < 0)
                snprintf(arn, sizeof arn, "unknown (%s)", why);
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "run_id", run_id);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "region", c->region);
        cJSON_AddStringToObject(o, "launched_by", arn);
        char ts[32];
        time_t t = now_wall();
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(o, "launched", ts);
        cJSON_AddBoolToObject(o, "spot", lo->spot);
        cJSON *types = cJSON_AddArrayToObject(o, "instance_types");
        for (size_t i = 0; i < lo->n_types; i++)
                cJSON_AddItemToArray(types, cJSON_CreateString(lo->types[i]));
        if (wants_group(lo)) {
                cJSON_AddStringToObject(o, "group", group);
                cJSON_AddStringToObject(o, "launch_template", group);
                cJSON_AddNumberToObject(o, "size", lo->instances > 0 ? (double)lo->instances : 1);
                /* what `mayfly cancel` deletes once the instances are gone */
                if (lo->placement)
                        cJSON_AddStringToObject(o, "placement_group", group);
                if (sg_id && *sg_id)
                        cJSON_AddStringToObject(o, "security_group", sg_id);
                if (lo->efa)
                        cJSON_AddBoolToObject(o, "efa", true);
        } else {
                cJSON *ids = cJSON_AddArrayToObject(o, "instances");
                for (const struct xml_node *it = xml_child(xml_child(instances, "instancesSet"), "item"); it;
                     it = xml_next_named(it))
                        if (xml_text(it, "instanceId"))
                                cJSON_AddItemToArray(ids, cJSON_CreateString(xml_text(it, "instanceId")));
        }
        _cleanup_free_ char *text = cJSON_Print(o);
        if (!text)
                return -ENOMEM;
        struct http_client h;
        struct aws_result out = { 0 };
        int r = http_client_init(&h);
        if (r == 0)
                r = s3_put(c, &h, bucket, key, text, -1, 0, strlen(text), "application/json", NULL, NULL, &out);
        http_client_free(&h);
        if (r < 0)
                errf(err, errlen, "writing s3://%s/%s: %s", bucket, key, out.msg);
        return r;
}

/* Before anything is asked of AWS: every experiment's gang fits the instances launched (one line naming the
 * experiment and both numbers), and a gang without --gang-sg is told what its security groups must allow. */
static int gang_checks(const cJSON *job, const struct launch_opts *lo) {
        char err[512];
        int code = preflight_gang_fits(job, lo->instances, err, sizeof err);
        if (code) {
                log_error("%s", err);
                return code;
        }
        const cJSON *port = cJSON_GetObjectItemCaseSensitive(job, "rendezvous_port");
        if (preflight_max_nodes(job) > 1 && !lo->gang_sg)
                fprintf(stderr, "mayfly: note: a gang's instances talk to each other: the security groups must allow "
                        "traffic between them (rendezvous_port %d, and the NCCL/gloo ports), or add --gang-sg\n",
                        cJSON_IsNumber(port) ? port->valueint : JOB_RENDEZVOUS_PORT);
        return 0;
}

int cmd_launch(int argc, char **argv) {
        static const char usage[] =
                "usage: mayfly launch JOB --image-id AMI --instance-type TYPE... [--spot] [--subnet-id ID]...\n"
                "       [--recover [--max-attempts N]] [--instances N] [--availability-zone AZ]\n"
                "       [--security-group-id ID]... [--iam-instance-profile NAME|ARN] [--key-name NAME]\n"
                "       [--install preinstalled|static[=PATH]|deb=SRC|rpm=SRC|binary=SRC [--sha256 HEX]]\n"
                "       [--env KEY=VALUE]... [--backstop-margin DURATION] [--imds-hop-limit N] [--run-id ID]\n"
                "       [--placement-group cluster] [--gang-sg] [--efa] [--dry-run]\n\n"
                "  Launches what runs JOB and ends itself: a local directory as `source` is packed and uploaded\n"
                "  first, the job gets a run id (its results go to <results><name>/<run id>/), and the rendered\n"
                "  user-data starts instances with InstanceInitiatedShutdownBehavior=terminate, IMDSv2 required\n"
                "  with a hop limit of 1 (--imds-hop-limit 2 lets containers on the instance reach IMDS, and the\n"
                "  role's credentials), tagged mayfly:run and mayfly:run-id.\n"
                "  Without --recover or --instances: one instance (RunInstances); prints its id.\n"
                "  --recover: an Auto Scaling group of one from a launch template, so that an instance lost to a\n"
                "  spot interruption is replaced and the replacement resumes the run; --max-attempts N ends the\n"
                "  run `interrupted` once an experiment was started N times. --instances N: one run over a group of\n"
                "  N (the instances share the experiments). --instance-type and --subnet-id may repeat (a group\n"
                "  then takes the types and subnets with a mixed-instances policy, spot price-capacity-optimized).\n"
                "  The agent that ends the run deletes the group and the template. Prints the run id, the group\n"
                "  and the results URI.\n"
                "  Before anything is uploaded or created it checks the results location (a probe written and\n"
                "  deleted), an S3 source, the instance profile, the image and its architecture, where each\n"
                "  type is offered, and the EC2 permissions (DryRun); --dry-run does only that.\n"
                "  --run-id ID continues that run (a LOST one, say): its finished experiments are not run again,\n"
                "  an interrupted one resumes from its checkpoint; a group and template it left are replaced.\n"
                "  A gang (an experiment's \"nodes\": K) needs --instances K or more, checked first. With --instances:\n"
                "  --placement-group cluster puts the instances in a cluster placement group mayfly-<run id> (close\n"
                "  together in one zone); --gang-sg makes a security group mayfly-<run id> that lets the run's\n"
                "  instances reach each other (all traffic from its members), besides any --security-group-id;\n"
                "  --efa makes the primary interface an Elastic Fabric Adapter (every type must have one). They go\n"
                "  once the run's instances are gone: `mayfly cancel` deletes them (EC2 keeps them while an\n"
                "  instance is in them).\n"
                "  --install static uploads the static build (this binary when it is one, else static/mayfly\n"
                "  next to it, or PATH) next to the job's sources and pins its sha256; the instance fetches it\n"
                "  with its role.\n";
        struct launch_opts lo = { .hop_limit = LAUNCH_HOP_LIMIT };
        const char *env[USERDATA_MAX_ENV];
        struct userdata_opts uo = { .route = INSTALL_PREINSTALLED, .margin = USERDATA_BACKSTOP_MARGIN, .env = env };
        const char *install = NULL;
        int r = parse_launch_args(argc, argv, &lo, &uo, &install, env);
        if (r == 1) {
                fputs(usage, stdout);
                return EXIT_OK;
        }
        if (r == 2 || (r == 0 && (argc - optind != 1 || !lo.image || !lo.n_types))) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        if (r == 0)
                r = check_opts(&lo);
        if (r < 0)
                return EXIT_USAGE;
        bool want_static = install && (!strcmp(install, "static") || str_has_prefix(install, "static="));
        const char *static_path = want_static && install[6] ? install + 7 : NULL;
        if (want_static && uo.sha256) {
                log_error("--install static computes the sha256 itself: drop --sha256");
                return EXIT_USAGE;
        }
        if (!want_static && install && userdata_parse_install(install, &uo) < 0) {
                log_error("%s, or static[=PATH]", USERDATA_INSTALL_USAGE);
                return EXIT_USAGE;
        }
        if (!want_static && userdata_check_sha256(&uo) < 0)
                return EXIT_USAGE;
        /* the spec's rules first, every error at once (mayfly check's), a local source from the job file's folder */
        _cleanup_(cjson_deletep) cJSON *job = NULL;
        int rc = cli_load_job(argv[optind], &job, NULL);
        if (rc)
                return rc;
        _cleanup_free_ char *text = cJSON_PrintUnformatted(job);
        if (!text)
                return EXIT_FAIL;
        char what[128];
        if (userdata_find_secret(text, what, sizeof what) > 0) {
                /* before anything is asked of AWS */
                log_error("the job spec contains %s: user-data is readable by every process on the instance; let "
                          "the instance role provide credentials", what);
                return EXIT_USAGE;
        }
        rc = gang_checks(job, &lo);
        if (rc)
                return rc;
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        char err[1024] = "", note[256] = "", run_id[JOB_RUN_ID_MAX + 1], group[JOB_RUN_ID_MAX + 16], sg_id[32] = "";
        _cleanup_free_ char *ud = NULL, *b64 = NULL, *jtext = NULL, *gz = NULL;
        size_t udlen = 0, gzlen = 0;
        struct aws_result res = { 0 };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        char static_uri[2300], static_sha[65];
        bool continuing = lo.run_id || cJSON_GetObjectItemCaseSensitive(job, "run_id");
        r = set_run(job, &lo, run_id, sizeof run_id, group, sizeof group, note, sizeof note, err, sizeof err);
        if (r == 0)
                r = aws_region(&c, err, sizeof err);
        if (r == 0 && continuing)
                r = check_not_ended(&c, job, run_id, err, sizeof err);
        if (r == 0) {
                /* before anything is uploaded or created: every refusal here costs nothing */
                const char *source = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "source"));
                const char *inputs[JOB_MAX_INPUTS];
                size_t n_inputs = 0;
                const cJSON *ins = cJSON_GetObjectItemCaseSensitive(job, "inputs"), *in;
                cJSON_ArrayForEach(in, ins) {
                        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "source"));
                        if (s && n_inputs < JOB_MAX_INPUTS)
                                inputs[n_inputs++] = s;
                }
                struct preflight pf = { .results = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "results")),
                                        .source = source && str_has_prefix(source, "s3://") ? source : NULL,
                                        .inputs = inputs, .n_inputs = n_inputs,
                                        .profile = lo.profile, .image = lo.image, .types = lo.types,
                                        .n_types = lo.n_types, .subnets = lo.subnets, .n_subnets = lo.n_subnets,
                                        .zone = lo.zone, .group = wants_group(&lo), .install_given = install != NULL,
                                        .cluster = lo.placement != NULL, .gang_sg = lo.gang_sg, .efa = lo.efa };
                int code = preflight_run(&c, &pf, err, sizeof err);
                if (code || lo.dry_run) {
                        if (code)
                                log_error("%s", err);
                        else
                                printf("preflight: ok (results, source, inputs, instance profile, image, instance types, "
                                       "permissions); --dry-run: nothing launched\n");
                        aws_ctx_free(&c);
                        return code;
                }
        }
        if (r == 0)
                r = upload_local_source(&c, job, err, sizeof err);
        if (r == 0 && want_static)
                r = upload_static(&c, job, static_path, &uo, static_uri, static_sha, err, sizeof err);
        char warning[512] = "";
        uo.warning = warning;
        uo.warning_len = sizeof warning;
        if (r == 0) {
                jtext = cJSON_Print(job);
                r = jtext ? userdata_render(jtext, strlen(jtext), &uo, &ud, &udlen, err, sizeof err) : -ENOMEM;
        }
        if (warning[0])
                log_error("warning: %s", warning);
        if (r == 0 && udlen > USERDATA_MAX_RAW) {
                r = userdata_gzip(ud, udlen, &gz, &gzlen);
                if (r == 0 && gzlen > USERDATA_MAX_RAW) {
                        snprintf(err, sizeof err, "user-data is %zu bytes even gzipped; EC2 allows %d", gzlen,
                                 USERDATA_MAX_RAW);
                        r = -E2BIG;
                }
        }
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "name"));
        if (r == 0 && wants_group(&lo))
                r = launch_group(&c, &lo, name, run_id, continuing, group, gz ? gz : ud, gz ? gzlen : udlen, sg_id,
                                 sizeof sg_id, err, sizeof err);
        else if (r == 0) {
                r = base64_encode((const unsigned char *)(gz ? gz : ud), gz ? gzlen : udlen, &b64);
                if (r == 0)
                        r = run_instances(&c, &lo, name, run_id, b64, &x, &res);
                if (r < 0)
                        snprintf(err, sizeof err, "%s", res.msg);
                const struct xml_node *set = xml_child(x, "instancesSet");
                for (const struct xml_node *it = xml_child(set, "item"); r == 0 && it; it = xml_next_named(it))
                        printf("%s\n", xml_text(it, "instanceId") ? xml_text(it, "instanceId") : "?");
                if (r == 0)
                        printf("run:      %s\n", run_id);
        }
        if (r == 0 && write_launch_json(&c, job, &lo, run_id, group, sg_id, x, err, sizeof err) < 0) {
                /* launched all the same: only the view before the first status is missing */
                log_error("warning: %s", err);
                err[0] = 0;
        }
        if (r == 0) {
                const char *results = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "results"));
                printf("results:  %s%s%s/%s/\n", results, str_has_suffix(results, "/") ? "" : "/", name, run_id);
                if (note[0])
                        fprintf(stderr, "mayfly: %s\n", note);
        } else if (err[0])
                log_error("%s", err);
        aws_ctx_free(&c);
        return r == -EPERM ? EXIT_USAGE : exit_code_for(r);
}
