/* SPDX-License-Identifier: Apache-2.0 */
/* statusput.h — status.json and the run's other texts to S3 (the shipper's status writes). */
#pragma once
#include "aws/http.h"
#include "aws/s3.h"
#include "run/ship/shipper.h"

void shipper_set_status(struct shipper *s, const char *json);
/* status.json now (the periodic one goes through shipper_set_status). Shared (shipper_share_status): only while
 * the run's ledger has no end record, and never over a status written meanwhile by another instance. */
int shipper_put_status(struct shipper *s, const char *json, struct aws_result *out);
void shipper_share_status(struct shipper *s);
/* status.json through the client h, as the thread writes it (shared or not). */
int shipper_status_write(struct shipper *s, struct http_client *h, const char *json, struct aws_result *out);
/* Upload one local file as prefix+rel (final logs, metrics). */
int shipper_put_file(struct shipper *s, const char *path, const char *rel, struct aws_result *out);
int shipper_put_text(struct shipper *s, const char *rel, const char *text, const char *ctype, struct aws_result *out);
/* The run's key for rel; -ENAMETOOLONG with out->msg when it is longer than S3 allows. */
int shipper_key(const struct shipper *s, const char *rel, char key[S3_MAX_KEY + 1], struct aws_result *out);
