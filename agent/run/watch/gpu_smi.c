/* SPDX-License-Identifier: Apache-2.0 */
/* gpu_smi.c — nvidia-smi, the fallback when NVML is unusable: found in PATH or given, run with posix_spawn, a fixed
 * argv, bounded output and a timeout, reaped with waitpid(pid); its CSV parsed. */
#include "run/watch/gpu_smi.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "child.h"
#include "run/base/wait.h"
#include "util.h"

#define GPU_SMI_LINE_MAX 1024

/* 0 when p is an executable regular file, else -errno. */
static int check_executable(const char *p) {
        struct stat st;
        if (stat(p, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EACCES;
        if (access(p, X_OK) < 0)
                return -errno;
        return 0;
}

int gpu_smi_resolve(const char *smi_path, char *out, size_t outlen, char *err, size_t errlen) {
        const char *name = smi_path && *smi_path ? smi_path : GPU_SMI_DEFAULT;
        if (strchr(name, '/')) {
                int r = check_executable(name);
                if (r < 0) {
                        errf(err, errlen, "nvidia-smi: %s: %s", name, strerror(-r));
                        return r;
                }
                if (strlen(name) >= outlen) {
                        errf(err, errlen, "nvidia-smi: path too long");
                        return -ENAMETOOLONG;
                }
                str_copy(out, outlen, name);
                return 0;
        }
        const char *path = env_nonempty("PATH");
        if (!path)
                path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (const char *p = path;;) {
                const char *e = strchrnul(p, ':');
                size_t l = (size_t)(e - p);
                char cand[PATH_MAX];
                /* empty entries would mean the working directory: skipped */
                if (l > 0 && l < sizeof cand &&
                    (size_t)snprintf(cand, sizeof cand, "%.*s/%s", (int)l, p, name) < sizeof cand &&
                    check_executable(cand) == 0 && strlen(cand) < outlen) {
                        str_copy(out, outlen, cand);
                        return 0;
                }
                if (!*e)
                        break;
                p = e + 1;
        }
        errf(err, errlen, "nvidia-smi: %s not found in PATH", name);
        return -ENOENT;
}

struct smi_run {
        struct buf out, err;
        bool timed_out, too_big;
        int status;
};

static void smi_run_free(struct smi_run *sr) {
        buf_free(&sr->out);
        buf_free(&sr->err);
}

/* Waits for pid until deadline (monotonic seconds). 0 reaped, -ETIMEDOUT, -ECHILD (reaped by someone else). */
static int reap(pid_t pid, double deadline, int *ret_status) {
        for (;;) {
                pid_t w = waitpid(pid, ret_status, WNOHANG);
                if (w == pid)
                        return 0;
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (w == 0 && now_mono() >= deadline)
                        return -ETIMEDOUT;
                if (w == 0)
                        worker_nap(0.002);
        }
}

/* Reads stdout (capped) and stderr (first bytes kept) until EOF on both or the deadline. */
static int smi_collect(int fds[2], double deadline, struct smi_run *sr) {
        struct pollfd p[2] = { { .fd = fds[0], .events = POLLIN }, { .fd = fds[1], .events = POLLIN } };
        while (p[0].fd >= 0 || p[1].fd >= 0) {
                double left = deadline - now_mono();
                if (left <= 0) {
                        sr->timed_out = true;
                        return 0;
                }
                int n = poll(p, 2, (int)(left * 1000) + 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                for (int k = 0; k < 2; k++) {
                        if (p[k].fd < 0 || !p[k].revents)
                                continue;
                        char tmp[4096];
                        ssize_t m = read(p[k].fd, tmp, sizeof tmp);
                        if (m < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (m <= 0) {
                                p[k].fd = -1; /* EOF or error; the caller closes */
                                continue;
                        }
                        if (k == 0 && buf_add(&sr->out, tmp, (size_t)m) < 0) {
                                sr->too_big = true;
                                return 0;
                        }
                        if (k == 1 && sr->err.len + 1 < sr->err.cap)
                                (void)buf_add(&sr->err, tmp, MIN((size_t)m, sr->err.cap - sr->err.len - 1));
                }
        }
        return 0;
}

static void close_pair(int p[2]) {
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0) {
                        close(p[i]);
                        p[i] = -1;
                }
}

static int smi_spawn(const char *path, int out[2], int errp[2], pid_t *ret_pid) {
        char *argv[] = { (char *)path, (char *)GPU_SMI_QUERY, (char *)GPU_SMI_FORMAT, NULL };
        struct child_spec c = { .path = path, .argv = argv, .out_fd = out[1], .err_fd = errp[1] };
        return child_spawn(&c, ret_pid);
}

/* Runs nvidia-smi once. < 0 when it could not be run or reaped; sr says how it ended. */
static int smi_run(const char *path, int timeout_ms, struct smi_run *sr, char *err, size_t errlen) {
        int out[2] = { -1, -1 }, errp[2] = { -1, -1 };
        pid_t pid = -1;
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                int e = errno;
                close_pair(out);
                errf(err, errlen, "nvidia-smi: pipe: %s", strerror(e));
                return -e;
        }
        int r = smi_spawn(path, out, errp, &pid);
        close(out[1]);
        close(errp[1]);
        out[1] = errp[1] = -1;
        if (r < 0) {
                close_pair(out);
                close_pair(errp);
                errf(err, errlen, "nvidia-smi: %s: %s", path, strerror(-r));
                return r;
        }
        double deadline = now_mono() + timeout_ms / 1000.0;
        int fds[2] = { out[0], errp[0] };
        r = smi_collect(fds, deadline, sr);
        close_pair(out);
        close_pair(errp);
        bool kill_it = r < 0 || sr->timed_out || sr->too_big;
        int rr = kill_it ? -ETIMEDOUT : reap(pid, deadline, &sr->status);
        if (rr == -ETIMEDOUT) {
                if (!kill_it)
                        sr->timed_out = true; /* closed its output but did not exit */
                kill(pid, SIGKILL);
                /* A child stuck in the driver (D state) dies only when the call returns: give it 1 s. */
                rr = reap(pid, now_mono() + 1.0, &sr->status);
        }
        if (rr < 0) {
                errf(err, errlen, "nvidia-smi: pid %d not reaped: %s", (int)pid, strerror(-rr));
                return rr;
        }
        if (r < 0) {
                errf(err, errlen, "nvidia-smi: poll: %s", strerror(-r));
                return r;
        }
        return 0;
}

/* First non-blank line of text, non-printables replaced, at most 160 characters. */
static void first_line(const char *text, size_t len, char *dst, size_t dstlen) {
        size_t i = 0, o = 0;
        while (i < len && (text[i] == '\n' || text[i] == '\r' || text[i] == ' ' || text[i] == '\t'))
                i++;
        for (; i < len && text[i] != '\n' && text[i] != '\r' && o + 1 < dstlen && o < 160; i++) {
                unsigned char c = (unsigned char)text[i];
                dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        dst[o] = 0;
}

static int smi_exit_errno(int code) {
        switch (code) {
        case NVML_ERROR_DRIVER_NOT_LOADED:
        case NVML_ERROR_LIBRARY_NOT_FOUND:
        case NVML_ERROR_GPU_IS_LOST:
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
                return -ENODEV;
        case NVML_ERROR_NO_PERMISSION:
                return -EACCES;
        default:
                return -EIO;
        }
}

int gpu_smi_query(const char *path, int timeout_ms, struct gpu_state *ret, char *err, size_t errlen) {
        _cleanup_(smi_run_free) struct smi_run sr = { .out = BUF_INIT(GPU_SMI_MAX_OUTPUT),
                                                      .err = BUF_INIT(GPU_SMI_MAX_STDERR) };
        const struct buf *o = &sr.out, *e = &sr.err;
        char line[192];
        int r = smi_run(path, timeout_ms, &sr, err, errlen);
        if (r < 0)
                return r;
        if (sr.too_big) {
                errf(err, errlen, "nvidia-smi: more than %u bytes of output, killed", GPU_SMI_MAX_OUTPUT);
                return -E2BIG;
        }
        if (sr.timed_out) {
                errf(err, errlen, "nvidia-smi: no answer within %d ms, killed", timeout_ms);
                return -ETIMEDOUT;
        }
        if (WIFSIGNALED(sr.status)) {
                errf(err, errlen, "nvidia-smi: killed by signal %d", WTERMSIG(sr.status));
                return -EIO;
        }
        int code = WIFEXITED(sr.status) ? WEXITSTATUS(sr.status) : 255;
        if (code != 0) {
                first_line(o->data ? o->data : "", o->len, line, sizeof line);
                if (!line[0])
                        first_line(e->data ? e->data : "", e->len, line, sizeof line);
                errf(err, errlen, "nvidia-smi: exit %d: %s", code, line[0] ? line : "(no output)");
                return smi_exit_errno(code);
        }
        r = gpu_parse_smi_csv(o->data ? o->data : "", o->len, ret);
        if (r < 0) {
                first_line(o->data ? o->data : "", o->len, line, sizeof line);
                errf(err, errlen, "nvidia-smi: unexpected output: %s", line);
                return r;
        }
        if (r > GPU_MAX)
                errf(err, errlen, "%d GPUs present, reporting %d (at most %d)", r, ret->count, GPU_MAX);
        return r;
}

/* ---- nvidia-smi CSV ---- */

static bool smi_missing(const char *f) { return f[0] == '[' && str_has_suffix(f, "]"); }

static int smi_mib(const char *f, uint64_t *ret) {
        uint64_t v;
        if (smi_missing(f)) {
                *ret = GPU_MEM_UNKNOWN;
                return 0;
        }
        if (parse_u64(f, &v) < 0 || v > UINT64_MAX / MIB)
                return -MF_EPARSE;
        *ret = v * MIB;
        return 0;
}

static int smi_text(const char *f, char *dst, size_t dstlen) {
        if (!*f)
                return -MF_EPARSE;
        str_copy(dst, dstlen, smi_missing(f) ? "" : f);
        return 0;
}

/* index, name, uuid, driver_version, memory.total, memory.used, utilization.gpu */
static int smi_row(char *line, struct gpu_device *d, char *drv, size_t drvlen) {
        char *f[7];
        size_t n = 0;
        for (char *p = line;;) {
                if (n == ARRAY_SIZE(f))
                        return -MF_EPARSE;
                f[n++] = p;
                char *c = strchr(p, ',');
                if (!c)
                        break;
                *c = 0;
                p = c + 1;
        }
        if (n != ARRAY_SIZE(f))
                return -MF_EPARSE;
        for (size_t i = 0; i < n; i++)
                f[i] = str_trim(f[i]);
        long idx, util;
        if (parse_int(f[0], 0, INT_MAX, &idx) < 0)
                return -MF_EPARSE;
        if (smi_text(f[1], d->name, sizeof d->name) < 0 || smi_text(f[2], d->uuid, sizeof d->uuid) < 0 ||
            smi_text(f[3], drv, drvlen) < 0)
                return -MF_EPARSE;
        if (smi_mib(f[4], &d->mem_total) < 0 || smi_mib(f[5], &d->mem_used) < 0)
                return -MF_EPARSE;
        if (smi_missing(f[6]))
                d->util = GPU_UTIL_UNKNOWN;
        else if (parse_int(f[6], 0, 100, &util) == 0)
                d->util = (unsigned)util;
        else
                return -MF_EPARSE;
        return 0;
}

static bool blank(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
                        return false;
        return true;
}

int gpu_parse_smi_csv(const char *text, size_t len, struct gpu_state *ret) {
        struct gpu_state s = { 0 };
        int rows = 0;
        size_t pos = 0;
        if (!ret || (!text && len))
                return -EINVAL;
        str_copy(s.source, sizeof s.source, "nvidia-smi");
        while (pos < len) {
                const char *ls = text + pos;
                const char *nl = memchr(ls, '\n', len - pos);
                size_t ll = nl ? (size_t)(nl - ls) : len - pos;
                pos += ll + (nl ? 1 : 0);
                if (blank(ls, ll))
                        continue;
                if (ll >= GPU_SMI_LINE_MAX || memchr(ls, 0, ll) || rows == INT_MAX)
                        return -MF_EPARSE;
                char line[GPU_SMI_LINE_MAX], drv[sizeof s.driver] = "";
                struct gpu_device d = { 0 };
                memcpy(line, ls, ll);
                line[ll] = 0;
                if (smi_row(line, &d, drv, sizeof drv) < 0)
                        return -MF_EPARSE;
                if (rows == 0)
                        str_copy(s.driver, sizeof s.driver, drv);
                if (rows < GPU_MAX)
                        s.dev[rows] = d;
                rows++;
        }
        s.count = MIN(rows, GPU_MAX);
        *ret = s;
        return rows;
}
