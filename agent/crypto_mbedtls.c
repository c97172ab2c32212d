/* SPDX-License-Identifier: Apache-2.0 */
/* crypto_mbedtls.c — the primitives of crypto.h on mbedTLS 2.28, for the static build (crypto.c has the OpenSSL
 * ones). Same results as crypto.c for every input crypto.h allows; base64 decoding accepts canonical base64 only
 * (OpenSSL's EVP_DecodeBlock also skipped surrounding blanks and read an inner '=' as zero bits). */
#ifdef MAYFLY_STATIC
#include "crypto.h"
#include "fdio.h"

#include <errno.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/md5.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <stdbool.h>
#include <unistd.h>

void crypto_sha256(const void *data, size_t n, unsigned char out[32]) { mbedtls_sha256_ret(data, n, out, 0); }

int crypto_sha256_fd(int fd, unsigned char out[32]) {
        mbedtls_sha256_context c;
        mbedtls_sha256_init(&c);
        int r = mbedtls_sha256_starts_ret(&c, 0) == 0 ? 0 : -EIO;
        unsigned char buf[65536];
        for (ssize_t n; r == 0 && (n = read(fd, buf, sizeof buf)) != 0;) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                else if (mbedtls_sha256_update_ret(&c, buf, (size_t)n) != 0)
                        r = -EIO;
        }
        if (r == 0 && mbedtls_sha256_finish_ret(&c, out) != 0)
                r = -EIO;
        mbedtls_sha256_free(&c);
        return r;
}

int crypto_md5(const void *data, size_t n, unsigned char out[16]) {
        return mbedtls_md5_ret(data, n, out) == 0 ? 0 : -EIO;
}

static int md5_feed(void *ud, const void *b, size_t n) {
        return mbedtls_md5_update_ret(ud, b, n) == 0 ? 0 : -EIO;
}

int crypto_md5_fd(int fd, off_t off, uint64_t len, unsigned char out[16]) {
        mbedtls_md5_context c;
        mbedtls_md5_init(&c);
        int r = mbedtls_md5_starts_ret(&c) == 0 ? 0 : -EIO;
        if (r == 0)
                r = pread_each(fd, off, len, md5_feed, &c);
        if (r == 0 && mbedtls_md5_finish_ret(&c, out) != 0)
                r = -EIO;
        mbedtls_md5_free(&c);
        return r;
}

void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n, unsigned char out[32]) {
        mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, klen, msg, n, out);
}

size_t crypto_base64_encode(const unsigned char *in, size_t n, char *out) {
        size_t olen = 0;
        out[0] = 0;
        /* out holds 4*ceil(n/3)+1, exactly what mbedTLS asks for (the text and its NUL) */
        if (mbedtls_base64_encode((unsigned char *)out, 4 * ((n + 2) / 3) + 1, &olen, in, n) != 0)
                return 0;
        return olen;
}

static bool b64_digit(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

ssize_t crypto_base64_decode(const char *in, size_t n, unsigned char *out) {
        if (n % 4)
                return -EINVAL;
        /* digits, then at most two '=' at the very end (mbedTLS alone would also skip blanks and line breaks) */
        size_t pad = 0;
        while (pad < 2 && pad < n && in[n - 1 - pad] == '=')
                pad++;
        for (size_t i = 0; i < n - pad; i++)
                if (!b64_digit(in[i]))
                        return -EINVAL;
        size_t olen = 0;
        if (mbedtls_base64_decode(out, n / 4 * 3, &olen, (const unsigned char *)in, n) != 0)
                return -EINVAL;
        return (ssize_t)olen;
}

void crypto_wipe(void *p, size_t n) { mbedtls_platform_zeroize(p, n); }
#endif
