/* SPDX-License-Identifier: Apache-2.0 */
/* crypto.h — the few primitives mayfly needs: SHA-256, HMAC-SHA256, MD5 (Content-MD5 for S3 stores that keep no
 * flexible checksums: not for security), base64, wiping (the CRC32 checksums are zlib's, checksum.h). On OpenSSL
 * libcrypto (agent/crypto.c), in the static build too. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void crypto_sha256(const void *data, size_t n, unsigned char out[32]);
/* SHA-256 of what fd reads from where it is to its end. 0, or -errno. */
int crypto_sha256_fd(int fd, unsigned char out[32]);
/* 0, or -EIO (no MD5 here: a FIPS provider) */
int crypto_md5(const void *data, size_t n, unsigned char out[16]);
/* MD5 of [off, off+len) of fd (pread: the offset is untouched). 0, or -errno. */
int crypto_md5_fd(int fd, off_t off, uint64_t len, unsigned char out[16]);
void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n, unsigned char out[32]);
/* Standard base64 with padding; out must hold 4*ceil(n/3)+1. Returns the length written. */
size_t crypto_base64_encode(const unsigned char *in, size_t n, char *out);
/* Returns the decoded length or -EINVAL; out must hold 3*(strlen(in)/4). */
ssize_t crypto_base64_decode(const char *in, size_t n, unsigned char *out);
void crypto_wipe(void *p, size_t n);
