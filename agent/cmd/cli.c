/* SPDX-License-Identifier: Apache-2.0 */
/* cli.c — what every subcommand shares: exit codes, AWS set-up, reading a job file; `mayfly check`. */
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cmd/cli.h"

#include "aws/chain.h"
#include "jsonx.h"
#include "yamljson.h"
#include "aws/s3.h"
#include "run/base/job.h"
#include "log.h"
#include "util.h"


int exit_code_for(int r) {
        switch (r) {
        case 0: return EXIT_OK;
        case -EINVAL: return EXIT_USAGE;
        case -MF_ENOTFOUND: case -ENOENT: return EXIT_NOTFOUND;
        case -MF_EAUTH: return EXIT_AUTH;
        case -ENOSPC: case -EDQUOT: return EXIT_NOSPACE;
        default: return EXIT_FAIL;
        }
}

int cli_aws_init(struct aws_ctx *c) {
        int r = aws_ctx_init(c);
        if (r < 0)
                log_error("cannot initialise: %s", strerror(-r));
        return r;
}

int cli_read_job(const char *path, char **ret, size_t *ret_len) {
        int r = read_file_capped(path, JOB_MAX_BYTES, ret, ret_len);
        if (r < 0) {
                log_error("cannot read %s: %s", path, r == -EFBIG ? "larger than 256 KiB" : strerror(-r));
                return r;
        }
        if (!yaml_is_yaml_path(path))
                return 0;
        /* a YAML spec: the JSON it stands for, which is what goes on */
        char err[512];
        cJSON *j = NULL;
        r = yaml_to_json(*ret, *ret_len, &j, NULL, err, sizeof err);
        free(*ret);
        *ret = NULL;
        if (r < 0) {
                log_error("%s: %s", path, err);
                return r;
        }
        *ret = cJSON_Print(j);
        cJSON_Delete(j);
        if (!*ret)
                return -ENOMEM;
        *ret_len = strlen(*ret);
        return 0;
}

/* A local source folder, relative to the job file's folder: absolute in the job. 0, or -errno with err. */
static int resolve_local_source(const char *job_path, cJSON *job, char *err, size_t errlen) {
        const char *src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "source"));
        if (!src || str_has_prefix(src, "s3://"))
                return 0;
        char dir[4096], full[8200], real[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", job_path);
        char *slash = strrchr(dir, '/');
        if (src[0] == '/')
                snprintf(full, sizeof full, "%s", src);
        else if (slash)
                snprintf(full, sizeof full, "%.*s/%s", (int)(slash - dir), dir, src);
        else
                snprintf(full, sizeof full, "%s", src);
        struct stat st;
        if (!realpath(full, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
                errf(err, errlen, "$.source: '%s' is neither an s3:// URI nor a local directory (a relative one is "
                     "taken from the job file's folder: %s)", src, full);
                return -EINVAL;
        }
        cJSON_ReplaceItemInObjectCaseSensitive(job, "source", cJSON_CreateString(real));
        return 0;
}

/* "FILE: path: why", and for a YAML spec the line that path starts on. */
static void say_error(const char *path, const char *line, const struct yaml_lines *yl) {
        char jp[256];
        snprintf(jp, sizeof jp, "%.*s", (int)strcspn(line, ":"), line);
        int at = yl ? yaml_line_of(yl, jp) : 0;
        if (at)
                log_error("%s: line %d: %s", path, at, line);
        else
                log_error("%s: %s", path, line);
}

int cli_load_job(const char *path, cJSON **ret_job, struct job *ret) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int rr = read_file_capped(path, JOB_MAX_BYTES, &text, &len);
        if (rr < 0) {
                log_error("cannot read %s: %s", path, rr == -EFBIG ? "larger than 256 KiB" : strerror(-rr));
                return EXIT_USAGE;
        }
        struct job_errors e = { 0 };
        _cleanup_free_ struct yaml_lines *yl = NULL;
        _cleanup_(cjson_deletep) cJSON *job = NULL;
        if (yaml_is_yaml_path(path)) {
                char err[512];
                yl = calloc(1, sizeof *yl);
                if (!yl)
                        return EXIT_FAIL;
                if (yaml_to_json(text, len, &job, yl, err, sizeof err) < 0) {
                        log_error("%s: %s", path, err);
                        return EXIT_USAGE;
                }
        } else
                job = cJSON_ParseWithLength(text, len);
        if (!cJSON_IsObject(job)) {
                job_check(text, len, NULL, &e); /* says where the JSON breaks */
                log_error("%s: %s", path, e.n ? e.lines[0] : "$: the job spec must be a JSON object");
                return EXIT_USAGE;
        }
        char err[JOB_ERROR_LEN] = "";
        if (resolve_local_source(path, job, err, sizeof err) < 0)
                snprintf(e.lines[e.n++], JOB_ERROR_LEN, "%s", err);
        /* the spec's rules as the instance applies them, a local folder standing in for its upload */
        _cleanup_(cjson_deletep) cJSON *copy = cJSON_Duplicate(job, true);
        const char *src = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(copy, "source"));
        if (copy && src && !str_has_prefix(src, "s3://"))
                cJSON_ReplaceItemInObjectCaseSensitive(copy, "source",
                                                       cJSON_CreateString("s3://mayfly-local-source/source.tar.gz"));
        /* launch gives every run a run id (and with it lease_ttl and fleet their meaning) */
        if (copy && !cJSON_HasObjectItem(copy, "run_id"))
                cJSON_AddStringToObject(copy, "run_id", "launch-sets-it");
        _cleanup_free_ char *ctext = copy ? cJSON_PrintUnformatted(copy) : NULL;
        struct job_errors more = { 0 };
        struct job j;
        int r = ctext ? job_check(ctext, strlen(ctext), &j, &more) : -ENOMEM;
        for (size_t i = 0; i < more.n && e.n < JOB_MAX_ERRORS; i++)
                if (!(e.n && !strcmp(more.lines[i], "$.source: must be an s3:// URI")))
                        snprintf(e.lines[e.n++], JOB_ERROR_LEN, "%s", more.lines[i]);
        if (r == 0 && e.n)
                job_free(&j);
        if (r == -ENOMEM) {
                log_error("%s: out of memory", path);
                return EXIT_FAIL;
        }
        if (e.n) {
                for (size_t i = 0; i < e.n; i++)
                        say_error(path, e.lines[i], yl);
                if (e.n > 1)
                        log_error("%s: %zu errors", path, e.n);
                return EXIT_USAGE;
        }
        if (ret)
                *ret = j;
        else
                job_free(&j);
        if (ret_job)
                *ret_job = TAKE_PTR(job);
        return 0;
}

int cmd_check(int argc, char **argv) {
        static const char usage[] = "usage: mayfly check FILE [--expand]\n\n"
                                    "  Validates a job spec offline, as `mayfly launch` does: every error at once,\n"
                                    "  each with its JSON path (and the key it may be a typo of); a local source\n"
                                    "  folder is taken from the job file's folder. --expand lists the experiments a\n"
                                    "  matrix (grid) stands for.\n";
        bool expand = false;
        const char *path = NULL;
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        fputs(usage, stdout);
                        return EXIT_OK;
                } else if (!strcmp(argv[i], "--expand"))
                        expand = true;
                else if (!path && argv[i][0] != '-')
                        path = argv[i];
                else {
                        fputs(usage, stderr);
                        return EXIT_USAGE;
                }
        }
        if (!path) {
                fputs(usage, stderr);
                return EXIT_USAGE;
        }
        struct job j;
        int rc = cli_load_job(path, NULL, &j);
        if (rc)
                return rc;
        printf("%s: ok (%zu experiment%s, results %s%s/<run-id>/)\n", path, j.n_experiments,
               j.n_experiments == 1 ? "" : "s", j.results, j.name);
        for (size_t i = 0; expand && i < j.n_experiments; i++) {
                const struct experiment *x = &j.experiments[i];
                printf("  %-24s", x->name);
                for (char **a = x->argv; a && *a; a++)
                        printf(" %s", *a);
                putchar('\n');
        }
        job_free(&j);
        return EXIT_OK;
}

/* ---------- finding a run in S3 ---------- */

struct latest {
        char key[2048];
};

/* The run directory's UTC start time from a status.json key: the last "-yyyymmddThhmmssZ" part of its run id,
 * whether it ends it ("i-0abc-20261126T153000Z", a hand-run mayfly run) or a random suffix follows it
 * ("exp1-20261126T153000Z-a1b2c3", from mayfly launch); else what follows the last '-'. */
static bool is_stamp(const char *s, size_t n) {
        if (n != 16 || s[8] != 'T' || s[15] != 'Z')
                return false;
        for (size_t i = 0; i < 15; i++)
                if (i != 8 && (s[i] < '0' || s[i] > '9'))
                        return false;
        return true;
}

static const char *run_stamp(const char *status_key, size_t *len) {
        size_t n = strlen(status_key) - strlen("/status.json");
        size_t dir = 0;
        for (size_t i = 0; i < n; i++)
                if (status_key[i] == '/')
                        dir = i + 1;
        const char *stamp = NULL, *last = NULL;
        for (size_t i = dir; i < n; i++) {
                if (status_key[i] != '-')
                        continue;
                const char *p = status_key + i + 1;
                size_t l = strcspn(p, "-/");
                last = p;
                if (is_stamp(p, l))
                        stamp = p;
        }
        if (stamp) {
                *len = 16;
                return stamp;
        }
        const char *p = last ? last : status_key;
        *len = (size_t)(status_key + n - p);
        return p;
}

static int on_status(void *ud, const struct s3_object *o) {
        struct latest *l = ud;
        if (!str_has_suffix(o->key, "/status.json"))
                return 0;
        /* run ids carry their UTC start time: the newest run is the greatest stamp, whatever else the id holds */
        int c = 1;
        if (l->key[0]) {
                size_t na, nb;
                const char *a = run_stamp(o->key, &na), *b = run_stamp(l->key, &nb);
                c = strncmp(a, b, MIN(na, nb));
                if (c == 0)
                        c = na < nb ? -1 : na > nb;
        }
        if (c > 0 || (c == 0 && strcmp(o->key, l->key) > 0))
                snprintf(l->key, sizeof l->key, "%s", o->key);
        return 0;
}

int cli_find_run(struct aws_ctx *c, struct http_client *h, const char *uri, char **bucket, char run_prefix[2048],
                 struct aws_result *out) {
        _cleanup_free_ char *key = NULL;
        int r = s3_parse_uri(uri, bucket, &key, out->msg, sizeof out->msg);
        if (r < 0)
                return r;
        char prefix[2048];
        snprintf(prefix, sizeof prefix, "%s%s", key, *key && !str_has_suffix(key, "/") ? "/" : "");
        struct latest l = { "" };
        r = s3_list(c, h, *bucket, prefix, on_status, &l, out);
        if (r < 0)
                return r;
        if (!l.key[0]) {
                snprintf(out->msg, sizeof out->msg, "no run under %s (no status.json)", uri);
                return -MF_ENOTFOUND;
        }
        snprintf(run_prefix, 2048, "%.*s", (int)(strlen(l.key) - strlen("status.json")), l.key);
        return 0;
}
