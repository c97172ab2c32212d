/* chain.h — the AWS SDK credential chain after the environment, as the AWS CLI walks it: the selected profile
 * (AWS_PROFILE, else [default]) of ~/.aws/config and ~/.aws/credentials — role_arn with source_profile or
 * credential_source (STS AssumeRole), static keys from the credentials file, credential_process, static keys
 * from the config file — and its region; without such a profile, the instance role (creds.c). */
#pragma once

#include "aws/aws.h"

#define CHAIN_MAX_DEPTH 8            /* source_profile hops */

/* Called by aws_ctx_init when the environment holds no keys: sets c->creds' source and c->region from the
 * profile, or c->config_r/config_err when the files are unusable or AWS_PROFILE names no profile. */
int chain_setup(struct aws_ctx *c);
void chain_free(struct aws_ctx *c);
