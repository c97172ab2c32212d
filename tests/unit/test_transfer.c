/* SPDX-License-Identifier: Apache-2.0 */
/* test_transfer.c — aws/transfer.c: part sizes within S3's limits (5 MiB at least, 10,000 parts at most). */
#include "aws/transfer.h"
#include "util.h"
#include "test.h"

static void test_parts(void) {
        const uint64_t M = 1ull << 20;
        T_EXPECT("default part 8 MiB", xfer_part_size(100 * M, 0) == 8 * M);
        T_EXPECT("part at least 5 MiB", xfer_part_size(100 * M, 1 * M) == 5 * M);
        uint64_t big = 200ull << 30; /* 200 GiB */
        uint64_t p = xfer_part_size(big, 0);
        T_EXPECT("200 GiB stays within 10,000 parts", (big + p - 1) / p <= 10000 && p % M == 0);
        uint64_t huge = 5ull << 40;
        p = xfer_part_size(huge, 0);
        T_EXPECT("5 TiB stays within 10,000 parts", (huge + p - 1) / p <= 10000);
}

int main(int argc, char **argv) {
        (void)argc;
        (void)argv;
        test_parts();
        return t_summary();
}
