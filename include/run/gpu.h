/* gpu.h — GPU inventory and utilisation: NVML through dlopen (no link-time dependency), nvidia-smi as fallback. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GPU_MAX 16
#define GPU_UTIL_UNKNOWN UINT_MAX       /* utilisation not reported (MIG, [N/A], NOT_SUPPORTED) */
#define GPU_MEM_UNKNOWN UINT64_MAX      /* memory not reported */
#define GPU_NVML_DEFAULT "libnvidia-ml.so.1"   /* never "libnvidia-ml.so": that name is the CUDA stub */
#define GPU_SMI_DEFAULT "nvidia-smi"
#define GPU_SMI_TIMEOUT_MS 5000         /* nvidia-smi is killed after this; env MAYFLY_NVIDIA_SMI_TIMEOUT_MS overrides */
#define GPU_SMI_MAX_OUTPUT (64u * 1024) /* stdout cap; stderr keeps its first GPU_SMI_MAX_STDERR bytes */
#define GPU_SMI_MAX_STDERR 1024
#define GPU_SMI_QUERY "--query-gpu=index,name,uuid,driver_version,memory.total,memory.used,utilization.gpu"
#define GPU_SMI_FORMAT "--format=csv,noheader,nounits"

struct gpu_device {
        char name[96];
        char uuid[96];
        uint64_t mem_total, mem_used;   /* bytes, or GPU_MEM_UNKNOWN */
        unsigned util;                  /* percent, or GPU_UTIL_UNKNOWN */
};

struct gpu_state {
        int count;                      /* devices in dev[], at most GPU_MAX */
        char driver[80];
        char source[16];                /* "nvml" | "nvidia-smi" */
        struct gpu_device dev[GPU_MAX];
};

struct gpu; /* opaque */

/* Load NVML with dlopen(nvml_lib ? nvml_lib : "libnvidia-ml.so.1", RTLD_NOW|RTLD_LOCAL), resolve the versioned
 * symbols (falling back to the v1 names) and call nvmlInit; when that fails, fall back to nvidia-smi (smi_path, or
 * "nvidia-smi" searched in PATH), run once with posix_spawn, a fixed argv, bounded output and a timeout.
 * 0 on success (err is "" with NVML; with nvidia-smi it says why NVML was not used); -ENODEV when neither works,
 * with err naming why each failed ("libnvidia-ml.so.1: cannot open ...; nvidia-smi: nvidia-smi not found in PATH").
 * Retry on -ENODEV until a deadline: at boot the driver may not be loaded yet (NVML_ERROR_DRIVER_NOT_LOADED,
 * nvidia-smi exit 9). -ENOMEM on allocation failure. *ret untouched on failure.
 * nvidia-smi runs are synchronous (up to the timeout plus 1 s) and reap their own child with waitpid(pid). */
int gpu_open(struct gpu **ret, const char *nvml_lib, const char *smi_path, char *err, size_t errlen);

/* Inventory plus current utilisation and memory of every GPU. Returns the number of GPUs the system reports
 * (>= 0). ret->count can be lower: capped at GPU_MAX, or devices NVML refuses a handle for (NO_PERMISSION);
 * then err says why (it is "" otherwise). Failures: -ENODEV when the driver or a GPU went away (GPU is lost,
 * driver not loaded, driver/library mismatch; gpu_close and gpu_open again), -EACCES, -ETIMEDOUT (nvidia-smi
 * killed), -MF_EPARSE (nvidia-smi printed something else), -EIO or another -errno otherwise; err says why.
 * ret untouched on failure. */
int gpu_query(struct gpu *g, struct gpu_state *ret, char *err, size_t errlen);

/* nvmlShutdown + dlclose; NULL ok. */
void gpu_close(struct gpu *g);

/* "nvml" or "nvidia-smi". */
const char *gpu_source(const struct gpu *g);

/* Pure helpers. */

/* nvidia-smi CSV (GPU_SMI_QUERY, GPU_SMI_FORMAT) -> state. Every non-blank line must have the 7 fields; "[...]"
 * values ([N/A], [Not Supported]) are unknown. Returns the number of GPU lines (may exceed GPU_MAX: ret->count is
 * capped), -MF_EPARSE on any malformed line (ret untouched). source is set to "nvidia-smi". */
int gpu_parse_smi_csv(const char *text, size_t len, struct gpu_state *ret);

/* count > 0 and every util == 0 (an unknown utilisation is not idle). */
bool gpu_all_idle(const struct gpu_state *s);

/* cJSON-built object, printed unformatted into *ret (free it):
 * {"count":N,"driver":"...","source":"...","devices":[{"name","uuid","memory_total_mib"[,"memory_used_mib","util"]}]}
 * Unknown values are null. 0, or -ENOMEM. */
int gpu_state_to_json(const struct gpu_state *s, bool with_samples, char **ret);

/* The NVML error text for an nvmlReturn_t value (the library's own table, as nvmlErrorString has it). */
const char *gpu_nvml_strerror(int nvml_return);
