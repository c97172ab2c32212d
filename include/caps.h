/* SPDX-License-Identifier: Apache-2.0 */
/* caps.h — how much of each kind of object mayfly reads from outside: whoever can write under a run's prefix (the
 * experiment, through the instance role; a teammate; a leaked key) chooses its size, so every read has a named
 * limit, and past it the read stops with one line naming the key and its size — never an allocation of the object's
 * size, never a disk filled. */
#pragma once

#define CAP_STATUS_JSON (4u << 20)    /* status.json (its experiments' list is bounded by JOB_MAX_EXPERIMENTS) */
#define CAP_LAUNCH_JSON (1u << 20)    /* launch.json */
#define CAP_LEDGER_RECORD (64u << 10) /* a ledger record: lease, exp, done, end, cancel, an instance's record */
#define CAP_LIVE_CHUNK (64u << 20)    /* a live log chunk: the agent ships at most this much at a time */
#define CAP_LOG_RESTORE (2ull << 30)  /* an experiment's log brought back onto a replacement instance */
#define CAP_LOG_READ (8u << 20)       /* what `mayfly logs` holds in memory at once (it reads in ranges of this) */
