/* SPDX-License-Identifier: Apache-2.0 */
/* sts.h — STS AssumeRole (Query API, form-encoded POST, XML answer): a profile's role_arn. */
#pragma once
#include "aws/aws.h"

#define STS_API_VERSION "2011-06-15"
#define STS_DEFAULT_DURATION 3600

struct sts_assume {
        const char *role_arn;
        const char *session_name;        /* NULL: mayfly-<unix time> */
        const char *external_id;         /* NULL: none */
        const char *policy;              /* a session policy (JSON, at most 2048 bytes packed): NULL none */
        long duration;                   /* seconds, 900..43200; 0: STS_DEFAULT_DURATION */
};

/* AssumeRole signed with `source`; the temporary credentials in *ret. The endpoint: AWS_ENDPOINT_URL_STS, else
 * AWS_ENDPOINT_URL, else sts.REGION.amazonaws.com (sts.amazonaws.com, us-east-1, without a region). */
int sts_assume_role(struct aws_ctx *c, const struct aws_creds *source, const struct sts_assume *a,
                    struct aws_creds *ret, char *err, size_t errlen);
/* GetCallerIdentity with the context's own credentials: who is asking (an ARN), into arn. 0 or -errno (err says
 * why). */
int sts_caller_arn(struct aws_ctx *c, char *arn, size_t n, char *err, size_t errlen);
/* Pure: the Arn of a GetCallerIdentity answer. */
int sts_parse_caller(const char *xml, size_t len, char *arn, size_t n);
/* Pure: the credentials in an AssumeRole answer. */
int sts_parse_credentials(const char *xml, size_t len, struct aws_creds *ret);
