/* SPDX-License-Identifier: Apache-2.0 */
/* test_archive.c — archive path and link checks (tables, with an in-memory tree for chained links), and extraction
 * of good and hostile archives: every shape in tests/fuzz/regressions/archive-refuse-* is refused with a one-line
 * message naming the entry, and nothing appears outside the tree. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>

#include "run/proc/archive_x.h"
#include "run/proc/asuser.h"
#include "util.h"
#include "test.h"

/* A tree of links for archive_link_inside: "path=target" pairs; everything else is not a link. */
static int table_readlink(void *ud, const char *path, char *buf, size_t n) {
        for (const char *const *p = ud; *p; p++) {
                const char *eq = strchr(*p, '=');
                if ((size_t)(eq - *p) == strlen(path) && !strncmp(*p, path, (size_t)(eq - *p))) {
                        snprintf(buf, n, "%s", eq + 1);
                        return (int)strlen(buf);
                }
        }
        return -ENOENT;
}

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
                { "l", "", false }, { "l", "./././x", true }, { "a/l", "b/../../..", false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
                char name[128];
                snprintf(name, sizeof name, "symlink %s -> '%s' %s", links[i].p, links[i].t, links[i].ok ? "safe" : "refused");
                T_EXPECT(name, archive_symlink_safe(links[i].p, links[i].t) == links[i].ok);
        }
        /* links resolved against a tree that already holds links: the chained shapes */
        static const char *const tree1[] = { "d/x=..", NULL };
        static const char *const tree2[] = { "p=.", NULL };
        static const char *const tree3[] = { "a=b", "b=a", NULL };
        static const char *const tree4[] = { "a=b/c", "b=d", NULL };
        static const char *const tree5[] = { "up=..", NULL };
        static const char *const tree6[] = { "s=/etc", NULL };
        struct { const char *const *tree; const char *p, *t; bool ok; } chained[] = {
                { tree1, "d/y", "x/..", false },     /* d/x -> .. then d/y -> x/..: the root's parent */
                { tree1, "d/y", "x", true },         /* d/y -> x -> ..: the root */
                { tree1, "d/y", "x/d", true },
                { tree2, "l1", "p/..", false },      /* p -> . makes p/.. the root's parent */
                { tree3, "c", "a/x", false },        /* a loop: more than 40 links */
                { tree4, "l", "a/../..", true },     /* a -> b/c -> d/c; .. twice: the root */
                { tree4, "l", "a/../../..", false },
                { tree5, "x/l", "../up/y", false },
                { tree6, "l", "s/passwd", false },   /* an absolute link met on the way */
        };
        for (size_t i = 0; i < ARRAY_SIZE(chained); i++) {
                char name[160];
                snprintf(name, sizeof name, "chained: %s -> '%s' with %s... %s", chained[i].p, chained[i].t,
                         chained[i].tree[0], chained[i].ok ? "inside" : "refused");
                T_EXPECT(name, archive_link_inside(chained[i].p, chained[i].t, table_readlink, (void *)chained[i].tree) ==
                                       chained[i].ok);
        }
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) { return remove(p); }

struct ex {
        int afd, rootfd;
        char err[512];
};

static int extract_fn(void *ud) {
        struct ex *x = ud;
        return archive_extract(x->afd, x->rootfd, x->err, sizeof x->err);
}

/* Extracts file into dir/root as extraction runs in the agent (a thread whose working directory is the tree). */
static int extract(const char *file, const char *dir, char *err, size_t errlen) {
        char root[512];
        snprintf(root, sizeof root, "%s/root", dir);
        nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        mkdir(root, 0700);
        struct ex x = { .afd = open(file, O_RDONLY | O_CLOEXEC), .rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) };
        int r = x.afd < 0 || x.rootfd < 0 ? -errno : as_user(NULL, x.rootfd, extract_fn, &x);
        snprintf(err, errlen, "%s", x.err);
        if (x.afd >= 0)
                close(x.afd);
        if (x.rootfd >= 0)
                close(x.rootfd);
        return r;
}

static bool nothing_outside(const char *dir) {
        char out[600];
        snprintf(out, sizeof out, "%s/escaped", dir);
        return access(out, F_OK) != 0 && access("/tmp/mayfly-escaped-by-zip", F_OK) != 0;
}

static void extract_file(const char *label, const char *file, bool want_ok, const char *dir) {
        char err[512] = "";
        int r = extract(file, dir, err, sizeof err);
        char name[256];
        snprintf(name, sizeof name, "extract %s: %s", label, want_ok ? "ok" : "refused with a message");
        t_result(name, (r == 0) == want_ok && (want_ok || (err[0] && !strchr(err, '\n'))) && nothing_outside(dir),
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
        struct stat passwd0, passwd1;
        stat("/etc/passwd", &passwd0);
        DIR *d = opendir("tests/fuzz/regressions");
        struct dirent *de;
        int refusals = 0;
        while (d && (de = readdir(d))) {
                if (strncmp(de->d_name, "archive-", 8) != 0)
                        continue;
                char f[512], err[512] = "", name[400];
                snprintf(f, sizeof f, "tests/fuzz/regressions/%s", de->d_name);
                int r = extract(f, dir, err, sizeof err);
                if (!strncmp(de->d_name, "archive-refuse-", 15)) {
                        refusals++;
                        snprintf(name, sizeof name, "regression %s: refused, one line naming the entry", de->d_name);
                        t_result(name, r < 0 && !strncmp(err, "refusing archive entry '", 24) && !strchr(err, '\n') &&
                                               nothing_outside(dir), "rc %d err '%s'", r, err);
                } else {
                        snprintf(name, sizeof name, "regression %s: no crash, a one-line answer", de->d_name);
                        T_EXPECT(name, r == 0 || (err[0] && !strchr(err, '\n')));
                }
        }
        if (d)
                closedir(d);
        stat("/etc/passwd", &passwd1);
        T_EXPECT("refusal regressions found", refusals >= 12);
        T_EXPECT("/etc/passwd untouched (no hard link made)", passwd0.st_nlink == passwd1.st_nlink &&
                                                                     passwd0.st_mtime == passwd1.st_mtime);
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        return t_summary();
}
