/* SPDX-License-Identifier: Apache-2.0 */
/* main.c — `mayfly <command> [options]`, git style. */
#include "cmd/cli.h"
#include "run/drive/run.h"
#include "cmd/userdata.h"

static const struct {
        const char *name;
        int (*fn)(int, char **);
        const char *summary;
} commands[] = {
        { "run", cmd_run, "run the job: fetch, experiments, ship results, exit action" },
        { "check", cmd_check, "validate a job spec offline" },
        { "scratch", cmd_scratch, "mount the instance store for the job's \"scratch\" (run by mayfly-scratch.service)" },
        { "failsafe", cmd_failsafe, "ship what exists and end the instance (run by mayfly-failsafe.service)" },
        { "userdata", cmd_userdata, "print EC2 user-data (#cloud-config) that installs mayfly and runs a job" },
        { "launch", cmd_launch, "launch instances that run a job and end themselves" },
        { "status", cmd_status, "show a run's status from S3" },
        { "logs", cmd_logs, "print a run's logs from S3 (--follow)" },
        { "cancel", cmd_cancel, "cancel a run: its instances stop, ship and end, its group goes" },
        { "report", cmd_report, "render a run's report.html from S3 (plots, timeline, cost, log tails)" },
        { "ls", cmd_ls, "list the runs under a results prefix, newest first" },
        { "cp", cmd_cp, "copy files between S3 and the local disk" },
        { "stage", cmd_stage, "download a dataset as the agent stages inputs (again: only what changed)" },
        { "presign", cmd_presign, "print a presigned GET URL for an S3 object" },
        { "metadata", cmd_metadata, "print an instance metadata (IMDS) value" },
        { "terminate", cmd_terminate, "terminate the EC2 instance this runs on" },
        { "gpu", cmd_gpu, "print the GPUs the agent sees (NVML or nvidia-smi)" },
        { "install-units", cmd_install_units, "write the built-in systemd units (to /etc/systemd/system)" },
};

static void usage(FILE *f) {
        fprintf(f, "usage: mayfly <command> [options]\n       mayfly --version | --help\n\ncommands:\n");
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\n`mayfly <command> --help` describes a command.\n\n"
                   "exit codes: 0 success, 1 failure, 2 usage error, 3 not found, 4 credentials missing or refused,\n"
                   "            5 local disk full, 6 `mayfly run` ended with an outcome other than succeeded\n\n"
                   "environment: AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,\n"
                   "  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_EC2, AWS_EC2_METADATA_SERVICE_ENDPOINT,\n"
                   "  AWS_EC2_METADATA_DISABLED, AWS_CA_BUNDLE, AWS_MAX_ATTEMPTS\n");
}

int main(int argc, char **argv) {
        if (argc < 2) {
                usage(stderr);
                return EXIT_USAGE;
        }
        const char *cmd = argv[1];
        if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
                printf("mayfly %s\n", MAYFLY_VERSION);
                return EXIT_OK;
        }
        if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
                usage(stdout);
                return EXIT_OK;
        }
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                if (strcmp(cmd, commands[i].name) == 0) {
                        if (http_global_init() < 0) {
                                log_error("cannot initialise libcurl");
                                return EXIT_FAIL;
                        }
                        int rc = commands[i].fn(argc - 1, argv + 1);
                        curl_global_cleanup();
                        return rc;
                }
        log_error("unknown command '%s' (see mayfly --help)", cmd);
        return EXIT_USAGE;
}
