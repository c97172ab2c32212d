/* SPDX-License-Identifier: Apache-2.0 */
/* exit.h — A_EXIT. Internal to agent/run/drive/. */
#pragma once
#include "run/drive/runctx.h"

/* The exit decision carried out: EV_DONE once the action took, STOP_DRIVING when the process ends first. */
int act_exit(struct run *R);
