/* SPDX-License-Identifier: Apache-2.0 */
/* test_logwrite.c — log_max: where the released head ends, and a real release (offsets and size kept, the head
 * reading as zeros, the blocks gone); the writer thread writing as the run user. */
#include <fcntl.h>
#include <sys/stat.h>

#include "run/proc/logwrite.h"
#include "util.h"
#include "test.h"

#define MiB (1ull << 20)

static void test_upto(void) {
        static const struct {
                const char *name;
                uint64_t size, max, want;
        } cases[] = {
                { "no cap", 100 * MiB, 0, 0 },
                { "under the cap", 5 * MiB, 10 * MiB, 0 },
                { "at the cap", 10 * MiB, 10 * MiB, 0 },
                { "past it by less than the step", 10 * MiB + 4096, 10 * MiB, 0 },
                { "past it by one step", 11 * MiB, 10 * MiB, MiB },
                { "past it by 2.5 steps", 12 * MiB + MiB / 2, 10 * MiB, 2 * MiB },
                { "a small cap", 5 * MiB, MiB, 4 * MiB },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                uint64_t got = log_release_upto(cases[i].size, cases[i].max);
                t_result(cases[i].name, got == cases[i].want, "got %llu", (unsigned long long)got);
        }
}

static void test_release(void) {
        char path[] = "/var/tmp/mayfly-logwrite-test-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
                return;
        int afd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        struct run_user u = { .uid = 65534, .gid = 65534, .switch_user = geteuid() == 0, .ngroups = 1,
                              .groups = { 65534 } };
        struct logwriter L;
        T_EXPECT("writer: started as the user", logw_start(&L, &u) == 0);
        static char block[65536];
        for (size_t i = 0; i < sizeof block; i++)
                block[i] = (char)('a' + i % 26);
        uint64_t released = 0;
        bool ok = true;
        for (int i = 0; i < 80 && ok; i++) { /* 5 MiB */
                ok = logw_write(&L, afd, block, sizeof block) == (ssize_t)sizeof block;
                uint64_t upto = log_release_upto((uint64_t)(i + 1) * sizeof block, MiB);
                if (upto > released && log_release(afd, released, upto) == 0)
                        released = upto;
        }
        logw_stop(&L);
        T_EXPECT("writer: every byte written", ok);
        struct stat st;
        fstat(fd, &st);
        T_EXPECT("release: the size is what was written", st.st_size == 5 * (off_t)MiB);
        T_EXPECT("release: at most the cap and a step on the disk", (uint64_t)st.st_blocks * 512 <= 2 * MiB + 65536);
        char b[16];
        T_EXPECT("release: the head reads as zeros", pread(fd, b, sizeof b, 0) == sizeof b && !memcmp(b, "\0\0\0\0\0\0\0\0", 8));
        T_EXPECT("release: offsets kept (the tail where it was)",
                 pread(fd, b, 4, 5 * (off_t)MiB - 65536) == 4 && !memcmp(b, "abcd", 4));
        close(afd);
        close(fd);
        unlink(path);
}

int main(void) {
        test_upto();
        test_release();
        return t_summary();
}
