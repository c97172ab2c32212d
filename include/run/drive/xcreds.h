/* SPDX-License-Identifier: Apache-2.0 */
/* xcreds.h — PREPARE's part in the experiment's sandbox: IMDS closed to the run user (imdsblock.h) and the
 * experiment's own credentials served (expcreds.h), as the job's experiment_credentials says; undone at the end. */
#pragma once
#include "run/drive/runctx.h"

/* Once per start, after the run user is known. EV_FAILED (the run's error says why) when the instance role cannot be
 * kept from the experiment; a refused AssumeRole is not a failure: the experiment gets no credentials, and the log
 * says why. -1 otherwise. */
int prepare_credentials(struct run *R);
/* The experiment's environment entries for its credentials (the container provider's variables, and IMDS
 * disabled for its SDKs): at most 4 strings of `size` bytes into out; how many. */
size_t credentials_env(const struct run *R, char out[][2400], size_t size);
/* The credentials' server stopped and the IMDS rule removed (at the run's end). */
void drop_credentials(struct run *R);
