/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_run.c — `mayfly run` and `mayfly failsafe`: their command lines; the lifecycle is run/run.c. */
#include <getopt.h>

#include "cmd/cli.h"
#include "run/base/job.h"
#include "run/drive/run.h"

/* --job FILE (default JOB_DEFAULT_PATH) and --help; the job path in *job. -1 when done (help printed: ret_rc). */
static int parse(int argc, char **argv, const char **job, const char *usage, int *ret_rc) {
        static const struct option opts[] = { { "job", required_argument, NULL, 'j' },
                                              { "help", no_argument, NULL, 'h' }, { 0 } };
        *job = JOB_DEFAULT_PATH;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
                if (ch == 'j') {
                        *job = optarg;
                        continue;
                }
                fprintf(ch == 'h' ? stdout : stderr, usage, JOB_DEFAULT_PATH);
                *ret_rc = ch == 'h' ? EXIT_OK : EXIT_USAGE;
                return -1;
        }
        if (optind != argc) {
                fprintf(stderr, usage, JOB_DEFAULT_PATH);
                *ret_rc = EXIT_USAGE;
                return -1;
        }
        return 0;
}

int cmd_run(int argc, char **argv) {
        const char *job;
        int rc;
        if (parse(argc, argv, &job,
                  "usage: mayfly run [--job FILE]\n\n"
                  "  Runs the job (default %s): fetch, prepare, run each experiment, ship the\n"
                  "  results to S3, then the exit action. State in $STATE_DIRECTORY (default\n"
                  "  /var/lib/mayfly); a restarted agent resumes. See docs/job-spec.md.\n",
                  &rc) < 0)
                return rc;
        return run_main(job, false);
}

int cmd_failsafe(int argc, char **argv) {
        const char *job;
        int rc;
        if (parse(argc, argv, &job,
                  "usage: mayfly failsafe [--job FILE]\n\n  Run by mayfly-failsafe.service after the agent failed "
                  "repeatedly: the run ends\n  as an error, what exists is shipped (logs, outputs, checkpoints, "
                  "status), then\n  the job's on_error action (default job %s; without a readable job:\n  power off). "
                  "A run that already finished keeps its status; only its exit\n  action is made sure of.\n",
                  &rc) < 0)
                return rc;
        return run_main(job, true);
}
