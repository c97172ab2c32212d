/* SPDX-License-Identifier: Apache-2.0 */
/* gpu_smi.h — the nvidia-smi side of the GPU module (gpu.c uses it when NVML is unusable). */
#pragma once
#include <stddef.h>

#include "run/watch/gpu_state.h"

#define MIB (1024ull * 1024ull)

/* nvmlReturn_t values we use (NVIDIA nvml.h; see shared/platform/NVML.md); nvidia-smi exits with them too. */
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

/* smi_path (a path, or a name searched in PATH; NULL or "" = GPU_SMI_DEFAULT) -> an executable's path in out.
 * -errno with err saying why ("nvidia-smi: nvidia-smi not found in PATH"). */
int gpu_smi_resolve(const char *smi_path, char *out, size_t outlen, char *err, size_t errlen);
/* One run of nvidia-smi at path (GPU_SMI_QUERY, GPU_SMI_FORMAT), killed after timeout_ms; as gpu_query. */
int gpu_smi_query(const char *path, int timeout_ms, struct gpu_state *ret, char *err, size_t errlen);

/* nvidia-smi CSV (GPU_SMI_QUERY, GPU_SMI_FORMAT) -> state. Every non-blank line must have the 7 fields; "[...]"
 * values ([N/A], [Not Supported]) are unknown. Returns the number of GPU lines (may exceed GPU_MAX: ret->count is
 * capped), -MF_EPARSE on any malformed line (ret untouched). source is set to "nvidia-smi". */
int gpu_parse_smi_csv(const char *text, size_t len, struct gpu_state *ret);
