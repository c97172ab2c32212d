/* SPDX-License-Identifier: Apache-2.0 */
/* exit.c — the exit phase: the exit decision carried out (the action, retried; a spot notice's reclaim awaited;
 * the disk kept when the results are not all in S3), and in a shared run the group ended, followed or left. */
#include "run/drive/exit.h"

#include <systemd/sd-daemon.h>

#include "exitcode.h"
#include "log.h"
#include "run/proc/exitact.h"
#include "run/fleet/group.h"

/* ---------- EXIT ---------- */

/* After a spot notice: results are shipped; AWS reclaims the instance. Wait for it, then act anyway. */
static bool await_reclaim(struct run *R) {
        log_info("results shipped before the interruption; waiting for EC2 to %s the instance", R->st.spot_action);
        /* the notice's time as IMDS gave it, but never more than 2 minutes out (what EC2 gives): a far-off time
         * (a bad answer, a clock far off at boot) must not keep the instance up; the notice's time is the cloud's */
        time_t now = aws_cloud_now(&R->c);
        double wait = (double)(MIN(R->st.spot_time, now + 120) + 300 - now);
        if (!waiter_sleep(&R->w, MAX(wait, 0)))
                return false;
        log_warn("the instance is still up 5 minutes after the notice's time");
        return true;
}

/* The exit's calls to EC2 and Auto Scaling, through the seam */
struct exit_call {
        enum exit_action a;
        long wait_s;
        char msg[512];
};

static int do_exit_action(struct run *R, void *p) {
        struct exit_call *e = p;
        return exit_action_perform(&R->c, e->a, R->inst.id, e->msg, sizeof e->msg);
}
static int do_teardown(struct run *R, void *p) {
        struct exit_call *e = p;
        return fleet_teardown(&R->c, &R->job.fleet, R->inst.id, e->wait_s, e->msg, sizeof e->msg);
}
static int do_leave(struct run *R, void *p) {
        struct exit_call *e = p;
        return fleet_leave(&R->c, R->inst.id, e->msg, sizeof e->msg);
}
static int do_detach(struct run *R, void *p) {
        struct exit_call *e = p;
        return fleet_detach(&R->c, &R->job.fleet, R->inst.id, e->msg, sizeof e->msg);
}
static int do_keep_disk(struct run *R, void *p) {
        struct exit_call *e = p;
        return exit_keep_disk(&R->c, R->inst.id, e->msg, sizeof e->msg);
}

/* The exit action, repeated until it takes (EV_DONE) or the agent is stopped. */
static int perform_exit(struct run *R, enum exit_action a) {
        sd_notify(0, "STOPPING=1");
        for (int attempt = 1;; attempt++) {
                struct exit_call e = { .a = a };
                log_info("exit action: %s", exit_action_name(a));
                if (io(R, do_exit_action, &e) == 0) {
                        log_info("%s", e.msg);
                        R->st.exit_done = true;
                        save_state(R);
                        return EV_DONE;
                }
                log_error("exit action %s failed (attempt %d): %s; retrying in %d s", exit_action_name(a), attempt,
                          e.msg, EXIT_RETRY);
                if (!waiter_sleep(&R->w, EXIT_RETRY))
                        return STOP_DRIVING;
        }
}

int act_exit(struct run *R) {
        bool shipped = R->st.phase != PH_SHIP;
        struct lc_exit_plan p = lc_exit_decide(R->st.end, R->st.outcome, shipped, R->job.on_exit, R->job.on_error);
        R->rc = R->bad_spec ? EXIT_USAGE : R->st.outcome == OUT_SUCCEEDED ? EXIT_OK : EXIT_RUN_FAILED;
        log_info("outcome: %s (%s)", outcome_name(R->st.outcome), lc_end_name(R->st.end));
        switch (p.kind) {
        case X_RESUME_LATER:
                /* systemd stops us (shutdown, scale-in, restart): shipped, the state kept, resumed on the next start */
                R->st.phase = R->st.ended_in == PH_FETCH ? PH_FETCH : PH_PREPARE;
                R->st.end = END_NONE;
                R->st.outcome = OUT_RUNNING;
                save_state(R);
                log_info("stopped; the run resumes when the agent starts again");
                R->rc = EXIT_OK;
                return STOP_DRIVING;
        case X_AWAIT_RECLAIM: {
                _cleanup_free_ char *js = NULL;
                if (build_status(R, true, &js) == 0)
                        wrapup_notify(&R->wrap, js); /* the interruption's notification, when it is due */
                if (!await_reclaim(R)) {
                        R->rc = EXIT_OK;
                        return STOP_DRIVING;
                }
                break;
        }
        case X_ACTION: break;
        }
        /* the notification, after the final status and before the exit action; bounded, once per run; in a fleet
         * by the instance that ended the run only */
        _cleanup_free_ char *js = NULL;
        if ((!R->fleet || R->st.role == ROLE_ENDS) && build_status(R, true, &js) == 0)
                wrapup_notify(&R->wrap, js);
        struct exit_call e = { 0 };
        if (R->fleet && R->job.fleet.group && (R->st.role == ROLE_ENDS || R->st.role == ROLE_FOLLOWS)) {
                /* the run is over: its group goes (a relaunch loop is impossible: nothing relaunches it) */
                /* the others see the end record within ttl/3, stop within stop_grace and ship */
                e.wait_s = R->ledger.ttl / 3 + R->job.stop_grace + FLEET_SHIP_WAIT;
                if (io(R, do_teardown, &e) < 0)
                        log_warn("%s", e.msg);
                else
                        log_info("%s", e.msg);
        }
        if (R->fleet && R->job.fleet.group && R->st.role == ROLE_LEAVES && p.action != EXIT_ACTION_KEEP && !p.keep_disk) {
                if (io(R, do_leave, &e) == 0) {
                        log_info("%s", e.msg);
                        R->st.exit_done = true;
                        save_state(R);
                        return EV_DONE;
                }
                log_warn("%s; ending the instance instead", e.msg);
        }
        if (p.keep_disk) {
                /* out of the group first, so that it is not replaced while its disk holds the results */
                if (R->fleet && R->job.fleet.group && io(R, do_detach, &e) < 0)
                        log_warn("%s", e.msg);
                if (io(R, do_keep_disk, &e) == 0) {
                        log_warn("%s: stopped rather than %s, so that its disk keeps what did not reach S3; when it "
                                 "starts again mayfly ships it, then does the exit action", e.msg,
                                 exit_action_name(p.wanted));
                        R->rc = EXIT_RUN_FAILED;
                        return STOP_DRIVING;
                }
                log_error("cannot stop the instance to keep its unshipped results (%s); going on with %s: what did "
                          "not reach S3 is lost with the instance", e.msg, exit_action_name(p.wanted));
                p.action = p.wanted;
        }
        return perform_exit(R, p.action);
}
