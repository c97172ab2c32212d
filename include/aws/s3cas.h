/* SPDX-License-Identifier: Apache-2.0 */
/* s3cas.h — S3 conditional writes for small JSON records (shared/aws/COORDINATION.md §2): create-if-absent
 * (If-None-Match: *), compare-and-swap (If-Match: <etag>), delete-if-unchanged, and reads that return the ETag.
 * 412 PreconditionFailed is -MF_EPRECOND, 409 ConditionalRequestConflict -MF_ECONFLICT (re-read and retry), a
 * missing key -MF_ENOTFOUND. A write whose answer was lost and whose retry then lost its condition is checked
 * by reading the object back: when it holds exactly the bytes written, the write took (0, its ETag).
 *
 * A store may bend the rules (s3traits.h). A 412 whose condition a read then shows to hold (the object still has
 * the ETag If-Match named, or does not exist under If-None-Match) is not a lost race: the write is tried once more,
 * If-Match in the other form (without the quotes, or with them), and the form that took is kept for the bucket;
 * refused again, the answer is -MF_ESTORE with one line naming the store's fault, never -MF_EPRECOND. */
#pragma once
#include <stdbool.h>

#include "aws/aws.h"

#define S3CAS_MAX_BODY (64 * 1024)

/* PUT body; if_match: the ETag the object must have (NULL: none); if_none_match: it must not exist. The new ETag
 * into etag (128 bytes). */
int s3cas_put(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *body,
              const char *if_match, bool if_none_match, char *etag, struct aws_result *out);
/* GET: the body (NUL-terminated, at most S3CAS_MAX_BODY, free it) and its ETag (128 bytes). */
int s3cas_get(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, char **ret_body,
              char *etag, struct aws_result *out);
/* DELETE; if_match: only while the object has that ETag (NULL: in any case). A missing object is 0. */
int s3cas_delete(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *if_match,
                 struct aws_result *out);
/* Whether the store ignores If-Match on DELETE (1) or keeps it (0), asked once per bucket with a scratch object
 * (written, deleted with a wrong If-Match, then deleted), and remembered; -errno when it could not be asked. */
int s3cas_probe_delete(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *scratch_key,
                       struct aws_result *out);
