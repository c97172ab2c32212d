/* SPDX-License-Identifier: Apache-2.0 */
/* yamljson.c — YAML to cJSON through libyaml's document loader (yamljson.h). */
#include "yamljson.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool yaml_is_yaml_path(const char *path) {
        return path && (str_has_suffix(path, ".yaml") || str_has_suffix(path, ".yml"));
}

int yaml_line_of(const struct yaml_lines *lines, const char *path) {
        int best = 0;
        size_t bl = 0;
        for (size_t i = 0; lines && i < lines->n; i++) {
                size_t l = strlen(lines->at[i].path);
                if (l >= bl && !strncmp(path, lines->at[i].path, l) && (path[l] == 0 || path[l] == '.' || path[l] == '['))
                        best = lines->at[i].line, bl = l;
        }
        return best;
}

#ifndef MAYFLY_HAVE_YAML

int yaml_to_json(const char *text, size_t len, struct cJSON **ret, struct yaml_lines *lines, char *err,
                 size_t errlen) {
        errf(err, errlen, "this build of mayfly reads JSON job specs only (the static build has no libyaml): "
             "convert the YAML, or use the dynamic build");
        return -ENOTSUP;
}

#else
#include <yaml.h>

struct conv {
        yaml_document_t *doc;
        struct yaml_lines *lines;
        size_t nodes;
        char *err;
        size_t errlen;
};

/* A plain scalar's JSON value (YAML 1.2's core schema, as most editors expect). */
static cJSON *plain_scalar(const char *s, size_t n) {
        static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
        for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
                if (n == strlen(nulls[i]) && !memcmp(s, nulls[i], n))
                        return cJSON_CreateNull();
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
                return cJSON_CreateTrue();
        if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
                return cJSON_CreateFalse();
        char *end = NULL;
        errno = 0;
        if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
                long long v = strtoll(s + 2, &end, s[1] == 'x' ? 16 : 8);
                if (!errno && end == s + n)
                        return cJSON_CreateNumber((double)v);
        }
        double d = strtod(s, &end);
        bool numeric = n && end == s + n && !errno && (s[0] == '-' || s[0] == '+' || s[0] == '.' ||
                                                      (s[0] >= '0' && s[0] <= '9'));
        if (numeric && isfinite(d))
                return cJSON_CreateNumber(d);
        return cJSON_CreateString(s);
}

static void note_line(struct conv *c, const char *path, const yaml_node_t *node) {
        if (c->lines && c->lines->n < YAML_MAX_LINES) {
                snprintf(c->lines->at[c->lines->n].path, sizeof c->lines->at[0].path, "%s", path);
                c->lines->at[c->lines->n++].line = (int)node->start_mark.line + 1;
        }
}

static cJSON *convert(struct conv *c, yaml_node_t *node, const char *path, int depth) {
        if (!node || depth > 64 || ++c->nodes > YAML_MAX_NODES) {
                errf(c->err, c->errlen, "line %d: nested too deep or too many nodes (an alias bomb?)",
                     node ? (int)node->start_mark.line + 1 : 0);
                return NULL;
        }
        note_line(c, path, node);
        char sub[256];
        if (node->type == YAML_SCALAR_NODE) {
                const char *s = (const char *)node->data.scalar.value;
                size_t n = node->data.scalar.length;
                bool str_tag = node->tag && !strcmp((const char *)node->tag, YAML_STR_TAG);
                if (strlen(s) != n) {
                        errf(c->err, c->errlen, "line %d: a NUL byte in a scalar", (int)node->start_mark.line + 1);
                        return NULL;
                }
                if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !str_tag) {
                        if (!strcmp(s, ".nan") || !strcmp(s, ".inf") || !strcmp(s, "-.inf")) {
                                errf(c->err, c->errlen, "line %d: %s is no JSON number", (int)node->start_mark.line + 1,
                                     s);
                                return NULL;
                        }
                        return plain_scalar(s, n);
                }
                return cJSON_CreateString(s);
        }
        if (node->type == YAML_SEQUENCE_NODE) {
                cJSON *a = cJSON_CreateArray();
                int i = 0;
                for (yaml_node_item_t *it = node->data.sequence.items.start; a && it < node->data.sequence.items.top;
                     it++, i++) {
                        snprintf(sub, sizeof sub, "%s[%d]", path, i);
                        cJSON *v = convert(c, yaml_document_get_node(c->doc, *it), sub, depth + 1);
                        if (!v) {
                                cJSON_Delete(a);
                                return NULL;
                        }
                        cJSON_AddItemToArray(a, v);
                }
                return a;
        }
        cJSON *o = cJSON_CreateObject();
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; o && p < node->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
                if (!k || k->type != YAML_SCALAR_NODE) {
                        errf(c->err, c->errlen, "line %d: a key must be a plain word", k ? (int)k->start_mark.line + 1 : 0);
                        cJSON_Delete(o);
                        return NULL;
                }
                const char *key = (const char *)k->data.scalar.value;
                if (cJSON_HasObjectItem(o, key)) {
                        errf(c->err, c->errlen, "line %d: the key '%.100s' appears twice", (int)k->start_mark.line + 1,
                             key);
                        cJSON_Delete(o);
                        return NULL;
                }
                snprintf(sub, sizeof sub, "%s.%s", path, key);
                cJSON *v = convert(c, yaml_document_get_node(c->doc, p->value), sub, depth + 1);
                if (!v) {
                        cJSON_Delete(o);
                        return NULL;
                }
                cJSON_AddItemToObject(o, key, v);
        }
        return o;
}

int yaml_to_json(const char *text, size_t len, cJSON **ret, struct yaml_lines *lines, char *err, size_t errlen) {
        yaml_parser_t parser;
        yaml_document_t doc;
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        if (lines)
                lines->n = 0;
        int r = 0;
        if (!yaml_parser_load(&parser, &doc)) {
                errf(err, errlen, "line %zu: %s%s%s", parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "not YAML", parser.context ? " " : "",
                     parser.context ? parser.context : "");
                yaml_parser_delete(&parser);
                return -EINVAL;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        struct conv c = { .doc = &doc, .lines = lines, .err = err, .errlen = errlen };
        cJSON *j = root ? convert(&c, root, "$", 0) : NULL;
        if (!root)
                errf(err, errlen, "line 1: an empty document");
        if (!j)
                r = -EINVAL;
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        if (r == 0)
                *ret = j;
        return r;
}
#endif
