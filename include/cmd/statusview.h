/* SPDX-License-Identifier: Apache-2.0 */
/* statusview.h — `mayfly status`'s lines from a status.json, pure (the caller makes its strings safe first). */
#pragma once
#include <cjson/cJSON.h>
#include <stdio.h>

/* Progress, error, what the run waits for, GPU health, every instance with its state and cost, each experiment as a
 * person reads it ("interrupted (…), will resume (attempt N)"), the cost. */
void status_print_body(FILE *f, const cJSON *st);
