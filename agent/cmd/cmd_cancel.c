/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_cancel.c — `mayfly cancel RESULTS_URI [--wait]`: a run ended from the laptop. The cancel record
 * (ledger/cancel.json, written once) reaches every instance of the run at its next heartbeat: the running
 * experiments get SIGTERM and their stop grace, their checkpoints and logs ship, nothing more starts, the run ends
 * `cancelled`, its group and template go. A run with no live instance (lost, or launched but never booted) is
 * ended from here: its instances terminated, its group and template deleted, its final status written. */
#include <getopt.h>

#include "aws/autoscaling.h"
#include "aws/ec2.h"
#include "aws/gangnet.h"
#include "aws/s3.h"
#include "aws/s3cas.h"
#include "aws/sts.h"
#include "caps.h"
#include "cmd/cli.h"
#include "jsonx.h"
#include "run/base/job.h"
#include "run/fleet/ledger.h"

#define CANCEL_WAIT_MAX (30 * 60) /* seconds --wait waits for the final status at most */
#define CANCEL_POLL 3
#define CANCEL_NET_WAIT 300       /* seconds the placement group and security group wait for the instances to end */

/* A run as the laptop finds it under its URI: launch.json (what was launched), else status.json, else a ledger. */
struct run_ref {
        char *bucket;
        char prefix[2048];                /* the run's key prefix, ending in '/' */
        char run_id[JOB_RUN_ID_MAX + 1];
        char group[JOB_RUN_ID_MAX + 16];  /* the Auto Scaling group and launch template: "mayfly-<run id>" */
        char instances[16][32];           /* what RunInstances started (launch.json; no group) */
        size_t n_instances;
        char placement_group[JOB_RUN_ID_MAX + 16]; /* launch.json: --placement-group's, "" when none */
        char security_group[32];          /* launch.json: --gang-sg's id, "" when none */
};

static void str_of(const cJSON *o, const char *k, char *dst, size_t n) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
        if (v && strlen(v) < n)
                snprintf(dst, n, "%s", v);
}

/* The run under uri; -MF_ENOTFOUND (out->msg says so) when nothing of a run is there. */
static int find_run(struct aws_ctx *c, struct http_client *h, const char *uri, struct run_ref *ref,
                    struct aws_result *out) {
        _cleanup_free_ char *key = NULL;
        int r = s3_parse_uri(uri, &ref->bucket, &key, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        if (pathf(ref->prefix, sizeof ref->prefix, "%s%s", key, *key && !str_has_suffix(key, "/") ? "/" : "") < 0)
                return -ENAMETOOLONG;
        static const char *const sources[] = { "launch.json", "status.json" };
        for (size_t i = 0; i < ARRAY_SIZE(sources); i++) {
                char k[S3_MAX_KEY + 1];
                _cleanup_free_ char *body = NULL;
                size_t len = 0;
                struct aws_result o2 = { 0 };
                if (pathf(k, sizeof k, "%s%s", ref->prefix, sources[i]) < 0 ||
                    s3_get_capped(c, h, ref->bucket, k, CAP_STATUS_JSON, "a status.json or launch.json", &body, &len, &o2) < 0)
                        continue;
                _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(body, len);
                str_of(o, "run_id", ref->run_id, sizeof ref->run_id);
                str_of(o, "group", ref->group, sizeof ref->group);
                str_of(o, "placement_group", ref->placement_group, sizeof ref->placement_group);
                str_of(o, "security_group", ref->security_group, sizeof ref->security_group);
                const cJSON *x;
                cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, "instances"))
                        if (cJSON_IsString(x) && ref->n_instances < ARRAY_SIZE(ref->instances))
                                snprintf(ref->instances[ref->n_instances++], sizeof ref->instances[0], "%s",
                                         x->valuestring);
                if (ref->run_id[0])
                        break;
        }
        if (!ref->run_id[0]) {
                struct ledger_liveness lv;
                if (ledger_liveness(c, ref->bucket, ref->prefix, &lv, out) < 0 || !lv.has_ledger) {
                        errf(out->msg, sizeof out->msg, "no run under %s (no launch.json, status.json or ledger/): "
                             "give the run's URI as `mayfly launch` printed it", uri);
                        return -MF_ENOTFOUND;
                }
                /* the prefix's last folder is the run id */
                size_t l = strlen(ref->prefix) - 1;
                const char *b = ref->prefix + l;
                while (b > ref->prefix && b[-1] != '/')
                        b--;
                snprintf(ref->run_id, sizeof ref->run_id, "%.*s", (int)(ref->prefix + l - b), b);
        }
        if (!ref->group[0])
                snprintf(ref->group, sizeof ref->group, "mayfly-%s", ref->run_id);
        return 0;
}

static int put_record(struct aws_ctx *c, struct http_client *h, const struct run_ref *ref, const char *name,
                      cJSON *o, struct aws_result *out) {
        char key[S3_MAX_KEY + 1], tag[128];
        _cleanup_free_ char *body = cJSON_PrintUnformatted(o);
        if (!body)
                return -ENOMEM;
        if (pathf(key, sizeof key, "%sledger/%s", ref->prefix, name) < 0)
                return -ENAMETOOLONG;
        return s3cas_put(c, h, ref->bucket, key, body, NULL, true, tag, out);
}

static int get_record(struct aws_ctx *c, struct http_client *h, const struct run_ref *ref, const char *name,
                      cJSON **ret, struct aws_result *out) {
        char key[S3_MAX_KEY + 1], tag[128];
        _cleanup_free_ char *body = NULL;
        if (pathf(key, sizeof key, "%sledger/%s", ref->prefix, name) < 0)
                return -ENAMETOOLONG;
        int r = s3cas_get(c, h, ref->bucket, key, &body, tag, out);
        if (r == 0)
                *ret = cJSON_Parse(body);
        return r;
}

/* The final status.json written from here: the last one the run wrote (or a new one), ended `cancelled`. */
static int final_status(struct aws_ctx *c, struct http_client *h, const struct run_ref *ref, const char *by,
                        struct aws_result *out) {
        char key[S3_MAX_KEY + 1], ts[32];
        if (pathf(key, sizeof key, "%sstatus.json", ref->prefix) < 0)
                return -ENAMETOOLONG;
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct aws_result o2 = { 0 };
        _cleanup_(cjson_deletep) cJSON *o = s3_get_capped(c, h, ref->bucket, key, CAP_STATUS_JSON, "a status.json", &body, &len, &o2) == 0
                                                    ? cJSON_ParseWithLength(body, len) : NULL;
        if (!cJSON_IsObject(o)) {
                cJSON_Delete(o);
                o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "run_id", ref->run_id);
                char uri[2200];
                snprintf(uri, sizeof uri, "s3://%s/%s", ref->bucket, ref->prefix);
                cJSON_AddStringToObject(o, "results", uri);
        }
        time_t t = now_wall();
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        static const struct {
                const char *k, *v;
        } set[] = { { "outcome", "cancelled" }, { "reason", "cancelled" }, { "phase", "DONE" } };
        for (size_t i = 0; i < ARRAY_SIZE(set); i++) {
                cJSON_DeleteItemFromObjectCaseSensitive(o, set[i].k);
                cJSON_AddStringToObject(o, set[i].k, set[i].v);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(o, "cancelled_by");
        cJSON_AddStringToObject(o, "cancelled_by", by);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "updated");
        cJSON_AddStringToObject(o, "updated", ts);
        _cleanup_free_ char *text = cJSON_Print(o);
        if (!text)
                return -ENOMEM;
        return s3_put(c, h, ref->bucket, key, text, -1, 0, strlen(text), "application/json", NULL, NULL, out);
}

/* The run's placement group and security group (launch.json names them), once its instances have left them: EC2
 * refuses while one is in them, so the deletes are tried again until CANCEL_NET_WAIT. */
static int end_gang_net(struct aws_ctx *c, struct http_client *h, const struct run_ref *ref) {
        if (!ref->placement_group[0] && !ref->security_group[0])
                return 0;
        struct gangnet net = { .placement_group = ref->placement_group[0] ? ref->placement_group : NULL,
                               .security_group = ref->security_group[0] ? ref->security_group : NULL,
                               .run_id = ref->security_group[0] ? ref->run_id : NULL };
        char msg[2048];
        printf("deleting the run's %s once its instances have left %s (at most %d minutes)\n",
               net.placement_group && net.security_group ? "placement group and security group"
               : net.placement_group ? "placement group" : "security group",
               net.placement_group && net.security_group ? "them" : "it", CANCEL_NET_WAIT / 60);
        fflush(stdout);
        int r = gangnet_delete(c, h, &net, CANCEL_NET_WAIT, msg, sizeof msg);
        if (r < 0)
                log_error("%s", msg);
        else
                printf("%s\n", msg);
        return r;
}

/* No instance of the run is alive: what is left of it goes from here, and its end and final status are written. */
static int end_from_here(struct aws_ctx *c, struct http_client *h, const struct run_ref *ref, const char *by) {
        struct aws_result out = { 0 };
        _cleanup_(cjson_deletep) cJSON *end = cJSON_CreateObject();
        cJSON_AddStringToObject(end, "outcome", "cancelled");
        cJSON_AddStringToObject(end, "reason", "cancelled");
        cJSON_AddStringToObject(end, "instance", "laptop");
        cJSON_AddNumberToObject(end, "time", (double)now_wall());
        int r = put_record(c, h, ref, "end.json", end, &out);
        if (r < 0 && r != -MF_EPRECOND) {
                log_error("writing the run's end record: %s", out.msg);
                return r;
        }
        /* the group first, so that nothing replaces what is terminated */
        struct asg_info info;
        if (asg_describe(c, h, ref->group, &info, &out) == 0 && info.exists) {
                if ((r = asg_delete(c, h, ref->group, &out)) < 0) {
                        log_error("deleting the Auto Scaling group %s: %s", ref->group, out.msg);
                        return r;
                }
                printf("deleted the Auto Scaling group %s\n", ref->group);
        }
        if (ec2_launch_template_exists(c, h, ref->group, &out) > 0) {
                if ((r = ec2_delete_launch_template(c, h, ref->group, &out)) < 0) {
                        log_error("deleting the launch template %s: %s", ref->group, out.msg);
                        return r;
                }
                printf("deleted the launch template %s\n", ref->group);
        }
        char ids[64][32];
        size_t n = 0;
        if ((r = ec2_instances_of_run(c, h, ref->run_id, false, ids, NULL, ARRAY_SIZE(ids), &n, &out)) < 0) {
                log_error("listing the run's instances: %s", out.msg);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                char state[64];
                if ((r = ec2_terminate(c, h, ids[i], false, state, sizeof state, &out)) < 0) {
                        log_error("terminating %s: %s", ids[i], out.msg);
                        return r;
                }
                printf("terminated %s (%s)\n", ids[i], state);
        }
        if ((r = final_status(c, h, ref, by, &out)) < 0) {
                log_error("writing the final status.json: %s", out.msg);
                return r;
        }
        if ((r = end_gang_net(c, h, ref)) < 0)
                return r;
        printf("the run is cancelled; nothing of it is left in EC2\n");
        return 0;
}

/* --wait: until the run's final status (outcome other than running), at most CANCEL_WAIT_MAX. */
static int wait_final(struct aws_ctx *c, struct http_client *h, const struct run_ref *ref) {
        char key[S3_MAX_KEY + 1];
        if (pathf(key, sizeof key, "%sstatus.json", ref->prefix) < 0)
                return -ENAMETOOLONG;
        for (double until = now_mono() + CANCEL_WAIT_MAX; now_mono() < until; sleep(CANCEL_POLL)) {
                _cleanup_free_ char *body = NULL;
                size_t len = 0;
                struct aws_result out = { 0 };
                if (s3_get_capped(c, h, ref->bucket, key, CAP_STATUS_JSON, "a status.json", &body, &len, &out) < 0)
                        continue;
                _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(body, len);
                const char *oc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "outcome"));
                if (oc && strcmp(oc, "running")) {
                        printf("final status: %s\n", oc);
                        return 0;
                }
        }
        log_error("no final status within %d minutes: `mayfly status` tells where the run is", CANCEL_WAIT_MAX / 60);
        return -ETIMEDOUT;
}

/* The cancel record, once; a second cancel finds the first. *first: this call wrote it. */
static int request(struct aws_ctx *c, struct http_client *h, const struct run_ref *ref, const char *arn, bool *first) {
        struct aws_result out = { 0 };
        _cleanup_(cjson_deletep) cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "by", arn);
        cJSON_AddNumberToObject(rec, "time", (double)now_wall());
        int r = put_record(c, h, ref, "cancel.json", rec, &out);
        *first = r == 0;
        if (r == -MF_EPRECOND) {
                _cleanup_(cjson_deletep) cJSON *old = NULL;
                char by[600] = "someone";
                if (get_record(c, h, ref, "cancel.json", &old, &out) == 0)
                        str_of(old, "by", by, sizeof by);
                printf("run %s was already cancelled, by %s\n", ref->run_id, by);
                return 0;
        }
        if (r < 0)
                log_error("writing the cancel record: %s", out.msg);
        else
                printf("cancel requested for run %s (by %s)\n", ref->run_id, arn);
        return r;
}

static int cancel_run(struct aws_ctx *c, struct http_client *h, const char *uri, bool wait) {
        struct run_ref ref = { 0 };
        struct aws_result out = { 0 };
        int r = find_run(c, h, uri, &ref, &out);
        if (r < 0) {
                log_error("%s", out.msg);
                free(ref.bucket);
                return r;
        }
        _cleanup_free_ char *bucket = ref.bucket; /* freed on every way out */
        (void)bucket;
        _cleanup_(cjson_deletep) cJSON *end = NULL;
        if (get_record(c, h, &ref, "end.json", &end, &out) == 0) {
                char oc[32] = "?", reason[80] = "";
                str_of(end, "outcome", oc, sizeof oc);
                str_of(end, "reason", reason, sizeof reason);
                printf("run %s has ended already: %s (%s); nothing to cancel\n", ref.run_id, oc, reason);
                return end_gang_net(c, h, &ref); /* the ending instance cannot: it is in them */
        }
        char arn[600], err[512];
        if (sts_caller_arn(c, arn, sizeof arn, err, sizeof err) < 0) {
                log_error("who is cancelling (sts:GetCallerIdentity): %s", err);
                return -MF_EAUTH;
        }
        bool first;
        if ((r = request(c, h, &ref, arn, &first)) < 0)
                return r;
        struct ledger_liveness lv;
        bool alive = ledger_liveness(c, ref.bucket, ref.prefix, &lv, &out) == 0 && lv.last_beat &&
                     now_wall() - lv.last_beat < lv.ttl * LEDGER_SKEW;
        if (!alive)
                return end_from_here(c, h, &ref, arn);
        printf("%zu instance(s) of the run see it within %lds (their next heartbeat): the running experiments get "
               "SIGTERM and their stop grace, checkpoints and logs ship, nothing more starts; the group goes\n",
               lv.instances, lv.ttl / 3);
        if (!wait && (ref.placement_group[0] || ref.security_group[0]))
                printf("its placement group and security group go once its instances have: `mayfly cancel %s` again "
                       "then (or cancel with --wait)\n", uri);
        if (!wait)
                return 0;
        r = wait_final(c, h, &ref);
        return r < 0 ? r : end_gang_net(c, h, &ref);
}

int cmd_cancel(int argc, char **argv) {
        static const char usage[] =
                "usage: mayfly cancel RESULTS_URI [--wait]\n\n"
                "  Ends a run: RESULTS_URI is the run's, as `mayfly launch` printed it (results/NAME/RUN-ID/).\n"
                "  Every instance of the run sees the cancel at its next heartbeat (lease_ttl/3, 20 s by default):\n"
                "  its experiment gets SIGTERM and its stop grace, checkpoints and logs are shipped, nothing more\n"
                "  starts, the run ends `cancelled`, its Auto Scaling group and launch template are deleted and\n"
                "  every instance ends. A run with no live instance (lost, or launched but never booted) is ended\n"
                "  from here. Cancelling a cancelled or ended run says so and exits 0.\n"
                "  A run launched with --placement-group or --gang-sg: its placement group and security group are\n"
                "  deleted once its instances have left them (EC2 refuses before), tried again for at most 5\n"
                "  minutes: by a cancel that ends the run from here, with --wait, or by cancelling an ended run.\n"
                "  --wait: until the run's final status (at most 30 minutes).\n";
        static const struct option opts[] = { { "wait", no_argument, NULL, 'w' }, { "help", no_argument, NULL, 'h' },
                                              { 0, 0, 0, 0 } };
        bool wait = false;
        int o;
        optind = 1;
        while ((o = getopt_long(argc, argv, "wh", opts, NULL)) != -1) {
                if (o == 'h') {
                        fputs(usage, stdout);
                        return EXIT_OK;
                }
                if (o != 'w') {
                        fputs(usage, stderr);
                        return EXIT_USAGE;
                }
                wait = true;
        }
        if (argc - optind != 1) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct http_client h;
        int r = http_client_init(&h);
        if (r == 0)
                r = cancel_run(&c, &h, argv[optind], wait);
        else
                log_error("cannot initialise HTTP: %s", strerror(-r));
        http_client_free(&h);
        aws_ctx_free(&c);
        return exit_code_for(r);
}
