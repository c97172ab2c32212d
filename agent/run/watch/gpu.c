/* SPDX-License-Identifier: Apache-2.0 */
/* gpu.c — GPU inventory and utilisation: NVML loaded with dlopen (versioned symbols, v1 fallback), nvidia-smi
 * (gpu_smi.c) when NVML is unusable; idleness and JSON. */
#include "run/watch/gpu.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>

#include "jsonx.h"
#include "run/watch/gpu_smi.h"
#include "util.h"

/* ---- The NVML ABI we use (NVIDIA nvml.h; see shared/platform/NVML.md); return codes in gpu_smi.h ---- */

typedef int nvml_ret;
typedef struct nvml_device_st *nvml_device;

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

/* A string getter: "" when it fails in a way that leaves the device usable. */
static int nvml_string(nvml_ret (*get)(nvml_device, char *, unsigned), nvml_device h, char *dst, size_t dstlen) {
        char b[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "";
        dst[0] = 0;
        if (!get)
                return 0;
        nvml_ret r = get(h, b, sizeof b);
        if (r == NVML_SUCCESS) {
                b[sizeof b - 1] = 0;
                str_copy(dst, dstlen, b);
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
        str_copy(s.source, sizeof s.source, "nvml");
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
                        str_copy(s.driver, sizeof s.driver, drv);
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
        r = gpu_smi_resolve(smi_path, g->smi, sizeof g->smi, serr, sizeof serr);
        if (r >= 0) {
                struct gpu_state s;
                r = gpu_smi_query(g->smi, g->smi_timeout_ms, &s, serr, sizeof serr);
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
        return gpu_smi_query(g->smi, g->smi_timeout_ms, ret, err, errlen);
}

void gpu_close(struct gpu *g) {
        if (!g)
                return;
        if (g->use_nvml)
                nvml_unload(&g->n);
        free(g);
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
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
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
