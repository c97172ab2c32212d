/* SPDX-License-Identifier: Apache-2.0 */
/* xml.h — a bounded element tree built with expat, and AWS error extraction. */
#pragma once
#include <stddef.h>

#define XML_MAX_NODES 200000
#define XML_MAX_DEPTH 32
#define XML_MAX_BODY (64u << 20)

struct xml_node {
        char *name;
        char *text;          /* concatenated character data (direct children only) */
        size_t text_len;
        struct xml_node *parent, *first, *last, *next;
};

int xml_parse(const char *data, size_t len, struct xml_node **ret);
void xml_free(struct xml_node *n);
static inline void xml_freep(struct xml_node **n) { xml_free(*n); }
/* First child named name (NULL when none). */
struct xml_node *xml_child(const struct xml_node *n, const char *name);
struct xml_node *xml_next_named(const struct xml_node *n);
/* Text of the descendant at a '/'-separated path of child names, or NULL. */
const char *xml_text(const struct xml_node *n, const char *path);

struct aws_error {
        char code[128];
        char message[512];
        char request_id[128];
        char region[64];     /* S3 <Region> in redirect errors */
};
/* Parses an S3 <Error>, an EC2 <Response><Errors><Error> or a Query-protocol <ErrorResponse><Error> body;
 * -EBADMSG when it is none of them. */
int aws_error_parse(const char *body, size_t len, struct aws_error *ret);
