/* SPDX-License-Identifier: Apache-2.0 */
/* sns.c — Publish to a topic: Query protocol through aws_send, the signing region taken from the topic's ARN. */
#include "aws/sns.h"

#include <ctype.h>

#include "aws/query.h"

static bool all_of(const char *s, size_t n, const char *extra) {
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
                        return false;
        return true;
}

int sns_parse_arn(const char *arn, struct sns_arn *ret) {
        /* arn:partition:sns:region:account:name */
        const char *f[6];
        size_t len[6];
        const char *p = arn;
        for (int i = 0; i < 6; i++) {
                const char *e = i < 5 ? strchr(p, ':') : p + strlen(p);
                if (!e)
                        return -EINVAL;
                f[i] = p;
                len[i] = (size_t)(e - p);
                p = e + 1;
        }
        struct sns_arn a = { 0 };
        if (len[0] != 3 || strncmp(f[0], "arn", 3) || len[2] != 3 || strncmp(f[2], "sns", 3))
                return -EINVAL;
        if (!((len[1] == 3 && !strncmp(f[1], "aws", 3)) || (len[1] == 6 && !strncmp(f[1], "aws-cn", 6)) ||
              (len[1] == 10 && !strncmp(f[1], "aws-us-gov", 10))))
                return -EINVAL;
        if (len[3] < 4 || len[3] >= sizeof a.region || !all_of(f[3], len[3], "-"))
                return -EINVAL;
        if (len[4] != 12)
                return -EINVAL;
        for (size_t i = 0; i < 12; i++)
                if (!isdigit((unsigned char)f[4][i]))
                        return -EINVAL;
        size_t nl = len[5];
        bool fifo = nl > 5 && !strncmp(f[5] + nl - 5, ".fifo", 5);
        size_t base = fifo ? nl - 5 : nl;
        if (base < 1 || nl > 256 || !all_of(f[5], base, "_-"))
                return -EINVAL;
        snprintf(a.partition, sizeof a.partition, "%.*s", (int)len[1], f[1]);
        snprintf(a.region, sizeof a.region, "%.*s", (int)len[3], f[3]);
        snprintf(a.account, sizeof a.account, "%.*s", 12, f[4]);
        snprintf(a.name, sizeof a.name, "%.*s", (int)nl, f[5]);
        a.fifo = fifo;
        *ret = a;
        return 0;
}

void sns_endpoint(const struct sns_arn *a, char *out, size_t n) {
        char host[96];
        snprintf(host, sizeof host, "sns.%s.amazonaws.com%s", a->region, strcmp(a->partition, "aws-cn") ? "" : ".cn");
        aws_endpoint_for("SNS", host, out, n);
}

void sns_subject(const char *text, char out[SNS_MAX_SUBJECT + 1]) {
        size_t n = 0;
        for (const unsigned char *s = (const unsigned char *)text; *s && n < SNS_MAX_SUBJECT; s++) {
                if (*s >= 0x80) {
                        /* one '?' per UTF-8 character, not per byte */
                        if ((*s & 0xc0) != 0x80)
                                out[n++] = '?';
                        continue;
                }
                out[n++] = *s < 0x20 || *s == 0x7f ? ' ' : (char)*s;
        }
        while (n && out[n - 1] == ' ')
                n--;
        size_t lead = 0;
        while (lead < n && out[lead] == ' ')
                lead++;
        memmove(out, out + lead, n - lead);
        n -= lead;
        if (!n)
                out[n++] = '-';
        out[n] = 0;
}

int sns_publish(struct aws_ctx *c, struct http_client *h, const char *topic_arn, const struct sns_message *m,
                int max_attempts, long timeout_ms, char *ret_id, size_t idlen, struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        struct sns_arn a;
        if (sns_parse_arn(topic_arn, &a) < 0) {
                snprintf(out->msg, sizeof out->msg, "Publish: '%s' is not an SNS topic ARN", topic_arn);
                return -EINVAL;
        }
        if (strlen(m->body) > SNS_MAX_MESSAGE || m->n_attrs > SNS_MAX_ATTRS) {
                snprintf(out->msg, sizeof out->msg, "Publish: message too large");
                return -E2BIG;
        }
        if (a.fifo && (!m->group_id || !m->dedup_id)) {
                snprintf(out->msg, sizeof out->msg, "Publish: the FIFO topic %s needs a group and deduplication id",
                         a.name);
                return -EINVAL;
        }
        struct kv p[6 + 3 * SNS_MAX_ATTRS];
        char names[SNS_MAX_ATTRS][3][64];
        size_t n = 0;
        p[n++] = (struct kv){ "TopicArn", topic_arn };
        p[n++] = (struct kv){ "Message", m->body };
        if (m->subject)
                p[n++] = (struct kv){ "Subject", m->subject };
        if (a.fifo) {
                p[n++] = (struct kv){ "MessageGroupId", m->group_id };
                p[n++] = (struct kv){ "MessageDeduplicationId", m->dedup_id };
        }
        for (size_t i = 0; i < m->n_attrs; i++) {
                snprintf(names[i][0], sizeof names[i][0], "MessageAttributes.entry.%zu.Name", i + 1);
                snprintf(names[i][1], sizeof names[i][1], "MessageAttributes.entry.%zu.Value.DataType", i + 1);
                snprintf(names[i][2], sizeof names[i][2], "MessageAttributes.entry.%zu.Value.StringValue", i + 1);
                p[n++] = (struct kv){ names[i][0], m->attrs[i].name };
                p[n++] = (struct kv){ names[i][1], "String" };
                p[n++] = (struct kv){ names[i][2], m->attrs[i].value };
        }
        char ep[320];
        sns_endpoint(&a, ep, sizeof ep);
        struct query_service s = { .service = "sns", .version = SNS_API_VERSION, .endpoint = ep, .region = a.region,
                                   .max_attempts = max_attempts, .timeout_ms = timeout_ms };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = query_call(c, h, &s, "Publish", p, n, &x, out);
        if (r < 0)
                return r;
        const char *id = xml_text(x, "PublishResult/MessageId");
        if (!id || !*id) {
                snprintf(out->msg, sizeof out->msg, "Publish: no MessageId in the answer from %s", ep);
                return -MF_EPARSE;
        }
        if (ret_id)
                snprintf(ret_id, idlen, "%s", id);
        return 0;
}
