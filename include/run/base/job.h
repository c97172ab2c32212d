/* SPDX-License-Identifier: Apache-2.0 */
/* job.h — the job spec (JSON): parsing and validation, a pure module. Errors name the JSON path. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_MAX_BYTES (256 * 1024)
#define JOB_MAX_EXPERIMENTS 256
#define JOB_MAX_KEEP_GROUPS 16
#define JOB_MAX_OUTPUTS 64
#define JOB_MAX_ENV 128
#define JOB_DEFAULT_PATH "/etc/mayfly/job.json"
/* An experiment's own metrics ($MAYFLY_METRICS_FILE): <workdir>/XMETRICS_DIR/<experiment>.jsonl, written by it;
 * copied as the run user into $LOGS_DIRECTORY/<experiment>/XMETRICS_FILE and shipped as a log of the stream
 * <experiment>/XMETRICS_STREAM (live/<experiment>/metrics.<offset>, then logs/<experiment>/metrics.jsonl). */
#define XMETRICS_DIR ".mayfly/metrics"
#define XMETRICS_FILE "metrics.jsonl"
#define XMETRICS_STREAM "metrics"
#define XMETRICS_MAX_COPY (256ull << 20) /* copied of one experiment's file at most */

/* Data staged from S3 for the experiment before it starts (jobdata.c, run/proc/inputs.h). */
#define JOB_MAX_INPUTS 32
#define JOB_INPUT_NAME_MAX 48
#define JOB_SCRATCH_PREFIX "scratch:"   /* a path in the scratch directory ("scratch"), not the workdir */
struct job_input {
        char *name;           /* 1-48 of A-Z a-z 0-9 _ -: $MAYFLY_INPUT_<NAME> (upper-cased, '-' as '_') */
        char *source;         /* s3://bucket/prefix/ (every object under it) or s3://bucket/key (one object) */
        char *path;           /* relative to the workdir, or to the scratch directory (scratch); for one object the
                               * file itself, or the directory it goes in when the path ends with '/' */
        bool scratch;         /* the path was "scratch:P" */
        bool prefix;          /* the source ends with '/' */
        bool read_only;       /* files 0444, directories 0555 */
        bool sync;            /* checked against S3 at every start (false: staged once on this disk) */
};
/* "scratch": where scratch:… paths and $MAYFLY_SCRATCH live */
enum job_scratch {
        JOB_SCRATCH_NONE,             /* no scratch directory */
        JOB_SCRATCH_INSTANCE_STORE,   /* the instance's NVMe instance store, or the run fails at PREPARE */
        JOB_SCRATCH_PREFER,           /* the instance store, else a directory on the workdir's disk */
};

enum job_env { JOB_ENV_NONE, JOB_ENV_CONDA, JOB_ENV_CONDA_PREFIX, JOB_ENV_VENV };
enum exit_action { EXIT_ACTION_TERMINATE, EXIT_ACTION_STOP, EXIT_ACTION_POWEROFF, EXIT_ACTION_KEEP };

#define JOB_MAX_AFTER 16
#define JOB_RUN_ID_MAX 128

struct experiment {
        char *name;
        char **argv;          /* NULL-terminated; for a shell string, argv[0] is the string */
        bool shell;           /* command given as one string, run by bash -c */
        long timeout;         /* seconds, 0 = none */
        int after[JOB_MAX_AFTER];   /* indexes of the experiments it waits for (a sweep's `after`) */
        size_t n_after;
        int nodes;            /* instances that run it at once, as one gang (1: an experiment of one instance) */
};

#define JOB_MAX_NODES 64            /* a gang's instances (the largest group mayfly launches) */
#define JOB_RENDEZVOUS_PORT 29500   /* torchrun's default --master_port */
#define JOB_GANG_TIMEOUT 900        /* seconds a gang may take to form before its attempt ends in error */

/* The Auto Scaling group that runs this job (written by `mayfly launch --recover/--instances`): its instances
 * share the run (run_id) through the ledger in S3, and the one that ends the run deletes the group. */
struct job_fleet {
        char *group;          /* NULL: no group (a plain instance, a hand-run mayfly run) */
        char *launch_template;
        int size;             /* instances (1: a run recovered after spot loss; more: a sweep) */
        int max_attempts;     /* per experiment; 0 = no limit */
        long lease_ttl;       /* $.lease_ttl: seconds an instance's claim on an experiment lasts unrenewed (0: 60) */
};

#define JOB_MAX_URL 2048

/* Who is told when the run ends: an SNS topic and/or an HTTPS webhook (Slack/Teams incoming webhook). */
struct job_notify {
        char *sns_topic;      /* arn:aws:sns:REGION:ACCOUNT:NAME, NULL = none */
        char *webhook;        /* https://..., NULL = none (a secret: never logged whole) */
        bool on_interrupt;    /* also on each spot interruption the run survives */
};

struct job {
        char *name;
        char *run_id;         /* NULL: a run of its own per instance (<instance id>-<time>) */
        char *source;         /* s3://bucket/key.tar.gz | s3://bucket/prefix/ */
        char *workdir;        /* NULL = $STATE_DIRECTORY/work */
        char *results;        /* s3://bucket/prefix/ (always ends with '/') */
        enum job_env env_kind;
        char *env_value;
        char **environment;   /* KEY=VALUE, NULL-terminated */
        char *user;           /* NULL = the dedicated unprivileged `mayfly` user */
        char **keep_groups;   /* administrators' groups a named user keeps (NULL-terminated; NULL: none) */
        enum exp_credentials {
                EXPC_SCOPED,          /* its own: experiment_role, else the instance role narrowed (the default) */
                EXPC_NONE,            /* none at all */
                EXPC_INSTANCE_ROLE,   /* the instance role, IMDS open to it (unsafe: today's behaviour) */
        } exp_credentials;
        char *experiment_role;  /* a role ARN to assume for the experiment, NULL: the instance role narrowed */
        struct experiment *experiments;
        size_t n_experiments;
        bool continue_on_failure;
        char **outputs;       /* globs relative to workdir, NULL-terminated */
        char *checkpoint_dir; /* relative to workdir (or the scratch directory: checkpoint_scratch), NULL = none */
        bool checkpoint_scratch;
        struct job_input *inputs;
        size_t n_inputs;
        enum job_scratch scratch;
        long checkpoint_interval;   /* seconds */
        bool gpu_require;
        int gpu_min_count;
        long gpu_wait;        /* seconds */
        long gpu_idle;        /* seconds at 0 % on every GPU that end an experiment; 0 = off */
        long max_runtime;     /* seconds, 0 = none */
        long log_interval;    /* seconds */
        long spot_grace;      /* seconds between SIGTERM and SIGKILL on a spot notice */
        long stop_grace;      /* seconds between SIGTERM and SIGKILL on a timeout */
        bool rebalance_sigusr1;
        long ship_timeout;    /* bound on the final upload phase, seconds */
        uint64_t log_max;     /* bytes of each experiment log kept on the disk (its head released past it) */
        enum exit_action on_exit, on_error;
        struct job_fleet fleet;
        int rendezvous_port;  /* $.rendezvous_port: MASTER_PORT for a gang (JOB_RENDEZVOUS_PORT) */
        long gang_timeout;    /* $.gang_timeout: seconds (JOB_GANG_TIMEOUT) */
        struct job_notify notify;
};

/* Parses and validates; on error -EINVAL with "$.path: what is wrong" in err. */
int job_parse(const char *json, size_t len, struct job *ret, char *err, size_t errlen);

/* Every error of a spec at once (mayfly check, launch): "JSON.path: what is wrong", in the order of the keys. */
#define JOB_MAX_ERRORS 32
#define JOB_ERROR_LEN 400
struct job_errors {
        size_t n;
        char lines[JOB_MAX_ERRORS][JOB_ERROR_LEN];
};
/* 0 when the spec is good (the job in *ret when ret is not NULL: free it), else -EINVAL with every error in e. */
int job_check(const char *json, size_t len, struct job *ret, struct job_errors *e);
/* Pure: edits (insert, delete, replace, swap two neighbours) from a to b; SIZE_MAX past 64 characters. */
size_t job_edit_distance(const char *a, const char *b);
void job_free(struct job *j);
/* The defaults of every optional key, nothing else set (what a job that could not be parsed still runs with). */
void job_defaults(struct job *j);
const char *exit_action_name(enum exit_action a);
#define JOB_LOG_MAX_DEFAULT (10ull << 30) /* log_max: 10 GiB */
#define JOB_LOG_MAX_MIN (1u << 20)        /* log_max at least 1 MiB */

/* Where an input lands, relative to its tree: its path, or for one object going into a directory (a path ending in
 * '/') the file in it, named after the key's last part. 0 or -ENAMETOOLONG. Pure. */
int job_input_place(const struct job_input *in, char *buf, size_t len);
/* An input's name as its variable's suffix: "imagenet-1k" -> "IMAGENET_1K" ($MAYFLY_INPUT_IMAGENET_1K). Pure. */
void job_input_var(const char *name, char *buf, size_t len);

/* "90", "90s", "15m", "2h", "1d" → seconds. */
int parse_duration(const char *s, long *ret);
/* "1048576", "512KiB", "500MiB", "10GiB", "1TiB" (K, M, G, T alone mean the same; KB, MB, GB, TB are powers of
 * 1000; a B suffix is allowed) → bytes. -EINVAL when it is not a size or past 2^60. Pure. */
int parse_size(const char *s, uint64_t *ret);
/* s3://bucket/prefix/ + name/run-id/ */
/* Pure: 1-128 characters of A-Z a-z 0-9 . _ - (a run id, and the name of its group: mayfly-<run id>). */
bool job_run_id_ok(const char *s);
int job_results_prefix(const struct job *j, const char *run_id, char **ret);
