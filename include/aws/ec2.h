/* SPDX-License-Identifier: Apache-2.0 */
/* ec2.h — the EC2 Query API: form-encoded POST, XML answers (expat). */
#pragma once
#include "aws/aws.h"

#define EC2_API_VERSION "2016-11-15"
#define EC2_MAX_PARAMS 96

/* $AWS_ENDPOINT_URL_EC2 / $AWS_ENDPOINT_URL, else https://ec2.<region>.amazonaws.com (region known). */
void ec2_endpoint(struct aws_ctx *c, char *ep, size_t n);
/* POST Action=...&Version=...&params; the parsed answer in *ret. */
int ec2_call(struct aws_ctx *c, struct http_client *h, const char *action, const struct kv *params, size_t n,
             struct xml_node **ret, struct aws_result *out);
/* Pure: form-encode Action, Version and params. */
int ec2_form(const char *action, const struct kv *params, size_t n, struct buf *out);
/* Pure: the instance states in a Terminate/StopInstances answer: "i-1:shutting-down". */
int ec2_parse_state_change(const struct xml_node *root, const char *instance_id, char *state, size_t n);

int ec2_terminate(struct aws_ctx *c, struct http_client *h, const char *instance_id, bool dry_run, char *state,
                  size_t n, struct aws_result *out);
int ec2_stop(struct aws_ctx *c, struct http_client *h, const char *instance_id, char *state, size_t n,
             struct aws_result *out);
/* The instances tagged mayfly:run-id=run_id that are not terminated yet (pending, running, stopping, stopped;
 * ended_too: shutting-down and terminated as well): their ids into ids[0..max) and (states not NULL) their state
 * names, how many in *n. 0 or -errno. */
int ec2_instances_of_run(struct aws_ctx *c, struct http_client *h, const char *run_id, bool ended_too, char ids[][32],
                         char (*states)[24], size_t max, size_t *n, struct aws_result *out);
/* GetConsoleOutput: the instance's serial console (the last 64 KiB EC2 keeps), decoded, into *ret (free it; ""
 * when EC2 has none yet). 0 or -errno. */
int ec2_console_output(struct aws_ctx *c, struct http_client *h, const char *instance_id, char **ret,
                       struct aws_result *out);
/* State name of one instance (DescribeInstances). */
int ec2_describe_state(struct aws_ctx *c, struct http_client *h, const char *instance_id, char *state, size_t n,
                       struct aws_result *out);
