/* SPDX-License-Identifier: Apache-2.0 */
/* fleet.h — what an instance does to the Auto Scaling group that runs its job (job.fleet) when the run ends
 * for it: the instance that ends the run deletes the group and its launch template (after leaving it, so that
 * the deletion does not pull the ground from under its own end), and confirms they are gone; an instance that
 * leaves while others go on takes itself out of the group, which shrinks by one (no replacement); an instance
 * stopped to keep its disk first leaves the group, so that it is not replaced. */
#pragma once
#include "aws/aws.h"
#include "run/base/job.h"

/* The group and its launch template deleted, once this instance has left it and the other members have too (they
 * end on their own once the run is over), waiting at most wait_s for them (then the deletion terminates what is
 * still in it); 0 once DescribeAutoScalingGroups shows it gone (or being deleted) and the template gone. msg says
 * what was done. */
int fleet_teardown(struct aws_ctx *c, const struct job_fleet *f, const char *instance, long wait_s, char *msg,
                   size_t msglen);
/* TerminateInstanceInAutoScalingGroup(instance, decrement): this instance ends, the group shrinks by one. */
int fleet_leave(struct aws_ctx *c, const char *instance, char *msg, size_t msglen);
/* DetachInstances(instance, no decrement): out of the group (which launches a replacement to go on with the run). */
int fleet_detach(struct aws_ctx *c, const struct job_fleet *f, const char *instance, char *msg, size_t msglen);
/* The group's MaxSize and DesiredCapacity now (0 each when it is gone); 0, or -errno with msg. */
int fleet_size_now(struct aws_ctx *c, const struct job_fleet *f, int *ret_max, int *ret_desired, char *msg,
                   size_t msglen);
/* Whether this instance is the group's last member (its desired capacity is 1 or less). */
bool fleet_last_member(struct aws_ctx *c, const struct job_fleet *f);
