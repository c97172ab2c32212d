/* SPDX-License-Identifier: Apache-2.0 */
/* xscratch.h — PREPARE's part for "scratch": the instance store mounted at /mnt/mayfly-scratch (scratch.h), or for
 * prefer-instance-store on an instance without one a directory on the state directory's disk, and in it the run
 * user's directory: R->scratchfd and R->scratch_dir, given to the experiment as MAYFLY_SCRATCH. */
#pragma once
#include "run/drive/runctx.h"

/* Once per start (every start: it finds what an earlier one made). EV_FAILED (the run's error says why) when the
 * job asks for the instance store and the instance has none, or it cannot be made or mounted; -1 otherwise (also
 * when the job has no "scratch"). */
int prepare_scratch(struct run *R);
/* "MAYFLY_SCRATCH=<dir>" into out (size bytes); false when the run has no scratch directory. */
bool scratch_env(const struct run *R, char *out, size_t size);
