/* SPDX-License-Identifier: Apache-2.0 */
/* credproc.c — credential_process: split, spawn, read (capped, with a deadline), reap, parse. */
#include "aws/credproc.h"
#include "child.h"
#include "jsonx.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>


void credproc_argv_free(char **argv) {
        for (size_t i = 0; argv && argv[i]; i++)
                free(argv[i]);
        free(argv);
}

int credproc_split(const char *cmd, char ***ret_argv) {
        char **argv = calloc(CREDPROC_MAX_ARGS + 1, sizeof *argv);
        _cleanup_(buf_freep) struct buf w = BUF_INIT(strlen(cmd) + 1);
        size_t n = 0;
        int r = argv ? 0 : -ENOMEM;
        const char *p = cmd;
        while (r == 0) {
                while (*p == ' ' || *p == '\t' || *p == '\n')
                        p++;
                if (!*p)
                        break;
                buf_reset(&w);
                char q = 0;
                for (; *p && (q || (*p != ' ' && *p != '\t' && *p != '\n')) && r == 0; p++) {
                        if (q == '\'' && *p != '\'')
                                r = buf_addc(&w, *p);
                        else if (*p == q)
                                q = 0;
                        else if (!q && (*p == '\'' || *p == '"'))
                                q = *p;
                        else if (*p == '\\' && p[1] && (!q || strchr("\\\"$`\n", p[1])))
                                r = buf_addc(&w, *++p);
                        else
                                r = buf_addc(&w, *p);
                }
                if (r == 0 && (q || n >= CREDPROC_MAX_ARGS))
                        r = -EINVAL;
                if (r == 0 && !(argv[n++] = strdup(w.data ? w.data : "")))
                        r = -ENOMEM;
        }
        if (r == 0 && n == 0)
                r = -EINVAL;
        if (r < 0) {
                credproc_argv_free(argv);
                return r;
        }
        *ret_argv = argv;
        return 0;
}

int credproc_parse(const char *json, size_t len, struct aws_creds *ret, char *err, size_t errlen) {
        _cleanup_(cjson_deletep) cJSON *j = cJSON_ParseWithLength(json, len);
        if (!cJSON_IsObject(j)) {
                errf(err, errlen, "its output is not a JSON object");
                return -EINVAL;
        }
        cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "Version");
        const char *ak = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId"));
        const char *sk = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey"));
        const char *tok = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "SessionToken"));
        const char *exp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "Expiration"));
        time_t t = 0;
        int r = 0;
        if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
                errf(err, errlen, "its output has no \"Version\": 1");
                r = -EINVAL;
        } else if (!ak || !*ak || !sk || !*sk) {
                errf(err, errlen, "its output lacks AccessKeyId or SecretAccessKey");
                r = -EINVAL;
        } else if (exp && parse_iso8601(exp, &t) < 0) {
                errf(err, errlen, "its Expiration is not an ISO 8601 UTC time");
                r = -EINVAL;
        }
        if (r == 0) {
                struct aws_creds c = { .access_key = (char *)ak, .secret_key = (char *)sk,
                                       .token = tok && *tok ? (char *)tok : NULL, .expiration = t };
                r = aws_creds_copy(&c, ret);
        }
        cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
        if (cJSON_IsString(s))
                explicit_bzero(s->valuestring, strlen(s->valuestring));
        return r;
}

/* Reads fd to EOF (at most the buffer's cap) or until the deadline. */
static int collect(int fd, double deadline, struct buf *out) {
        for (;;) {
                double left = deadline - now_mono();
                if (left <= 0)
                        return -ETIMEDOUT;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int n = poll(&p, 1, (int)(left * 1000) + 1);
                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n <= 0)
                        continue;
                char tmp[4096];
                ssize_t m = read(fd, tmp, sizeof tmp);
                if (m < 0 && errno == EINTR)
                        continue;
                if (m <= 0)
                        return m < 0 ? -errno : 0;
                int r = buf_add(out, tmp, (size_t)m);
                explicit_bzero(tmp, sizeof tmp);
                if (r < 0)
                        return r;
        }
}

int credproc_run(const char *cmd, struct aws_creds *ret, char *err, size_t errlen) {
        char **argv = NULL;
        if (credproc_split(cmd, &argv) < 0) {
                errf(err, errlen, "credential_process: cannot split the command (an unclosed quote?)");
                return -MF_EAUTH;
        }
        int pfd[2] = { -1, -1 }, status = 0, r;
        pid_t pid = -1;
        _cleanup_(buf_freep) struct buf out = BUF_INIT(CREDPROC_MAX_OUTPUT);
        if (pipe2(pfd, O_CLOEXEC) < 0)
                r = -errno;
        else
                r = child_spawn(&(struct child_spec){ .path = argv[0], .argv = argv, .search = true, .out_fd = pfd[1],
                                                      .err_fd = -1 }, &pid);
        if (pfd[1] >= 0)
                close(pfd[1]);
        if (r < 0) {
                errf(err, errlen, "credential_process: cannot run %s: %s", argv[0], strerror(-r));
                if (pfd[0] >= 0)
                        close(pfd[0]);
                credproc_argv_free(argv);
                return -MF_EAUTH;
        }
        r = collect(pfd[0], now_mono() + CREDPROC_TIMEOUT_S, &out);
        close(pfd[0]);
        if (r < 0)
                kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r < 0)
                errf(err, errlen, "credential_process %s: %s", argv[0],
                     r == -ETIMEDOUT ? "no answer within 300 s, killed" : r == -E2BIG ? "more than 64 KiB of output"
                                                                          : strerror(-r));
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                errf(err, errlen, "credential_process %s %s %d", argv[0],
                     WIFEXITED(status) ? "exited with status" : "was killed by signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                r = -EIO;
        } else {
                char why[256] = "";
                r = credproc_parse(out.data ? out.data : "", out.len, ret, why, sizeof why);
                if (r < 0)
                        errf(err, errlen, "credential_process %s: %s", argv[0], why);
        }
        if (out.data)
                explicit_bzero(out.data, out.len);
        credproc_argv_free(argv);
        return r < 0 ? -MF_EAUTH : 0;
}
