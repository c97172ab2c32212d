/* SPDX-License-Identifier: Apache-2.0 */
/* child.h — the one way the agent starts a helper program (credential_process, nvidia-smi, the power-off command,
 * useradd): posix_spawn, with the signals the agent blocks for its signalfd unblocked in the child and the common
 * ones reset to their default action (a helper must not inherit a blocked SIGTERM or an ignored SIGPIPE), stdin
 * from /dev/null, stdout and stderr where asked. The experiment itself is started by proc/runner.c (it changes
 * user and groups first). */
#pragma once
#include <stdbool.h>
#include <sys/types.h>

struct child_spec {
        const char *path;       /* a path, or with search a name looked up in PATH */
        char *const *argv;
        bool search;
        int out_fd, err_fd;     /* the child's stdout and stderr; -1: the agent's own */
};

/* 0 with *ret_pid, or -errno (the program could not be started). */
int child_spawn(const struct child_spec *c, pid_t *ret_pid);
/* Waits for pid (EINTR retried); its status into *ret_status. 0 or -errno. */
int child_wait(pid_t pid, int *ret_status);

/* Runs argv (looked up in PATH) to its end, for at most timeout_s seconds (then SIGKILL): its stdout into out
 * (NUL-terminated, cut at outlen - 1; out NULL: dropped) and its stderr, on one line (newlines become "; ", cut at
 * errlen - 1), into err (NULL: dropped). 0 with its wait status in *ret_status; -ENOENT when the program is not
 * installed (spawn failed or exit 127), -ETIMEDOUT when it was killed for the time, other -errno. */
int child_run(char *const *argv, double timeout_s, char *out, size_t outlen, char *err, size_t errlen,
              int *ret_status);
