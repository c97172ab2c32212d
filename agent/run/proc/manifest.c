/* SPDX-License-Identifier: Apache-2.0 */
/* manifest.c — what was staged of an input, and whether a file is still what was staged. */
#include "run/proc/manifest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/s3traits.h"
#include "jsonx.h"
#include "run/base/runstate.h"
#include "util.h"

#define MANIFEST_MAX_BYTES (4ull << 30)

int manifest_init(struct manifest *m, const char *source, const char *place) {
        *m = (struct manifest){ .source = strdup(source), .place = strdup(place), .sorted = true };
        if (!m->source || !m->place) {
                manifest_free(m);
                return -ENOMEM;
        }
        return 0;
}

void manifest_free(struct manifest *m) {
        for (size_t i = 0; i < m->n; i++)
                free(m->v[i].key);
        free(m->v);
        free(m->source);
        free(m->place);
        memset(m, 0, sizeof *m);
}

long manifest_add(struct manifest *m, const char *key, uint64_t size, const char *etag, uint64_t lsize,
                  int64_t lmtime, bool has_file) {
        if (m->n >= MANIFEST_MAX_OBJECTS)
                return -E2BIG;
        struct staged *v = array_room(m->v, m->n, &m->alloc, sizeof *v, 64);
        if (!v)
                return -ENOMEM;
        m->v = v;
        size_t kl = strlen(key), el = strlen(etag ? etag : "");
        char *ke = malloc(kl + el + 2);
        if (!ke)
                return -ENOMEM;
        memcpy(ke, key, kl + 1);
        memcpy(ke + kl + 1, etag ? etag : "", el + 1);
        if (m->n && m->sorted && strcmp(m->v[m->n - 1].key, key) >= 0)
                m->sorted = false;
        m->v[m->n] = (struct staged){ .key = ke, .etag = ke + kl + 1, .size = size, .lsize = lsize,
                                      .lmtime = lmtime, .has_file = has_file };
        return (long)m->n++;
}

static int by_key(const void *a, const void *b) {
        return strcmp(((const struct staged *)a)->key, ((const struct staged *)b)->key);
}

struct staged *manifest_find(struct manifest *m, const char *key) {
        if (!m->sorted) {
                qsort(m->v, m->n, sizeof *m->v, by_key);
                m->sorted = true;
        }
        struct staged k = { .key = (char *)key };
        return m->n ? bsearch(&k, m->v, m->n, sizeof *m->v, by_key) : NULL;
}

bool manifest_mtime(const struct stat *st, int64_t *ret) {
        int64_t ns;
        if (__builtin_mul_overflow((int64_t)st->st_mtim.tv_sec, (int64_t)1000000000, &ns) ||
            __builtin_add_overflow(ns, (int64_t)st->st_mtim.tv_nsec, &ns))
                return false;
        *ret = ns;
        return true;
}

bool manifest_unchanged(const struct staged *e, uint64_t size, const char *etag, const struct stat *st) {
        int64_t ns;
        return e && e->has_file && e->size == size && s3_etag_same(e->etag, etag) && S_ISREG(st->st_mode) &&
               (uint64_t)st->st_size == e->lsize && manifest_mtime(st, &ns) && ns == e->lmtime;
}

static const char *json_str(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int bad_line(size_t line, const char *why, char *err, size_t errlen) {
        snprintf(err, errlen, "line %zu: %s", line, why);
        return -EINVAL;
}

/* One line's JSON object, parsed on its own. */
static int one_line(struct manifest *m, const cJSON *o, size_t line, bool *ended, bool *other, char *err,
                    size_t errlen) {
        if (!cJSON_IsObject(o))
                return bad_line(line, "not a JSON object", err, errlen);
        if (line == 1) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "manifest");
                const char *src = json_str(o, "source"), *place = json_str(o, "place");
                if (!cJSON_IsNumber(v) || v->valuedouble != 1 || !src || !place)
                        return bad_line(line, "not a mayfly manifest (version 1)", err, errlen);
                *other = strcmp(src, m->source) || strcmp(place, m->place);
                return 0;
        }
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "complete");
        if (c) {
                m->complete = cJSON_IsTrue(c);
                *ended = true;
                return 0;
        }
        const char *k = json_str(o, "k"), *e = json_str(o, "e");
        long long s = json_int_value(cJSON_GetObjectItemCaseSensitive(o, "s"), 0, 1LL << 53, -1);
        long long ls = json_int_value(cJSON_GetObjectItemCaseSensitive(o, "ls"), 0, 1LL << 53, -1);
        /* the mtime in seconds and nanoseconds: a double holds 2^53, not a time in nanoseconds */
        long long lm = json_int_value(cJSON_GetObjectItemCaseSensitive(o, "lm"), -(1LL << 33), 1LL << 33, LLONG_MIN);
        long long ln = json_int_value(cJSON_GetObjectItemCaseSensitive(o, "ln"), 0, 999999999, -1);
        if (!k || !e || s < 0 || ls < 0 || lm == LLONG_MIN || ln < 0)
                return bad_line(line, "an object without its key, size, ETag or file", err, errlen);
        long r = manifest_add(m, k, (uint64_t)s, e, (uint64_t)ls, lm * 1000000000 + ln, true);
        return r < 0 ? (int)r : 0;
}

int manifest_parse(struct manifest *m, const char *text, size_t len, char *err, size_t errlen) {
        err[0] = 0;
        m->complete = false;
        bool ended = false, other = false;
        size_t line = 0;
        for (const char *p = text, *end = text + len; p < end && !ended && !other;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                line++;
                _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(p, n);
                int r = one_line(m, o, line, &ended, &other, err, errlen);
                if (r < 0)
                        return r;
                p += n + 1;
        }
        if (other) {
                /* staged from another source, or somewhere else: nothing of it counts */
                for (size_t i = 0; i < m->n; i++)
                        free(m->v[i].key);
                m->n = 0;
                m->complete = false;
        } else if (line && !ended)
                m->complete = false; /* cut short (a crash while it was written is ruled out: renamed whole) */
        return 0;
}

static int add_line(struct buf *b, cJSON *o) {
        if (!o)
                return -ENOMEM;
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s)
                return -ENOMEM;
        int r = buf_add(b, s, strlen(s));
        if (r == 0)
                r = buf_addc(b, '\n');
        free(s);
        return r;
}

int manifest_format(const struct manifest *m, char **ret, size_t *ret_len) {
        struct buf b = BUF_INIT(MANIFEST_MAX_BYTES);
        cJSON *h = cJSON_CreateObject();
        if (h) {
                cJSON_AddNumberToObject(h, "manifest", 1);
                cJSON_AddStringToObject(h, "source", m->source);
                cJSON_AddStringToObject(h, "place", m->place);
        }
        int r = add_line(&b, h);
        size_t n = 0;
        for (size_t i = 0; i < m->n && r == 0; i++) {
                const struct staged *e = &m->v[i];
                if (!e->has_file)
                        continue;
                cJSON *o = cJSON_CreateObject();
                if (o) {
                        cJSON_AddStringToObject(o, "k", e->key);
                        cJSON_AddNumberToObject(o, "s", (double)e->size);
                        cJSON_AddStringToObject(o, "e", e->etag);
                        cJSON_AddNumberToObject(o, "ls", (double)e->lsize);
                        int64_t sec = e->lmtime / 1000000000, ns = e->lmtime % 1000000000;
                        if (ns < 0)
                                sec--, ns += 1000000000;
                        cJSON_AddNumberToObject(o, "lm", (double)sec);
                        cJSON_AddNumberToObject(o, "ln", (double)ns);
                }
                r = add_line(&b, o);
                n++;
        }
        cJSON *t = r == 0 ? cJSON_CreateObject() : NULL;
        if (t) {
                cJSON_AddBoolToObject(t, "complete", m->complete);
                cJSON_AddNumberToObject(t, "objects", (double)n);
        }
        if (r == 0)
                r = add_line(&b, t);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        *ret = b.data;
        *ret_len = b.len;
        return 0;
}

int manifest_load(struct manifest *m, const char *path, char *err, size_t errlen) {
        err[0] = 0;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file_capped(path, MANIFEST_MAX_BYTES, &text, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
                return r;
        }
        char e2[200];
        r = manifest_parse(m, text, len, e2, sizeof e2);
        if (r < 0)
                snprintf(err, errlen, "%s: %s", path, e2);
        return r;
}

int manifest_save(const struct manifest *m, const char *path, char *err, size_t errlen) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = manifest_format(m, &text, &len);
        if (r == 0)
                r = write_file_atomic(path, text, len, 0600);
        if (r < 0)
                snprintf(err, errlen, "cannot write %s: %s", path, strerror(-r));
        return r;
}
