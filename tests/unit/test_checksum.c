/* SPDX-License-Identifier: Apache-2.0 */
/* test_checksum.c — S3's CRC32 checksum: published CRC-32 check values, botocore's Crc32Checksum wire form,
 * composites, the joins a parallel download relies on, the header rules and the download plan. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/s3.h"
#include "aws/transfer.h"
#include "checksum.h"
#include "test.h"

/* CRC-32/ISO-HDLC check values: "123456789" is the catalogue's check string (0xCBF43926); the fox is zlib's and
 * Wikipedia's example. The base64 column is what botocore 1.43's httpchecksum.Crc32Checksum().b64digest() gives. */
static const struct {
        const char *in;
        uint32_t crc;
        const char *b64;
} vectors[] = {
        { "", 0x00000000u, "AAAAAA==" },
        { "a", 0xe8b7be43u, "6Le+Qw==" },
        { "abc", 0x352441c2u, "NSRBwg==" },
        { "123456789", 0xcbf43926u, "y/Q5Jg==" },
        { "The quick brown fox jumps over the lazy dog", 0x414fa339u, "QU+jOQ==" },
};

static void test_vectors(void) {
        for (size_t i = 0; i < ARRAY_SIZE(vectors); i++) {
                char name[96], b64[CRC32_B64_LEN + 1];
                uint32_t c = crc32_update(0, vectors[i].in, strlen(vectors[i].in));
                snprintf(name, sizeof name, "crc32 of \"%.20s\"", vectors[i].in);
                T_EXPECT(name, c == vectors[i].crc);
                crc32_to_base64(c, b64);
                snprintf(name, sizeof name, "crc32 wire form of \"%.20s\"", vectors[i].in);
                T_EXPECT_STR(name, b64, vectors[i].b64);
                uint32_t back;
                unsigned parts = 9;
                snprintf(name, sizeof name, "crc32 parse of %s", vectors[i].b64);
                T_EXPECT(name, crc32_parse(vectors[i].b64, &back, &parts) == 0 && back == c && parts == 0);
        }
        /* 1024 bytes 0..255 repeated, also from botocore */
        unsigned char buf[1024];
        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (unsigned char)i;
        char b64[CRC32_B64_LEN + 1];
        crc32_to_base64(crc32_update(0, buf, sizeof buf), b64);
        T_EXPECT_STR("crc32 of 0..255 x4 (botocore)", b64, "twtMJg==");
}

static void test_fd_and_join(void) {
        char path[] = "/tmp/mayfly-crc-XXXXXX";
        int fd = mkstemp(path);
        const char *fox = "The quick brown fox jumps over the lazy dog";
        size_t n = strlen(fox);
        T_EXPECT("temp file", fd >= 0 && write(fd, fox, n) == (ssize_t)n);
        uint32_t c = 0;
        T_EXPECT("crc32 of an fd range", crc32_of_fd(fd, 4, 5, &c) == 0 && c == crc32_update(0, "quick", 5));
        T_EXPECT("crc32 of a whole fd", crc32_of_fd(fd, 0, n, &c) == 0 && c == 0x414fa339u);
        T_EXPECT("crc32 of a range past the end is -EIO", crc32_of_fd(fd, 40, 10, &c) == -EIO);
        close(fd);
        unlink(path);
        /* every split of the fox joins back to its CRC */
        int bad = 0;
        for (size_t k = 0; k <= n; k++) {
                uint32_t a = crc32_update(0, fox, k), b = crc32_update(0, fox + k, n - k);
                bad += crc32_join(a, b, n - k) != 0x414fa339u;
        }
        T_EXPECT("crc32_join over every split", bad == 0);
}

static void test_composite(void) {
        /* what S3 (and moto's MultipartChecksumBuilder) computes: CRC32 of the parts' big-endian CRC32s */
        uint32_t parts[] = { 0x352441c2u, 0xcbf43926u, 0x414fa339u };
        char b64[CRC32_B64_LEN + 1];
        crc32_to_base64(crc32_composite(parts, 3), b64);
        T_EXPECT_STR("composite of abc|123456789|fox", b64, "fhtnkw==");
        uint32_t c;
        unsigned np;
        T_EXPECT("parse composite", crc32_parse("fhtnkw==-3", &c, &np) == 0 && c == crc32_composite(parts, 3) && np == 3);
        T_EXPECT("parse: no part count", crc32_parse("fhtnkw==-", &c, &np) == -EINVAL);
        T_EXPECT("parse: zero parts", crc32_parse("fhtnkw==-0", &c, &np) == -EINVAL);
        T_EXPECT("parse: 10001 parts", crc32_parse("fhtnkw==-10001", &c, &np) == -EINVAL);
        T_EXPECT("parse: a CRC64NVME value", crc32_parse("AAAAAAAAAAA=", &c, &np) == -EINVAL);
        T_EXPECT("parse: short", crc32_parse("AAAA", &c, &np) == -EINVAL);
        T_EXPECT("parse: not base64", crc32_parse("********", &c, &np) == -EINVAL);
        T_EXPECT("parse: NULL", crc32_parse(NULL, &c, &np) == -EINVAL);
}

static void test_header_rules(void) {
        struct s3_meta m;
        s3_checksum_of("y/Q5Jg==", NULL, "\"0123\"", &m);
        T_EXPECT("whole-object checksum", m.has_crc && m.crc == 0xcbf43926u && m.crc_parts == 0);
        s3_checksum_of("fhtnkw==-3", "COMPOSITE", "\"ab-3\"", &m);
        T_EXPECT("composite with -N", m.has_crc && m.crc_parts == 3);
        s3_checksum_of("fhtnkw==", NULL, "\"ab-3\"", &m);
        T_EXPECT("composite without -N, multipart ETag (moto's HEAD)", m.has_crc && m.crc_parts == 3 && m.crc_either);
        s3_checksum_of("fhtnkw==-3", NULL, "\"ab-3\"", &m);
        T_EXPECT("composite with -N is no guess", m.has_crc && m.crc_parts == 3 && !m.crc_either);
        s3_checksum_of("fhtnkw==", "FULL_OBJECT", "\"ab-3\"", &m);
        T_EXPECT("full-object checksum of a multipart upload", m.has_crc && m.crc_parts == 0);
        s3_checksum_of("fhtnkw==", "COMPOSITE", "\"ab\"", &m);
        T_EXPECT("composite of unknown parts is not checked", !m.has_crc);
        s3_checksum_of("", NULL, "\"ab\"", &m);
        T_EXPECT("no checksum", !m.has_crc);
        s3_checksum_of(NULL, NULL, NULL, &m);
        T_EXPECT("nothing at all", !m.has_crc);
}

static void test_plan(void) {
        const uint64_t M = 1 << 20;
        struct xfer_unit *u = NULL;
        size_t n = 0;
        T_EXPECT("plan: empty object is one empty range",
                 xfer_plan(0, 8 * M, 0, &u, &n) == 0 && n == 1 && u[0].off == 0 && u[0].len == 0);
        free(u);
        T_EXPECT("plan: 20 MiB in 8 MiB ranges",
                 xfer_plan(20 * M, 8 * M, 0, &u, &n) == 0 && n == 3 && u[2].off == 16 * M && u[2].len == 4 * M);
        free(u);
        /* a 100 MiB composite over 13 parts of 8 MiB (the last 4 MiB), downloaded in 5 MiB ranges: each part in
         * two 4 MiB halves, the last part whole, none crossing a part */
        int r = xfer_plan(100 * M, 5 * M, 8 * M, &u, &n);
        int ok = r == 0 && n == 25;
        uint64_t end = 0;
        for (size_t i = 0; ok && i < n; i++) {
                ok = u[i].off == end && u[i].len && u[i].group == u[i].off / (8 * M) &&
                     (u[i].off + u[i].len - 1) / (8 * M) == u[i].group;
                end = u[i].off + u[i].len;
        }
        T_EXPECT("plan: composite ranges follow the upload parts", ok && end == 100 * M && u[n - 1].len == 4 * M);
        free(u);
        T_EXPECT("plan: too many ranges", xfer_plan(1ull << 40, 1, 0, &u, &n) == -E2BIG);
        T_EXPECT("plan: part 0", xfer_plan(10, 0, 0, &u, &n) == -EINVAL);
}

static void test_units_crc(void) {
        /* a buffer cut as the plan cuts it: the ranges' CRCs join to the whole CRC and to the composite */
        enum { SIZE = 1000, PART = 300, RANGE = 128 };
        unsigned char buf[SIZE];
        for (size_t i = 0; i < SIZE; i++)
                buf[i] = (unsigned char)(i * 7 + 3);
        struct xfer_unit *u = NULL;
        size_t n = 0;
        T_EXPECT("plan small", xfer_plan(SIZE, RANGE, 0, &u, &n) == 0 && n == 8);
        for (size_t i = 0; i < n; i++)
                u[i].crc = crc32_update(0, buf + u[i].off, u[i].len);
        T_EXPECT("joined ranges = whole CRC", xfer_units_crc(u, n, false) == crc32_update(0, buf, SIZE));
        free(u);
        T_EXPECT("plan composite", xfer_plan(SIZE, RANGE, PART, &u, &n) == 0);
        for (size_t i = 0; i < n; i++)
                u[i].crc = crc32_update(0, buf + u[i].off, u[i].len);
        uint32_t parts[4];
        for (int p = 0; p < 4; p++)
                parts[p] = crc32_update(0, buf + p * PART, p == 3 ? SIZE - 3 * PART : PART);
        T_EXPECT("joined ranges = composite over the parts", xfer_units_crc(u, n, true) == crc32_composite(parts, 4));
        free(u);
        /* more parts than the batch of 64 the composite is fed in */
        static unsigned char big[200 * 16];
        for (size_t i = 0; i < sizeof big; i++)
                big[i] = (unsigned char)(i ^ (i >> 8));
        T_EXPECT("plan 200 parts", xfer_plan(sizeof big, 10, 16, &u, &n) == 0 && n == 400);
        for (size_t i = 0; i < n; i++)
                u[i].crc = crc32_update(0, big + u[i].off, u[i].len);
        uint32_t p200[200];
        for (int p = 0; p < 200; p++)
                p200[p] = crc32_update(0, big + p * 16, 16);
        T_EXPECT("composite over 200 parts", xfer_units_crc(u, n, true) == crc32_composite(p200, 200));
        free(u);
}

int main(void) {
        test_vectors();
        test_fd_and_join();
        test_composite();
        test_header_rules();
        test_plan();
        test_units_crc();
        return t_summary();
}
