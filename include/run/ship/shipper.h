/* SPDX-License-Identifier: Apache-2.0 */
/* shipper.h — the shipper's state, shared by its three parts: the thread and the live logs (logship.c), the
 * status writes (statusput.c), the checkpoint sync (ckptsync.c). Data only. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "aws/aws.h"
#include "run/proc/runner.h"

struct logstream {
        char *path;
        char *name;               /* "train/stdout" → live/train/stdout.<offset> */
        uint64_t shipped;
        double last;
        /* a mirror: path is the agent's copy of a file the experiment writes in its tree (src, relative to rootfd,
         * read as user), brought up to date before each shipping; src_off: where the copy goes on in src */
        char *src;
        const struct run_user *user;
        int rootfd;
        uint64_t src_off;
};

struct shipper {
        struct aws_ctx *c;
        char bucket[64];
        char prefix[1200];        /* key prefix of the run: "results/name/run-id/" */
        long interval;
        pthread_t th;
        bool running;
        pthread_mutex_t lock;
        pthread_mutex_t mirror_lock; /* one mirror copy at a time (the thread, the driver's shipper_mirror) */
        pthread_cond_t cond;      /* on CLOCK_MONOTONIC */
        bool stop;
        bool exited;              /* the thread has left its loop (set under lock, cond broadcast) */
        bool abandoned;           /* it did not stop in time: detached, and the state it uses is never freed */
        struct logstream *streams; /* any number: two per experiment, metrics */
        size_t n, alloc;
        char *status_json;        /* pending status.json, NULL when shipped */
        bool status_shared;       /* a run shared by instances: status.json never over the final one (the ender's) */
        bool status_closed;       /* ... and the run is over: no more status.json from here */
        unsigned long status_refused; /* shared status.json writes refused (412, or a store that bends the rules) */
        /* checkpoints: <ckpt_base>/<experiment>/ in the workdir → checkpoint/<experiment>/ */
        char ckpt_base[4096];     /* relative to the workdir; "" = none */
        const struct run_user *ckpt_user;
        int ckpt_rootfd;          /* the workdir */
        long ckpt_interval;
        double ckpt_last;
        time_t *ckpt_since;       /* per experiment: files changed since then are synced */
        size_t ckpt_n;
        int ckpt_current;         /* the experiment synced every ckpt_interval, -1 = none */
        char ckpt_name[80];
        char refusal[700];        /* the first checkpoint path refused (a link out of the workdir) */
        unsigned long chunks, failures;
        char last_error[512];
};
