/* SPDX-License-Identifier: Apache-2.0 */
/* jobdata.c — the job spec's data keys: "inputs" (what is staged from S3 before the experiment) and "scratch" (the
 * instance store, where scratch:… paths live). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beneath.h"
#include "run/base/jobparse.h"
#include "util.h"

static bool input_name_ok(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n > JOB_INPUT_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
                        return false;
        return true;
}

/* "imagenet-1k" -> "IMAGENET_1K" (the variable is MAYFLY_INPUT_ and this) */
void job_input_var(const char *name, char *buf, size_t len) {
        size_t i = 0;
        for (; name[i] && i + 1 < len; i++)
                buf[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
        buf[len ? i : 0] = 0;
}

int job_input_place(const struct job_input *in, char *buf, size_t len) {
        if (in->prefix || !str_has_suffix(in->path, "/"))
                return pathf(buf, len, "%s", in->path);
        /* the key's last part (a single object's key has a '/'; a source already refused has none) */
        const char *base = str_has_prefix(in->source, "s3://") ? strrchr(in->source + 5, '/') : NULL;
        return pathf(buf, len, "%s%s", in->path, base ? base + 1 : "");
}

/* Whether a is b or a directory above it (as paths: "data" holds "data/x", not "database"). */
static bool path_holds(const char *a, const char *b) {
        size_t n = strlen(a);
        while (n && a[n - 1] == '/')
                n--;
        return strncmp(a, b, n) == 0 && (b[n] == 0 || b[n] == '/');
}

/* "scratch:P" -> P (*scratch set); whether the rest is a path below its root that names something */
static int split_place(struct pctx *p, const char *sub, const char *v, bool dir_only, char **ret, bool *scratch) {
        *scratch = str_has_prefix(v, JOB_SCRATCH_PREFIX);
        const char *rest = *scratch ? v + strlen(JOB_SCRATCH_PREFIX) : v;
        char bare[4097];
        snprintf(bare, sizeof bare, "%s", rest);
        if (strlen(bare) > 1 && str_has_suffix(bare, "/"))
                bare[strlen(bare) - 1] = 0;
        /* the form staging resolves beneath the tree: no empty, '.' or '..' segment */
        if (!beneath_rel_ok(bare))
                return jp_fail(p, sub, dir_only ? "must be a directory under the workdir, or scratch:DIR (no leading "
                               "'/', no '..'): '%s'" : "must be a path under the workdir, or scratch:PATH (no leading "
                               "'/', no '..'): '%s'", v);
        *ret = strdup(rest);
        return *ret ? 0 : -ENOMEM;
}

static int parse_input(struct pctx *p, const cJSON *x, const char *at, struct job_input *in) {
        static const char *const keys[] = { "name", "source", "path", "read_only", "sync", NULL };
        if (!cJSON_IsObject(x))
                return jp_fail(p, at, "must be an object {\"name\": N, \"source\": \"s3://bucket/prefix/\", \"path\": "
                               "P}", NULL);
        in->sync = true;
        int r = jp_check_keys(p, x, at, keys);
        int q = jp_get_string(p, x, "name", at, true, &in->name);
        char sub[96];
        snprintf(sub, sizeof sub, "%s.name", at);
        if (q == 0 && !input_name_ok(in->name))
                q = jp_fail(p, sub, "must be 1-48 characters of A-Z a-z 0-9 _ - (it names $MAYFLY_INPUT_<NAME>): "
                            "'%s'", in->name);
        int s = jp_get_string(p, x, "source", at, true, &in->source);
        snprintf(sub, sizeof sub, "%s.source", at);
        if (s == 0)
                s = jp_check_s3(p, sub, in->source, true);
        if (s == 0) {
                const char *key = strchr(in->source + 5, '/');
                in->prefix = !key || str_has_suffix(in->source, "/");
                if (key && strstr(key, "//"))
                        s = jp_fail(p, sub, "has an empty path segment: '%s'", in->source);
        }
        _cleanup_free_ char *path = NULL;
        int t = jp_get_string(p, x, "path", at, false, &path);
        snprintf(sub, sizeof sub, "%s.path", at);
        if (t == 0 && path)
                t = split_place(p, sub, path, false, &in->path, &in->scratch);
        else if (t == 0 && q == 0 && in->name) {
                /* the default: inputs/<name>, the object inside it for one object */
                size_t n = strlen(in->name) + 9;
                if (!(in->path = malloc(n)))
                        return -ENOMEM;
                snprintf(in->path, n, "inputs/%s%s", in->name, in->prefix ? "" : "/");
        }
        if (t == 0 && in->path && in->prefix && str_has_suffix(in->path, "/"))
                in->path[strlen(in->path) - 1] = 0;
        int u = jp_get_bool(p, x, "read_only", at, &in->read_only);
        int v = jp_get_bool(p, x, "sync", at, &in->sync);
        return r < 0 ? r : q < 0 ? q : s < 0 ? s : t < 0 ? t : u < 0 ? u : v;
}

static bool places_meet(const struct job_input *a, const struct job_input *b) {
        char pa[8400], pb[8400];
        return job_input_place(a, pa, sizeof pa) == 0 && job_input_place(b, pb, sizeof pb) == 0 &&
               (path_holds(pa, pb) || path_holds(pb, pa));
}

static int parse_scratch(struct pctx *p, const cJSON *root, struct job *j) {
        _cleanup_free_ char *s = NULL;
        int r = jp_get_string(p, root, "scratch", "$", false, &s);
        if (r < 0 || !s)
                return r;
        if (!strcmp(s, "instance-store"))
                j->scratch = JOB_SCRATCH_INSTANCE_STORE;
        else if (!strcmp(s, "prefer-instance-store"))
                j->scratch = JOB_SCRATCH_PREFER;
        else
                return jp_fail(p, "$.scratch", "must be instance-store or prefer-instance-store (got '%s')", s);
        return 0;
}

int jp_parse_inputs(struct pctx *p, const cJSON *root, struct job *j) {
        int r = parse_scratch(p, root, j);
        if (j->checkpoint_dir && str_has_prefix(j->checkpoint_dir, JOB_SCRATCH_PREFIX)) {
                char *rest = NULL;
                int q = split_place(p, "$.checkpoint.path", j->checkpoint_dir, true, &rest, &j->checkpoint_scratch);
                if (q == 0) {
                        free(j->checkpoint_dir);
                        j->checkpoint_dir = rest;
                        if (!j->scratch)
                                q = jp_fail(p, "$.checkpoint.path", "is in the scratch directory, which needs \"scratch\": "
                                            "\"instance-store\" or \"prefer-instance-store\"", NULL);
                }
                if (q < 0 && r == 0)
                        r = q;
        }
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "inputs");
        if (!a)
                return r;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > JOB_MAX_INPUTS)
                return jp_fail(p, "$.inputs", "must be an array of at most 32 inputs", NULL);
        j->inputs = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof *j->inputs);
        if (!j->inputs)
                return -ENOMEM;
        int i = 0;
        bool ok[JOB_MAX_INPUTS] = { false }; /* parsed without an error: compared with the ones after it */
        for (const cJSON *x = a->child; x; x = x->next, i++) {
                char at[32];
                snprintf(at, sizeof at, "$.inputs[%d]", i);
                struct job_input *in = &j->inputs[j->n_inputs++];
                int q = parse_input(p, x, at, in);
                if (q == 0 && in->scratch && !j->scratch)
                        q = jp_fail(p, at, "is in the scratch directory, which needs \"scratch\": \"instance-store\" or "
                                    "\"prefer-instance-store\"", NULL);
                for (size_t k = 0; q == 0 && k + 1 < j->n_inputs; k++) {
                        const struct job_input *o = &j->inputs[k];
                        if (!ok[k]) /* an input already found wrong */
                                continue;
                        char v1[JOB_INPUT_NAME_MAX + 1], v2[JOB_INPUT_NAME_MAX + 1];
                        job_input_var(in->name, v1, sizeof v1);
                        job_input_var(o->name, v2, sizeof v2);
                        if (!strcmp(v1, v2))
                                q = jp_fail(p, at, "has the same variable MAYFLY_INPUT_… as input '%s'", o->name);
                        else if (in->scratch == o->scratch && places_meet(in, o))
                                q = jp_fail(p, at, "is staged where input '%s' is, or inside it or around it: give "
                                            "each input a place of its own", o->name);
                }
                ok[i] = q == 0;
                if (q < 0 && (r == 0 || q == -ENOMEM))
                        r = q;
        }
        return r;
}

void jp_free_inputs(struct job *j) {
        for (size_t i = 0; i < j->n_inputs; i++) {
                free(j->inputs[i].name);
                free(j->inputs[i].source);
                free(j->inputs[i].path);
        }
        free(j->inputs);
        j->inputs = NULL;
        j->n_inputs = 0;
}

/* "nodes" on each experiment (1..JOB_MAX_NODES, at most the group's size; more than 1 needs a run shared by
 * instances), "rendezvous_port" (1024..65535: the run user binds it) and "gang_timeout". */
int jp_parse_gang(struct pctx *p, const cJSON *root, struct job *j) {
        int r = jp_get_int(p, root, "rendezvous_port", "$", 1024, 65535, &j->rendezvous_port);
        int t = jp_get_duration(p, root, "gang_timeout", "$", 10, &j->gang_timeout);
        if (r == 0)
                r = t;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "experiments");
        size_t i = 0;
        for (const cJSON *x = cJSON_IsArray(arr) ? arr->child : NULL; x && i < j->n_experiments; x = x->next, i++) {
                struct experiment *e = &j->experiments[i];
                char at[48], sub[64], size[16];
                snprintf(at, sizeof at, "$.experiments[%zu]", i);
                snprintf(sub, sizeof sub, "%s.nodes", at);
                e->nodes = 1;
                int q = cJSON_IsObject(x) ? jp_get_int(p, x, "nodes", at, 1, JOB_MAX_NODES, &e->nodes) : 0;
                snprintf(size, sizeof size, "%d", j->fleet.size);
                if (q == 0 && e->nodes > 1 && !j->run_id)
                        q = jp_fail(p, sub, "needs a run shared by instances: launch it with mayfly launch "
                                    "--instances N (N at least nodes)", NULL);
                else if (q == 0 && e->nodes > 1 && j->fleet.group && e->nodes > j->fleet.size)
                        q = jp_fail(p, sub, "is more than the group's %s instances: the gang could never form",
                                    size);
                if (q < 0 && (r == 0 || q == -ENOMEM))
                        r = q;
        }
        return r;
}
