/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_sigv4.c — canonicalisation of arbitrary paths, queries and headers (header and query signing, S3 and
 * normalised). Input: NUL-separated fields: method, path, then name/value pairs (odd ones query, see below). */
#include <assert.h>

#include "aws/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 2 || size > 8192)
                return 0;
        char *buf = malloc(size + 1);
        memcpy(buf, data, size);
        buf[size] = 0;
        const char *f[2 * SIGV4_MAX_HEADERS + 4];
        size_t nf = 0;
        for (size_t i = 0; i <= size && nf < 2 * SIGV4_MAX_HEADERS + 4; i++) {
                f[nf++] = buf + i;
                i += strlen(buf + i);
        }
        struct kv q[SIGV4_MAX_QUERY], h[SIGV4_MAX_HEADERS];
        size_t nq = 0, nh = 0;
        h[nh++] = (struct kv){ "Host", "example.amazonaws.com" };
        for (size_t i = 2; i + 1 < nf; i += 2) {
                bool query = (f[i][0] & 1) != 0;
                if (query && nq < SIGV4_MAX_QUERY)
                        q[nq++] = (struct kv){ f[i], f[i + 1] };
                else if (!query && nh < SIGV4_MAX_HEADERS && f[i][0])
                        h[nh++] = (struct kv){ f[i], f[i + 1] };
        }
        struct aws_creds c = { .access_key = "AKIDEXAMPLE", .secret_key = "secret", .token = "tok/+=" };
        for (int s3 = 0; s3 < 2; s3++) {
                struct sigv4_request r = { .method = nf > 0 ? f[0] : "GET", .path = nf > 1 ? f[1] : "/", .query = q,
                                           .n_query = nq, .headers = h, .n_headers = nh, .region = "us-east-1",
                                           .service = s3 ? "s3" : "service", .now = 1440938160,
                                           .normalize_path = !s3, .add_content_sha256 = s3 };
                struct sigv4_result res = { 0 };
                if (sigv4_sign(&r, &c, &res) == 0) {
                        assert(strlen(res.signature) == 64);
                        /* the canonical path is encoded: no raw space, no byte above 0x7e */
                        for (const char *p = res.encoded_path; *p; p++)
                                assert(*p > ' ' && (unsigned char)*p < 0x7f);
                        sigv4_result_clear(&res);
                }
                if (sigv4_presign(&r, &c, 3600, &res) == 0) {
                        assert(strstr(res.query_string, "X-Amz-Signature="));
                        sigv4_result_clear(&res);
                }
        }
        free(buf);
        return 0;
}
