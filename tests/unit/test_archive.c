/* test_archive.c — archive path checks (table) and extraction of good and hostile archives, including the
 * inputs the fuzzer found (tests/fuzz/regressions). */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include "run/archive_x.h"
#include "util.h"
#include "test.h"

static void test_checks(void) {
        struct { const char *p; bool ok; } paths[] = {
                { "a", true }, { "a/b/c", true }, { "./a", true }, { "a/./b", true }, { "a..b", true }, { "..a", true },
                { "/etc/passwd", false }, { "..", false }, { "../x", false }, { "a/../../x", false }, { "a/..", false },
                { "", false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
                char name[128];
                snprintf(name, sizeof name, "path '%s' %s", paths[i].p, paths[i].ok ? "safe" : "refused");
                T_EXPECT(name, archive_path_safe(paths[i].p) == paths[i].ok);
        }
        struct { const char *p, *t; bool ok; } links[] = {
                { "l", "x", true }, { "a/l", "../x", true }, { "a/b/l", "../../x", true }, { "a/l", "../../x", false },
                { "l", "/etc", false }, { "l", "..", false }, { "a/l", "..", true }, { "l", "a/../..", false },
                { "l", "", false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
                char name[128];
                snprintf(name, sizeof name, "symlink %s -> '%s' %s", links[i].p, links[i].t, links[i].ok ? "safe" : "refused");
                T_EXPECT(name, archive_symlink_safe(links[i].p, links[i].t) == links[i].ok);
        }
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) { return remove(p); }

static void extract_file(const char *label, const char *file, bool want_ok, const char *dir) {
        char root[512], err[512] = "", out[600];
        snprintf(root, sizeof root, "%s/root", dir);
        nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        mkdir(root, 0700);
        int r = archive_extract(file, root, err, sizeof err);
        snprintf(out, sizeof out, "%s/escaped", dir);
        char name[256];
        snprintf(name, sizeof name, "extract %s: %s", label, want_ok ? "ok" : "refused with a message");
        t_result(name, (r == 0) == want_ok && (want_ok || (err[0] && !strchr(err, '\n'))) && access(out, F_OK) != 0,
                 "rc %d err '%s'", r, err);
}

int main(int argc, char **argv) {
        test_checks();
        char dir[] = "/tmp/mayfly-archive-test-XXXXXX";
        if (!mkdtemp(dir))
                return 1;
        static const struct { const char *f; bool ok; } corpus[] = {
                { "tests/fuzz/corpus/archive/ok.tar.gz", true }, { "tests/fuzz/corpus/archive/ok.zip", true },
                { "tests/fuzz/corpus/archive/evil.tar", false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(corpus); i++)
                extract_file(corpus[i].f, corpus[i].f, corpus[i].ok, dir);
        DIR *d = opendir("tests/fuzz/regressions");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (strncmp(de->d_name, "archive-", 8) != 0)
                        continue;
                char f[512], err[512];
                snprintf(f, sizeof f, "tests/fuzz/regressions/%s", de->d_name);
                char root[600];
                snprintf(root, sizeof root, "%s/root", dir);
                nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
                mkdir(root, 0700);
                int r = archive_extract(f, root, err, sizeof err);
                char name[300];
                snprintf(name, sizeof name, "regression %s: no crash, a one-line answer", de->d_name);
                T_EXPECT(name, r == 0 || (err[0] && !strchr(err, '\n')));
        }
        if (d)
                closedir(d);
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return t_summary();
}
