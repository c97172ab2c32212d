/* SPDX-License-Identifier: Apache-2.0 */
/* sigv4.h — AWS Signature Version 4, a pure module: time and credentials are passed in. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "aws/creds.h"
#include "util.h"

#define SIGV4_MAX_HEADERS 64
#define SIGV4_MAX_QUERY 64
#define SIGV4_MAX_TEXT (256 * 1024)
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_MAX_PRESIGN_EXPIRES 604800


struct kv {
        const char *name;
        const char *value;
};

struct sigv4_request {
        const char *method;
        const char *path;              /* decoded; encoded once by the signer */
        const struct kv *query;        /* decoded names and values */
        size_t n_query;
        const struct kv *headers;      /* must include Host */
        size_t n_headers;
        const char *payload_hash;      /* hex SHA-256 or UNSIGNED-PAYLOAD; NULL = empty body */
        const char *region;
        const char *service;
        time_t now;
        bool normalize_path;           /* false for S3: no dot-segment removal, no slash collapsing */
        bool add_content_sha256;       /* add x-amz-content-sha256 (S3) */
        bool omit_token;               /* add the session token after signing, unsigned */
};

struct sigv4_result {
        char *canonical_request;
        char *string_to_sign;
        char signature[65];
        char *authorization;           /* header mode only */
        char *query_string;            /* encoded query to put on the URL (with the signature in query mode) */
        char *encoded_path;            /* the path as it goes on the wire */
        /* Headers the signer added (x-amz-date, x-amz-security-token, x-amz-content-sha256). */
        char *added_names[3];
        char *added_values[3];
        size_t n_added;
};
void sigv4_result_clear(struct sigv4_result *r);

/* Header signing: fills canonical request, string to sign, signature, Authorization. */
int sigv4_sign(const struct sigv4_request *req, const struct aws_creds *creds, struct sigv4_result *ret);
/* Query signing (presigned URL): X-Amz-* parameters; expires 1..604800 s. */
int sigv4_presign(const struct sigv4_request *req, const struct aws_creds *creds, unsigned expires,
                  struct sigv4_result *ret);
/* Exposed for tests. */
int sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                      unsigned char out[32]);
int sigv4_normalize_path(const char *path, char **ret);
void sha256_hex(const void *data, size_t n, char out[65]);
