/* SPDX-License-Identifier: Apache-2.0 */
/* gpuprobe.c — gpu_open and gpu_query on a worker with a deadline. */
#include "run/watch/gpuprobe.h"

#include "run/base/wait.h"
#include "run/watch/watch.h"
#include "util.h"

/* On the heap: an abandoned worker may still write here. */
struct probe {
        bool wait;
        double deadline;
        struct gpu *g;
        struct gpu_state st;
        int open_rc, query_rc;
        char err[1024];
};

static int probe(void *arg) {
        struct probe *p = arg;
        for (;;) {
                p->open_rc = gpu_open(&p->g, env_nonempty("MAYFLY_NVML_LIBRARY"), NULL, p->err, sizeof p->err);
                if (p->open_rc == 0 || !p->wait || now_mono() >= p->deadline)
                        break;
                worker_nap(2);
        }
        if (p->g)
                p->query_rc = gpu_query(p->g, &p->st, p->err, sizeof p->err);
        return 0;
}

int gpu_probe(struct waiter *w, long wait_s, struct gpu **ret, struct gpu_state *inv, bool *have_inv, char *err,
              size_t errlen) {
        struct probe *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->wait = wait_s >= 0;
        p->deadline = now_mono() + (double)MAX(wait_s, 0);
        int r = waiter_blocking(w, probe, p, p->deadline + WATCH_GPU_HUNG);
        if (r == -ETIMEDOUT) {
                /* p stays with the worker, which may still be inside the driver */
                snprintf(err, errlen, "the GPU driver did not answer within %lds (NVML or nvidia-smi hung)",
                         MAX(wait_s, 0) + (long)WATCH_GPU_HUNG);
                return r;
        }
        *ret = p->g;
        r = p->open_rc;
        *have_inv = r == 0 && p->query_rc >= 0;
        if (*have_inv)
                *inv = p->st;
        snprintf(err, errlen, "%s", p->err);
        free(p);
        return r;
}
