/* SPDX-License-Identifier: Apache-2.0 */
/* expcreds.c — the experiment's credentials: AssumeRole, and a loopback container credentials endpoint. */
#include "run/proc/expcreds.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aws/creds.h"
#include "aws/sts.h"
#include "jsonx.h"
#include "run/base/wait.h"
#include "util.h"

int expcreds_role_of(const char *arn, char *out, size_t n) {
        /* arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION */
        char part[32], acct[16], name[128];
        int used = 0;
        if (!arn || sscanf(arn, "arn:%31[^:]:sts::%15[0-9]:assumed-role/%127[^/]/%n", part, acct, name, &used) != 3 ||
            used == 0 || strlen(acct) != 12)
                return -EINVAL;
        int w = snprintf(out, n, "arn:%s:iam::%s:role/%s", part, acct, name);
        return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static cJSON *statement(cJSON *list, const char *const *actions, const char *resource, const char *prefix) {
        cJSON *s = cJSON_CreateObject();
        if (!s)
                return NULL;
        cJSON_AddItemToArray(list, s);
        cJSON_AddStringToObject(s, "Effect", "Allow");
        cJSON *a = cJSON_AddArrayToObject(s, "Action");
        for (size_t i = 0; a && actions[i]; i++)
                cJSON_AddItemToArray(a, cJSON_CreateString(actions[i]));
        cJSON_AddStringToObject(s, "Resource", resource);
        if (prefix) {
                cJSON *c = cJSON_AddObjectToObject(s, "Condition");
                cJSON *l = c ? cJSON_AddObjectToObject(c, "StringLike") : NULL;
                if (l)
                        cJSON_AddStringToObject(l, "s3:prefix", prefix);
        }
        return s;
}

char *expcreds_policy(const char *src_bucket, const char *src_key, const char *res_bucket, const char *outputs_prefix) {
        static const char *const get[] = { "s3:GetObject", NULL };
        static const char *const list[] = { "s3:ListBucket", NULL };
        static const char *const put[] = { "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                                           "s3:ListMultipartUploadParts", NULL };
        _cleanup_(cjson_deletep) cJSON *doc = cJSON_CreateObject();
        cJSON *st = doc ? cJSON_AddArrayToObject(doc, "Statement") : NULL;
        if (!st)
                return NULL;
        cJSON_AddStringToObject(doc, "Version", "2012-10-17");
        char res[3200], pfx[1200];
        if (src_bucket && src_key) {
                bool dir = !*src_key || str_has_suffix(src_key, "/");
                snprintf(res, sizeof res, "arn:aws:s3:::%s/%s%s", src_bucket, src_key, dir ? "*" : "");
                statement(st, get, res, NULL);
                if (dir) {
                        snprintf(res, sizeof res, "arn:aws:s3:::%s", src_bucket);
                        snprintf(pfx, sizeof pfx, "%s*", src_key);
                        statement(st, list, res, pfx);
                }
        }
        snprintf(res, sizeof res, "arn:aws:s3:::%s/%s*", res_bucket, outputs_prefix);
        statement(st, put, res, NULL);
        snprintf(res, sizeof res, "arn:aws:s3:::%s", res_bucket);
        snprintf(pfx, sizeof pfx, "%s*", outputs_prefix);
        statement(st, list, res, pfx);
        return cJSON_PrintUnformatted(doc);
}

char *expcreds_answer(const struct aws_creds *cr) {
        char exp[32] = "";
        if (cr->expiration)
                format_iso8601(cr->expiration, exp);
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o)
                return NULL;
        cJSON_AddStringToObject(o, "AccessKeyId", cr->access_key ? cr->access_key : "");
        cJSON_AddStringToObject(o, "SecretAccessKey", cr->secret_key ? cr->secret_key : "");
        cJSON_AddStringToObject(o, "Token", cr->token ? cr->token : "");
        cJSON_AddStringToObject(o, "Expiration", exp);
        return cJSON_PrintUnformatted(o);
}

/* Equal, in a time that does not depend on where they differ. */
static bool same_secret(const char *a, size_t alen, const char *b) {
        size_t blen = strlen(b);
        unsigned char d = alen != blen;
        for (size_t i = 0; i < blen; i++)
                d |= (unsigned char)(i < alen ? a[i] : 0) ^ (unsigned char)b[i];
        return d == 0;
}

int expcreds_check(const char *req, const char *token) {
        const char *eol = strstr(req, "\r\n");
        if (!eol)
                return 400;
        char method[8], path[256];
        if (sscanf(req, "%7s %255s HTTP/1.", method, path) != 2)
                return 400;
        if (strcmp(method, "GET"))
                return 405;
        if (strcmp(path, EXPCREDS_PATH))
                return 404;
        for (const char *l = eol + 2; *l && strncmp(l, "\r\n", 2); l = strstr(l, "\r\n") + 2) {
                const char *end = strstr(l, "\r\n");
                if (!end)
                        return 400;
                if (!strncasecmp(l, "Authorization:", 14)) {
                        const char *v = l + 14;
                        while (v < end && (*v == ' ' || *v == '\t'))
                                v++;
                        size_t n = (size_t)(end - v);
                        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                                n--;
                        return same_secret(v, n, token) ? 200 : 403;
                }
        }
        return 401;
}

/* ---------- the server ---------- */

static int assume(struct expcreds *E, struct aws_creds *ret, char *err, size_t errlen) {
        struct aws_creds src = { 0 };
        int r = creds_get(&E->c->creds, now_wall(), &src, err, errlen);
        if (r < 0)
                return r;
        struct sts_assume a = { .role_arn = E->role_arn, .session_name = E->session, .policy = E->policy };
        r = sts_assume_role(E->c, &src, &a, ret, err, errlen);
        aws_creds_clear(&src);
        return r;
}

/* All of buf to a socket (a short write goes on; a timeout or a closed peer ends it). */
static int send_all(int fd, const char *buf, size_t n) {
        while (n) {
                ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -EIO;
                buf += w;
                n -= (size_t)w;
        }
        return 0;
}

static void reply(int fd, int status, const char *body) {
        static const struct { int st; const char *text; } reasons[] = {
                { 200, "OK" }, { 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
                { 404, "Not Found" }, { 405, "Method Not Allowed" }, { 503, "Service Unavailable" },
        };
        const char *text = "Error";
        for (size_t i = 0; i < ARRAY_SIZE(reasons); i++)
                if (reasons[i].st == status)
                        text = reasons[i].text;
        char head[256];
        int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu"
                         "\r\nConnection: close\r\n\r\n", status, text, strlen(body));
        if (send_all(fd, head, (size_t)n) == 0)
                send_all(fd, body, strlen(body));
}

static void serve_one(struct expcreds *E, int fd) {
        /* one deadline for the whole request (a peer that sends a byte at a time gets no more than this), and for
         * the answer */
        double deadline = now_mono() + 2.0;
        struct timeval tv = { .tv_sec = 2 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        char req[EXPCREDS_MAX_REQUEST + 1];
        size_t got = 0;
        req[0] = 0;
        while (got < EXPCREDS_MAX_REQUEST) {
                int left = (int)((deadline - now_mono()) * 1000);
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (left <= 0 || poll(&p, 1, left) <= 0)
                        break;
                ssize_t n = read(fd, req + got, EXPCREDS_MAX_REQUEST - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
                req[got] = 0;
                if (strstr(req, "\r\n\r\n"))
                        break;
        }
        req[got] = 0;
        int st = strstr(req, "\r\n\r\n") ? expcreds_check(req, E->token) : 400;
        if (st != 200) {
                E->refused++;
                char msg[96];
                snprintf(msg, sizeof msg, "{\"message\":\"%s\"}", st == 401 || st == 403 ? "not authorized" :
                         st == 404 ? "no such path" : "bad request");
                reply(fd, st, msg);
                return;
        }
        pthread_mutex_lock(&E->lock);
        bool fresh = E->cur.access_key && E->cur.expiration > now_wall() + CREDS_MIN_VALID;
        _cleanup_free_ char *body = fresh ? expcreds_answer(&E->cur) : NULL;
        pthread_mutex_unlock(&E->lock);
        if (!body) {
                reply(fd, 503, "{\"message\":\"the experiment's credentials could not be renewed: see the run's log\"}");
                return;
        }
        E->served++;
        reply(fd, 200, body);
        explicit_bzero(body, strlen(body));
}

static void *server(void *ud) {
        struct expcreds *E = ud;
        for (;;) {
                struct pollfd p[2] = { { .fd = E->lfd, .events = POLLIN }, { .fd = E->efd, .events = POLLIN } };
                int n = poll(p, 2, 1000);
                if (n < 0 && errno != EINTR)
                        break;
                if (p[1].revents)
                        break;
                pthread_mutex_lock(&E->lock);
                bool due = creds_need_refresh(E->cur.expiration, now_wall());
                pthread_mutex_unlock(&E->lock);
                if (due) {
                        struct aws_creds fresh = { 0 };
                        char err[512];
                        if (assume(E, &fresh, err, sizeof err) == 0) {
                                pthread_mutex_lock(&E->lock);
                                aws_creds_clear(&E->cur);
                                E->cur = fresh;
                                E->last_err[0] = 0;
                                pthread_mutex_unlock(&E->lock);
                        } else {
                                pthread_mutex_lock(&E->lock);
                                snprintf(E->last_err, sizeof E->last_err, "%s", err);
                                pthread_mutex_unlock(&E->lock);
                                worker_nap(5); /* not again at once */
                        }
                }
                if (n > 0 && p[0].revents & POLLIN) {
                        int fd = accept4(E->lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (fd >= 0) {
                                serve_one(E, fd);
                                close(fd);
                        }
                }
        }
        return NULL;
}

int expcreds_start(struct expcreds *E, struct aws_ctx *c, const char *role_arn, const char *policy,
                   const char *session, char *err, size_t errlen) {
        *E = (struct expcreds){ .c = c, .lfd = -1, .efd = -1 };
        pthread_mutex_init(&E->lock, NULL);
        snprintf(E->role_arn, sizeof E->role_arn, "%s", role_arn);
        snprintf(E->session, sizeof E->session, "%s", session);
        if (policy && !(E->policy = strdup(policy)))
                return -ENOMEM;
        int r = assume(E, &E->cur, err, errlen);
        if (r < 0)
                goto fail;
        unsigned char rnd[32];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
                r = -EIO;
                snprintf(err, errlen, "no randomness for the credentials' token");
                goto fail;
        }
        hex_encode(rnd, sizeof rnd, E->token);
        E->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        E->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        if (E->lfd < 0 || E->efd < 0 || bind(E->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(E->lfd, 16) < 0 ||
            getsockname(E->lfd, (struct sockaddr *)&a, &al) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot serve the experiment's credentials on loopback: %s", strerror(-r));
                goto fail;
        }
        snprintf(E->url, sizeof E->url, "http://127.0.0.1:%u%s", (unsigned)ntohs(a.sin_port), EXPCREDS_PATH);
        if ((r = -pthread_create(&E->th, NULL, server, E)) < 0) {
                snprintf(err, errlen, "cannot start the credentials' thread: %s", strerror(-r));
                goto fail;
        }
        E->running = true;
        return 0;
fail:
        expcreds_stop(E);
        return r;
}

void expcreds_stop(struct expcreds *E) {
        if (!E->c)
                return; /* never started (a zeroed struct: its fds are not 0) */
        if (E->running) {
                uint64_t one = 1;
                ssize_t w = write(E->efd, &one, sizeof one);
                (void)w;
                pthread_join(E->th, NULL);
                E->running = false;
        }
        if (E->lfd >= 0)
                close(E->lfd);
        if (E->efd >= 0)
                close(E->efd);
        E->lfd = E->efd = -1;
        aws_creds_clear(&E->cur);
        explicit_bzero(E->token, sizeof E->token);
        free(E->policy);
        E->policy = NULL;
        pthread_mutex_destroy(&E->lock);
        E->c = NULL;
}
