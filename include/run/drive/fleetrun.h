/* SPDX-License-Identifier: Apache-2.0 */
/* fleetrun.h — RUN and SHIP of a run shared by instances. Internal to agent/run/drive/. */
#pragma once
#include "run/drive/runctx.h"

/* A_START in a shared run: the next experiment the ledger lets this instance have, claimed, started, supervised,
 * committed. */
int fleet_start(struct run *R);
/* Before the final status: who ends the run, who follows, who leaves (fleet_end_plan). */
void fleet_decide(struct run *R);
/* After the final upload: the claim this instance still holds goes back. */
void fleet_release_claim(struct run *R);
