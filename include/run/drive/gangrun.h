/* SPDX-License-Identifier: Apache-2.0 */
/* gangrun.h — this instance's part in a gang (an experiment with nodes > 1; ledger.h: gangs): the gang formed before
 * the command starts, the command's variables, and what the end of one part means for the whole gang. Internal to
 * agent/run/drive/. */
#pragma once
#include "run/drive/runctx.h"

#define CLAIM_AGAIN (-2) /* the claim is given back or lost: the next one is looked for (fleet_start) */
#define GANG_COMMIT (-3) /* gang_part_ended: rank 0 commits the experiment's done record (it finished, or failed for
                          * good) */

/* After a claim of experiment i (its lease: rank 0, or a slot): waits until the gang is whole for the attempt
 * (status.json's "waiting": "gang 1/2 …"), at most gang_timeout. 0: it runs (R->gang says how); CLAIM_AGAIN: it
 * fell apart while forming (the place given back); EV_FAILED: it did not form in time (naming the missing ranks and
 * the group's size); another event (a stop, a notice). */
int gang_form(struct run *R, int i);
/* The part ended (supervise gave EV_EXP_ENDED): GANG_COMMIT (rank 0: finished, or a failure with no attempt left),
 * or CLAIM_AGAIN (its logs, and rank 0's checkpoint, shipped; its place given back; the next attempt looked for). */
int gang_part_ended(struct run *R, int i);
