/* SPDX-License-Identifier: Apache-2.0 */
/* gpu.h — GPU inventory and utilisation: NVML through dlopen (no link-time dependency), nvidia-smi as fallback. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "run/watch/gpu_state.h"

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

/* count > 0 and every util == 0 (an unknown utilisation is not idle). */
bool gpu_all_idle(const struct gpu_state *s);

/* cJSON-built object, printed unformatted into *ret (free it):
 * {"count":N,"driver":"...","source":"...","devices":[{"name","uuid","memory_total_mib"[,"memory_used_mib","util"]}]}
 * Unknown values are null. 0, or -ENOMEM. */
int gpu_state_to_json(const struct gpu_state *s, bool with_samples, char **ret);

/* The NVML error text for an nvmlReturn_t value (the library's own table, as nvmlErrorString has it). */
const char *gpu_nvml_strerror(int nvml_return);
