/* SPDX-License-Identifier: Apache-2.0 */
/* asuser.h — file work done with the run user's identity.
 *
 * mayfly runs as root; the experiment runs as the run user and owns its workdir. Whatever root does to a file the
 * experiment controls (extracting the source, restoring and syncing the checkpoint, uploading outputs) is done on
 * a thread made for it, whose filesystem uid and gid and supplementary groups are the run user's: the kernel then
 * refuses whatever the user could not do (a link or a hard link planted towards /root, /etc/shadow), and what
 * the thread creates belongs to the user. The thread has its own working directory and umask (CLONE_FS
 * unshared); threads it starts (parallel transfers) inherit all of it. Paths are resolved beneath the tree's fd
 * (beneath.h): both rules hold at once. */
#pragma once
#include "run/proc/runner.h"

/* The calling thread (one made for it: it never gives the identity back) takes u's filesystem uid and gid and
 * supplementary groups, and drops CAP_SYS_RESOURCE from its effective set (so the kernel counts its writes against
 * the user's blocks and quota, not root's reserve). u NULL or !u->switch_user: nothing to take. 0 or -errno. */
int as_user_take(const struct run_user *u);

/* Runs fn(arg) on a new thread with u's filesystem identity (u NULL or !u->switch_user: the agent's own), the
 * directory cwdfd (-1: unchanged) as its working directory and umask 022, and waits for it. Returns fn's
 * result, or -errno when the identity could not be taken (fn not run). */
int as_user(const struct run_user *u, int cwdfd, int (*fn)(void *arg), void *arg);
