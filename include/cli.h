/* cli.h — subcommands and the process exit codes (documented in README and `mayfly --help`). */
#pragma once
#include "aws.h"

enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,        /* the operation failed (AWS error, transfer failure, bad answer) */
        EXIT_USAGE = 2,       /* bad command line or input file */
        EXIT_NOTFOUND = 3,    /* the source object, prefix or file does not exist */
        EXIT_AUTH = 4,        /* no credentials, or credentials refused */
        EXIT_NOSPACE = 5,     /* local disk full */
        EXIT_RUN_FAILED = 6,  /* `mayfly run` finished and did its exit action, outcome not `succeeded` */
};

int cmd_cp(int argc, char **argv);
int cmd_presign(int argc, char **argv);
int cmd_metadata(int argc, char **argv);
int cmd_terminate(int argc, char **argv);
int cmd_gpu(int argc, char **argv);
int cmd_launch(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_logs(int argc, char **argv);

/* Maps a negative return to an exit code. */
int exit_code_for(int r);
/* "mayfly: <msg>" on stderr, one line. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets up the AWS context, printing a message on failure. */
int cli_aws_init(struct aws_ctx *c);
/* Reads a job file (at most JOB_MAX_BYTES), printing "cannot read PATH: why" on failure. */
int cli_read_job(const char *path, char **ret, size_t *ret_len);
