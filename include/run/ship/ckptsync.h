/* SPDX-License-Identifier: Apache-2.0 */
/* ckptsync.h — the running experiment's checkpoint to S3 as it changes (the shipper's checkpoint sync). */
#pragma once
#include "run/ship/shipper.h"

/* Checkpoints live in base/<experiment> of the workdir rootfd, n experiments, read as the run user u. */
int shipper_set_checkpoint(struct shipper *s, const struct run_user *u, int rootfd, const char *base, size_t n,
                           long interval);
/* The experiment (index, name) whose checkpoint is synced every interval from now on; -1: none. */
void shipper_checkpoint_current(struct shipper *s, int idx, const char *name);
/* Synchronous: upload experiment idx's checkpoint files changed since its last sync. */
int shipper_sync_checkpoint(struct shipper *s, int idx, const char *name, struct aws_result *out);
/* The first checkpoint path refused so far, into dst; false when there was none. */
bool shipper_refusal(struct shipper *s, char *dst, size_t n);
