/* SPDX-License-Identifier: Apache-2.0 */
/* sweep.h — what an experiment leaves running, found and killed when it ends.
 *
 * Killing the experiment's process group misses a process that left it (setsid, a double fork). Under systemd every
 * process of the run user in the agent's own service cgroup is the experiment's (cgroup_is_unit); besides (and
 * alone, as in a container), each attempt gets a marker in its environment,
 * MAYFLY_RUN_MARKER=<128 random bits in hex>, which every process it starts inherits; when the attempt ends, every
 * process whose real, effective or saved uid is the run user's and whose /proc/PID/environ holds that exact entry
 * gets SIGKILL (through a pidfd: a pid reused meanwhile is not hit), scan after scan until none remain or the bound
 * passes. Never every process of the uid: a login of the same user, or another run's experiment, does not carry
 * the marker. What this cannot catch is in docs/security.md (a process that execs itself with an empty or rewritten
 * environment, one that made itself non-dumpable where root lacks CAP_SYS_PTRACE). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "run/base/wait.h"

#define SWEEP_MARKER_VAR "MAYFLY_RUN_MARKER"
#define SWEEP_MARKER_LEN 32                /* hex digits */
#define SWEEP_ENVIRON_MAX (16u << 20)      /* bytes of one process's environ read at most */
#define SWEEP_STATUS_MAX 8192              /* bytes of /proc/PID/status read at most */
#define SWEEP_SECONDS 10.0                 /* how long the scans go on while marked processes remain */
#define SWEEP_CGROUP_MAX 4096              /* bytes of /proc/PID/cgroup read at most */

/* A fresh marker (lowercase hex, SWEEP_MARKER_LEN digits). 0 or -errno (no randomness). */
int sweep_new_marker(char ret[SWEEP_MARKER_LEN + 1]);

/* An environ block read in pieces (NUL-separated NAME=VALUE entries): whether one entry is exactly `entry`. Pure. */
struct envscan {
        const char *want;
        size_t wlen;
        size_t pos;                        /* bytes of want matched in the current entry; (size_t)-1: not it */
        bool found;
};
void envscan_init(struct envscan *s, const char *entry);
void envscan_feed(struct envscan *s, const char *buf, size_t n);
/* After the last piece (an entry at the very end without its NUL counts). */
bool envscan_found(struct envscan *s);
/* The same over a whole block. Pure. */
bool environ_has(const char *blk, size_t n, const char *entry);
/* Whether a /proc/PID/cgroup text names a systemd service's cgroup (the v2 line "0::/….service", or v1's
 * "name=systemd:/….service"). Pure. Under systemd the agent's unit holds only the agent and its experiment: every
 * process of the run user in it is swept, its environment cleared or not; elsewhere (a container) the marker
 * alone says which. */
bool cgroup_is_unit(const char *text);
/* The real, effective, saved and filesystem uids from a /proc/PID/status text. 0 or -EINVAL. Pure. */
int status_uids(const char *text, size_t n, uid_t ret[4]);

/* One scan of /proc: every marked process of uid (the agent excepted) gets SIGKILL. Returns how many were
 * signalled, or -errno when /proc cannot be read; *ret_unreadable: processes of uid whose environ could not be read
 * (left alone). */
int sweep_once(uid_t uid, const char *marker, size_t *ret_unreadable);
/* Scans until one finds none, for at most seconds (naps through the waiter: signals read, watchdog fed). Returns
 * how many marked processes remained at the last scan (0: none), or -errno. *ret_killed: signals sent in all. */
int sweep_run(struct waiter *w, uid_t uid, const char *marker, double seconds, size_t *ret_killed);
