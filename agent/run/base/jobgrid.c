/* SPDX-License-Identifier: Apache-2.0 */
/* jobgrid.c — an experiment's matrix expanded into one experiment per combination (jobgrid.h). */
#include "run/base/jobgrid.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "util.h"

char *job_matrix_subst(const char *s, const char *key, const char *value) {
        char pat[80];
        int pl = snprintf(pat, sizeof pat, "{%s}", key);
        if (pl < 0 || (size_t)pl >= sizeof pat)
                return strdup(s);
        struct buf b = BUF_INIT(JOB_MATRIX_MAX_TEXT);
        int r = 0;
        for (const char *p = s; *p && r >= 0;) {
                const char *hit = strstr(p, pat);
                while (hit && hit > s && hit[-1] == '$')
                        hit = strstr(hit + 1, pat);
                if (!hit) {
                        r = buf_adds(&b, p);
                        break;
                }
                r = buf_add(&b, p, (size_t)(hit - p));
                if (r >= 0)
                        r = buf_adds(&b, value);
                p = hit + pl;
        }
        if (r >= 0)
                r = buf_add(&b, "", 1);
        if (r < 0) {
                buf_free(&b);
                return NULL;
        }
        return b.data ? b.data : strdup("");
}

/* A matrix value as it goes into a name or a command. */
static int value_text(const cJSON *v, char *out, size_t n) {
        if (cJSON_IsString(v))
                return snprintf(out, n, "%s", v->valuestring) < (int)n ? 0 : -E2BIG;
        if (cJSON_IsBool(v))
                return snprintf(out, n, "%s", cJSON_IsTrue(v) ? "true" : "false") < (int)n ? 0 : -E2BIG;
        if (cJSON_IsNumber(v)) {
                char *t = cJSON_PrintUnformatted(v);
                int r = t && strlen(t) < n ? (snprintf(out, n, "%s", t), 0) : -E2BIG;
                free(t);
                return r;
        }
        return -EINVAL;
}

struct grid {
        const char *keys[JOB_MATRIX_MAX_KEYS];
        const cJSON *values[JOB_MATRIX_MAX_KEYS];
        size_t n[JOB_MATRIX_MAX_KEYS], nkeys, total;
};

static int read_matrix(const cJSON *m, const char *path, struct grid *g, char *err, size_t errlen) {
        *g = (struct grid){ .total = 1 };
        if (!cJSON_IsObject(m) || !m->child)
                return errf(err, errlen, "%s.matrix: must be an object of lists, e.g. {\"lr\": [0.1, 0.01]}", path),
                       -EINVAL;
        for (const cJSON *k = m->child; k; k = k->next) {
                if (g->nkeys == JOB_MATRIX_MAX_KEYS)
                        return errf(err, errlen, "%s.matrix: at most %d keys", path, JOB_MATRIX_MAX_KEYS), -EINVAL;
                int n = cJSON_GetArraySize(k);
                if (!cJSON_IsArray(k) || n < 1 || n > JOB_MATRIX_MAX_VALUES)
                        return errf(err, errlen, "%s.matrix.%s: must be a list of 1-%d values", path, k->string,
                                    JOB_MATRIX_MAX_VALUES), -EINVAL;
                for (const cJSON *v = k->child; v; v = v->next) {
                        char t[128];
                        if (value_text(v, t, sizeof t) < 0)
                                return errf(err, errlen, "%s.matrix.%s: values are strings, numbers or booleans "
                                            "of at most 127 characters", path, k->string), -EINVAL;
                }
                for (const char *c = k->string; *c; c++)
                        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                              *c == '_'))
                                return errf(err, errlen, "%s.matrix: '%s' is not a key (A-Z a-z 0-9 _)", path,
                                            k->string), -EINVAL;
                g->keys[g->nkeys] = k->string;
                g->values[g->nkeys] = k;
                g->n[g->nkeys++] = (size_t)n;
                g->total *= (size_t)n;
                if (g->total > JOB_MATRIX_MAX_VALUES * JOB_MATRIX_MAX_VALUES)
                        break; /* far past any limit already */
        }
        return 0;
}

/* What "{key}" becomes in a string of combination c (index in the grid): every key replaced. */
static char *subst_all(const char *s, const struct grid *g, size_t c) {
        char *cur = strdup(s);
        for (size_t k = g->nkeys; cur && k-- > 0;) {
                const cJSON *v = cJSON_GetArrayItem(g->values[k], (int)(c % g->n[k]));
                c /= g->n[k];
                char t[128];
                value_text(v, t, sizeof t);
                char *next = job_matrix_subst(cur, g->keys[k], t);
                free(cur);
                cur = next;
        }
        return cur;
}

static int subst_in(cJSON *item, const struct grid *g, size_t c) {
        if (cJSON_IsString(item)) {
                char *t = subst_all(item->valuestring, g, c);
                if (!t || !cJSON_SetValuestring(item, t)) {
                        free(t);
                        return -ENOMEM;
                }
                free(t);
                return 0;
        }
        for (cJSON *x = cJSON_IsArray(item) ? item->child : NULL; x; x = x->next)
                if (subst_in(x, g, c) < 0)
                        return -ENOMEM;
        return 0;
}

/* The experiments of one grid entry, appended to out. */
static int expand_one(const cJSON *entry, const struct grid *g, cJSON *out) {
        for (size_t c = 0; c < g->total; c++) {
                cJSON *e = cJSON_Duplicate(entry, true);
                if (!e)
                        return -ENOMEM;
                cJSON_DeleteItemFromObjectCaseSensitive(e, "matrix");
                cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
                cJSON *cmd = cJSON_GetObjectItemCaseSensitive(e, "command");
                if ((name && subst_in(name, g, c) < 0) || (cmd && subst_in(cmd, g, c) < 0)) {
                        cJSON_Delete(e);
                        return -ENOMEM;
                }
                cJSON_AddItemToArray(out, e);
        }
        return 0;
}

int job_expand_matrix(cJSON *root, size_t max_experiments, char *err, size_t errlen) {
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "experiments");
        if (!cJSON_IsArray(arr))
                return 0; /* job_parse says what is wrong with it */
        bool any = false;
        for (const cJSON *e = arr->child; e && !any; e = e->next)
                any = cJSON_HasObjectItem(e, "matrix");
        if (!any)
                return 0;
        _cleanup_(cjson_deletep) cJSON *out = cJSON_CreateArray();
        if (!out)
                return -ENOMEM;
        int i = 0;
        for (const cJSON *e = arr->child; e; e = e->next, i++) {
                char path[64];
                snprintf(path, sizeof path, "$.experiments[%d]", i);
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "matrix");
                if (!m) {
                        cJSON *copy = cJSON_Duplicate(e, true);
                        if (!copy)
                                return -ENOMEM;
                        cJSON_AddItemToArray(out, copy);
                        continue;
                }
                struct grid g;
                int r = read_matrix(m, path, &g, err, errlen);
                if (r < 0)
                        return r;
                const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
                for (size_t k = 0; name && k < g.nkeys; k++) {
                        char pat[80];
                        snprintf(pat, sizeof pat, "{%s}", g.keys[k]);
                        if (!strstr(name, pat) && g.n[k] > 1)
                                return errf(err, errlen, "%s.name: must name each matrix key with more than one "
                                            "value (%s), so that the experiments' names differ", path, pat), -EINVAL;
                }
                if ((size_t)cJSON_GetArraySize(out) + g.total > max_experiments)
                        return errf(err, errlen, "$.experiments: with the matrix of experiments[%d] there are more "
                                    "than %zu experiments", i, max_experiments), -EINVAL;
                if ((r = expand_one(e, &g, out)) < 0)
                        return r;
        }
        if (!cJSON_ReplaceItemInObjectCaseSensitive(root, "experiments", out))
                return -ENOMEM;
        out = NULL; /* root owns it now */
        return 0;
}
