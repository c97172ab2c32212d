/* SPDX-License-Identifier: Apache-2.0 */
/* logship.h — a background thread that ships growing logs (only the new bytes, as numbered chunks), status.json
 * (statusput.h) and the running experiment's checkpoint changes (ckptsync.h) while it runs, so a slow S3 never
 * blocks the experiment. */
#pragma once
#include "run/ship/ckptsync.h"
#include "run/ship/shipper.h"
#include "run/ship/statusput.h"

int shipper_init(struct shipper *s, struct aws_ctx *c, const char *bucket, const char *prefix, long interval);
int shipper_start(struct shipper *s);
/* Stops the thread (the final upload is then done by the caller with shipper_flush), waiting for it until deadline
 * (monotonic seconds): a thread stuck in a transfer is then detached and marked abandoned (its state is never
 * freed) and -ETIMEDOUT returned; 0 once it has stopped. */
int shipper_stop(struct shipper *s, double deadline);
/* Stops the thread (waiting at most SHIPPER_FREE_WAIT seconds) and frees what an abandoned thread does not use. */
void shipper_free(struct shipper *s);
#define SHIPPER_FREE_WAIT 30.0
/* A log to ship as it grows (again after a restart: its offset is kept). */
int shipper_add_stream(struct shipper *s, const char *path, const char *name);
/* A file the experiment writes (rel in the tree at rootfd: its $MAYFLY_METRICS_FILE) shipped as the log `name`: it
 * is copied, read as u through an fd opened beneath rootfd (exptree.h), onto the agent's own file at path (at most
 * XMETRICS_MAX_COPY), which is shipped as any log. What the file holds when it is added is not copied (a resumed
 * experiment's earlier lines were); a file that shrinks was rewritten and is copied again from its start. */
int shipper_add_mirror(struct shipper *s, const char *path, const char *name, const struct run_user *u, int rootfd,
                       const char *rel);
/* The mirror `name` brought up to date now (the experiment has ended). */
void shipper_mirror(struct shipper *s, const char *name);
/* The live chunks of stream name (live/<name>.<offset>) that go on from where the log at path ends, appended to it
 * in order: what an instance shipped of a log before it vanished without shipping the whole log. ret_added: the
 * bytes appended. 0 or -errno. */
int shipper_restore_tail(struct shipper *s, const char *path, const char *name, uint64_t *ret_added,
                         struct aws_result *out);
/* Synchronous: ship every stream's remaining bytes and the pending status now. */
int shipper_flush(struct shipper *s, struct aws_result *out);
