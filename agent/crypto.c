/* SPDX-License-Identifier: Apache-2.0 */
/* crypto.c — the primitives of crypto.h on OpenSSL libcrypto (the system's, or the static build's own 3.0). */
#include "crypto.h"
#include "fdio.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <unistd.h>

void crypto_sha256(const void *data, size_t n, unsigned char out[32]) { SHA256(data, n, out); }

int crypto_sha256_fd(int fd, unsigned char out[32]) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c)
                return -ENOMEM;
        int r = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
        char buf[65536];
        for (ssize_t n; r == 0 && (n = read(fd, buf, sizeof buf)) != 0;) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                else if (EVP_DigestUpdate(c, buf, (size_t)n) != 1)
                        r = -EIO;
        }
        unsigned int len = 32;
        if (r == 0 && EVP_DigestFinal_ex(c, out, &len) != 1)
                r = -EIO;
        EVP_MD_CTX_free(c);
        return r;
}

int crypto_md5(const void *data, size_t n, unsigned char out[16]) {
        unsigned int len = 16;
        return EVP_Digest(data, n, out, &len, EVP_md5(), NULL) == 1 ? 0 : -EIO;
}

static int md5_feed(void *ud, const void *b, size_t n) {
        return EVP_DigestUpdate(ud, b, n) == 1 ? 0 : -EIO;
}

int crypto_md5_fd(int fd, off_t off, uint64_t len, unsigned char out[16]) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c)
                return -ENOMEM;
        int r = EVP_DigestInit_ex(c, EVP_md5(), NULL) == 1 ? 0 : -EIO;
        if (r == 0)
                r = pread_each(fd, off, len, md5_feed, c);
        unsigned int olen = 16;
        if (r == 0 && EVP_DigestFinal_ex(c, out, &olen) != 1)
                r = -EIO;
        EVP_MD_CTX_free(c);
        return r;
}

void crypto_hmac_sha256(const void *key, size_t klen, const void *msg, size_t n, unsigned char out[32]) {
        unsigned int len = 32;
        HMAC(EVP_sha256(), key, (int)klen, msg, n, out, &len);
}

size_t crypto_base64_encode(const unsigned char *in, size_t n, char *out) {
        return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

ssize_t crypto_base64_decode(const char *in, size_t n, unsigned char *out) {
        if (n % 4)
                return -EINVAL;
        int m = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
        if (m < 0)
                return -EINVAL;
        size_t len = (size_t)m;
        for (size_t i = n; i > 0 && in[i - 1] == '=' && len > 0; i--)
                len--;
        return (ssize_t)len;
}

void crypto_wipe(void *p, size_t n) { OPENSSL_cleanse(p, n); }
