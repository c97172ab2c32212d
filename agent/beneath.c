/* SPDX-License-Identifier: Apache-2.0 */
/* beneath.c — openat2(RESOLVE_BENEATH) with a per-component O_NOFOLLOW walk where the kernel lacks it. */
#include "beneath.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "util.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define BENEATH_EAGAIN_TRIES 64   /* openat2 says EAGAIN when a rename raced the walk */

static atomic_bool no_openat2;

void beneath_force_fallback(bool on) {
        atomic_store(&no_openat2, on);
}

bool beneath_rel_ok(const char *rel) {
        if (!rel || rel[0] == '/')
                return false;
        if (!*rel)
                return true;
        for (const char *p = rel;;) {
                const char *e = strchrnul(p, '/');
                size_t l = (size_t)(e - p);
                if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                if (!*e)
                        return true;
                p = e + 1;
        }
}

bool beneath_refused(int r) {
        return r == -EXDEV || r == -ELOOP;
}

static int open2(int rootfd, const char *rel, int flags, mode_t mode) {
        struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .mode = flags & (O_CREAT | O_TMPFILE) ? mode : 0,
                                .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
        for (int i = 0; i < BENEATH_EAGAIN_TRIES; i++) {
                long fd = syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof how);
                if (fd >= 0)
                        return (int)fd;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
        }
        return -EAGAIN;
}

/* No openat2: every component with O_NOFOLLOW, so any link at all is refused (-ELOOP). */
static int walk(int rootfd, const char *rel, int flags, mode_t mode) {
        if (!*rel) {
                int fd = openat(rootfd, ".", flags | O_CLOEXEC, mode);
                return fd < 0 ? -errno : fd;
        }
        int cur = rootfd;
        for (const char *p = rel;;) {
                const char *e = strchrnul(p, '/');
                char comp[NAME_MAX + 1];
                size_t l = (size_t)(e - p);
                if (l > NAME_MAX) {
                        if (cur != rootfd)
                                close(cur);
                        return -ENAMETOOLONG;
                }
                memcpy(comp, p, l);
                comp[l] = 0;
                bool last = !*e;
                int fd = last ? openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode)
                              : openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                int err = fd < 0 ? errno : 0;
                if (fd < 0 && err == ENOTDIR) {
                        /* O_NOFOLLOW|O_DIRECTORY on a link says ENOTDIR: a link, refused as any link here */
                        struct stat st;
                        if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
                                err = ELOOP;
                }
                if (cur != rootfd)
                        close(cur);
                if (fd < 0)
                        return -err;
                if (last)
                        return fd;
                cur = fd;
                p = e + 1;
        }
}

int beneath_open(int rootfd, const char *rel, int flags, mode_t mode) {
        if (!beneath_rel_ok(rel))
                return -EINVAL;
        if (!atomic_load(&no_openat2)) {
                int fd = open2(rootfd, rel, flags, mode);
                if (fd != -ENOSYS)
                        return fd;
                atomic_store(&no_openat2, true);
        }
        return walk(rootfd, rel, flags, mode);
}

int beneath_mkdirs(int rootfd, const char *rel, mode_t mode) {
        if (!beneath_rel_ok(rel))
                return -EINVAL;
        size_t n = strlen(rel);
        _cleanup_free_ char *prefix = malloc(n + 1);
        if (!prefix)
                return -ENOMEM;
        int cur = beneath_open(rootfd, "", O_RDONLY | O_DIRECTORY, 0);
        for (size_t i = 0; cur >= 0 && i < n;) {
                size_t j = i;
                while (j < n && rel[j] != '/')
                        j++;
                memcpy(prefix, rel, j);
                prefix[j] = 0;
                /* mkdirat never follows its last component: an existing link there is EEXIST, then opened beneath */
                if (mkdirat(cur, prefix + i, mode) < 0 && errno != EEXIST) {
                        int e = errno;
                        close(cur);
                        return -e;
                }
                close(cur);
                cur = beneath_open(rootfd, prefix, O_RDONLY | O_DIRECTORY, 0);
                i = j + 1;
        }
        return cur;
}
