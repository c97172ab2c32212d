/* failsafe.c — `mayfly failsafe`, run by mayfly-failsafe.service when systemd gave up restarting the agent:
 * ship what exists, then the on_error action; without a readable job, power off. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>

#include "exitcode.h"
#include "log.h"
#include "run/run.h"
#include "aws/xferdir.h"
#include "run/exitact.h"

static int ship_logs_dir(struct run *R, void *arg) {
        struct aws_result res = { 0 };
        struct xfer_batch b;
        char prefix[1400];
        snprintf(prefix, sizeof prefix, "%slogs/", R->prefix);
        int r = xfer_batch_init(&b, &R->c, R->bucket, true, NULL);
        if (r == 0)
                r = xfer_batch_add_tree(&b, R->logs_dir, prefix, NULL, NULL, &res);
        if (r == 0)
                r = xfer_batch_run(&b, &res);
        xfer_batch_free(&b);
        if (r < 0)
                log_warn("failsafe: shipping %s: %s", R->logs_dir, res.msg);
        wrapup_cost_refresh(R, NULL); /* integration hook: the cost up to now goes into the status */
        _cleanup_free_ char *js = NULL;
        if (status_build(R, &js) == 0 && shipper_put_text(&R->ship, "status.json", js, "application/json", &res) < 0)
                log_warn("failsafe: shipping status.json: %s", res.msg);
        if (js && wrapup_final_report(R, js, &res) < 0) /* integration hook: report.html */
                log_warn("failsafe: shipping report.html: %s", res.msg);
        return r;
}

/* Run by mayfly-failsafe.service when the agent failed for good: ship what exists (logs, status `error`), then
 * the on_error action; without a readable job, power off. Never waits forever. */
int cmd_failsafe(int argc, char **argv) {
        static const struct option opts[] = { { "job", required_argument, NULL, 'j' },
                                              { "help", no_argument, NULL, 'h' }, { 0 } };
        const char *job = JOB_DEFAULT_PATH;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
                if (ch == 'j') {
                        job = optarg;
                        continue;
                }
                fprintf(ch == 'h' ? stdout : stderr,
                        "usage: mayfly failsafe [--job FILE]\n\n  Run by mayfly-failsafe.service after the agent failed "
                        "repeatedly: uploads\n  $LOGS_DIRECTORY and an error status, then the job's on_error action "
                        "(default job\n  %s; without a readable job: power off). A run that already\n  finished keeps "
                        "its status; only its exit action is made sure of.\n", JOB_DEFAULT_PATH);
                return ch == 'h' ? EXIT_OK : EXIT_USAGE;
        }
        if (optind != argc) {
                fputs("usage: mayfly failsafe [--job FILE]\n", stderr);
                return EXIT_USAGE;
        }
        struct run *R = calloc(1, sizeof *R);
        if (!R)
                return EXIT_FAIL;
        R->metrics_fd = -1;
        snprintf(R->job_path, sizeof R->job_path, "%s", job);
        run_first_dir(R->state_dir, sizeof R->state_dir, "STATE_DIRECTORY", "/var/lib/mayfly");
        run_first_dir(R->logs_dir, sizeof R->logs_dir, "LOGS_DIRECTORY", "/var/log/mayfly");
        snprintf(R->state_path, sizeof R->state_path, "%s/state.json", R->state_dir);
        if (run_setup_signals(R) < 0 || aws_ctx_init(&R->c) < 0) {
                free(R);
                char msg[256];
                if (poweroff_run(msg, sizeof msg) < 0)
                        log_error("%s", msg);
                return EXIT_FAIL;
        }
        log_error("failsafe: the agent failed repeatedly; shipping what exists and ending the instance");
        char err[1024];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        run_load_instance(R);
        int r = run_read_job(R, &text, &len, err, sizeof err);
        if (r == 0)
                r = job_parse(text, len, &R->job, err, sizeof err);
        int rc = EXIT_FAIL;
        if (r == 0) {
                bool finished = false;
                enum exit_action a = R->job.on_error;
                if (runstate_load(R->state_path, &R->st) < 0)
                        run_new_run_id(R);
                else
                        finished = R->st.phase == PH_DONE || R->st.exit_done;
                if (finished) {
                        /* the run reported its own outcome: only make sure of its exit action */
                        if (!strcmp(R->st.outcome, "succeeded"))
                                a = R->job.on_exit;
                } else {
                        snprintf(R->st.outcome, sizeof R->st.outcome, "error");
                        snprintf(R->st.error, sizeof R->st.error,
                                 "the agent failed repeatedly (systemd gave up restarting it)");
                        /* bounded like the agent's final upload: the exit action must come well within the
                         * unit's TimeoutStartSec */
                        if (run_setup_results(R, R->job.results, R->job.name) == 0 &&
                            run_blocking_until(R, ship_logs_dir, NULL, now_mono() + (double)R->job.ship_timeout) ==
                                    -ETIMEDOUT)
                                log_warn("failsafe: the upload did not finish within ship_timeout (%lds); going on "
                                         "with the exit action", R->job.ship_timeout);
                }
                /* success once the action took, `keep` included; a failure makes systemd power off (FailureAction=) */
                if (run_do_exit_action(R, a) == 0)
                        rc = EXIT_OK;
        } else {
                /* exit 1 even when the power-off started: FailureAction=poweroff then makes sure of it */
                log_error("failsafe: %s; powering off", err);
                char msg[256];
                if (poweroff_run(msg, sizeof msg) < 0)
                        log_error("%s", msg);
        }
        wrapup_free(R); /* integration hook */
        run_exit_if_abandoned(R, rc);
        if (R->ship_ready)
                shipper_free(&R->ship);
        job_free(&R->job);
        aws_ctx_free(&R->c);
        close(R->sfd);
        free(R);
        return rc;
}
