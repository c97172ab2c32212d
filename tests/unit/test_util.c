/* SPDX-License-Identifier: Apache-2.0 */
/* test_util.c — util.c: URI decoding, ISO 8601 times, capped buffers, array growth. */
#include <stdint.h>

#include "util.h"
#include "test.h"

static void test_util(void) {
        char *d = NULL;
        uri_decode("%41%2x%", 8, &d);
        T_EXPECT_STR("uri_decode leaves bad escapes", d, "A%2x%");
        free(d);
        time_t t;
        T_EXPECT("iso8601 parse", parse_iso8601("2015-08-30T12:36:00Z", &t) == 0 && t == 1440938160);
        T_EXPECT("iso8601 fractional", parse_iso8601("2015-08-30T12:36:00.123Z", &t) == 0 && t == 1440938160);
        T_EXPECT("iso8601 garbage", parse_iso8601("yesterday", &t) < 0);
        struct buf cap = BUF_INIT(4);
        T_EXPECT("buffer cap enforced", buf_adds(&cap, "abc") == 0 && buf_adds(&cap, "d") == -E2BIG);
        buf_free(&cap);
        /* array_room: the first allocation, doubling, and an impossible size leaving the array as it was */
        int *v = NULL;
        size_t n = 0, alloc = 0;
        bool grew = true;
        for (int e = 0; e < 20 && grew; e++) {
                int *g = array_room(v, n, &alloc, sizeof *v, 4);
                grew = g != NULL;
                if (g) {
                        v = g;
                        v[n++] = e;
                }
        }
        T_EXPECT("array_room grows by doubling", grew && n == 20 && alloc == 32 && v[19] == 19);
        size_t before = alloc;
        n = alloc;
        T_EXPECT("array_room refuses an overflowing size", array_room(v, n, &alloc, SIZE_MAX / 2, 4) == NULL &&
                                                               alloc == before && v[0] == 0);
        free(v);
}

int main(int argc, char **argv) {
        (void)argc;
        (void)argv;
        test_util();
        return t_summary();
}
