/* cli.c — what every subcommand shares: exit codes, AWS set-up, reading a job file; `mayfly check`. */
#include <stdarg.h>

#include "cmd/cli.h"

#include "aws/chain.h"
#include "run/job.h"
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
