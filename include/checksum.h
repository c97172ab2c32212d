/* SPDX-License-Identifier: Apache-2.0 */
/* checksum.h — S3's CRC32 flexible checksum (x-amz-checksum-crc32) on zlib's crc32: of memory or an fd range,
 * joined across ranges, the composite of a multipart upload, and its wire form (the 4 bytes big-endian, base64). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CRC32_B64_LEN 8 /* base64 of 4 bytes, padded: "y/Q5Jg==" */

uint32_t crc32_update(uint32_t crc, const void *p, size_t n);
/* CRC32 of [off, off+len) of fd, read with pread; -EIO on a short file. */
int crc32_of_fd(int fd, off_t off, uint64_t len, uint32_t *ret);
/* CRC32 of A||B from CRC32(A), CRC32(B) and B's length (zlib's crc32_combine). */
uint32_t crc32_join(uint32_t a, uint32_t b, uint64_t blen);
/* S3's composite checksum of a multipart upload: the CRC32 of the parts' CRC32s, each 4 bytes big-endian. */
uint32_t crc32_composite(const uint32_t *parts, size_t n);
void crc32_to_base64(uint32_t crc, char out[CRC32_B64_LEN + 1]);
/* An S3 value: "<base64>" (parts 0) or the composite "<base64>-N" (parts N). -EINVAL when malformed. */
int crc32_parse(const char *s, uint32_t *ret_crc, unsigned *ret_parts);
