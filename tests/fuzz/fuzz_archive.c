/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_archive.c — the archive path checks: a path judged safe never leaves the root, lexically; a symlink
 * judged safe resolves inside the root. Also extracts the input as an archive into a scratch directory: nothing
 * appears outside it, and in a tree extracted without error every link resolves inside, no file is a hard link,
 * setuid, setgid, a device or a FIFO. */
#include <assert.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>

#include "run/proc/archive_x.h"
#include "util.h"

static int depth_after(const char *base_depth_path, const char *rel) {
        int depth = 0;
        for (const char *p = rel; *p;) {
                const char *e = strchrnul(p, '/');
                size_t l = (size_t)(e - p);
                if (l == 2 && p[0] == '.' && p[1] == '.')
                        depth--;
                else if (l > 0 && !(l == 1 && p[0] == '.'))
                        depth++;
                if (depth < 0)
                        return -1;
                p = *e ? e + 1 : e;
        }
        (void)base_depth_path;
        return depth;
}

static char real_root[PATH_MAX];

static int check_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        (void)ftw;
        char real[PATH_MAX];
        if (flag == FTW_SL && realpath(p, real))
                assert(!strncmp(real, real_root, strlen(real_root)) &&
                       (real[strlen(real_root)] == 0 || real[strlen(real_root)] == '/'));
        if (flag == FTW_F)
                assert(st->st_nlink == 1 && !(st->st_mode & (S_ISUID | S_ISGID)) && (S_ISREG(st->st_mode)));
        return 0;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        (void)st, (void)flag, (void)ftw;
        return remove(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = strndup((const char *)data, size > 4096 ? 4096 : size);
        char *nl = strchr(s, '\n');
        const char *target = NULL;
        if (nl) {
                *nl = 0;
                target = nl + 1;
        }
        if (archive_path_safe(s))
                assert(s[0] != '/' && depth_after("", s) >= 0);
        if (target && archive_symlink_safe(s, target)) {
                /* dir of the link + target stays at or below the root */
                char joined[9000];
                const char *slash = strrchr(s, '/');
                snprintf(joined, sizeof joined, "%.*s%s%s", slash ? (int)(slash - s) : 0, s, slash ? "/" : "", target);
                assert(target[0] != '/' && depth_after("", joined) >= 0);
        }
        free(s);
        if (size > 16 && size < (1 << 16)) {
                static char dir[64];
                if (!dir[0]) {
                        snprintf(dir, sizeof dir, "/tmp/mayfly-fuzz-XXXXXX");
                        if (!mkdtemp(dir))
                                return 0;
                }
                char in[96], root[96], err[512];
                snprintf(in, sizeof in, "%s/in", dir);
                snprintf(root, sizeof root, "%s/root", dir);
                FILE *f = fopen(in, "we");
                if (!f)
                        return 0;
                fwrite(data, 1, size, f);
                fclose(f);
                mkdir(root, 0700);
                static int home = -1;   /* libFuzzer's own working directory (its corpus paths are relative) */
                if (home < 0 && (home = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                        abort();
                int afd = open(in, O_RDONLY | O_CLOEXEC), rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                /* names are relative to the working directory, as in the agent's extraction thread */
                if (afd >= 0 && rootfd >= 0 && chdir(root) == 0 && archive_extract(afd, rootfd, err, sizeof err) == 0) {
                        if (!realpath(root, real_root))
                                abort();
                        /* every link that resolves at all resolves inside the tree; no file has a second name */
                        nftw(root, check_cb, 16, FTW_PHYS);
                }
                if (fchdir(home) != 0)
                        abort();
                if (afd >= 0)
                        close(afd);
                if (rootfd >= 0)
                        close(rootfd);
                nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
                /* nothing may appear next to root */
                char outside[128];
                snprintf(outside, sizeof outside, "%s/escaped", dir);
                assert(access(outside, F_OK) != 0);
        }
        return 0;
}
