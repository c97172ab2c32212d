/* SPDX-License-Identifier: Apache-2.0 */
/* runstate.h — the lifecycle state persisted in $STATE_DIRECTORY so a restarted agent resumes. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "run/base/job.h"
#include "run/base/lifecycle.h"

enum exp_status { EXP_PENDING, EXP_RUNNING, EXP_DONE, EXP_SKIPPED };

struct exp_state {
        enum exp_status st;
        time_t start, end;
        int exit_code;          /* -1 when killed by a signal or never ran */
        int signal;
        enum exp_reason reason;
        int attempts;
        pid_t pid;
        unsigned long long pid_start;   /* /proc/PID/stat starttime, to recognise the same process */
        char marker[40];        /* the last attempt's MAYFLY_RUN_MARKER (run/proc/sweep.h), "" = none */
};

struct run_state {
        char job_sha[65];
        char run_id[160];
        char instance_id[64];
        time_t started;
        enum phase phase;
        enum lc_end end;        /* why the run is ending (END_NONE while it is not) */
        enum phase ended_in;    /* the phase it was in when the end came */
        enum outcome outcome;   /* OUT_RUNNING until the end is known */
        enum fleet_role role;   /* a run shared by instances: this instance's part in its end */
        char error[512];
        size_t n;
        struct exp_state exps[JOB_MAX_EXPERIMENTS];
        char cancelled_by[160]; /* `mayfly cancel`: who (an ARN, as the cancel record says) */
        char spot_action[16];
        time_t spot_time;
        bool exit_done;
};

const char *exp_status_name(enum exp_status s);
int runstate_load(const char *path, struct run_state *ret);
int runstate_save(const char *path, const struct run_state *s);
/* Atomic file replacement: write temp, fsync, rename, fsync the directory. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
