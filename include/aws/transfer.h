/* SPDX-License-Identifier: Apache-2.0 */
/* transfer.h — whole-file transfers: parallel ranged GETs and parallel multipart uploads. */
#pragma once
#include "aws/s3.h"

#define XFER_DEFAULT_PART (8ull << 20)
#define XFER_MAX_CONCURRENCY 64
#define XFER_MAX_UNITS 100000

struct xfer_progress;

struct xfer_opts {
        int concurrency;
        uint64_t part_size;           /* 0 = default */
        struct xfer_progress *progress;  /* NULL = quiet */
        bool size_unknown;               /* downloads: add each object's size (from HEAD) to progress's total */
        bool size_known;                 /* downloads: known_size is the object's size as a listing gave it; */
        uint64_t known_size;             /* one that fits one part is fetched by one GET, without a HEAD */
        bool md5_etag;                   /* downloads: an object S3 holds no CRC32 for is checked against its ETag
                                          * where that is an MD5 (not multipart, not SSE-KMS/SSE-C), on any store */
        const _Atomic bool *cancel;      /* downloads: set (by another thread), neither a batch's next item nor a
                                          * big object's next part is begun: -ECANCELED (NULL: never) */
};

/* Default parallel connections: 2 per CPU, 4..16 (more threads than that fight over one file's
 * writes on small machines; big instances get more). */
int xfer_default_concurrency(void);

/* Part size for an object of `size` bytes: at least `want`, whole MiB, at most 10,000 parts. Pure. */
uint64_t xfer_part_size(uint64_t size, uint64_t want);

/* One range of a download and the CRC32 of its bytes; group: the upload part it lies in (a composite
 * checksum), else 0. */
struct xfer_unit {
        uint64_t off, len;
        uint32_t crc;
        unsigned group;
};

/* Pure: [0, size) as ranges of at most `part` bytes (one empty range for an empty object). With up_part (an
 * object whose composite checksum is over parts of that size) each upload part is cut into equal ranges, none
 * crossing a part's boundary, so the parts' CRC32s can be joined from the ranges'. -E2BIG past XFER_MAX_UNITS. */
int xfer_plan(uint64_t size, uint64_t part, uint64_t up_part, struct xfer_unit **ret, size_t *ret_n);
/* Pure: the object's CRC32 joined from its ranges', or (composite) the CRC32 over each group's CRC32. */
uint32_t xfer_units_crc(const struct xfer_unit *u, size_t n, bool composite);

/* Download to `dest` through a temporary file in the same directory, renamed only when complete and checked:
 * its size, and its CRC32 against the one S3 holds (HeadObject with x-amz-checksum-mode), whole-object or composite
 * (uniform parts); a mismatch downloads again, up to the retry limit, then -MF_ECHECKSUM naming the object. */
int xfer_download(struct aws_ctx *c, const char *bucket, const char *key, const char *dest,
                  const struct xfer_opts *o, struct aws_result *out);
/* The same into dirfd/name (name a plain file name; shown names it in messages, NULL: name): the temporary file
 * is created there with O_EXCL and renamed over name with renameat, so a link at name is replaced, never followed. */
int xfer_download_at(struct aws_ctx *c, const char *bucket, const char *key, int dirfd, const char *name,
                     const char *shown, const struct xfer_opts *o, struct aws_result *out);
/* Upload `src` (PutObject, or multipart above one part; aborted on failure). */
int xfer_upload(struct aws_ctx *c, const char *src, const char *bucket, const char *key, const struct xfer_opts *o,
                struct aws_result *out);
/* The same from an open fd (a regular file; src names it in messages). */
int xfer_upload_fd(struct aws_ctx *c, int fd, const char *src, const char *bucket, const char *key,
                   const struct xfer_opts *o, struct aws_result *out);

/* A progress line on a TTY ("\r12.0 MiB / 200.0 MiB  85.1 MiB/s"); quiet otherwise (NULL). fd -1: a counter that
 * prints nothing, read with xfer_progress_read (from any thread). */
struct xfer_progress *xfer_progress_new(uint64_t total, int fd);
void xfer_progress_read(struct xfer_progress *p, uint64_t *ret_done, uint64_t *ret_total, double *ret_seconds);
void xfer_progress_add(void *p, int64_t n);
void xfer_progress_expect(struct xfer_progress *p, uint64_t n);
void xfer_progress_done(struct xfer_progress *p);
