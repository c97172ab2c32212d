/* SPDX-License-Identifier: Apache-2.0 */
/* cli.c — what every subcommand shares: exit codes, AWS set-up, reading a job file; `mayfly check`. */
#include <stdarg.h>

#include "cmd/cli.h"

#include "aws/chain.h"
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
        if (r < 0)
                log_error("cannot read %s: %s", path, r == -EFBIG ? "larger than 256 KiB" : strerror(-r));
        return r;
}

int cmd_check(int argc, char **argv) {
        if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                FILE *f = argc == 2 ? stdout : stderr;
                fprintf(f, "usage: mayfly check FILE\n\n  Validates a job spec offline; errors name the JSON path.\n");
                return argc == 2 ? EXIT_OK : EXIT_USAGE;
        }
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = cli_read_job(argv[1], &text, &len);
        if (r < 0)
                return EXIT_USAGE;
        struct job j;
        char err[1024];
        r = job_parse(text, len, &j, err, sizeof err);
        if (r < 0) {
                log_error("%s: %s", argv[1], err);
                return EXIT_USAGE;
        }
        printf("%s: ok (%zu experiment%s, results %s%s/<run-id>/)\n", argv[1], j.n_experiments,
               j.n_experiments == 1 ? "" : "s", j.results, j.name);
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
