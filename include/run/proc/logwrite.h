/* SPDX-License-Identifier: Apache-2.0 */
/* logwrite.h — the experiment's stdout and stderr onto the disk: written with the run user's identity, each log
 * capped at log_max with its head released.
 *
 * Who pays for the blocks. ext4 gives root's reserved blocks (mkfs -m, 5 % by default) to a write whose writer has
 * fsuid 0 or CAP_SYS_RESOURCE: the kernel looks at the credentials of the task doing the write(), not at who owns
 * or opened the file. The agent copies the experiment's output, so written by the agent an experiment that prints
 * without end would eat the reserve meant to keep root's own work (the agent's state and log, journald) going on a
 * full disk. Credentials are per thread on Linux (setfsuid, setfsgid, setgroups and capset as bare system calls
 * change the calling thread only), so the writes go to one thread of the agent's that takes the run user's
 * filesystem identity and drops CAP_SYS_RESOURCE once, at its start, and never gives them back; the main loop hands
 * it each chunk (at most 64 KiB) and waits for it, as it waited on write() itself before. The rest of the agent
 * keeps root's identity for root's files. Opening the file as the user would not do: the write's credentials are
 * what count. The log files are root's to create (in root's logs directory, out of the user's reach) and are then
 * handed to the user (fchown of the fd) so that they count against the user's quota and their owner says whose
 * bytes they hold.
 *
 * log_max. Past log_max bytes a log keeps growing in size but not on the disk: its head is released with
 * fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) in LOG_RELEASE_ALIGN steps, so every byte offset stays
 * what it was (live chunks in S3 are named by offset; a restore appends at the file's size) and the released head
 * reads as zeros. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "run/proc/runner.h"

#define LOG_RELEASE_ALIGN (1u << 20)   /* the head is released in whole MiB (log_max is at least JOB_LOG_MAX_MIN) */

struct logwriter {
        pthread_t th;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        bool on;                      /* the thread runs: writes go through it */
        bool quit, busy, ready;
        int start_rc;
        /* the one request at a time */
        int fd;
        const char *buf;
        size_t n;
        ssize_t rc;                   /* write_all's answer, */
        int err;                      /* and its errno when short */
};

/* Starts the writer thread with u's identity (u NULL or !u->switch_user: no thread, writes are the caller's own).
 * 0, or -errno when the identity could not be taken (nothing started). */
int logw_start(struct logwriter *L, const struct run_user *u);
/* Writes all n bytes to fd (on the writer thread); the bytes written, fewer with errno set when a write failed
 * (ENOSPC), or -1. */
ssize_t logw_write(struct logwriter *L, int fd, const void *buf, size_t n);
/* Stops the thread (it is idle between writes). Safe on one never started. */
void logw_stop(struct logwriter *L);

/* Where the released head of a log of size bytes capped at max ends: a multiple of LOG_RELEASE_ALIGN at most
 * size - max; 0 when nothing is to be released (max 0: no cap). Pure. */
uint64_t log_release_upto(uint64_t size, uint64_t max);
/* Releases [from, to) of fd's blocks (offsets and size unchanged). 0 or -errno. */
int log_release(int fd, uint64_t from, uint64_t to);
