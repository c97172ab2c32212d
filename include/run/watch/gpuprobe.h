/* SPDX-License-Identifier: Apache-2.0 */
/* gpuprobe.h — opening the GPU driver at start without trusting it to answer: on a worker, bounded. */
#pragma once
#include <stdbool.h>

#include "run/watch/gpu.h"
#include "run/base/wait.h"

/* gpu_open (NVML, else nvidia-smi) and the first inventory. wait_s >= 0: retry gpu_open for that long (the driver may
 * not be loaded yet at boot); -1: once. The whole is bounded by wait_s + WATCH_GPU_HUNG: a driver that does not
 * answer gives -ETIMEDOUT (the worker is left behind, w->abandoned set) and err says so. 0 with *ret (and the
 * inventory in *inv, *have_inv) or -errno (-ENODEV: no GPU) with err saying why. */
int gpu_probe(struct waiter *w, long wait_s, struct gpu **ret, struct gpu_state *inv, bool *have_inv, char *err,
              size_t errlen);
