/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_status.c — `mayfly status`: a run read back from S3 (status.json, the ledger's heartbeats; before the first
 * status, launch.json and what EC2 and Auto Scaling say). */
#include <getopt.h>

#include "aws/autoscaling.h"
#include "aws/ec2.h"
#include "aws/gangnet.h"
#include "caps.h"
#include "cmd/statusview.h"
#include "termsafe.h"
#include "cmd/cli.h"
#include "jsonx.h"
#include "run/fleet/ledger.h"
#include "aws/transfer.h"

#define STATUS_REPORT_LINK_EXPIRES 3600

/* A presigned link to the run's report.html (an hour, or less when the credentials expire sooner). */
static void print_report_link(struct aws_ctx *c, const char *bucket, const char *run, bool have, bool bare) {
        char key[2100], err[512];
        snprintf(key, sizeof key, "%sreport.html", run);
        _cleanup_(buf_freep) struct buf url = BUF_INIT(16384);
        time_t until = 0;
        if (bare) {
                if (have && s3_presign_get(c, bucket, key, STATUS_REPORT_LINK_EXPIRES, now_wall(), &url, &until, err,
                                           sizeof err) == 0)
                        printf("%s\n", url.data);
                else
                        log_error("no report.html under s3://%s/%s yet%s%s", bucket, run, have ? ": " : "",
                                  have ? err : "");
                return;
        }
        if (!have)
                printf("report:   none yet (mayfly report s3://%s/%s renders one)\n", bucket, run);
        else if (s3_presign_get(c, bucket, key, STATUS_REPORT_LINK_EXPIRES, now_wall(), &url, &until, err,
                                sizeof err) == 0)
                printf("report:   %s\n          (valid %ld min; mayfly presign s3://%s/%s --expires N for longer)\n",
                       url.data, (long)(until - now_wall() + 59) / 60, bucket, key);
        else
                printf("report:   s3://%s/%s (cannot presign: %s)\n", bucket, key, err);
}

/* A run shared by instances that has not ended: alive while its instances beat their heartbeat, else lost. */
/* The run id: the last folder of the run's prefix ("results/NAME/RUN-ID/"). */
static const char *run_id_of(const char *run) {
        static char id[256];
        size_t l = strlen(run);
        while (l && run[l - 1] == '/')
                l--;
        size_t b = l;
        while (b && run[b - 1] != '/')
                b--;
        snprintf(id, sizeof id, "%.*s", (int)(l - b), run + b);
        return id;
}

static void print_liveness(struct aws_ctx *c, const char *bucket, const char *run, const cJSON *st) {
        const char *o = cJSON_GetStringValue(cJSON_GetObjectItem(st, "outcome"));
        struct ledger_liveness lv;
        struct aws_result res = { 0 };
        if (ledger_liveness(c, bucket, run, &lv, &res) < 0 || !lv.has_ledger || lv.ended || (o && strcmp(o, "running")))
                return;
        /* a heartbeat record is anyone's under the prefix: its words made safe for the terminal */
        term_safe_str(lv.last_instance);
        term_safe_str(lv.last_phase);
        char when[40] = "never";
        if (lv.last_beat) {
                struct tm tm;
                gmtime_r(&lv.last_beat, &tm);
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        long quiet = lv.last_beat ? (long)(now_wall() - lv.last_beat) : -1;
        time_t updated = 0;
        const char *u = cJSON_GetStringValue(cJSON_GetObjectItem(st, "updated"));
        if (quiet >= 0 && quiet < (long)(lv.ttl * LEDGER_SKEW)) {
                printf("alive:    last heartbeat %lds ago (%s, %s, phase %s)\n", quiet, when, lv.last_instance,
                       lv.last_phase);
                /* the instances beat, but the shared status.json stands still: its writes are refused */
                if (u && parse_iso8601(u, &updated) == 0 && lv.last_beat - updated > (time_t)(lv.ttl * LEDGER_SKEW))
                        printf("stale:    status.json was last written %lds before that heartbeat: what it shows is "
                               "old (the agent's log says why its writes are refused)\n",
                               (long)(lv.last_beat - updated));
        } else
                printf("LOST:     no instance has beaten the run's heartbeat since %s (%zu instances seen); nothing "
                       "runs it now. To go on (finished experiments are not run again):\n"
                       "          mayfly launch JOB --run-id %s (with the options it was launched with)\n"
                       "          or end it: mayfly cancel s3://%s/%s\n",
                       when, lv.instances, run_id_of(run), bucket, run);
}

#define STATUS_CONSOLE_LINES 8

/* An instance of the run that ended without ever writing a status: why, as its console says (the install
 * script's error, the agent's last words). */
static void print_console_tail(struct aws_ctx *c, struct http_client *h, const char *iid) {
        _cleanup_free_ char *text = NULL;
        struct aws_result out = { 0 };
        if (ec2_console_output(c, h, iid, &text, &out) < 0) {
                printf("          its console: unreadable (%s)\n", out.msg);
                return;
        }
        const char *lines[STATUS_CONSOLE_LINES], *why = NULL;
        size_t n = 0;
        static const char *const bad[] = { "error", "cannot", "failed", "refused", "denied", "unreachable" };
        for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                for (char *p = l; *p; p++)
                        if ((unsigned char)*p < 0x20 && *p != '\t')
                                *p = ' '; /* a console is not to be replayed on a terminal */
                if (!*l)
                        continue;
                if (n == STATUS_CONSOLE_LINES) {
                        for (size_t k = 0; k < ARRAY_SIZE(bad); k++)
                                if (strstr(lines[0], bad[k]) && !why)
                                        why = lines[0]; /* the first line that says what went wrong */
                        memmove(lines, lines + 1, sizeof lines[0] * --n);
                }
                lines[n++] = l;
        }
        printf("          it ended without a status; %s its console:\n", why ? "from" : "the last lines of");
        if (why)
                printf("          | %.300s\n          | ...\n", why);
        for (size_t i = 0; i < n; i++)
                printf("          | %.200s\n", lines[i]);
        if (!n)
                printf("          | (empty)\n");
}

#define STATUS_ACTIVITIES 5

/* The run's group and what Auto Scaling did with it, newest first: a launch that failed says why (no capacity of
 * the type in the zone, a vCPU quota, a template the account may not use). */
static void print_activities(struct aws_ctx *c, struct http_client *h, const char *group) {
        struct asg_activity acts[STATUS_ACTIVITIES];
        size_t n = 0;
        struct aws_result out = { 0 };
        printf("group:    %s\n", group);
        if (asg_activities(c, h, group, acts, ARRAY_SIZE(acts), &n, &out) < 0) {
                printf("activity: unknown (%s)\n", out.msg);
                return;
        }
        for (size_t i = 0, same; i < n; i += same) {
                const char *what = *acts[i].message ? acts[i].message : acts[i].description;
                for (same = 1; i + same < n && !strcmp(acts[i + same].status, acts[i].status) &&
                               *acts[i].message && !strcmp(acts[i + same].message, acts[i].message);
                     same++)
                        ; /* a launch that keeps failing for the same reason: once, with how often */
                printf("activity: %s %s: %s", acts[i].start, acts[i].status, what);
                if (same > 1)
                        printf(" (%zu times%s)", same, i + same == n ? " or more" : "");
                printf("\n");
        }
}

/* A run `mayfly launch` started that has not written its first status yet: what was launched, and what EC2 says of
 * its instances. 0 when there is a launch.json under uri, -MF_ENOTFOUND else. */
static int print_launched(struct aws_ctx *c, struct http_client *h, const char *uri) {
        _cleanup_free_ char *bucket = NULL, *key = NULL, *body = NULL;
        char lk[S3_MAX_KEY + 1], err[256];
        size_t len = 0;
        struct aws_result out = { 0 };
        if (s3_parse_uri(uri, &bucket, &key, err, sizeof err) < 0 ||
            pathf(lk, sizeof lk, "%s%slaunch.json", key, *key && !str_has_suffix(key, "/") ? "/" : "") < 0 ||
            s3_get_capped(c, h, bucket, lk, CAP_LAUNCH_JSON, "a launch.json", &body, &len, &out) < 0)
                return -MF_ENOTFOUND;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(body, len);
        term_safe_json(o);
        const char *run_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "run_id"));
        const char *when = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "launched"));
        const char *by = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "launched_by"));
        const char *group = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "group"));
        if (!run_id)
                return -MF_ENOTFOUND;
        time_t t = 0;
        char ago[64] = "";
        if (when && parse_iso8601(when, &t) == 0)
                snprintf(ago, sizeof ago, " (%llds ago)", (long long)(now_wall() - t));
        printf("run:      %s\n", uri);
        printf("outcome:  launched, waiting for its first status\n");
        printf("launched: %s%s by %s\n", when ? when : "?", ago, by ? by : "?");
        if (group)
                print_activities(c, h, group);
        char ids[16][32], states[16][24];
        size_t n = 0;
        if (ec2_instances_of_run(c, h, run_id, true, ids, states, ARRAY_SIZE(ids), &n, &out) < 0)
                printf("instances: unknown (%s)\n", out.msg);
        else if (!n)
                printf("instances: none yet%s\n", group ? " (the group is starting them)" : "");
        for (size_t i = 0; i < n; i++) {
                printf("instance: %s %s\n", ids[i], states[i]);
                bool ended = !strcmp(states[i], "terminated") || !strcmp(states[i], "shutting-down") ||
                             !strcmp(states[i], "stopped");
                if (ended)
                        print_console_tail(c, h, ids[i]);
        }
        return 0;
}

static const char *str_of(const cJSON *o, const char *k) { return cJSON_GetStringValue(cJSON_GetObjectItem(o, k)); }

/* The run as a person reads it: the outcome first, the report link last. Exit 0 for a run that succeeded or goes
 * on, EXIT_RUN_FAILED for one that ended otherwise. */
static void tidy_gang_net(struct aws_ctx *c, const char *bucket, const char *run);

static int print_status(struct aws_ctx *c, const char *bucket, const char *run, const cJSON *st, bool have_report) {
        const char *g, *outcome = str_of(st, "outcome");
        bool goes_on = outcome && !strcmp(outcome, "running");
        printf("outcome:  %s", outcome ? outcome : "?");
        if ((g = str_of(st, "reason")) && !goes_on)
                printf(" (%s)", g);
        putchar('\n');
        printf("run:      s3://%s/%s\n", bucket, run);
        if ((g = str_of(st, "cancelled_by")))
                printf("cancelled by: %s\n", g);
        print_liveness(c, bucket, run, st);
        status_print_body(stdout, st);
        print_report_link(c, bucket, run, have_report, false);
        if (!goes_on && outcome)
                tidy_gang_net(c, bucket, run); /* what the instance that ended it could not delete */
        return goes_on || (outcome && !strcmp(outcome, "succeeded")) ? EXIT_OK : EXIT_RUN_FAILED;
}

/* A run that has ended: the placement group and security group its launch made for a gang (launch.json names them),
 * deleted once its instances have left them. The instance that ended the run could not (it was in them); a status
 * asked after the end does it, or says it waits for the last instance (EC2 refuses while one is in them). */
static void tidy_gang_net(struct aws_ctx *c, const char *bucket, const char *run) {
        char key[2200], pg[JOB_RUN_ID_MAX + 16] = "", sg[32] = "", run_id[JOB_RUN_ID_MAX + 1] = "";
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        struct aws_result out = { 0 };
        struct http_client h;
        if (pathf(key, sizeof key, "%slaunch.json", run) < 0 || http_client_init(&h) < 0)
                return;
        if (s3_get_capped(c, &h, bucket, key, CAP_STATUS_JSON, "a launch.json", &body, &len, &out) == 0) {
                _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(body, len);
                const char *v;
                if ((v = str_of(o, "placement_group")) && strlen(v) < sizeof pg)
                        snprintf(pg, sizeof pg, "%s", v);
                if ((v = str_of(o, "security_group")) && strlen(v) < sizeof sg)
                        snprintf(sg, sizeof sg, "%s", v);
                if ((v = str_of(o, "run_id")) && strlen(v) < sizeof run_id)
                        snprintf(run_id, sizeof run_id, "%s", v);
        }
        char msg[2048];
        struct gangnet net = { .placement_group = pg[0] ? pg : NULL, .security_group = sg[0] ? sg : NULL,
                               .run_id = sg[0] && run_id[0] ? run_id : NULL };
        int r = pg[0] || sg[0] ? gangnet_delete(c, &h, &net, 0, msg, sizeof msg) : 1;
        http_client_free(&h);
        if (r == 0 && strstr(msg, "deleted"))
                printf("%s (the run is over and its instances are gone)\n", msg);
        else if (r == -EBUSY)
                printf("the run's %s goes once its last instance has ended: mayfly status deletes it then\n",
                       pg[0] ? "placement group" : "security group");
        else if (r < 0)
                log_warn("%s", msg);
}

int cmd_status(int argc, char **argv) {
        static const char usage[] = "usage: mayfly status RESULTS_URI [--json | --link]\n\n"
                                    "  The state of a run from its status.json: s3://bucket/prefix/NAME/RUN-ID/, or\n"
                                    "  s3://bucket/prefix/NAME/ for the newest run of the job. The outcome first, then\n"
                                    "  each experiment, the cost, a link to report.html (--link prints only that).\n"
                                    "  Exit 0 for a run that succeeded or goes on, 6 for one that ended otherwise.\n";
        bool json = false, link_only = false;
        const char *uri = NULL;
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--json"))
                        json = true;
                else if (!strcmp(argv[i], "--link"))
                        link_only = true;
                else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        fputs(usage, stdout);
                        return EXIT_OK;
                } else if (!uri && str_has_prefix(argv[i], "s3://"))
                        uri = argv[i];
                else {
                        fputs(usage, stderr);
                        return EXIT_USAGE;
                }
        }
        if (!uri) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        struct aws_ctx c;
        if (cli_aws_init(&c) < 0)
                return EXIT_FAIL;
        struct http_client h;
        struct aws_result res = { 0 };
        _cleanup_free_ char *bucket = NULL, *body = NULL;
        char run[2048], key[2100];
        size_t len = 0;
        int r = http_client_init(&h);
        if (r == 0)
                r = cli_find_run(&c, &h, uri, &bucket, run, &res);
        if (r == 0) {
                snprintf(key, sizeof key, "%sstatus.json", run);
                r = s3_get_capped(&c, &h, bucket, key, CAP_STATUS_JSON, "a status.json", &body, &len, &res);
        }
        if (r == -MF_ENOTFOUND && !json && print_launched(&c, &h, uri) == 0) {
                http_client_free(&h);
                aws_ctx_free(&c);
                return EXIT_OK;
        }
        uint64_t report_size = 0;
        struct aws_result hres;
        snprintf(key, sizeof key, "%sreport.html", run);
        bool have_report = r == 0 && !json && s3_head(&c, &h, bucket, key, &report_size, NULL, &hres) == 0;
        http_client_free(&h);
        if (r < 0) {
                log_error("%s", res.msg);
                aws_ctx_free(&c);
                return exit_code_for(r);
        }
        cJSON *st = cJSON_ParseWithLength(body, len);
        int rc = EXIT_OK;
        if (!cJSON_IsObject(st)) {
                /* never its bytes to the terminal: whoever writes the prefix chose them */
                log_error("s3://%s/%sstatus.json is not a JSON object (%zu bytes)", bucket, run, len);
                rc = EXIT_FAIL;
        } else if (json) {
                /* the whole status.json, as JSON prints it (control characters escaped) */
                _cleanup_free_ char *txt = cJSON_Print(st);
                printf("%s\n", txt ? txt : "{}");
                const char *oc = cJSON_GetStringValue(cJSON_GetObjectItem(st, "outcome"));
                if (oc && strcmp(oc, "running") && strcmp(oc, "succeeded"))
                        rc = EXIT_RUN_FAILED;
        } else {
                term_safe_json(st); /* what a person reads: made safe for the terminal */
                if (link_only)
                        print_report_link(&c, bucket, run, have_report, true);
                else
                        rc = print_status(&c, bucket, run, st, have_report);
        }
        cJSON_Delete(st);
        aws_ctx_free(&c);
        return rc;
}
