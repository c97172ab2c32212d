/* SPDX-License-Identifier: Apache-2.0 */
/* cli.h — subcommands and the process exit codes (documented in README and `mayfly --help`). */
#pragma once
#include "aws/aws.h"
#include "exitcode.h"
#include "log.h"


int cmd_cp(int argc, char **argv);
int cmd_stage(int argc, char **argv);
/* Where an object of a run's folder (rel: its key below the run) goes in `cp --recursive`'s copy, relative to the
 * directory, or NULL when it stays out: ledger/, live/ and checkpoint/ unless all; an output keeps its path below
 * outputs/ (outputs/outputs/x, what a glob outputs/... matched, lands at outputs/x). Pure. */
const char *cp_run_path(const char *rel, bool all);
int cmd_presign(int argc, char **argv);
int cmd_metadata(int argc, char **argv);
int cmd_terminate(int argc, char **argv);
int cmd_gpu(int argc, char **argv);
int cmd_launch(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_failsafe(int argc, char **argv);
int cmd_scratch(int argc, char **argv);
int cmd_install_units(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_ls(int argc, char **argv);

/* Maps a negative return to an exit code. */
int exit_code_for(int r);
/* Sets up the AWS context, printing a message on failure. */
int cli_aws_init(struct aws_ctx *c);
/* RESULTS_URI s3://b/prefix/NAME/RUN-ID/ (that run) or s3://b/prefix/NAME/ (its newest run, by the start time
 * that ends run ids) -> the bucket and the run's key prefix ("prefix/NAME/RUN-ID/"). -MF_ENOTFOUND with a message
 * when there is no status.json under it. */
int cli_find_run(struct aws_ctx *c, struct http_client *h, const char *uri, char **bucket, char run_prefix[2048],
                 struct aws_result *out);
struct cJSON;
struct job;
/* The job file as `check` and `launch` take it: a local source folder (relative to the job file's folder) made
 * absolute, the spec's rules applied as the instance applies them, every error printed ("FILE: path: why").
 * 0 (the JSON in *ret_job, the parsed job in *ret: either may be NULL), or the exit code (EXIT_USAGE). */
int cli_load_job(const char *path, struct cJSON **ret_job, struct job *ret);
/* Reads a job file (at most JOB_MAX_BYTES), printing "cannot read PATH: why" on failure. */
int cli_read_job(const char *path, char **ret, size_t *ret_len);
