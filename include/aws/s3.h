/* SPDX-License-Identifier: Apache-2.0 */
/* s3.h — S3 REST operations (one request each, retried by aws_send) and addressing. */
#pragma once
#include "aws/aws.h"

#define S3_MAX_KEY 1024
#define S3_MAX_PARTS 10000
#define S3_MIN_PART (5ull << 20)
#define S3_MAX_PUT (5ull << 30)

/* s3://bucket/key → bucket and key (key may be empty). -EINVAL with a message otherwise. */
int s3_parse_uri(const char *uri, char **ret_bucket, char **ret_key, char *err, size_t errlen);
/* Endpoint and decoded path for a bucket/key: path-style with an endpoint override or a dotted bucket. */
int s3_target(struct aws_ctx *c, const char *bucket, const char *key, char *endpoint, size_t n, struct buf *path);

struct s3_object {
        const char *key;
        uint64_t size;
        const char *etag;
        time_t mtime;                 /* LastModified (whole seconds, as S3 keeps it); 0: not given */
};

/* What HeadObject says about an object (or one part of it). Checksums: only CRC32, what mayfly and the SDKs
 * write by default; an object with another algorithm's checksum (or none) has has_crc false. */
struct s3_meta {
        uint64_t size;                 /* the object's, or the part's with a part number */
        char etag[128];
        bool has_crc;                  /* S3 holds a CRC32 for the object */
        uint32_t crc;                  /* the object's CRC32, or the composite of its parts' */
        unsigned crc_parts;            /* 0: crc is the whole object's; N: the composite "<base64>-N" */
        bool crc_either;               /* N taken from a multipart ETag (no -N, no type): either reading may hold */
        unsigned parts_count;          /* x-amz-mp-parts-count, with a part number */
        bool etag_opaque;              /* SSE-KMS or SSE-C: the ETag is no MD5 of the bytes */
};

/* HeadObject with x-amz-checksum-mode: ENABLED; part_number > 0 asks about that part (its size, parts_count). */
/* HeadObject: size and ETag (s3_stat with less). */
int s3_head(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, uint64_t *ret_size,
            char etag[128], struct aws_result *out);
int s3_stat(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, unsigned part_number,
            struct s3_meta *ret, struct aws_result *out);
/* Pure: the checksum fields of m from x-amz-checksum-crc32, x-amz-checksum-type and the ETag (any may be NULL).
 * A composite is "<base64>-N", or says COMPOSITE, or (no type) has a multipart ETag "…-N". */
void s3_checksum_of(const char *value, const char *type, const char *etag, struct s3_meta *m);
/* GET [off, off+len) (len 0 = whole object) into fd at fd_off; if_match guards against a changed object;
 * ret_crc (may be NULL) gets the CRC32 of the bytes written. */
int s3_get_range(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, uint64_t off,
                 uint64_t len, int fd, off_t fd_off, const char *if_match, uint32_t *ret_crc,
                 void (*progress)(void *, int64_t), void *ud, struct aws_result *out);
/* GET the whole object (no Range) with x-amz-checksum-mode into fd from offset 0: its size, ETag and checksum from
 * the answer in ret_meta, the CRC32 of the bytes written in ret_crc. */
int s3_get_object(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, int fd,
                  struct s3_meta *ret_meta, uint32_t *ret_crc, void (*progress)(void *, int64_t), void *ud,
                  struct aws_result *out);
/* GET a small object into memory (capped at HTTP_MAX_BODY), checked against S3's CRC32 where it has one (a
 * mismatch is fetched again, then -MF_ECHECKSUM). */
int s3_get_buffer(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, char **ret,
                  size_t *ret_len, struct aws_result *out);
/* The same, at most cap bytes: past it -EFBIG, read no further, with "s3://B/KEY is 600.0 MiB, more than WHAT may
 * be (4.0 MiB): not read" in out->msg (what: "a status.json"). */
int s3_get_capped(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, size_t cap,
                  const char *what, char **ret,
                  size_t *ret_len, struct aws_result *out);
/* PUT from memory or from an fd range, with its CRC32 (x-amz-checksum-crc32, which S3 verifies). */
int s3_put(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const void *mem, int fd,
           off_t off, uint64_t len, const char *content_type, void (*progress)(void *, int64_t), void *ud,
           struct aws_result *out);
int s3_mpu_create(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, char **ret_upload_id,
                  struct aws_result *out);
int s3_mpu_part(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *upload_id,
                unsigned part, int fd, off_t off, uint64_t len, char etag[128], uint32_t *ret_crc,
                void (*progress)(void *, int64_t), void *ud, struct aws_result *out);
/* Each part's ETag and CRC32 in the XML; S3's composite answer is checked against the parts' (-MF_ECHECKSUM). */
int s3_mpu_complete(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key,
                    const char *upload_id, char (*etags)[128], const uint32_t *crcs, unsigned nparts,
                    struct aws_result *out);
int s3_mpu_abort(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *key, const char *upload_id,
                 struct aws_result *out);
/* ListObjectsV2 over every page; cb returns <0 to stop. */
int s3_list(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *prefix,
            int (*cb)(void *ud, const struct s3_object *o), void *ud, struct aws_result *out);
/* Pure: parse one ListObjectsV2 page. */
int s3_parse_list(const char *xml, size_t len, int (*cb)(void *ud, const struct s3_object *o), void *ud,
                  bool *ret_truncated, char **ret_token);
/* A presigned GET URL for bucket/key (SigV4 query signing, signed at `now`): valid `expires` seconds (1..604800),
 * or until the credentials expire when that comes first (*ret_until: until when it works; may be NULL). */
int s3_presign_get(struct aws_ctx *c, const char *bucket, const char *key, long expires, time_t now, struct buf *url,
                   time_t *ret_until, char *err, size_t errlen);
/* ListObjectsV2 with delimiter '/': the common prefixes ("name/") directly under prefix; cb returns <0 to stop. */
int s3_list_dirs(struct aws_ctx *c, struct http_client *h, const char *bucket, const char *prefix,
                 int (*cb)(void *ud, const char *dir), void *ud, struct aws_result *out);

/* Pure: is the ETag (quoted or not) the hex MD5 md5? (A single PUT's or a part's ETag on stores that keep no
 * flexible checksums; never a multipart object's "...-N".) */
bool s3_etag_is_md5(const char *etag, const unsigned char md5[16]);
