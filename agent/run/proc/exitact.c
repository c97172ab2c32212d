/* SPDX-License-Identifier: Apache-2.0 */
/* exitact.c — the exit action and its power-off fallback. */
#include "run/proc/exitact.h"

#include <signal.h>
#include <sys/wait.h>

#include "child.h"
#include "aws/ec2.h"
#include "log.h"
#include "run/base/wait.h"


int poweroff_run(char *msg, size_t msglen) {
        const char *cmd = env_nonempty("MAYFLY_POWEROFF_COMMAND");
        if (!cmd)
                cmd = POWEROFF_DEFAULT;
        _cleanup_free_ char *copy = strdup(cmd);
        if (!copy)
                return -ENOMEM;
        char *argv[32];
        size_t n = 0;
        for (char *save = NULL, *tok = strtok_r(copy, " \t", &save); tok && n + 1 < ARRAY_SIZE(argv);
             tok = strtok_r(NULL, " \t", &save))
                argv[n++] = tok;
        argv[n] = NULL;
        if (n == 0) {
                snprintf(msg, msglen, "MAYFLY_POWEROFF_COMMAND is empty");
                return -EINVAL;
        }
        pid_t pid;
        int r = child_spawn(&(struct child_spec){ .path = argv[0], .argv = argv, .search = true, .out_fd = -1,
                                                  .err_fd = -1 }, &pid);
        if (r < 0) {
                snprintf(msg, msglen, "power-off command '%s' could not start: %s", cmd, strerror(-r));
                return r;
        }
        int st = 0;
        for (int waited = 0;; waited++) {
                pid_t w = waitpid(pid, &st, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (waited > 1200) { /* 60 s */
                        kill(pid, SIGKILL);
                        waitpid(pid, &st, 0);
                        snprintf(msg, msglen, "power-off command '%s' did not finish in 60 s", cmd);
                        return -ETIMEDOUT;
                }
                worker_nap(0.05);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                snprintf(msg, msglen, "power-off command '%s' failed (status %d)", cmd,
                         WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                return -EIO;
        }
        snprintf(msg, msglen, "power-off command '%s' ran", cmd);
        return 0;
}

int exit_action_perform(struct aws_ctx *c, enum exit_action a, const char *instance_id, char *msg, size_t msglen) {
        if (a == EXIT_ACTION_KEEP) {
                snprintf(msg, msglen, "on exit: keep (the instance stays up)");
                return 0;
        }
        if (a == EXIT_ACTION_TERMINATE || a == EXIT_ACTION_STOP) {
                if (instance_id && *instance_id) {
                        struct http_client h;
                        struct aws_result res = { 0 };
                        char state[64] = "";
                        int r = http_client_init(&h);
                        if (r == 0)
                                r = a == EXIT_ACTION_TERMINATE
                                            ? ec2_terminate(c, &h, instance_id, false, state, sizeof state, &res)
                                            : ec2_stop(c, &h, instance_id, state, sizeof state, &res);
                        http_client_free(&h);
                        if (r == 0) {
                                snprintf(msg, msglen, "%s %s: %s", a == EXIT_ACTION_TERMINATE ? "TerminateInstances"
                                                                                                 : "StopInstances",
                                         instance_id, state);
                                return 0;
                        }
                        log_warn("%s; falling back to power-off", res.msg);
                } else
                        log_warn("instance id unknown; falling back to power-off");
        }
        return poweroff_run(msg, msglen);
}

int exit_keep_disk(struct aws_ctx *c, const char *instance_id, char *msg, size_t msglen) {
        if (!instance_id || !*instance_id) {
                snprintf(msg, msglen, "the instance id is unknown");
                return -ENOENT;
        }
        struct http_client h;
        struct aws_result res = { 0 };
        char state[64] = "";
        int r = http_client_init(&h);
        if (r == 0)
                r = ec2_stop(c, &h, instance_id, state, sizeof state, &res);
        http_client_free(&h);
        if (r < 0)
                snprintf(msg, msglen, "StopInstances %s: %s", instance_id, res.msg[0] ? res.msg : strerror(-r));
        else
                snprintf(msg, msglen, "StopInstances %s: %s", instance_id, state);
        return r;
}
