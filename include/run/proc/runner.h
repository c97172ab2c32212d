/* SPDX-License-Identifier: Apache-2.0 */
/* runner.h — starting an experiment: own session and process group, the run user, the workdir, a clean
 * environment, stdout/stderr on pipes the agent reads. */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

#define RUN_USER_MAX_GROUPS 64

struct run_user {
        char name[64];
        uid_t uid;
        gid_t gid;
        gid_t groups[RUN_USER_MAX_GROUPS];   /* supplementary groups (primary included), resolved before any fork */
        int ngroups;
        char home[4096];
        char shell[4096];
        bool switch_user;     /* false when the agent is not root: run as ourselves */
};

/* Picks the user: the spec's, else ec2-user, else ubuntu, else a dedicated `mayfly` system user (created).
 * Never root unless the spec names root. */
int run_user_resolve(const char *wanted, struct run_user *ret, char *err, size_t errlen);

struct spawn {
        char *const *argv;
        char *const *envp;
        const char *cwd;
        const struct run_user *user;
};

struct child {
        pid_t pid;
        int out_fd, err_fd;    /* non-blocking, O_CLOEXEC read ends */
};

/* Starts the process; exec failures come back as an error here (not as an exit code). */
int runner_spawn(const struct spawn *s, struct child *ret, char *err, size_t errlen);
/* Signal the whole process group (the experiment and everything it started). */
int runner_signal_group(pid_t pgid, int sig);
/* Environment for an experiment, NAME=VALUE entries, each name once (a later source replaces an earlier one):
 * PATH; HOME, USER, LOGNAME, SHELL from the passwd entry; locale, TZ and AWS configuration (never keys) passed
 * through from `env`; PYTHONUNBUFFERED=1 (so print() reaches the live logs); the job's variables; MAYFLY_*.
 * NULL-terminated, free with strv_free; NULL on allocation failure. Pure: env is passed in. */
char **runner_environment(const struct run_user *u, char *const *env, char *const *job_env, char *const *mayfly_env);
void strv_free(char **v);
