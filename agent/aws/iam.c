/* SPDX-License-Identifier: Apache-2.0 */
/* iam.c — GetInstanceProfile (the Query protocol, IAM's global endpoint). */
#include "aws/iam.h"

#include "aws/query.h"

const char *iam_profile_name(const char *name_or_arn) {
        if (!str_has_prefix(name_or_arn, "arn:"))
                return name_or_arn;
        const char *slash = strrchr(name_or_arn, '/');
        return slash ? slash + 1 : name_or_arn;
}

int iam_instance_profile_exists(struct aws_ctx *c, struct http_client *h, const char *name_or_arn,
                                struct aws_result *out) {
        char ep[320];
        aws_endpoint_for("IAM", "iam.amazonaws.com", ep, sizeof ep);
        struct query_service s = { .service = "iam", .version = IAM_API_VERSION, .endpoint = ep,
                                   .region = "us-east-1" };
        struct kv p[] = { { "InstanceProfileName", iam_profile_name(name_or_arn) } };
        _cleanup_(xml_freep) struct xml_node *x = NULL;
        int r = query_call(c, h, &s, "GetInstanceProfile", p, 1, &x, out);
        if (r < 0 && !strcmp(out->err.code, "NoSuchEntity"))
                return -MF_ENOTFOUND;
        if (r < 0 && (out->status == 403 || aws_error_is_auth(out->err.code)))
                return -MF_EAUTH;
        return r;
}
