/* SPDX-License-Identifier: Apache-2.0 */
/* iam.h — the one IAM call mayfly makes: GetInstanceProfile (launch's preflight: the instance profile exists). */
#pragma once
#include "aws/aws.h"

#define IAM_API_VERSION "2010-05-08"

/* GetInstanceProfile of a name, or of an instance-profile ARN's name. 0: it exists; -MF_ENOTFOUND (NoSuchEntity);
 * -MF_EAUTH when the caller may not read IAM; -errno with out->msg otherwise. The endpoint: AWS_ENDPOINT_URL_IAM,
 * else AWS_ENDPOINT_URL, else iam.amazonaws.com (signed for us-east-1). */
int iam_instance_profile_exists(struct aws_ctx *c, struct http_client *h, const char *name_or_arn,
                                struct aws_result *out);
/* Pure: the profile's name in "NAME" or "arn:aws:iam::ACCOUNT:instance-profile[/PATH]/NAME". */
const char *iam_profile_name(const char *name_or_arn);
