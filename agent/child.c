/* SPDX-License-Identifier: Apache-2.0 */
/* child.c — helper programs started the one way (child.h). */
#include "child.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Appends what was read to a capped buffer (the rest is dropped); on one line when oneline. */
static void take(char *dst, size_t cap, size_t *len, const char *p, size_t n, bool oneline) {
        for (size_t i = 0; i < n && dst && *len + 1 < cap; i++) {
                char c = p[i];
                if (oneline && (c == '\n' || c == '\r')) {
                        if (*len > 0 && dst[*len - 1] != ' ' && *len + 3 < cap) {
                                dst[(*len)++] = ';';
                                dst[(*len)++] = ' ';
                        }
                        continue;
                }
                dst[(*len)++] = oneline && (unsigned char)c < 0x20 ? ' ' : c;
        }
        if (dst && cap)
                dst[*len < cap ? *len : cap - 1] = 0;
}

int child_run(char *const *argv, double timeout_s, char *out, size_t outlen, char *err, size_t errlen,
              int *ret_status) {
        int po[2] = { -1, -1 }, pe[2] = { -1, -1 };
        size_t no = 0, ne = 0;
        if (out && outlen)
                out[0] = 0;
        if (err && errlen)
                err[0] = 0;
        if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
                int e = -errno;
                for (int i = 0; i < 2; i++) {
                        if (po[i] >= 0)
                                close(po[i]);
                        if (pe[i] >= 0)
                                close(pe[i]);
                }
                return e;
        }
        pid_t pid;
        int r = child_spawn(&(struct child_spec){ .path = argv[0], .argv = argv, .search = true, .out_fd = po[1],
                                                  .err_fd = pe[1] }, &pid);
        close(po[1]);
        close(pe[1]);
        if (r < 0) {
                close(po[0]);
                close(pe[0]);
                return r;
        }
        struct pollfd p[2] = { { .fd = po[0], .events = POLLIN }, { .fd = pe[0], .events = POLLIN } };
        double end = now_mono() + timeout_s;
        bool timed_out = false;
        while (p[0].fd >= 0 || p[1].fd >= 0) {
                double left = end - now_mono();
                if (left <= 0) {
                        timed_out = true;
                        break;
                }
                int n = poll(p, 2, (int)(left * 1000) + 1);
                if (n < 0 && errno != EINTR)
                        break;
                for (int i = 0; n > 0 && i < 2; i++) {
                        if (p[i].fd < 0 || !p[i].revents)
                                continue;
                        char tmp[4096];
                        ssize_t m = read(p[i].fd, tmp, sizeof tmp);
                        if (m < 0 && errno == EINTR)
                                continue;
                        if (m <= 0) {
                                close(p[i].fd);
                                p[i].fd = -1;
                        } else if (i == 0)
                                take(out, outlen, &no, tmp, (size_t)m, false);
                        else
                                take(err, errlen, &ne, tmp, (size_t)m, true);
                }
        }
        for (int i = 0; i < 2; i++)
                if (p[i].fd >= 0)
                        close(p[i].fd);
        if (timed_out)
                kill(pid, SIGKILL);
        while (err && ne > 0 && (err[ne - 1] == ' ' || err[ne - 1] == ';'))
                err[--ne] = 0; /* the "; " of the last line's end */
        int st = 0;
        r = child_wait(pid, &st);
        if (r < 0)
                return r;
        if (timed_out)
                return -ETIMEDOUT;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
                return -ENOENT;
        if (ret_status)
                *ret_status = st;
        return 0;
}
