/* SPDX-License-Identifier: Apache-2.0 */
/* jobparse.h — what the job spec's parsers share (job.c, jobdata.c): the error context and the readers of one key,
 * each naming the JSON path of what is wrong. Internal to agent/run/base/. */
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "run/base/job.h"

struct pctx {
        char *err;                    /* the first error */
        size_t errlen;
        struct job_errors *all;       /* every error (job_check), NULL: the first is enough */
};

/* "path: fmt" (fmt's one %s is detail) as an error; -EINVAL. */
int jp_fail(struct pctx *p, const char *path, const char *fmt, const char *detail);
/* A relative path that stays below its root: no leading '/', no '..' component. */
bool jp_safe_relative(const char *s);
/* Every key of obj that is not allowed is one error (with the known key it may be a typo of). */
int jp_check_keys(struct pctx *p, const cJSON *obj, const char *path, const char *const *allowed);
int jp_get_string(struct pctx *p, const cJSON *obj, const char *key, const char *path, bool required, char **ret);
int jp_get_bool(struct pctx *p, const cJSON *obj, const char *key, const char *path, bool *ret);
/* A duration (seconds, or "90s", "15m", "2h") of at least min; an int in min..max. Absent: *ret untouched. */
int jp_get_duration(struct pctx *p, const cJSON *obj, const char *key, const char *path, long min, long *ret);
int jp_get_int(struct pctx *p, const cJSON *obj, const char *key, const char *path, int min, int max, int *ret);
/* An s3://bucket/... URI with a valid bucket name. */
int jp_check_s3(struct pctx *p, const char *path, const char *v, bool want_prefix);

/* jobdata.c: "inputs" and "scratch" (the data staged for the experiment, and the instance store). */
int jp_parse_inputs(struct pctx *p, const cJSON *root, struct job *j);
void jp_free_inputs(struct job *j);
/* jobdata.c: "nodes" on experiments, "rendezvous_port" and "gang_timeout" (an experiment run by a gang of
 * instances); after the experiments and the fleet are parsed. */
int jp_parse_gang(struct pctx *p, const cJSON *root, struct job *j);
