/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_run.c — `mayfly run`, `mayfly failsafe` and `mayfly scratch`: their command lines; the lifecycle is run/run.c,
 * the instance store run/proc/scratch.c. */
#include <getopt.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "run/base/job.h"
#include "run/base/runstate.h"
#include "run/drive/run.h"
#include "run/proc/scratch.h"

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

int cmd_scratch(int argc, char **argv) {
        const char *job;
        int rc;
        if (parse(argc, argv, &job,
                  "usage: mayfly scratch [--job FILE]\n\n  Run as root by mayfly-scratch.service before the agent: "
                  "when the job\n  (default %s) has \"scratch\", the instance store's NVMe devices\n  (model "
                  "$" SCRATCH_MODEL_ENV ", default '" SCRATCH_MODEL_DEFAULT "')\n  made into one ext4 "
                  "filesystem (mdadm RAID 0 for several) or found, and mounted\n  at " SCRATCH_MOUNT "; what it did is "
                  "left in " SCRATCH_RECORD " for the agent.\n  Exits 0 whatever happened: the agent fails the run if "
                  "it must.\n",
                  &rc) < 0)
                return rc;
        unlink(SCRATCH_RECORD);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        struct job j = { 0 };
        char err[1024];
        bool ok = read_file_capped(job, JOB_MAX_BYTES, &text, &len) == 0 &&
                  job_parse(text, len, &j, err, sizeof err) == 0;
        enum job_scratch want = ok ? j.scratch : JOB_SCRATCH_NONE; /* the agent reports a missing or bad job */
        job_free(&j);
        if (want == JOB_SCRATCH_NONE)
                return EXIT_OK;
        _cleanup_free_ struct scratch_setup *ss = calloc(1, sizeof *ss);
        _cleanup_free_ char *rec = malloc(SCRATCH_RECORD_MAX);
        if (!ss || !rec)
                return EXIT_FAIL;
        scratch_setup(ss);
        if (ss->rc == 0)
                log_info("scratch: %s %s at %s", ss->res.device, ss->res.what, SCRATCH_MOUNT);
        else
                log_warn("scratch: %s", ss->none ? "no instance store to use" : ss->err);
        int r = scratch_record_format(ss, rec, SCRATCH_RECORD_MAX);
        if (r == 0)
                r = write_file_atomic(SCRATCH_RECORD, rec, strlen(rec), 0644); /* whole or not at all */
        if (r < 0)
                log_warn("scratch: cannot write %s: %s", SCRATCH_RECORD, strerror(-r));
        return EXIT_OK;
}
