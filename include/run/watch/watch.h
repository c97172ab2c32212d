/* SPDX-License-Identifier: Apache-2.0 */
/* watch.h — two background threads: one polls IMDS for spot interruption and rebalance notices (every 5 s, one
 * request each, token cached), the other samples the GPUs into metrics.jsonl (every 5 s). A GPU query that does
 * not return (a hung NVML or driver) stalls only the GPU thread; the spot thread notices after WATCH_GPU_HUNG
 * seconds. Both wake the main loop through an eventfd. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "aws/aws.h"
#include "run/watch/gpu.h"

#define WATCH_SPOT_INTERVAL 5
#define WATCH_GPU_INTERVAL 5
#define WATCH_GPU_HUNG 30             /* seconds a GPU query may take before it counts as hung */

struct watcher {
        struct imds *imds;
        struct gpu *gpu;              /* NULL: no sampling */
        int efd;                      /* eventfd the main loop polls */
        int metrics_fd;               /* -1: none */
        long idle_limit;              /* seconds; 0 = off */
        pthread_t th, gpu_th;
        bool running, gpu_running, stop;
        bool gpu_done;                /* the GPU thread has returned */
        bool gpu_abandoned;           /* watcher_stop left it behind, stuck in a query */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* results, under lock */
        bool spot;
        char spot_action[16];
        time_t spot_time;
        bool rebalance;
        time_t rebalance_time;
        bool exp_running;
        double idle_since;            /* monotonic; 0 = not idle */
        bool idle_fired;
        struct gpu_state last;
        unsigned long spot_polls;
        double gpu_busy_since;        /* monotonic start of the GPU query under way, 0 = none */
        bool gpu_hung;                /* that query has run for WATCH_GPU_HUNG seconds */
        time_t gpu_hung_since;
        unsigned long gpu_hangs;
};

/* Pure: {"action": "terminate", "time": "2017-09-18T08:22:00Z"} */
int spot_parse(const char *json, size_t len, char action[16], time_t *when);
/* Pure: {"noticeTime": "..."} */
int rebalance_parse(const char *json, size_t len, time_t *when);

/* Starts the spot thread (imds NULL: off EC2, it only watches the GPU thread). */
int watcher_start(struct watcher *w, struct imds *imds);
/* Starts the GPU thread: samples into metrics_fd (-1: none), idle_limit seconds at 0 % fire gpu-idle (0: off). */
int watcher_add_gpu(struct watcher *w, struct gpu *gpu, int metrics_fd, long idle_limit);
/* Stops both threads. A GPU thread stuck in a query is not waited for (1 s at most): it is detached and true
 * returned — the GPU handle must then not be closed, and the process should end with _exit. */
bool watcher_stop(struct watcher *w);
/* Whether a GPU query is hung now, since when, and how many hangs were seen. */
void watcher_gpu_health(struct watcher *w, bool *hung, time_t *since, unsigned long *hangs);
/* Tell the watcher an experiment started or ended (GPU idleness counts only while one runs). */
void watcher_experiment(struct watcher *w, bool running);
/* Drains the eventfd. */
void watcher_ack(struct watcher *w);
