/* SPDX-License-Identifier: Apache-2.0 */
/* gpu_state.h — what the GPU module reports: a device list with utilisation and memory (types and limits only,
 * shared by gpu.c and gpu_smi.c). */
#pragma once
#include <limits.h>
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
