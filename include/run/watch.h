/* watch.h — a background thread that polls IMDS for spot interruption and rebalance notices (every 5 s,
 * one request each, token cached) and samples the GPUs into metrics.jsonl; it wakes the main loop
 * through an eventfd. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "aws/aws.h"
#include "run/gpu.h"

#define WATCH_SPOT_INTERVAL 5
#define WATCH_GPU_INTERVAL 5

struct watcher {
        struct imds *imds;
        struct gpu *gpu;              /* NULL: no sampling */
        int efd;                      /* eventfd the main loop polls */
        int metrics_fd;               /* -1: none */
        long idle_limit;              /* seconds; 0 = off */
        pthread_t th;
        bool running, stop;
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
};

/* Pure: {"action": "terminate", "time": "2017-09-18T08:22:00Z"} */
int spot_parse(const char *json, size_t len, char action[16], time_t *when);
/* Pure: {"noticeTime": "..."} */
int rebalance_parse(const char *json, size_t len, time_t *when);

int watcher_start(struct watcher *w, struct imds *imds, struct gpu *gpu, int metrics_fd, long idle_limit);
void watcher_stop(struct watcher *w);
/* Tell the watcher an experiment started or ended (GPU idleness counts only while one runs). */
void watcher_experiment(struct watcher *w, bool running);
/* Drains the eventfd. */
void watcher_ack(struct watcher *w);
