/* SPDX-License-Identifier: Apache-2.0 */
/* child.c — helper programs started the one way (child.h). */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "util.h"

extern char **environ;

int child_spawn(const struct child_spec *c, pid_t *ret_pid) {
        static const int dflt[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD,
                                    SIGALRM, SIGUSR1, SIGUSR2, SIGXFSZ };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        sigset_t none, def;
        if (!c || !c->path || !c->argv || !c->argv[0])
                return -EINVAL;
        if (posix_spawn_file_actions_init(&fa) != 0)
                return -ENOMEM;
        if (posix_spawnattr_init(&at) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -ENOMEM;
        }
        sigemptyset(&none);
        sigemptyset(&def);
        for (size_t i = 0; i < ARRAY_SIZE(dflt); i++)
                sigaddset(&def, dflt[i]);
        int r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (!r && c->out_fd >= 0)
                r = posix_spawn_file_actions_adddup2(&fa, c->out_fd, 1);
        if (!r && c->err_fd >= 0)
                r = posix_spawn_file_actions_adddup2(&fa, c->err_fd, 2);
        if (!r)
                r = posix_spawnattr_setsigmask(&at, &none);
        if (!r)
                r = posix_spawnattr_setsigdefault(&at, &def);
        if (!r)
                r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (!r)
                r = c->search ? posix_spawnp(ret_pid, c->path, &fa, &at, c->argv, environ)
                              : posix_spawn(ret_pid, c->path, &fa, &at, c->argv, environ);
        posix_spawnattr_destroy(&at);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

int child_wait(pid_t pid, int *ret_status) {
        int st = 0;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (ret_status)
                *ret_status = st;
        return 0;
}
