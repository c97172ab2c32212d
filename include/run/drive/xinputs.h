/* SPDX-License-Identifier: Apache-2.0 */
/* xinputs.h — PREPARE's last part: the job's inputs staged (inputs.h) beneath the workdir or the scratch directory,
 * on every start, with status.json's "staging" while it lasts; and the experiment's $MAYFLY_INPUT_<NAME>. */
#pragma once
#include "run/drive/runctx.h"

/* Every input, in order. EV_FAILED (the run's error names the input and why), an event that came meanwhile (a stop,
 * a spot notice: staging stops at the next object), or -1 when all are staged. */
int stage_inputs(struct run *R);
/* status.json's "staging" while inputs are staged (objects and bytes done and to do, rate, ETA), else NULL. */
struct cJSON *staging_json(struct run *R);
/* "MAYFLY_INPUT_<NAME>=<absolute path>" for every input, NULL-terminated (free with strv_free), NULL: no memory. */
char **inputs_env(const struct run *R);
