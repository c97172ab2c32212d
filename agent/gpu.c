/* gpu.c — GPU inventory and utilisation: NVML loaded with dlopen (versioned symbols, v1 fallback), nvidia-smi
 * (posix_spawn, fixed argv, bounded output, timeout, reaped) when NVML is unusable; CSV parser; JSON. */
#include "gpu.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "util.h"

/* ---- The NVML ABI we use (NVIDIA nvml.h; see shared/platform/NVML.md) ---- */

typedef int nvml_ret;
typedef struct nvml_device_st *nvml_device;

enum {
        NVML_SUCCESS = 0,
        NVML_ERROR_UNINITIALIZED = 1,
        NVML_ERROR_NOT_SUPPORTED = 3,
        NVML_ERROR_NO_PERMISSION = 4,
        NVML_ERROR_INSUFFICIENT_SIZE = 7,
        NVML_ERROR_DRIVER_NOT_LOADED = 9,
        NVML_ERROR_TIMEOUT = 10,
        NVML_ERROR_LIBRARY_NOT_FOUND = 12,
        NVML_ERROR_GPU_IS_LOST = 15,
        NVML_ERROR_RESET_REQUIRED = 16,
        NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
        NVML_ERROR_GPU_NOT_FOUND = 28,
};

#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80

struct nvml_memory {
        unsigned long long total, free, used;           /* used = reserved + allocated */
};
struct nvml_memory_v2 {
        unsigned int version;
        unsigned long long total, reserved, free, used; /* used = allocated */
};
struct nvml_utilization {
        unsigned int gpu, memory;
};
#define NVML_MEMORY_V2_VERSION ((unsigned)(sizeof(struct nvml_memory_v2) | (2u << 24)))
_Static_assert(sizeof(struct nvml_memory) == 24, "nvmlMemory_t");
_Static_assert(sizeof(struct nvml_memory_v2) == 40, "nvmlMemory_v2_t");
_Static_assert(NVML_MEMORY_V2_VERSION == 0x02000028, "nvmlMemory_v2");

#define GPU_SCAN_MAX 1024       /* indices probed at most, whatever count a library claims */
#define GPU_SMI_LINE_MAX 1024
#define MIB (1024ull * 1024ull)

struct nvml {
        void *dl;
        bool initialized;
        const char *init_name, *count_name, *handle_name;
        nvml_ret (*init)(void);
        nvml_ret (*shutdown)(void);
        const char *(*error_string)(nvml_ret);
        nvml_ret (*get_count)(unsigned *);
        nvml_ret (*get_handle)(unsigned, nvml_device *);
        nvml_ret (*get_driver)(char *, unsigned);
        nvml_ret (*get_name)(nvml_device, char *, unsigned);
        nvml_ret (*get_uuid)(nvml_device, char *, unsigned);
        nvml_ret (*get_memory)(nvml_device, struct nvml_memory *);
        nvml_ret (*get_memory_v2)(nvml_device, struct nvml_memory_v2 *);
        nvml_ret (*get_util)(nvml_device, struct nvml_utilization *);
};

struct gpu {
        bool use_nvml;
        struct nvml n;
        char smi[PATH_MAX];
        int smi_timeout_ms;
};

/* ---- error text ---- */

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...) {
        if (!err || !errlen)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

/* Appends "; text" (or text when err is empty). */
static void erradd(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void erradd(char *err, size_t errlen, const char *fmt, ...) {
        if (!err || !errlen)
                return;
        size_t l = strnlen(err, errlen - 1);
        if (l && l + 2 < errlen) {
                memcpy(err + l, "; ", 3);
                l += 2;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + l, errlen - l, fmt, ap);
        va_end(ap);
}

const char *gpu_nvml_strerror(int code) {
        /* The texts of nvmlErrorString (DCGM sdk/nvidia/nvml/nvml_error_strings.h). */
        static const struct { int code; const char *s; } t[] = {
                { 0, "Success" },
                { 1, "Uninitialized" },
                { 2, "Invalid Argument" },
                { 3, "Not Supported" },
                { 4, "Insufficient Permissions" },
                { 5, "Already Initialized" },
                { 6, "Not Found" },
                { 7, "Insufficient Size" },
                { 8, "Insufficient External Power" },
                { 9, "Driver Not Loaded" },
                { 10, "Timeout" },
                { 11, "Interrupt Request Issue" },
                { 12, "NVML Shared Library Not Found" },
                { 13, "Function Not Found" },
                { 14, "Corrupted infoROM" },
                { 15, "GPU is lost" },
                { 16, "GPU requires reset" },
                { 17, "GPU access blocked by the operating system" },
                { 18, "Driver/library version mismatch" },
                { 19, "In use by another client" },
                { 20, "Insufficient Memory" },
                { 23, "Insufficient Resources" },
                { 999, "Unknown Error" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(t); i++)
                if (t[i].code == code)
                        return t[i].s;
        return "Unknown Error";
}

static const char *nvml_strerror(const struct nvml *n, nvml_ret r) {
        const char *s = n->error_string ? n->error_string(r) : NULL;
        return s && *s ? s : gpu_nvml_strerror(r);
}

/* Errors after which the handle is useless: close and open again (NVML.md §2, nvidia_gpu_exporter). */
static int nvml_errno(nvml_ret r) {
        switch (r) {
        case NVML_ERROR_UNINITIALIZED:
        case NVML_ERROR_DRIVER_NOT_LOADED:
        case NVML_ERROR_LIBRARY_NOT_FOUND:
        case NVML_ERROR_GPU_IS_LOST:
        case NVML_ERROR_RESET_REQUIRED:
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH:
        case NVML_ERROR_GPU_NOT_FOUND:
                return -ENODEV;
        case NVML_ERROR_NO_PERMISSION:
                return -EACCES;
        case NVML_ERROR_TIMEOUT:
                return -ETIMEDOUT;
        default:
                return -EIO;
        }
}

static bool nvml_fatal(nvml_ret r) { return nvml_errno(r) == -ENODEV; }

/* ---- NVML ---- */

static void *sym2(void *dl, const char *a, const char *b, const char **ret_name) {
        void *p = dlsym(dl, a);
        if (!p && b) {
                p = dlsym(dl, b);
                a = b;
        }
        if (p && ret_name)
                *ret_name = a;
        return p;
}

#define RESOLVE(n, field, a, b, name) ((n)->field = (__typeof__((n)->field))sym2((n)->dl, a, b, name))

static void nvml_unload(struct nvml *n) {
        if (n->initialized && n->shutdown)
                n->shutdown();
        if (n->dl)
                dlclose(n->dl);
        *n = (struct nvml){ 0 };
}

static int nvml_load(struct nvml *n, const char *lib, char *err, size_t errlen) {
        dlerror();
        n->dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!n->dl) {
                const char *e = dlerror();
                errf(err, errlen, "%s", e ? e : "cannot open NVML");
                return -ENOENT;
        }
        RESOLVE(n, init, "nvmlInit_v2", "nvmlInit", &n->init_name);
        RESOLVE(n, shutdown, "nvmlShutdown", NULL, NULL);
        RESOLVE(n, get_count, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount", &n->count_name);
        RESOLVE(n, get_handle, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex", &n->handle_name);
        RESOLVE(n, error_string, "nvmlErrorString", NULL, NULL);
        RESOLVE(n, get_driver, "nvmlSystemGetDriverVersion", NULL, NULL);
        RESOLVE(n, get_name, "nvmlDeviceGetName", NULL, NULL);
        RESOLVE(n, get_uuid, "nvmlDeviceGetUUID", NULL, NULL);
        RESOLVE(n, get_memory, "nvmlDeviceGetMemoryInfo", NULL, NULL);
        RESOLVE(n, get_memory_v2, "nvmlDeviceGetMemoryInfo_v2", NULL, NULL);
        RESOLVE(n, get_util, "nvmlDeviceGetUtilizationRates", NULL, NULL);

        const char *missing = !n->init         ? "nvmlInit_v2/nvmlInit"
                              : !n->shutdown   ? "nvmlShutdown"
                              : !n->get_count  ? "nvmlDeviceGetCount_v2/nvmlDeviceGetCount"
                              : !n->get_handle ? "nvmlDeviceGetHandleByIndex_v2/nvmlDeviceGetHandleByIndex"
                                               : NULL;
        if (missing) {
                errf(err, errlen, "%s: no %s (%s)", lib, missing, gpu_nvml_strerror(13));
                nvml_unload(n);
                return -ENOENT;
        }
        nvml_ret r = n->init();
        if (r != NVML_SUCCESS) {
                errf(err, errlen, "%s: %s: %s (NVML error %d)", lib, n->init_name, nvml_strerror(n, r), r);
                nvml_unload(n);
                return nvml_errno(r);
        }
        n->initialized = true;
        return 0;
}

static void copy_str(char *dst, size_t dstlen, const char *src) {
        size_t l = strnlen(src, dstlen - 1);
        memcpy(dst, src, l);
        dst[l] = 0;
}

/* A string getter: "" when it fails in a way that leaves the device usable. */
static int nvml_string(nvml_ret (*get)(nvml_device, char *, unsigned), nvml_device h, char *dst, size_t dstlen) {
        char b[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "";
        dst[0] = 0;
        if (!get)
                return 0;
        nvml_ret r = get(h, b, sizeof b);
        if (r == NVML_SUCCESS) {
                b[sizeof b - 1] = 0;
                copy_str(dst, dstlen, b);
        }
        return nvml_fatal(r) ? r : 0;
}

static nvml_ret nvml_memory(const struct nvml *n, nvml_device h, struct gpu_device *d) {
        d->mem_total = d->mem_used = GPU_MEM_UNKNOWN;
        if (n->get_memory_v2) {
                struct nvml_memory_v2 m = { .version = NVML_MEMORY_V2_VERSION };
                nvml_ret r = n->get_memory_v2(h, &m);
                if (r == NVML_SUCCESS) {
                        d->mem_total = m.total;
                        d->mem_used = m.used;
                        return 0;
                }
                if (nvml_fatal(r))
                        return r;
                /* ARGUMENT_VERSION_MISMATCH, NOT_SUPPORTED...: try the v1 call */
        }
        if (n->get_memory) {
                struct nvml_memory m = { 0 };
                nvml_ret r = n->get_memory(h, &m);
                if (r == NVML_SUCCESS) {
                        d->mem_total = m.total;
                        d->mem_used = m.used;
                        return 0;
                }
                if (nvml_fatal(r))
                        return r;
        }
        return 0;
}

/* Fills d; a non-zero NVML code (with what in *ret_what) when the device or driver went away. */
static nvml_ret nvml_device_read(const struct nvml *n, nvml_device h, struct gpu_device *d, const char **ret_what) {
        nvml_ret r;
        *ret_what = "nvmlDeviceGetName";
        if ((r = nvml_string(n->get_name, h, d->name, sizeof d->name)))
                return r;
        *ret_what = "nvmlDeviceGetUUID";
        if ((r = nvml_string(n->get_uuid, h, d->uuid, sizeof d->uuid)))
                return r;
        *ret_what = "nvmlDeviceGetMemoryInfo";
        if ((r = nvml_memory(n, h, d)))
                return r;
        *ret_what = "nvmlDeviceGetUtilizationRates";
        d->util = GPU_UTIL_UNKNOWN;
        if (n->get_util) {
                struct nvml_utilization u = { 0 };
                r = n->get_util(h, &u);
                if (r == NVML_SUCCESS && u.gpu <= 100)
                        d->util = u.gpu;
                else if (nvml_fatal(r))
                        return r; /* NOT_SUPPORTED (MIG) and the like: unknown */
        }
        return 0;
}

static int nvml_query(struct nvml *n, struct gpu_state *ret, char *err, size_t errlen) {
        struct gpu_state s = { 0 };
        copy_str(s.source, sizeof s.source, "nvml");
        unsigned count = 0;
        nvml_ret r = n->get_count(&count);
        if (r != NVML_SUCCESS) {
                errf(err, errlen, "%s: %s (NVML error %d)", n->count_name, nvml_strerror(n, r), r);
                return nvml_errno(r);
        }
        if (n->get_driver) {
                char drv[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = "";
                r = n->get_driver(drv, sizeof drv);
                if (r == NVML_SUCCESS) {
                        drv[sizeof drv - 1] = 0;
                        copy_str(s.driver, sizeof s.driver, drv);
                } else if (nvml_fatal(r)) {
                        errf(err, errlen, "nvmlSystemGetDriverVersion: %s (NVML error %d)", nvml_strerror(n, r), r);
                        return nvml_errno(r);
                }
        }
        unsigned scan = MIN(count, (unsigned)GPU_SCAN_MAX), i;
        for (i = 0; i < scan && s.count < GPU_MAX; i++) {
                nvml_device h = NULL;
                r = n->get_handle(i, &h);
                if (r == NVML_SUCCESS && !h)
                        r = NVML_ERROR_GPU_NOT_FOUND;
                if (r != NVML_SUCCESS) {
                        if (nvml_fatal(r)) {
                                errf(err, errlen, "GPU %u: %s: %s (NVML error %d)", i, n->handle_name,
                                     nvml_strerror(n, r), r);
                                return nvml_errno(r);
                        }
                        /* counted but not ours to read (NO_PERMISSION, NVML.md §1) */
                        erradd(err, errlen, "GPU %u: %s: %s", i, n->handle_name, nvml_strerror(n, r));
                        continue;
                }
                const char *what = NULL;
                r = nvml_device_read(n, h, &s.dev[s.count], &what);
                if (r != NVML_SUCCESS) {
                        errf(err, errlen, "GPU %u: %s: %s (NVML error %d)", i, what, nvml_strerror(n, r), r);
                        return nvml_errno(r);
                }
                s.count++;
        }
        if (i < count)
                erradd(err, errlen, "%u GPUs present, reporting %d (at most %d)", count, s.count, GPU_MAX);
        *ret = s;
        return (int)MIN(count, (unsigned)INT_MAX);
}

/* ---- nvidia-smi ---- */

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

static int smi_resolve(const char *smi_path, char *out, size_t outlen, char *err, size_t errlen) {
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
                copy_str(out, outlen, name);
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
                        copy_str(out, outlen, cand);
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
                        nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
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
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        sigset_t none, def;
        static const int dflt[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD,
                                    SIGALRM, SIGUSR1, SIGUSR2, SIGXFSZ };
        char *argv[] = { (char *)path, (char *)GPU_SMI_QUERY, (char *)GPU_SMI_FORMAT, NULL };

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
        if (!r)
                r = posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        if (!r)
                r = posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
        if (!r)
                r = posix_spawnattr_setsigmask(&at, &none);
        if (!r)
                r = posix_spawnattr_setsigdefault(&at, &def);
        if (!r)
                r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (!r)
                r = posix_spawn(ret_pid, path, &fa, &at, argv, environ);
        posix_spawnattr_destroy(&at);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
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

static int smi_query(const char *path, int timeout_ms, struct gpu_state *ret, char *err, size_t errlen) {
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

/* ---- public ---- */

const char *gpu_source(const struct gpu *g) { return g && g->use_nvml ? "nvml" : "nvidia-smi"; }

int gpu_open(struct gpu **ret, const char *nvml_lib, const char *smi_path, char *err, size_t errlen) {
        char nerr[512] = "", serr[512] = "";
        if (!ret)
                return -EINVAL;
        _cleanup_free_ struct gpu *g = calloc(1, sizeof *g);
        if (!g)
                return -ENOMEM;
        long t;
        const char *tv = env_nonempty("MAYFLY_NVIDIA_SMI_TIMEOUT_MS");
        g->smi_timeout_ms = tv && parse_int(tv, 1, 600000, &t) == 0 ? (int)t : GPU_SMI_TIMEOUT_MS;

        int r = nvml_load(&g->n, nvml_lib && *nvml_lib ? nvml_lib : GPU_NVML_DEFAULT, nerr, sizeof nerr);
        if (r >= 0) {
                g->use_nvml = true;
                errf(err, errlen, "%s", "");
                *ret = TAKE_PTR(g);
                return 0;
        }
        r = smi_resolve(smi_path, g->smi, sizeof g->smi, serr, sizeof serr);
        if (r >= 0) {
                struct gpu_state s;
                r = smi_query(g->smi, g->smi_timeout_ms, &s, serr, sizeof serr);
        }
        if (r >= 0) {
                errf(err, errlen, "%s", nerr); /* why NVML is not used */
                *ret = TAKE_PTR(g);
                return 0;
        }
        if (r == -ENOMEM)
                return r;
        errf(err, errlen, "%s; %s", nerr, serr);
        return -ENODEV;
}

int gpu_query(struct gpu *g, struct gpu_state *ret, char *err, size_t errlen) {
        if (!g || !ret)
                return -EINVAL;
        errf(err, errlen, "%s", "");
        if (g->use_nvml)
                return nvml_query(&g->n, ret, err, errlen);
        return smi_query(g->smi, g->smi_timeout_ms, ret, err, errlen);
}

void gpu_close(struct gpu *g) {
        if (!g)
                return;
        if (g->use_nvml)
                nvml_unload(&g->n);
        free(g);
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
        copy_str(dst, dstlen, smi_missing(f) ? "" : f);
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
        copy_str(s.source, sizeof s.source, "nvidia-smi");
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
                        copy_str(s.driver, sizeof s.driver, drv);
                if (rows < GPU_MAX)
                        s.dev[rows] = d;
                rows++;
        }
        s.count = MIN(rows, GPU_MAX);
        *ret = s;
        return rows;
}

/* ---- pure helpers ---- */

bool gpu_all_idle(const struct gpu_state *s) {
        if (!s || s->count <= 0)
                return false;
        for (int i = 0; i < s->count && i < GPU_MAX; i++)
                if (s->dev[i].util != 0)
                        return false;
        return true;
}

static void gpu_json_deletep(cJSON **j) {
        if (*j)
                cJSON_Delete(*j);
}

static bool json_mib(cJSON *o, const char *key, uint64_t v) {
        if (v == GPU_MEM_UNKNOWN)
                return cJSON_AddNullToObject(o, key) != NULL;
        return cJSON_AddNumberToObject(o, key, (double)(v / MIB)) != NULL;
}

static bool json_device(cJSON *arr, const struct gpu_device *d, bool with_samples) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return false;
        if (!cJSON_AddItemToArray(arr, o)) {
                cJSON_Delete(o);
                return false;
        }
        if (!cJSON_AddStringToObject(o, "name", d->name) || !cJSON_AddStringToObject(o, "uuid", d->uuid) ||
            !json_mib(o, "memory_total_mib", d->mem_total))
                return false;
        if (!with_samples)
                return true;
        if (!json_mib(o, "memory_used_mib", d->mem_used))
                return false;
        if (d->util == GPU_UTIL_UNKNOWN)
                return cJSON_AddNullToObject(o, "util") != NULL;
        return cJSON_AddNumberToObject(o, "util", d->util) != NULL;
}

int gpu_state_to_json(const struct gpu_state *s, bool with_samples, char **ret) {
        if (!s || !ret)
                return -EINVAL;
        _cleanup_(gpu_json_deletep) cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddNumberToObject(o, "count", s->count) ||
            !cJSON_AddStringToObject(o, "driver", s->driver) || !cJSON_AddStringToObject(o, "source", s->source))
                return -ENOMEM;
        cJSON *devs = cJSON_AddArrayToObject(o, "devices");
        if (!devs)
                return -ENOMEM;
        for (int i = 0; i < s->count && i < GPU_MAX; i++)
                if (!json_device(devs, &s->dev[i], with_samples))
                        return -ENOMEM;
        char *p = cJSON_PrintUnformatted(o);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}
