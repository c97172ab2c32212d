/* SPDX-License-Identifier: Apache-2.0 */
/* fdio.c — a pread loop with a fixed buffer. */
#include "fdio.h"

#include <errno.h>
#include <unistd.h>

int pread_each(int fd, off_t off, uint64_t len, int (*fn)(void *ud, const void *buf, size_t n), void *ud) {
        char b[64 * 1024];
        uint64_t done = 0;
        while (done < len) {
                size_t want = len - done < sizeof b ? (size_t)(len - done) : sizeof b;
                ssize_t k = pread(fd, b, want, off + (off_t)done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                int r = fn(ud, b, (size_t)k);
                if (r < 0)
                        return r;
                done += (uint64_t)k;
        }
        return 0;
}
