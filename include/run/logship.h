/* logship.h — a background thread that ships growing logs (only the new bytes, as numbered chunks),
 * status.json and checkpoint changes while the experiment runs, so a slow S3 never blocks the experiment. */
#pragma once
#include <pthread.h>

#include "aws/aws.h"
#include "run/runner.h"

#define SHIP_MAX_STREAMS 16

struct logstream {
        char path[4096];
        char name[256];           /* "train/stdout" → live/train/stdout.<offset> */
        uint64_t shipped;
        double last;
        bool active;
};

struct shipper {
        struct aws_ctx *c;
        char bucket[64];
        char prefix[1200];        /* key prefix of the run: "results/name/run-id/" */
        long interval;
        pthread_t th;
        bool running;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        struct logstream streams[SHIP_MAX_STREAMS];
        size_t n;
        char *status_json;        /* pending status.json, NULL when shipped */
        char ckpt_dir[4096];          /* relative to the workdir */
        const struct run_user *ckpt_user;
        int ckpt_rootfd;              /* the workdir */
        char refusal[700];            /* the first checkpoint path refused (a link out of the workdir) */
        long ckpt_interval;
        double ckpt_last;
        time_t ckpt_since;
        unsigned long chunks, failures;
        char last_error[512];
};

int shipper_init(struct shipper *s, struct aws_ctx *c, const char *bucket, const char *prefix, long interval);
int shipper_start(struct shipper *s);
/* Stops the thread (the final upload is then done by the caller with shipper_flush). */
void shipper_stop(struct shipper *s);
void shipper_free(struct shipper *s);
int shipper_add_stream(struct shipper *s, const char *path, const char *name);
void shipper_set_status(struct shipper *s, const char *json);
/* The checkpoint directory rel of the workdir rootfd, synced every interval seconds as the run user u. */
void shipper_set_checkpoint(struct shipper *s, const struct run_user *u, int rootfd, const char *rel, long interval);
/* The first checkpoint path refused so far, into dst; false when there was none. */
bool shipper_refusal(struct shipper *s, char *dst, size_t n);
/* Synchronous: ship every stream's remaining bytes and the pending status now. */
int shipper_flush(struct shipper *s, struct aws_result *out);
/* Synchronous: upload checkpoint files changed since the last sync. */
int shipper_sync_checkpoint(struct shipper *s, struct aws_result *out);
/* Upload one local file as prefix+rel (final logs, metrics). */
int shipper_put_file(struct shipper *s, const char *path, const char *rel, struct aws_result *out);
int shipper_put_text(struct shipper *s, const char *rel, const char *text, const char *ctype, struct aws_result *out);
