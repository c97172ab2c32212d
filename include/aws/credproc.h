/* SPDX-License-Identifier: Apache-2.0 */
/* credproc.h — a profile's credential_process: run the command (split as the AWS CLI splits it, no shell), read
 * its JSON answer ({"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}). This is also
 * how IAM Identity Center reaches mayfly: credential_process = aws configure export-credentials --profile NAME
 * --format process. */
#pragma once
#include <stddef.h>

#include "aws/sigv4.h"

#define CREDPROC_MAX_OUTPUT (64 * 1024)
#define CREDPROC_MAX_ARGS 64
#define CREDPROC_TIMEOUT_S 300           /* an SSO login in a browser may take a while */

/* Pure: POSIX shell-like words (quotes, backslashes; no expansion), as Python's shlex.split. NULL-terminated,
 * free with credproc_argv_free. -EINVAL on an unclosed quote or too many words. */
int credproc_split(const char *cmd, char ***ret_argv);
void credproc_argv_free(char **argv);
/* Pure: the process's answer. -EINVAL with a message (never a secret) otherwise. */
int credproc_parse(const char *json, size_t len, struct aws_creds *ret, char *err, size_t errlen);
/* Runs the command (stdin and stderr are the user's, so it can prompt) and parses what it printed. */
int credproc_run(const char *cmd, struct aws_creds *ret, char *err, size_t errlen);
