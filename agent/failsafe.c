/* failsafe.c — `mayfly failsafe`, run by mayfly-failsafe.service when systemd gave up restarting the agent:
 * ship what exists, then the on_error action; without a readable job, power off. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>

#include "cli.h"
#include "log.h"
#include "run.h"
#include "xferdir.h"
#include "exitact.h"

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
        _cleanup_free_ char *js = NULL;
        if (status_build(R, &js) == 0 && shipper_put_text(&R->ship, "status.json", js, "application/json", &res) < 0)
                log_warn("failsafe: shipping status.json: %s", res.msg);
        return r;
}

/* Run by mayfly-failsafe.service when the agent failed for good: ship what exists (logs, status `error`), then
 * the on_error action; without a readable job, power off. Never waits forever. */
int cmd_failsafe(int argc, char **argv) {
        if (argc > 1) {
                bool help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
                fprintf(help ? stdout : stderr, "usage: mayfly failsafe\n\n  Run by mayfly-failsafe.service after the "
                                                "agent failed repeatedly: uploads\n  $LOGS_DIRECTORY and an error "
                                                "status, then the job's on_error action.\n");
                return help ? EXIT_OK : EXIT_USAGE;
        }
        struct run *R = calloc(1, sizeof *R);
        if (!R)
                return EXIT_FAIL;
        R->metrics_fd = -1;
        snprintf(R->job_path, sizeof R->job_path, "%s", JOB_DEFAULT_PATH);
        run_first_dir(R->state_dir, sizeof R->state_dir, "STATE_DIRECTORY", "/var/lib/mayfly");
        run_first_dir(R->logs_dir, sizeof R->logs_dir, "LOGS_DIRECTORY", "/var/log/mayfly");
        snprintf(R->state_path, sizeof R->state_path, "%s/state.json", R->state_dir);
        if (run_setup_signals(R) < 0 || aws_ctx_init(&R->c) < 0) {
                free(R);
                char msg[256];
                return poweroff_run(msg, sizeof msg) == 0 ? EXIT_FAIL : EXIT_FAIL;
        }
        log_error("failsafe: the agent failed repeatedly; shipping what exists and ending the instance");
        char err[1024];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        run_load_instance(R);
        int r = run_read_job(R, &text, &len, err, sizeof err);
        if (r == 0)
                r = job_parse(text, len, &R->job, err, sizeof err);
        if (r == 0) {
                bool finished = false;
                if (runstate_load(R->state_path, &R->st) < 0)
                        run_new_run_id(R);
                else
                        finished = R->st.phase == PH_DONE || R->st.exit_done;
                if (finished) {
                        /* the run reported its own outcome: only make sure the instance goes away */
                        enum exit_action a = !strcmp(R->st.outcome, "succeeded") ? R->job.on_exit : R->job.on_error;
                        run_do_exit_action(R, a);
                        job_free(&R->job);
                        aws_ctx_free(&R->c);
                        close(R->sfd);
                        free(R);
                        return EXIT_FAIL;
                }
                snprintf(R->st.outcome, sizeof R->st.outcome, "error");
                snprintf(R->st.error, sizeof R->st.error, "the agent failed repeatedly (systemd gave up restarting it)");
                if (run_setup_results(R, R->job.results, R->job.name) == 0)
                        run_blocking(R, ship_logs_dir, NULL);
                run_do_exit_action(R, R->job.on_error == EXIT_ACTION_KEEP ? EXIT_ACTION_KEEP : R->job.on_error);
        } else {
                log_error("failsafe: %s; powering off", err);
                char msg[256];
                if (poweroff_run(msg, sizeof msg) < 0)
                        log_error("%s", msg);
        }
        if (R->ship_ready)
                shipper_free(&R->ship);
        job_free(&R->job);
        aws_ctx_free(&R->c);
        close(R->sfd);
        free(R);
        return EXIT_FAIL;
}
