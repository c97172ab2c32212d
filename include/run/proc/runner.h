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
        int dropped;          /* administrators' groups it is in that the experiment does not get */
};

/* Picks the user: the spec's, else a dedicated `mayfly` system user (created when missing; never the AMI's
 * administrator). Never root unless the spec names root. A named user's supplementary groups lose the
 * administrators' (run_group_dropped) unless keep_groups (NULL-terminated) names them; `mayfly` keeps none but its
 * own. */
int run_user_resolve(const char *wanted, char *const *keep_groups, struct run_user *ret, char *err, size_t errlen);
/* Pure: whether a supplementary group is taken from the experiment: root, sudo, wheel, admin, adm, docker, lxd,
 * disk and systemd-journal (ways to root, or to every file), unless keep names it. */
bool run_group_dropped(const char *group, char *const *keep);

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
static inline void strv_freep(char ***v) { strv_free(*v); }
