/* SPDX-License-Identifier: Apache-2.0 */
/* fleet.c — the Auto Scaling group's end, from the instances that run it. */
#include "run/fleet/group.h"

#include "aws/autoscaling.h"
#include "log.h"
#include "run/base/wait.h"
#include "util.h"

#define FLEET_CONFIRM_TRIES 10       /* DescribeAutoScalingGroups, 1 s apart */

/* Members of the group other than instance that are not on their way out. */
static size_t others_in(const struct asg_info *g, const char *instance) {
        size_t n = 0;
        for (size_t i = 0; i < g->n; i++)
                n += strcmp(g->members[i], instance ? instance : "") && !str_has_prefix(g->lifecycle[i], "Terminat") &&
                     !str_has_prefix(g->lifecycle[i], "Detach");
        return n;
}

int fleet_teardown(struct aws_ctx *c, const struct job_fleet *f, const char *instance, long wait_s, char *msg,
                   size_t msglen) {
        if (!f->group) {
                errf(msg, msglen, "no Auto Scaling group");
                return 0;
        }
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        struct aws_result out = { 0 };
        /* first out of it (no replacement), so that ForceDelete does not terminate this instance before it ends */
        if (instance && *instance)
                (void)asg_detach_instance(c, &h, f->group, instance, true, &out);
        /* the others still in it are stopping their work and shipping it (they saw the end record): each leaves
         * the group when it is done, and the deletion waits for them, up to wait_s (then it terminates them) */
        double deadline = now_mono() + (double)wait_s;
        bool said = false;
        for (;;) {
                struct asg_info info;
                struct aws_result dres = { 0 };
                size_t n = asg_describe(c, &h, f->group, &info, &dres) == 0 && info.exists ? others_in(&info, instance) : 0;
                if (n == 0 || now_mono() >= deadline)
                        break;
                if (!said)
                        log_info("waiting for %zu other instance(s) of %s to end (at most %lds)", n, f->group, wait_s);
                said = true;
                worker_nap(2);
        }
        r = asg_delete(c, &h, f->group, &out);
        if (r == 0 && f->launch_template)
                r = ec2_delete_launch_template(c, &h, f->launch_template, &out);
        bool gone = false;
        for (int i = 0; r == 0 && i < FLEET_CONFIRM_TRIES && !gone; i++) {
                struct asg_info info;
                if (asg_describe(c, &h, f->group, &info, &out) == 0 && (!info.exists || info.deleting))
                        gone = true;
                else
                        worker_nap(1);
        }
        if (r == 0 && f->launch_template && ec2_launch_template_exists(c, &h, f->launch_template, &out) > 0)
                gone = false;
        http_client_free(&h);
        if (r < 0) {
                errf(msg, msglen, "deleting the Auto Scaling group %s: %s", f->group, out.msg);
                return r;
        }
        errf(msg, msglen, "Auto Scaling group %s and launch template %s %s", f->group,
             f->launch_template ? f->launch_template : "-", gone ? "deleted" : "deleted (not yet confirmed)");
        return gone ? 0 : -EAGAIN;
}

int fleet_leave(struct aws_ctx *c, const char *instance, char *msg, size_t msglen) {
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        struct aws_result out = { 0 };
        r = asg_terminate_instance(c, &h, instance, true, &out);
        http_client_free(&h);
        errf(msg, msglen, r == 0 ? "TerminateInstanceInAutoScalingGroup %s (the group shrinks by one)"
                                 : "TerminateInstanceInAutoScalingGroup %s: %s", instance, out.msg);
        return r;
}

int fleet_detach(struct aws_ctx *c, const struct job_fleet *f, const char *instance, char *msg, size_t msglen) {
        if (!f->group)
                return 0;
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        struct aws_result out = { 0 };
        r = asg_detach_instance(c, &h, f->group, instance, false, &out);
        http_client_free(&h);
        errf(msg, msglen, r == 0 ? "detached %s from %s" : "DetachInstances %s: %s", instance,
             r == 0 ? f->group : out.msg);
        return r;
}

int fleet_size_now(struct aws_ctx *c, const struct job_fleet *f, int *ret_max, int *ret_desired, char *msg,
                   size_t msglen) {
        *ret_max = *ret_desired = 0; /* gone, or not known */
        if (!f->group)
                return -ENOENT;
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0)
                return r;
        struct aws_result out = { 0 };
        struct asg_info info;
        r = asg_describe(c, &h, f->group, &info, &out);
        http_client_free(&h);
        if (r < 0)
                errf(msg, msglen, "DescribeAutoScalingGroups %s: %s", f->group, out.msg);
        else if (info.exists)
                *ret_max = info.max, *ret_desired = info.desired;
        return r;
}

bool fleet_last_member(struct aws_ctx *c, const struct job_fleet *f) {
        if (!f->group)
                return true;
        struct http_client h;
        if (http_client_init(&h) < 0)
                return true;
        struct aws_result out = { 0 };
        struct asg_info info;
        bool last = asg_describe(c, &h, f->group, &info, &out) < 0 || !info.exists || info.desired <= 1;
        http_client_free(&h);
        return last;
}
