/* SPDX-License-Identifier: Apache-2.0 */
/* job.c — job spec parsing with JSON-path error messages. */
#include "run/base/job.h"
#include "run/base/jobgrid.h"
#include "run/base/jobparse.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "aws/sns.h"
#include "util.h"

int jp_fail(struct pctx *p, const char *path, const char *fmt, const char *detail) {
        char msg[256], line[JOB_ERROR_LEN];
        snprintf(msg, sizeof msg, fmt, detail ? detail : "");
        snprintf(line, sizeof line, "%s: %s", path, msg);
        /* one line, whatever the spec's keys and values hold */
        for (char *c = line; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = '?';
        if (p->all && p->all->n < JOB_MAX_ERRORS)
                snprintf(p->all->lines[p->all->n++], JOB_ERROR_LEN, "%s", line);
        if (!p->err[0])
                snprintf(p->err, p->errlen, "%s", line);
        return -EINVAL;
}

size_t job_edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        if (la > 64 || lb > 64)
                return SIZE_MAX;
        size_t d[65][65];
        for (size_t i = 0; i <= la; i++)
                d[i][0] = i;
        for (size_t k = 0; k <= lb; k++)
                d[0][k] = k;
        for (size_t i = 1; i <= la; i++)
                for (size_t k = 1; k <= lb; k++) {
                        size_t sub = d[i - 1][k - 1] + (a[i - 1] != b[k - 1]);
                        d[i][k] = MIN(sub, MIN(d[i - 1][k], d[i][k - 1]) + 1);
                        /* a swap of two neighbours counts once (Damerau) */
                        if (i > 1 && k > 1 && a[i - 1] == b[k - 2] && a[i - 2] == b[k - 1])
                                d[i][k] = MIN(d[i][k], d[i - 2][k - 2] + 1);
                }
        return d[la][lb];
}

/* The allowed key nearest to an unknown one, when it is near enough to be a typo (NULL: none). */
static const char *nearest(const char *key, const char *const *allowed) {
        const char *best = NULL;
        size_t bd = SIZE_MAX, lim = MAX(strlen(key) / 3, (size_t)2);
        for (const char *const *a = allowed; *a; a++) {
                size_t d = job_edit_distance(key, *a);
                if (d < bd && d <= lim)
                        best = *a, bd = d;
        }
        return best;
}

int parse_duration(const char *s, long *ret) {
        if (!s || !*s)
                return -EINVAL;
        char *end;
        errno = 0;
        if (!isdigit((unsigned char)s[0]))
                return -EINVAL;
        long v = strtol(s, &end, 10);
        if (errno || v < 0)
                return -EINVAL;
        long mul = 1;
        if (*end == 's')
                end++;
        else if (*end == 'm')
                mul = 60, end++;
        else if (*end == 'h')
                mul = 3600, end++;
        else if (*end == 'd')
                mul = 86400, end++;
        if (*end || v > 100L * 365 * 86400 / mul)
                return -EINVAL;
        *ret = v * mul;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                const char *unit;
                uint64_t mul;
        } units[] = { { "", 1 },         { "B", 1 },           { "K", 1ull << 10 },     { "KiB", 1ull << 10 },
                      { "KB", 1000 },    { "M", 1ull << 20 },  { "MiB", 1ull << 20 },   { "MB", 1000000 },
                      { "G", 1ull << 30 }, { "GiB", 1ull << 30 }, { "GB", 1000000000 }, { "T", 1ull << 40 },
                      { "TiB", 1ull << 40 }, { "TB", 1000000000000ull } };
        if (!s || !isdigit((unsigned char)s[0]))
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        for (size_t i = 0; i < ARRAY_SIZE(units); i++)
                if (!strcmp(end, units[i].unit)) {
                        if (v > (1ull << 60) / units[i].mul)
                                return -EINVAL;
                        *ret = v * units[i].mul;
                        return 0;
                }
        return -EINVAL;
}

static bool good_name(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

/* A relative path that stays below its root: no leading '/', no '..' component. */
bool jp_safe_relative(const char *s) {
        if (!*s || s[0] == '/')
                return false;
        for (const char *p = s; *p;) {
                const char *e = strchrnul(p, '/');
                if (e - p == 2 && p[0] == '.' && p[1] == '.')
                        return false;
                p = *e ? e + 1 : e;
        }
        return true;
}

/* Every key that is not allowed is one error (with the known key it may be a typo of). */
int jp_check_keys(struct pctx *p, const cJSON *obj, const char *path, const char *const *allowed) {
        int r = 0;
        for (const cJSON *c = obj->child; c; c = c->next) {
                bool ok = false;
                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = strcmp(*a, c->string) == 0;
                if (ok)
                        continue;
                char sub[512];
                snprintf(sub, sizeof sub, "%s.%s", path, c->string);
                const char *near = nearest(c->string, allowed);
                r = near ? jp_fail(p, sub, "unknown key (did you mean '%s'?)", near) : jp_fail(p, sub, "unknown key", NULL);
        }
        return r;
}

int jp_get_string(struct pctx *p, const cJSON *obj, const char *key, const char *path, bool required,
                      char **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (!v) {
                if (required)
                        return jp_fail(p, sub, "is required", NULL);
                return 0;
        }
        if (!cJSON_IsString(v))
                return jp_fail(p, sub, "must be a string", NULL);
        if (strlen(v->valuestring) > 4096)
                return jp_fail(p, sub, "is too long", NULL);
        *ret = strdup(v->valuestring);
        return *ret ? 0 : -ENOMEM;
}

int jp_get_bool(struct pctx *p, const cJSON *obj, const char *key, const char *path, bool *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!v)
                return 0;
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (!cJSON_IsBool(v))
                return jp_fail(p, sub, "must be true or false", NULL);
        *ret = cJSON_IsTrue(v);
        return 0;
}

/* A duration: a whole number of seconds or a string such as "90s", "15m", "2h", "1d". */
int jp_get_duration(struct pctx *p, const cJSON *obj, const char *key, const char *path, long min, long *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!v)
                return 0;
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        long d;
        if (cJSON_IsNumber(v)) {
                /* the range first: a double cast to long out of its range is undefined behaviour */
                long long n = json_int_value(v, 0, 3200000000LL, -1);
                if (n < 0)
                        return jp_fail(p, sub, "must be a whole number of seconds", NULL);
                d = (long)n;
        } else if (cJSON_IsString(v)) {
                if (parse_duration(v->valuestring, &d) < 0)
                        return jp_fail(p, sub, "is not a duration (e.g. 90, \"90s\", \"15m\", \"2h\")", NULL);
        } else
                return jp_fail(p, sub, "must be a duration (seconds, or a string like \"2h\")", NULL);
        if (d < min) {
                char m[32];
                snprintf(m, sizeof m, "%ld", min);
                return jp_fail(p, sub, "must be at least %s seconds", m);
        }
        *ret = d;
        return 0;
}

static int get_size(struct pctx *p, const cJSON *obj, const char *key, const char *path, uint64_t min, uint64_t *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!v)
                return 0;
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        uint64_t n;
        if (cJSON_IsNumber(v)) {
                long long x = json_int_value(v, 0, 1LL << 53, -1);
                if (x < 0)
                        return jp_fail(p, sub, "must be a whole number of bytes", NULL);
                n = (uint64_t)x;
        } else if (cJSON_IsString(v)) {
                if (parse_size(v->valuestring, &n) < 0)
                        return jp_fail(p, sub, "is not a size (e.g. 1073741824, \"500MiB\", \"10GiB\")", NULL);
        } else
                return jp_fail(p, sub, "must be a size (bytes, or a string like \"10GiB\")", NULL);
        if (n < min) {
                char m[32];
                fmt_bytes(min, m);
                return jp_fail(p, sub, "must be at least %s", m);
        }
        *ret = n;
        return 0;
}

int jp_get_int(struct pctx *p, const cJSON *obj, const char *key, const char *path, int min, int max, int *ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!v)
                return 0;
        char sub[512], range[64];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        snprintf(range, sizeof range, "%d..%d", min, max);
        long long n = json_int_value(v, min, max, (long long)min - 1);
        if (n < min)
                return jp_fail(p, sub, "must be a whole number in %s", range);
        *ret = (int)n;
        return 0;
}

static int get_action(struct pctx *p, const cJSON *obj, const char *key, enum exit_action *ret) {
        _cleanup_free_ char *s = NULL;
        int r = jp_get_string(p, obj, key, "$", false, &s);
        if (r < 0 || !s)
                return r;
        static const char *const names[] = { "terminate", "stop", "poweroff", "keep" };
        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                if (strcmp(s, names[i]) == 0) {
                        *ret = (enum exit_action)i;
                        return 0;
                }
        char sub[64];
        snprintf(sub, sizeof sub, "$.%s", key);
        return jp_fail(p, sub, "must be one of terminate, stop, poweroff, keep (got '%s')", s);
}

const char *exit_action_name(enum exit_action a) {
        static const char *const names[] = { "terminate", "stop", "poweroff", "keep" };
        return (unsigned)a < ARRAY_SIZE(names) ? names[a] : "?";
}

int jp_check_s3(struct pctx *p, const char *path, const char *v, bool want_prefix) {
        if (!str_has_prefix(v, "s3://") || strlen(v) < 8)
                return jp_fail(p, path, "must be an s3://bucket/... URI (got '%s')", v);
        const char *b = v + 5;
        size_t bl = strcspn(b, "/");
        if (bl < 3 || bl > 63)
                return jp_fail(p, path, "has an invalid bucket name", NULL);
        for (size_t i = 0; i < bl; i++)
                if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-' || b[i] == '.'))
                        return jp_fail(p, path, "has an invalid bucket name", NULL);
        if (want_prefix && !b[bl])
                return 0;
        return 0;
}

static int parse_command(struct pctx *p, const cJSON *c, const char *path, struct experiment *e) {
        if (cJSON_IsString(c)) {
                if (!*c->valuestring)
                        return jp_fail(p, path, "must not be empty", NULL);
                e->shell = true;
                e->argv = calloc(2, sizeof(char *));
                if (!e->argv || !(e->argv[0] = strdup(c->valuestring)))
                        return -ENOMEM;
                return 0;
        }
        if (!cJSON_IsArray(c) || cJSON_GetArraySize(c) < 1 || cJSON_GetArraySize(c) > 4096)
                return jp_fail(p, path, "must be a non-empty array of strings or a shell string", NULL);
        int n = cJSON_GetArraySize(c);
        e->argv = calloc((size_t)n + 1, sizeof(char *));
        if (!e->argv)
                return -ENOMEM;
        int i = 0;
        for (const cJSON *a = c->child; a; a = a->next, i++) {
                char sub[512];
                snprintf(sub, sizeof sub, "%s[%d]", path, i);
                if (!cJSON_IsString(a))
                        return jp_fail(p, sub, "must be a string", NULL);
                if (i == 0 && !*a->valuestring)
                        return jp_fail(p, sub, "must not be empty", NULL);
                if (!(e->argv[i] = strdup(a->valuestring)))
                        return -ENOMEM;
        }
        return 0;
}

static int parse_after(struct pctx *p, const cJSON *arr, struct job *j, int n);

static int parse_experiments(struct pctx *p, const cJSON *root, struct job *j) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "experiments");
        if (!arr)
                return jp_fail(p, "$.experiments", "is required", NULL);
        if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1)
                return jp_fail(p, "$.experiments", "must be a non-empty array", NULL);
        int n = cJSON_GetArraySize(arr);
        if (n > JOB_MAX_EXPERIMENTS)
                return jp_fail(p, "$.experiments", "has too many entries", NULL);
        j->experiments = calloc((size_t)n, sizeof *j->experiments);
        if (!j->experiments)
                return -ENOMEM;
        static const char *const keys[] = { "name", "command", "timeout", "after", "nodes", NULL };
        int i = 0;
        for (const cJSON *x = arr->child; x; x = x->next, i++) {
                char path[64];
                snprintf(path, sizeof path, "$.experiments[%d]", i);
                struct experiment *e = &j->experiments[i];
                e->nodes = 1;
                j->n_experiments = (size_t)i + 1;
                if (!cJSON_IsObject(x))
                        return jp_fail(p, path, "must be an object", NULL);
                int r = jp_check_keys(p, x, path, keys);
                if (r == 0)
                        r = jp_get_string(p, x, "name", path, true, &e->name);
                if (r < 0)
                        return r;
                char sub[96];
                snprintf(sub, sizeof sub, "%s.name", path);
                if (!good_name(e->name))
                        return jp_fail(p, sub, "must be 1-64 characters of A-Z a-z 0-9 . _ - (got '%s')", e->name);
                for (int k = 0; k < i; k++)
                        if (strcmp(j->experiments[k].name, e->name) == 0)
                                return jp_fail(p, sub, "duplicates an earlier experiment's name '%s'", e->name);
                const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(x, "command");
                snprintf(sub, sizeof sub, "%s.command", path);
                if (!cmd)
                        return jp_fail(p, sub, "is required", NULL);
                r = parse_command(p, cmd, sub, e);
                if (r == 0)
                        r = jp_get_duration(p, x, "timeout", path, 1, &e->timeout);
                if (r < 0)
                        return r;
        }
        return parse_after(p, arr, j, n);
}

/* `after`: names of other experiments, resolved once every name is known; no circle. */
static int parse_after(struct pctx *p, const cJSON *arr, struct job *j, int n) {
        int i = 0;
        for (const cJSON *x = arr->child; x; x = x->next, i++) {
                const cJSON *af = cJSON_GetObjectItemCaseSensitive(x, "after");
                char sub[96];
                snprintf(sub, sizeof sub, "$.experiments[%d].after", i);
                if (!af)
                        continue;
                if (!cJSON_IsArray(af) || cJSON_GetArraySize(af) > JOB_MAX_AFTER)
                        return jp_fail(p, sub, "must be an array of at most 16 experiment names", NULL);
                struct experiment *e = &j->experiments[i];
                for (const cJSON *a = af->child; a; a = a->next) {
                        int k = 0;
                        while (k < n && (!cJSON_IsString(a) || strcmp(j->experiments[k].name, a->valuestring)))
                                k++;
                        if (k == n)
                                return jp_fail(p, sub, "names no experiment of this job ('%s')",
                                            cJSON_IsString(a) ? a->valuestring : "not a string");
                        if (k == i)
                                return jp_fail(p, sub, "names the experiment itself ('%s')", e->name);
                        e->after[e->n_after++] = k;
                }
        }
        /* no cycle: an experiment can only wait for ones that can finish */
        for (int start = 0; start < n; start++) {
                int seen[JOB_MAX_EXPERIMENTS] = { 0 }, stack[JOB_MAX_EXPERIMENTS], top = 0;
                stack[top++] = start;
                while (top) {
                        int v = stack[--top];
                        for (size_t k = 0; k < j->experiments[v].n_after; k++) {
                                int w = j->experiments[v].after[k];
                                if (w == start)
                                        return jp_fail(p, "$.experiments", "their `after` lists wait in a circle "
                                                                        "(through '%s')", j->experiments[start].name);
                                if (!seen[w] && top < JOB_MAX_EXPERIMENTS) {
                                        seen[w] = 1;
                                        stack[top++] = w;
                                }
                        }
                }
        }
        return 0;
}

bool job_run_id_ok(const char *s) {
        size_t n = strlen(s);
        if (n < 1 || n > JOB_RUN_ID_MAX)
                return false;
        for (const char *c = s; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                      *c == '_' || *c == '.'))
                        return false;
        return true;
}

static int parse_fleet(struct pctx *p, const cJSON *root, struct job *j) {
        int r = jp_get_string(p, root, "run_id", "$", false, &j->run_id);
        if (r == 0)
                r = jp_get_duration(p, root, "lease_ttl", "$", 5, &j->fleet.lease_ttl);
        if (r == 0 && j->fleet.lease_ttl && !j->run_id)
                return jp_fail(p, "$.lease_ttl", "needs $.run_id: only a run shared by instances has leases", NULL);
        if (r == 0 && j->run_id && !job_run_id_ok(j->run_id))
                return jp_fail(p, "$.run_id", "must be 1-128 characters of A-Z a-z 0-9 . _ - (got '%s')", j->run_id);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "fleet");
        if (r < 0 || !f)
                return r;
        static const char *const keys[] = { "group", "launch_template", "size", "max_attempts", NULL };
        if (!cJSON_IsObject(f))
                return jp_fail(p, "$.fleet", "must be an object {\"group\": NAME, \"launch_template\": NAME, "
                                          "\"size\": N}", NULL);
        if (!j->run_id)
                return jp_fail(p, "$.fleet", "needs $.run_id: the fleet's instances share one run", NULL);
        r = jp_check_keys(p, f, "$.fleet", keys);
        if (r == 0)
                r = jp_get_string(p, f, "group", "$.fleet", true, &j->fleet.group);
        if (r == 0)
                r = jp_get_string(p, f, "launch_template", "$.fleet", true, &j->fleet.launch_template);
        if (r == 0)
                r = jp_get_int(p, f, "size", "$.fleet", 1, 64, &j->fleet.size);
        if (r == 0)
                r = jp_get_int(p, f, "max_attempts", "$.fleet", 0, 1000, &j->fleet.max_attempts);
        if (r == 0 && !j->fleet.size)
                j->fleet.size = 1;
        return r;
}

static int parse_env(struct pctx *p, const cJSON *root, struct job *j) {
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(root, "env");
        if (!env || cJSON_IsNull(env))
                return 0;
        if (!cJSON_IsObject(env) || cJSON_GetArraySize(env) != 1)
                return jp_fail(p, "$.env", "must be one of {\"conda\": NAME}, {\"conda_prefix\": PATH}, {\"venv\": PATH}",
                            NULL);
        static const char *const keys[] = { "conda", "conda_prefix", "venv", NULL };
        int r = jp_check_keys(p, env, "$.env", keys);
        if (r < 0)
                return r;
        const char *k = env->child->string;
        j->env_kind = strcmp(k, "conda") == 0 ? JOB_ENV_CONDA : strcmp(k, "conda_prefix") == 0 ? JOB_ENV_CONDA_PREFIX
                                                                                               : JOB_ENV_VENV;
        r = jp_get_string(p, env, k, "$.env", true, &j->env_value);
        if (r < 0)
                return r;
        char sub[64];
        snprintf(sub, sizeof sub, "$.env.%s", k);
        if (j->env_kind == JOB_ENV_CONDA && !good_name(j->env_value))
                return jp_fail(p, sub, "is not a valid conda env name ('%s')", j->env_value);
        if (j->env_kind != JOB_ENV_CONDA && j->env_value[0] != '/')
                return jp_fail(p, sub, "must be an absolute path", NULL);
        return 0;
}

static int parse_environment(struct pctx *p, const cJSON *root, struct job *j) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "environment");
        j->environment = calloc(JOB_MAX_ENV + 1, sizeof(char *));
        if (!j->environment)
                return -ENOMEM;
        if (!e)
                return 0;
        if (!cJSON_IsObject(e))
                return jp_fail(p, "$.environment", "must be an object of NAME: \"value\"", NULL);
        size_t n = 0;
        for (const cJSON *c = e->child; c; c = c->next) {
                char sub[512];
                snprintf(sub, sizeof sub, "$.environment.%s", c->string);
                bool ok = *c->string && !isdigit((unsigned char)c->string[0]);
                for (const char *s = c->string; *s && ok; s++)
                        ok = isalnum((unsigned char)*s) || *s == '_';
                if (!ok)
                        return jp_fail(p, sub, "is not a valid variable name", NULL);
                if (!cJSON_IsString(c))
                        return jp_fail(p, sub, "must be a string", NULL);
                if (str_has_prefix(c->string, "MAYFLY_"))
                        return jp_fail(p, sub, "MAYFLY_* variables are set by mayfly", NULL);
                if (n >= JOB_MAX_ENV)
                        return jp_fail(p, "$.environment", "has too many variables", NULL);
                size_t l = strlen(c->string) + strlen(c->valuestring) + 2;
                if (!(j->environment[n] = malloc(l)))
                        return -ENOMEM;
                snprintf(j->environment[n++], l, "%s=%s", c->string, c->valuestring);
        }
        return 0;
}

static int parse_outputs(struct pctx *p, const cJSON *root, struct job *j) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "outputs");
        j->outputs = calloc(JOB_MAX_OUTPUTS + 1, sizeof(char *));
        if (!j->outputs)
                return -ENOMEM;
        if (!o)
                return 0;
        if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) > JOB_MAX_OUTPUTS)
                return jp_fail(p, "$.outputs", "must be an array of at most 64 paths or globs", NULL);
        int i = 0;
        for (const cJSON *c = o->child; c; c = c->next, i++) {
                char sub[64];
                snprintf(sub, sizeof sub, "$.outputs[%d]", i);
                if (!cJSON_IsString(c))
                        return jp_fail(p, sub, "must be a string", NULL);
                if (!jp_safe_relative(c->valuestring))
                        return jp_fail(p, sub, "must be a path under the workdir (no leading '/', no '..'): '%s'",
                                    c->valuestring);
                if (!(j->outputs[i] = strdup(c->valuestring)))
                        return -ENOMEM;
        }
        return 0;
}

/* experiment_credentials and experiment_role: the AWS credentials given to the experiment (expcreds.h) */
static int parse_exp_credentials(struct pctx *p, const cJSON *root, struct job *j) {
        _cleanup_free_ char *s = NULL;
        int r = jp_get_string(p, root, "experiment_credentials", "$", false, &s);
        if (r == 0 && s) {
                static const char *const names[] = { "scoped", "none", "instance-role" };
                size_t i = 0;
                while (i < ARRAY_SIZE(names) && strcmp(s, names[i]))
                        i++;
                if (i == ARRAY_SIZE(names))
                        r = jp_fail(p, "$.experiment_credentials", "must be one of scoped, none, instance-role (got '%s')",
                                 s);
                else
                        j->exp_credentials = (enum exp_credentials)i;
        }
        int q = jp_get_string(p, root, "experiment_role", "$", false, &j->experiment_role);
        if (q == 0 && j->experiment_role) {
                const char *a = j->experiment_role;
                const char *iam = strstr(a, ":iam::");
                if (!str_has_prefix(a, "arn:aws") || !iam || strlen(iam) < 6 + 12 + 6 ||
                    strspn(iam + 6, "0123456789") != 12 || !str_has_prefix(iam + 18, ":role/") || strlen(a) > 2047)
                        q = jp_fail(p, "$.experiment_role", "must be a role ARN, arn:aws:iam::ACCOUNT:role/NAME (got '%s')",
                                 a);
                else if (j->exp_credentials != EXPC_SCOPED)
                        q = jp_fail(p, "$.experiment_role", "is for \"experiment_credentials\": \"scoped\" (the "
                                 "default) only", NULL);
        }
        return r < 0 ? r : q;
}

/* keep_groups: the administrators' groups a named run user keeps (each a way to root: documented so) */
static int parse_keep_groups(struct pctx *p, const cJSON *root, struct job *j) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "keep_groups");
        if (!o)
                return 0;
        if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) > JOB_MAX_KEEP_GROUPS)
                return jp_fail(p, "$.keep_groups", "must be an array of at most 16 group names", NULL);
        if (!j->user)
                return jp_fail(p, "$.keep_groups", "needs \"user\": the default run user, mayfly, is in no such group",
                            NULL);
        j->keep_groups = calloc(JOB_MAX_KEEP_GROUPS + 1, sizeof(char *));
        if (!j->keep_groups)
                return -ENOMEM;
        int i = 0;
        for (const cJSON *c = o->child; c; c = c->next, i++) {
                char sub[64];
                snprintf(sub, sizeof sub, "$.keep_groups[%d]", i);
                if (!cJSON_IsString(c) || !*c->valuestring || strlen(c->valuestring) > 64 ||
                    strpbrk(c->valuestring, "/: \t\n"))
                        return jp_fail(p, sub, "must be a group name", NULL);
                if (!(j->keep_groups[i] = strdup(c->valuestring)))
                        return -ENOMEM;
        }
        return 0;
}

static int parse_sub(struct pctx *p, const cJSON *root, struct job *j) {
        const cJSON *ck = cJSON_GetObjectItemCaseSensitive(root, "checkpoint");
        int r = 0;
        if (ck) {
                static const char *const keys[] = { "path", "interval", NULL };
                if (!cJSON_IsObject(ck))
                        return jp_fail(p, "$.checkpoint", "must be an object {\"path\": DIR, \"interval\": \"10m\"}", NULL);
                r = jp_check_keys(p, ck, "$.checkpoint", keys);
                if (r == 0)
                        r = jp_get_string(p, ck, "path", "$.checkpoint", true, &j->checkpoint_dir);
                if (r == 0 && !jp_safe_relative(j->checkpoint_dir))
                        return jp_fail(p, "$.checkpoint.path", "must be a directory under the workdir: '%s'",
                                    j->checkpoint_dir);
                if (r == 0)
                        r = jp_get_duration(p, ck, "interval", "$.checkpoint", 10, &j->checkpoint_interval);
                if (r < 0)
                        return r;
        }
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "gpu");
        if (g) {
                static const char *const keys[] = { "require", "min_count", "wait_seconds", "idle_minutes", NULL };
                if (!cJSON_IsObject(g))
                        return jp_fail(p, "$.gpu", "must be an object", NULL);
                r = jp_check_keys(p, g, "$.gpu", keys);
                if (r == 0)
                        r = jp_get_bool(p, g, "require", "$.gpu", &j->gpu_require);
                if (r == 0)
                        r = jp_get_int(p, g, "min_count", "$.gpu", 0, 64, &j->gpu_min_count);
                if (r == 0)
                        r = jp_get_duration(p, g, "wait_seconds", "$.gpu", 0, &j->gpu_wait);
                if (r < 0)
                        return r;
                const cJSON *im = cJSON_GetObjectItemCaseSensitive(g, "idle_minutes");
                if (im && (!cJSON_IsNumber(im) || !(im->valuedouble >= 0 && im->valuedouble <= 1e6)))
                        return jp_fail(p, "$.gpu.idle_minutes", "must be a number of minutes >= 0 (0 = off)", NULL);
                if (im)
                        j->gpu_idle = (long)(im->valuedouble * 60.0 + 0.5);
                if (j->gpu_min_count > 0)
                        j->gpu_require = true;
                if (j->gpu_require && j->gpu_min_count == 0)
                        j->gpu_min_count = 1;
        }
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "spot");
        if (s) {
                static const char *const keys[] = { "grace_seconds", "sigusr1_on_rebalance", NULL };
                if (!cJSON_IsObject(s))
                        return jp_fail(p, "$.spot", "must be an object", NULL);
                r = jp_check_keys(p, s, "$.spot", keys);
                if (r == 0)
                        r = jp_get_duration(p, s, "grace_seconds", "$.spot", 0, &j->spot_grace);
                if (r == 0)
                        r = jp_get_bool(p, s, "sigusr1_on_rebalance", "$.spot", &j->rebalance_sigusr1);
                if (r < 0)
                        return r;
                if (j->spot_grace > 115)
                        return jp_fail(p, "$.spot.grace_seconds", "must leave time to upload before the 2-minute notice "
                                                               "ends (at most 115)", NULL);
        }
        return 0;
}

/* https://HOST[:PORT]/PATH: the only scheme a webhook may use (its URL is a secret, and so is what is sent). */
static bool good_webhook(const char *u) {
        if (!str_has_prefix(u, "https://") || strlen(u) > JOB_MAX_URL)
                return false;
        const char *host = u + 8;
        size_t hl = strcspn(host, "/?#");
        if (hl == 0 || memchr(host, '@', hl))
                return false;
        for (const unsigned char *c = (const unsigned char *)u; *c; c++)
                if (*c <= 0x20 || *c >= 0x7f || *c == '"' || *c == '<' || *c == '>' || *c == '\\')
                        return false;
        return true;
}

static int parse_notify(struct pctx *p, const cJSON *root, struct job *j) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "notify");
        if (!n)
                return 0;
        static const char *const keys[] = { "sns_topic", "webhook", "on_interrupt", NULL };
        if (!cJSON_IsObject(n))
                return jp_fail(p, "$.notify", "must be an object {\"sns_topic\": ARN, \"webhook\": URL}", NULL);
        int r = jp_check_keys(p, n, "$.notify", keys);
        if (r == 0)
                r = jp_get_string(p, n, "sns_topic", "$.notify", false, &j->notify.sns_topic);
        if (r == 0)
                r = jp_get_string(p, n, "webhook", "$.notify", false, &j->notify.webhook);
        if (r == 0)
                r = jp_get_bool(p, n, "on_interrupt", "$.notify", &j->notify.on_interrupt);
        if (r < 0)
                return r;
        struct sns_arn a;
        if (j->notify.sns_topic && sns_parse_arn(j->notify.sns_topic, &a) < 0)
                return jp_fail(p, "$.notify.sns_topic", "must be an SNS topic ARN, arn:aws:sns:REGION:ACCOUNT:NAME (got "
                                                     "'%s')", j->notify.sns_topic);
        if (j->notify.webhook && !good_webhook(j->notify.webhook))
                return jp_fail(p, "$.notify.webhook", "must be an https:// URL without spaces, quotes or user info",
                            NULL);
        if (!j->notify.sns_topic && !j->notify.webhook)
                return jp_fail(p, "$.notify", "needs sns_topic or webhook (or both)", NULL);
        return 0;
}

void job_free(struct job *j) {
        if (!j)
                return;
        free(j->name);
        free(j->run_id);
        free(j->fleet.group);
        free(j->fleet.launch_template);
        free(j->source);
        free(j->workdir);
        free(j->results);
        free(j->env_value);
        free(j->user);
        free(j->experiment_role);
        for (char **g = j->keep_groups; g && *g; g++)
                free(*g);
        free(j->keep_groups);
        free(j->checkpoint_dir);
        jp_free_inputs(j);
        free(j->notify.sns_topic);
        free(j->notify.webhook);
        for (char **e = j->environment; e && *e; e++)
                free(*e);
        free(j->environment);
        for (char **e = j->outputs; e && *e; e++)
                free(*e);
        free(j->outputs);
        for (size_t i = 0; i < j->n_experiments; i++) {
                free(j->experiments[i].name);
                for (char **a = j->experiments[i].argv; a && *a; a++)
                        free(*a);
                free(j->experiments[i].argv);
        }
        free(j->experiments);
        memset(j, 0, sizeof *j);
}

void job_defaults(struct job *j) {
        *j = (struct job){ .log_interval = 10, .spot_grace = 90, .stop_grace = 30, .checkpoint_interval = 600,
                           .gpu_wait = 300, .ship_timeout = 600, .rebalance_sigusr1 = false,
                           .log_max = JOB_LOG_MAX_DEFAULT, .rendezvous_port = JOB_RENDEZVOUS_PORT,
                           .gang_timeout = JOB_GANG_TIMEOUT };
}

static int parse_name_and_places(struct pctx *p, const cJSON *root, struct job *j) {
        int r = jp_get_string(p, root, "name", "$", true, &j->name);
        if (r == 0 && !good_name(j->name))
                r = jp_fail(p, "$.name", "must be 1-64 characters of A-Z a-z 0-9 . _ - (got '%s')", j->name);
        int s = jp_get_string(p, root, "source", "$", true, &j->source);
        if (s == 0)
                s = jp_check_s3(p, "$.source", j->source, true);
        if (s == 0 && !str_has_suffix(j->source, "/") && !str_has_suffix(j->source, ".tar") &&
            !str_has_suffix(j->source, ".tar.gz") && !str_has_suffix(j->source, ".tgz") &&
            !str_has_suffix(j->source, ".tar.zst") && !str_has_suffix(j->source, ".zip"))
                s = jp_fail(p, "$.source", "must end with .tar, .tar.gz, .tgz, .tar.zst, .zip or '/' (a prefix)", NULL);
        int t = jp_get_string(p, root, "results", "$", true, &j->results);
        if (t == 0)
                t = jp_check_s3(p, "$.results", j->results, true);
        if (t == 0 && !str_has_suffix(j->results, "/")) {
                size_t n = strlen(j->results) + 2;
                char *x = malloc(n);
                if (!x)
                        return -ENOMEM;
                snprintf(x, n, "%s/", j->results);
                free(j->results);
                j->results = x;
        }
        int w = jp_get_string(p, root, "workdir", "$", false, &j->workdir);
        if (w == 0 && j->workdir && (j->workdir[0] != '/' || strstr(j->workdir, "/..") || strcmp(j->workdir, "/") == 0))
                w = jp_fail(p, "$.workdir", "must be an absolute directory path other than / (got '%s')", j->workdir);
        int u = jp_get_string(p, root, "user", "$", false, &j->user);
        if (u == 0 && j->user && (!*j->user || strchr(j->user, '/') || strchr(j->user, ':')))
                u = jp_fail(p, "$.user", "is not a valid user name", NULL);
        return r < 0 ? r : s < 0 ? s : t < 0 ? t : w < 0 ? w : u;
}

static int parse_root(struct pctx *p, const cJSON *root, struct job *j) {
        static const char *const keys[] = { "name", "source", "workdir", "results", "env", "environment", "user",
                                            "keep_groups", "experiment_credentials", "experiment_role", "experiments", "continue_on_failure", "outputs", "checkpoint", "gpu",
                                            "inputs", "scratch",
                                            "max_runtime", "log_interval", "on_exit", "on_error", "spot",
                                            "stop_grace", "ship_timeout", "log_max", "notify", "run_id", "fleet",
                                            "lease_ttl", "rendezvous_port", "gang_timeout",
                                            "$schema", NULL };
        /* every part on its own, in this order: a spec with several mistakes gets them all at once (job_check) */
        int r = 0;
#define STEP(x) do { int r_ = (x); if (r_ < 0 && (r == 0 || r_ == -ENOMEM)) r = r_; } while (0)
        STEP(jp_check_keys(p, root, "$", keys));
        STEP(parse_name_and_places(p, root, j));
        STEP(parse_env(p, root, j));
        STEP(parse_environment(p, root, j));
        STEP(parse_experiments(p, root, j));
        STEP(jp_get_bool(p, root, "continue_on_failure", "$", &j->continue_on_failure));
        STEP(parse_outputs(p, root, j));
        STEP(parse_keep_groups(p, root, j));
        STEP(parse_exp_credentials(p, root, j));
        STEP(parse_sub(p, root, j));
        STEP(jp_parse_inputs(p, root, j)); /* after parse_sub: a checkpoint may be in the scratch directory */
        STEP(jp_get_duration(p, root, "max_runtime", "$", 1, &j->max_runtime));
        STEP(jp_get_duration(p, root, "log_interval", "$", 1, &j->log_interval));
        STEP(jp_get_duration(p, root, "stop_grace", "$", 0, &j->stop_grace));
        STEP(jp_get_duration(p, root, "ship_timeout", "$", 10, &j->ship_timeout));
        STEP(get_size(p, root, "log_max", "$", JOB_LOG_MAX_MIN, &j->log_max));
        STEP(get_action(p, root, "on_exit", &j->on_exit));
        STEP(get_action(p, root, "on_error", &j->on_error));
        STEP(parse_notify(p, root, j));
        STEP(parse_fleet(p, root, j));
        STEP(jp_parse_gang(p, root, j)); /* after the experiments and the fleet: a gang needs a run_id and a group */
#undef STEP
        return r;
}

static int parse_all(const char *json, size_t len, struct job *ret, struct pctx *p) {
        p->err[0] = 0;
        if (len > JOB_MAX_BYTES)
                return jp_fail(p, "$", "the job spec is larger than 256 KiB", NULL);
        _cleanup_(cjson_deletep) cJSON *root = cJSON_ParseWithLength(json, len);
        if (!root) {
                const char *at = cJSON_GetErrorPtr();
                size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
                size_t line = 1, col = 1;
                for (size_t i = 0; i < off; i++) {
                        if (json[i] == '\n')
                                line++, col = 1;
                        else
                                col++;
                }
                char where[96];
                snprintf(where, sizeof where, "malformed JSON near line %zu, column %zu", line, col);
                return jp_fail(p, "$", "%s", where);
        }
        if (!cJSON_IsObject(root))
                return jp_fail(p, "$", "the job spec must be a JSON object", NULL);
        char gerr[JOB_ERROR_LEN] = "";
        int r = job_expand_matrix(root, JOB_MAX_EXPERIMENTS, gerr, sizeof gerr);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                const char *colon = strchr(gerr, ':');
                char path[200];
                snprintf(path, sizeof path, "%.*s", colon ? (int)(colon - gerr) : 1, colon ? gerr : "$");
                return jp_fail(p, path, "%s", colon ? colon + 2 : gerr);
        }
        struct job j;
        job_defaults(&j);
        r = parse_root(p, root, &j);
        if (r < 0 || !ret) {
                job_free(&j);
                return r;
        }
        *ret = j;
        return 0;
}

int job_parse(const char *json, size_t len, struct job *ret, char *err, size_t errlen) {
        struct pctx p = { err, errlen, NULL };
        return parse_all(json, len, ret, &p);
}

int job_check(const char *json, size_t len, struct job *ret, struct job_errors *e) {
        char first[JOB_ERROR_LEN];
        e->n = 0;
        struct pctx p = { first, sizeof first, e };
        return parse_all(json, len, ret, &p);
}

int job_results_prefix(const struct job *j, const char *run_id, char **ret) {
        size_t n = strlen(j->results) + strlen(j->name) + strlen(run_id) + 4;
        char *s = malloc(n);
        if (!s)
                return -ENOMEM;
        snprintf(s, n, "%s%s/%s/", j->results, j->name, run_id);
        *ret = s;
        return 0;
}
