/* SPDX-License-Identifier: Apache-2.0 */
/* checksum.c — S3's CRC32 checksum on zlib (the same zlib under libcurl and libarchive, in both builds). */
#include "checksum.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "crypto.h"
#include "fdio.h"
#include "util.h"

uint32_t crc32_update(uint32_t crc, const void *p, size_t n) {
        return (uint32_t)crc32_z(crc, p, n);
}

static int feed(void *ud, const void *b, size_t n) {
        uint32_t *crc = ud;
        *crc = crc32_update(*crc, b, n);
        return 0;
}

int crc32_of_fd(int fd, off_t off, uint64_t len, uint32_t *ret) {
        uint32_t crc = 0;
        int r = pread_each(fd, off, len, feed, &crc);
        if (r < 0)
                return r;
        *ret = crc;
        return 0;
}

uint32_t crc32_join(uint32_t a, uint32_t b, uint64_t blen) {
        return (uint32_t)crc32_combine(a, b, (z_off_t)blen);
}

static void be32(uint32_t v, unsigned char out[4]) {
        out[0] = (unsigned char)(v >> 24);
        out[1] = (unsigned char)(v >> 16);
        out[2] = (unsigned char)(v >> 8);
        out[3] = (unsigned char)v;
}

uint32_t crc32_composite(const uint32_t *parts, size_t n) {
        uint32_t crc = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char b[4];
                be32(parts[i], b);
                crc = crc32_update(crc, b, 4);
        }
        return crc;
}

void crc32_to_base64(uint32_t crc, char out[CRC32_B64_LEN + 1]) {
        unsigned char b[4];
        be32(crc, b);
        crypto_base64_encode(b, 4, out);
}

int crc32_parse(const char *s, uint32_t *ret_crc, unsigned *ret_parts) {
        if (!s || strlen(s) < CRC32_B64_LEN)
                return -EINVAL;
        unsigned parts = 0;
        const char *rest = s + CRC32_B64_LEN;
        if (*rest) {
                uint64_t n;
                if (*rest != '-' || parse_u64(rest + 1, &n) < 0 || n < 1 || n > 10000)
                        return -EINVAL;
                parts = (unsigned)n;
        }
        unsigned char b[6];
        if (crypto_base64_decode(s, CRC32_B64_LEN, b) != 4)
                return -EINVAL;
        *ret_crc = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        *ret_parts = parts;
        return 0;
}
