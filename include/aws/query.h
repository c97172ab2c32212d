/* SPDX-License-Identifier: Apache-2.0 */
/* query.h — the AWS Query protocol (form-encoded POST, XML answers) for any service: EC2 speaks a dialect of it,
 * SNS the plain form. */
#pragma once
#include "aws/aws.h"

struct query_service {
        const char *service;           /* SigV4 signing name: "sns", "ec2" */
        const char *version;           /* API version: "2010-03-31" */
        const char *endpoint;          /* scheme://host[:port] */
        const char *region;            /* signing region; NULL = the context's */
        int max_attempts;              /* 0 = the context's */
        long timeout_ms;               /* whole request, each attempt; 0 = none */
};

/* Pure: "Action=<action>&Version=<version>&<name>=<value>...", names and values form-encoded the way the SDKs do
 * (RFC 3986 escapes, a space as '+'). */
int query_form(const char *action, const char *version, const struct kv *params, size_t n, struct buf *out);
/* POSTs the form; the parsed XML answer in *ret (may be NULL: answer ignored). <0 with out->msg on failure. */
int query_call(struct aws_ctx *c, struct http_client *h, const struct query_service *s, const char *action,
               const struct kv *params, size_t n, struct xml_node **ret, struct aws_result *out);
