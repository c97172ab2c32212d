/* SPDX-License-Identifier: Apache-2.0 */
/* exitact.h — what happens to the instance at the end: terminate, stop, power off or keep. */
#pragma once
#include "aws/aws.h"
#include "run/base/job.h"

#define POWEROFF_DEFAULT "systemctl poweroff"

/* Performs the action on instance_id ("" when unknown). TerminateInstances/StopInstances failing (denied, EC2
 * unreachable after retries) falls back to the power-off command ($MAYFLY_POWEROFF_COMMAND, default
 * "systemctl poweroff"), which terminates an instance launched with InstanceInitiatedShutdownBehavior=terminate.
 * 0 when the action (or its fallback) was carried out. */
int exit_action_perform(struct aws_ctx *c, enum exit_action a, const char *instance_id, char *msg, size_t msglen);
/* StopInstances on instance_id and nothing else (no power-off fallback, which would end an instance launched with
 * InstanceInitiatedShutdownBehavior=terminate and its disk): for keeping a disk that holds the only copy of
 * results. -errno when EC2 refused (a one-time spot instance cannot be stopped) or was unreachable. */
int exit_keep_disk(struct aws_ctx *c, const char *instance_id, char *msg, size_t msglen);
/* Runs the power-off command; 0 when it exited 0. */
int poweroff_run(char *msg, size_t msglen);
