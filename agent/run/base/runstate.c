/* SPDX-License-Identifier: Apache-2.0 */
/* runstate.c — state.json: small, written atomically after every transition. */
#include "run/base/runstate.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>

#include "jsonx.h"
#include "util.h"

static const char *const exp_st[] = { "pending", "running", "done", "skipped" };

const char *exp_status_name(enum exp_status s) { return (unsigned)s < ARRAY_SIZE(exp_st) ? exp_st[s] : "?"; }

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode) {
        char tmp[4200];
        if (pathf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid()) < 0)
                return -ENAMETOOLONG;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        size_t done = 0;
        while (done < len) {
                ssize_t w = write(fd, (const char *)data + done, len - done);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        int e = w < 0 ? -errno : -EIO;
                        close(fd);
                        unlink(tmp);
                        return e;
                }
                done += (size_t)w;
        }
        if (fsync(fd) < 0 || close(fd) < 0) {
                int e = -errno;
                unlink(tmp);
                return e;
        }
        if (rename(tmp, path) < 0) {
                int e = -errno;
                unlink(tmp);
                return e;
        }
        _cleanup_free_ char *d = strdup(path);
        if (d) {
                int dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0) {
                        fsync(dfd);
                        close(dfd);
                }
        }
        return 0;
}


int runstate_save(const char *path, const struct run_state *s) {
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "job_sha256", s->job_sha);
        cJSON_AddStringToObject(o, "run_id", s->run_id);
        cJSON_AddStringToObject(o, "instance_id", s->instance_id);
        cJSON_AddNumberToObject(o, "started", (double)s->started);
        cJSON_AddStringToObject(o, "phase", phase_name(s->phase));
        cJSON_AddStringToObject(o, "end", lc_end_name(s->end));
        cJSON_AddStringToObject(o, "ended_in", phase_name(s->ended_in));
        cJSON_AddStringToObject(o, "outcome", outcome_name(s->outcome));
        cJSON_AddStringToObject(o, "fleet_role", fleet_role_name(s->role));
        cJSON_AddStringToObject(o, "error", s->error);
        cJSON_AddStringToObject(o, "spot_action", s->spot_action);
        if (s->cancelled_by[0])
                cJSON_AddStringToObject(o, "cancelled_by", s->cancelled_by);
        cJSON_AddNumberToObject(o, "spot_time", (double)s->spot_time);
        cJSON_AddBoolToObject(o, "exit_done", s->exit_done);
        cJSON *a = cJSON_AddArrayToObject(o, "experiments");
        for (size_t i = 0; a && i < s->n; i++) {
                const struct exp_state *e = &s->exps[i];
                cJSON *x = cJSON_CreateObject();
                if (!x)
                        return -ENOMEM;
                cJSON_AddStringToObject(x, "status", exp_st[e->st]);
                cJSON_AddNumberToObject(x, "start", (double)e->start);
                cJSON_AddNumberToObject(x, "end", (double)e->end);
                cJSON_AddNumberToObject(x, "exit_code", e->exit_code);
                cJSON_AddNumberToObject(x, "signal", e->signal);
                cJSON_AddStringToObject(x, "reason", exp_reason_name(e->reason));
                cJSON_AddNumberToObject(x, "attempts", e->attempts);
                cJSON_AddNumberToObject(x, "pid", e->pid);
                cJSON_AddNumberToObject(x, "pid_start", (double)e->pid_start);
                cJSON_AddStringToObject(x, "marker", e->marker);
                cJSON_AddItemToArray(a, x);
        }
        _cleanup_free_ char *txt = cJSON_Print(o);
        if (!txt)
                return -ENOMEM;
        return write_file_atomic(path, txt, strlen(txt), 0600);
}

static double num(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void str(const cJSON *o, const char *k, char *dst, size_t n) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
        snprintf(dst, n, "%s", v ? v : "");
}

int runstate_load(const char *path, struct run_state *ret) {
        _cleanup_free_ char *txt = NULL;
        size_t len;
        int r = read_file_capped(path, 4 << 20, &txt, &len);
        if (r < 0)
                return r;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(txt, len);
        if (!cJSON_IsObject(o))
                return -EBADMSG;
        struct run_state *s = ret;
        memset(s, 0, sizeof *s);
        str(o, "job_sha256", s->job_sha, sizeof s->job_sha);
        str(o, "run_id", s->run_id, sizeof s->run_id);
        str(o, "instance_id", s->instance_id, sizeof s->instance_id);
        str(o, "error", s->error, sizeof s->error);
        str(o, "spot_action", s->spot_action, sizeof s->spot_action);
        str(o, "cancelled_by", s->cancelled_by, sizeof s->cancelled_by);
        s->spot_time = (time_t)num(o, "spot_time");
        s->started = (time_t)num(o, "started");
        s->exit_done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "exit_done"));
        char name[32];
        str(o, "phase", name, sizeof name);
        int v = phase_from_name(name);
        s->phase = v >= 0 ? (enum phase)v : PH_FETCH;
        str(o, "ended_in", name, sizeof name);
        v = phase_from_name(name);
        s->ended_in = v >= 0 ? (enum phase)v : PH_FETCH;
        str(o, "end", name, sizeof name);
        v = lc_end_from_name(name);
        s->end = v >= 0 ? (enum lc_end)v : END_NONE;
        str(o, "outcome", name, sizeof name);
        v = outcome_from_name(name);
        s->outcome = v >= 0 ? (enum outcome)v : OUT_RUNNING;
        str(o, "fleet_role", name, sizeof name);
        v = fleet_role_from_name(name);
        s->role = v >= 0 ? (enum fleet_role)v : ROLE_WORKS;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "experiments");
        const cJSON *x;
        cJSON_ArrayForEach(x, a) {
                if (s->n >= JOB_MAX_EXPERIMENTS)
                        break;
                struct exp_state *e = &s->exps[s->n++];
                char st[16];
                str(x, "status", st, sizeof st);
                for (size_t i = 0; i < ARRAY_SIZE(exp_st); i++)
                        if (!strcmp(st, exp_st[i]))
                                e->st = (enum exp_status)i;
                e->start = (time_t)num(x, "start");
                e->end = (time_t)num(x, "end");
                e->exit_code = (int)num(x, "exit_code");
                e->signal = (int)num(x, "signal");
                char reason[32];
                str(x, "reason", reason, sizeof reason);
                int rv = exp_reason_from_name(reason);
                e->reason = rv >= 0 ? (enum exp_reason)rv : R_NONE;
                e->attempts = (int)num(x, "attempts");
                e->pid = (pid_t)num(x, "pid");
                e->pid_start = (unsigned long long)num(x, "pid_start");
                str(x, "marker", e->marker, sizeof e->marker);
        }
        if (!s->run_id[0])
                return -EBADMSG;
        return 0;
}
