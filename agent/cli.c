/* cli.c — what every subcommand shares: one-line errors, exit codes, AWS set-up. */
#include <stdarg.h>

#include "cli.h"
#include "job.h"
#include "log.h"
#include "util.h"

void log_error(const char *fmt, ...) {
        char line[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        log_msg(LOG_ERR, "%s", line);
}

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
