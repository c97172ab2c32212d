/* SPDX-License-Identifier: Apache-2.0 */
/* xml.c — expat into a small tree with caps on size, node count and depth. */
#include "aws/xml.h"

#include <errno.h>
#include <expat.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct pstate {
        XML_Parser p;
        struct xml_node *root, *cur;
        size_t nodes;
        int depth;
        int err;
};

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
        struct pstate *s = ud;
        if (s->err)
                return;
        if (++s->nodes > XML_MAX_NODES || ++s->depth > XML_MAX_DEPTH) {
                s->err = -E2BIG;
                XML_StopParser(s->p, XML_FALSE);
                return;
        }
        struct xml_node *n = calloc(1, sizeof *n);
        if (n)
                n->name = strdup(name);
        if (!n || !n->name) {
                free(n);
                s->err = -ENOMEM;
                XML_StopParser(s->p, XML_FALSE);
                return;
        }
        n->parent = s->cur;
        if (s->cur) {
                if (s->cur->last)
                        s->cur->last->next = n;
                else
                        s->cur->first = n;
                s->cur->last = n;
        } else if (!s->root)
                s->root = n;
        else {
                xml_free(n);
                s->err = -EBADMSG;
                return;
        }
        s->cur = n;
}

static void on_end(void *ud, const XML_Char *name) {
        struct pstate *s = ud;
        if (s->err || !s->cur)
                return;
        s->depth--;
        s->cur = s->cur->parent;
}

static void on_text(void *ud, const XML_Char *t, int len) {
        struct pstate *s = ud;
        if (s->err || !s->cur || len <= 0)
                return;
        struct xml_node *n = s->cur;
        char *p = realloc(n->text, n->text_len + (size_t)len + 1);
        if (!p) {
                s->err = -ENOMEM;
                XML_StopParser(s->p, XML_FALSE);
                return;
        }
        memcpy(p + n->text_len, t, (size_t)len);
        n->text_len += (size_t)len;
        p[n->text_len] = 0;
        n->text = p;
}

/* Refuse DTDs entirely: no entity expansion tricks from a hostile peer. */
static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid, int has_internal) {
        struct pstate *s = ud;
        s->err = -EBADMSG;
        XML_StopParser(s->p, XML_FALSE);
}

int xml_parse(const char *data, size_t len, struct xml_node **ret) {
        if (len > XML_MAX_BODY)
                return -E2BIG;
        struct pstate s = { 0 };
        s.p = XML_ParserCreate("UTF-8");
        if (!s.p)
                return -ENOMEM;
        XML_SetUserData(s.p, &s);
        XML_SetElementHandler(s.p, on_start, on_end);
        XML_SetCharacterDataHandler(s.p, on_text);
        XML_SetStartDoctypeDeclHandler(s.p, on_doctype);
        enum XML_Status st = XML_Parse(s.p, data, (int)len, XML_TRUE);
        XML_ParserFree(s.p);
        if (!s.err && (st != XML_STATUS_OK || !s.root))
                s.err = -EBADMSG;
        if (s.err) {
                xml_free(s.root);
                return s.err;
        }
        *ret = s.root;
        return 0;
}

void xml_free(struct xml_node *n) {
        while (n) {
                struct xml_node *next = n->next;
                xml_free(n->first);
                free(n->name);
                free(n->text);
                free(n);
                n = next;
        }
}

struct xml_node *xml_child(const struct xml_node *n, const char *name) {
        for (struct xml_node *c = n ? n->first : NULL; c; c = c->next)
                if (strcmp(c->name, name) == 0)
                        return c;
        return NULL;
}

struct xml_node *xml_next_named(const struct xml_node *n) {
        for (struct xml_node *c = n->next; c; c = c->next)
                if (strcmp(c->name, n->name) == 0)
                        return c;
        return NULL;
}

const char *xml_text(const struct xml_node *n, const char *path) {
        char part[128];
        while (n && *path) {
                const char *e = strchrnul(path, '/');
                size_t l = (size_t)(e - path);
                if (l >= sizeof part)
                        return NULL;
                memcpy(part, path, l);
                part[l] = 0;
                n = xml_child(n, part);
                path = *e ? e + 1 : e;
        }
        if (!n)
                return NULL;
        return n->text ? n->text : "";
}

static void copy_field(char *dst, size_t n, const char *src) {
        if (!src)
                return;
        /* one line: control characters become spaces */
        size_t i = 0;
        for (; src[i] && i + 1 < n; i++)
                dst[i] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
        dst[i] = 0;
}

int aws_error_parse(const char *body, size_t len, struct aws_error *ret) {
        _cleanup_(xml_freep) struct xml_node *root = NULL;
        if (!body || len == 0)
                return -EBADMSG;
        /* Skip leading whitespace (S3 keep-alive bytes before a 200-with-error). */
        while (len && (*body == ' ' || *body == '\n' || *body == '\r' || *body == '\t'))
                body++, len--;
        int r = xml_parse(body, len, &root);
        if (r < 0)
                return r;
        const struct xml_node *e = NULL;
        const char *rid = NULL;
        if (strcmp(root->name, "Error") == 0) {
                e = root;
                rid = xml_text(root, "RequestId");
        } else if (strcmp(root->name, "Response") == 0) {
                e = xml_child(xml_child(root, "Errors"), "Error");
                rid = xml_text(root, "RequestID");
        } else if (strcmp(root->name, "ErrorResponse") == 0) {
                /* the Query protocol of SNS, STS, IAM: <ErrorResponse><Error><Type/><Code/><Message/></Error>
                 * (moto nests it in <Errors>, as EC2 does; botocore reads both) */
                e = xml_child(root, "Error");
                if (!e)
                        e = xml_child(xml_child(root, "Errors"), "Error");
                rid = xml_text(root, "RequestId");
        }
        const char *code = e ? xml_text(e, "Code") : NULL;
        if (!code || !*code)
                return -EBADMSG;
        struct aws_error out = { 0 };
        copy_field(out.code, sizeof out.code, xml_text(e, "Code"));
        copy_field(out.message, sizeof out.message, xml_text(e, "Message"));
        copy_field(out.request_id, sizeof out.request_id, rid);
        copy_field(out.region, sizeof out.region, xml_text(e, "Region"));
        *ret = out;
        return 0;
}
