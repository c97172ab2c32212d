/* SPDX-License-Identifier: Apache-2.0 */
/* chain.h — the AWS SDK credential chain after the environment, as the AWS CLI walks it: the selected profile
 * (AWS_PROFILE, else [default]) of ~/.aws/config and ~/.aws/credentials — role_arn with source_profile or
 * credential_source (STS AssumeRole), static keys from the credentials file, credential_process, static keys
 * from the config file — and its region; without such a profile, the instance role (creds.c). */
#pragma once

#include "aws/aws.h"

#define CHAIN_MAX_DEPTH 8            /* source_profile hops */

/* The SDK chain: the AWS_* environment (aws_ctx_init_base) and, without keys there, the selected profile of
 * ~/.aws/config and ~/.aws/credentials (its keys, role, process and region); then the instance role. A broken
 * config file is reported by the first call (config_r, config_err), not here. */
int aws_ctx_init(struct aws_ctx *c);
