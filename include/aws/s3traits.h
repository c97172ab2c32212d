/* SPDX-License-Identifier: Apache-2.0 */
/* s3traits.h — what an S3 store was seen to do that AWS S3 does not, per endpoint and bucket, for the life of the
 * process: learnt from its answers (s3cas.c, s3.c), so that each request after the first speaks the store's dialect
 * (shared facts: Ceph RGW 16.2 and DigitalOcean Spaces compare a PUT's If-Match without the ETag's quotes, ignore
 * If-Match on DELETE, and neither check nor echo flexible checksums, while they do check Content-MD5). */
#pragma once
#include <stdbool.h>

#include "aws/aws.h"

enum s3_trait {
        S3T_IFMATCH_UNQUOTED = 1 << 0, /* a PUT's If-Match is compared with the ETag without its quotes */
        S3T_DELETE_IGNORES_IFMATCH = 1 << 2, /* a DELETE with a wrong If-Match deletes anyway */
        S3T_DELETE_PROBED = 1 << 3,    /* whether it does was asked */
        S3T_NO_CRC = 1 << 4,           /* a PUT's answer echoes no x-amz-checksum-crc32: Content-MD5 is sent instead */
        S3T_CRC_SEEN = 1 << 5,         /* an answer echoed one: the store keeps flexible checksums */
};

#define S3_TRAITS_MAX 16               /* endpoint × bucket pairs remembered; past it, nothing more is learnt */

/* The traits known of the bucket on the context's S3 endpoint (0: none yet). */
unsigned s3traits_get(const struct aws_ctx *c, const char *bucket);
/* Adds traits; true when one of them was new (for saying so once). */
bool s3traits_add(const struct aws_ctx *c, const char *bucket, unsigned traits);
/* Removes traits (what a later answer disproved); true when one of them was there. */
bool s3traits_del(const struct aws_ctx *c, const char *bucket, unsigned traits);
/* Forgets everything (tests). */
void s3traits_reset(void);
/* Pure: two ETags the same, with or without their quotes. */
bool s3_etag_same(const char *a, const char *b);
/* Pure: the ETag without its surrounding quotes into out (n bytes). */
void s3_etag_unquoted(const char *etag, char *out, size_t n);
