/* SPDX-License-Identifier: Apache-2.0 */
/* sns.h — SNS Publish over the Query protocol, signed for the topic's own region. */
#pragma once
#include "aws/aws.h"

#define SNS_API_VERSION "2010-03-31"
#define SNS_MAX_MESSAGE (256 * 1024)  /* bytes, UTF-8 */
#define SNS_MAX_SUBJECT 100           /* ASCII, no line breaks */
#define SNS_MAX_ATTRS 8

struct sns_arn {
        char partition[16];           /* aws | aws-cn | aws-us-gov */
        char region[32];
        char account[16];
        char name[257];
        bool fifo;                    /* name ends in .fifo: Publish needs a MessageGroupId */
};

/* Pure: arn:PARTITION:sns:REGION:ACCOUNT(12 digits):NAME (1-256 of A-Z a-z 0-9 _ -, optionally .fifo). */
int sns_parse_arn(const char *arn, struct sns_arn *ret);
/* Pure: https://sns.<region>.amazonaws.com (.com.cn in aws-cn), or $AWS_ENDPOINT_URL_SNS / $AWS_ENDPOINT_URL. */
void sns_endpoint(const struct sns_arn *a, char *out, size_t n);

struct sns_message {
        const char *subject;          /* may be NULL; must satisfy SNS's rules (see sns_subject) */
        const char *body;
        const struct kv *attrs;       /* String message attributes (subscription filter policies match them) */
        size_t n_attrs;
        const char *group_id;         /* FIFO topics */
        const char *dedup_id;         /* FIFO topics: at most 128 characters */
};

/* Pure: an SNS-acceptable subject from any text: printable ASCII, line breaks and others as spaces, at most
 * SNS_MAX_SUBJECT characters, never empty ("-" for an empty input). */
void sns_subject(const char *text, char out[SNS_MAX_SUBJECT + 1]);

/* Publish; the MessageId in ret_id. max_attempts and timeout_ms (each attempt) as in struct query_service. */
int sns_publish(struct aws_ctx *c, struct http_client *h, const char *topic_arn, const struct sns_message *m,
                int max_attempts, long timeout_ms, char *ret_id, size_t idlen, struct aws_result *out);
