/* SPDX-License-Identifier: Apache-2.0 */
/* test_pack.c — a local source folder as launch packs it: .mayflyignore's patterns (gitignore's syntax), .git/ left
 * out, and the tree's hash (paths, the executable bit, contents; not times). */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/pack.h"
#include "util.h"
#include "test.h"

static void test_ignore(void) {
        static struct pack_ignore ig;
        pack_ignore_parse("# a comment\n\n*.pyc\n/data/\nlogs/\n!logs/keep.txt\nbuild/**/tmp\n**/cache/*.bin\n"
                          "/top.txt\n  \n", &ig);
        T_EXPECT("patterns read, comments and blanks skipped", ig.n == 7);
        static const struct {
                const char *rel;
                bool dir, want;
        } cases[] = {
                { "a.pyc", false, true },           { "src/deep/b.pyc", false, true },
                { "a.py", false, false },           { "data", true, true },
                { "data", false, false },           { "src/data", true, false },
                { "logs", true, true },             { "src/logs", true, true },
                { "logs/keep.txt", false, false },  { "build/x/y/tmp", false, true },
                { "build/tmp", false, false },      { "cache/a.bin", false, true },
                { "x/cache/a.bin", false, true },   { "top.txt", false, true },
                { "src/top.txt", false, false },    { ".git", true, true },
                { ".git/config", false, true },     { ".gitignore", false, false },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char name[160];
                snprintf(name, sizeof name, "%s%s %s", cases[i].rel, cases[i].dir ? "/" : "",
                         cases[i].want ? "left out" : "packed");
                T_EXPECT(name, pack_ignored(&ig, cases[i].rel, cases[i].dir) == cases[i].want);
        }
}

static void put(const char *dir, const char *rel, const char *text, mode_t mode) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, rel);
        FILE *f = fopen(p, "w");
        if (f) {
                fputs(text, f);
                fclose(f);
        }
        chmod(p, mode);
}

static void test_hash(void) {
        char dir[] = "/tmp/mayfly-test-pack-XXXXXX";
        if (!mkdtemp(dir)) {
                T_EXPECT("mkdtemp", false);
                return;
        }
        char p[512];
        snprintf(p, sizeof p, "%s/src", dir);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/.git", dir);
        mkdir(p, 0755);
        put(dir, "train.py", "print('hi')\n", 0644);
        put(dir, "src/util.py", "x = 1\n", 0644);
        put(dir, ".git/HEAD", "ref: main\n", 0644);
        put(dir, ".mayflyignore", "*.ckpt\n", 0644);
        struct pack_tree a, b;
        char err[256];
        T_EXPECT("hashed", pack_hash(dir, &a, err, sizeof err) == 0 && strlen(a.hash) == 64);
        T_EXPECT(".git left out: 3 files (train.py, src/util.py, .mayflyignore)", a.files == 3);
        put(dir, "big.ckpt", "ignored weights", 0644);
        put(dir, ".git/HEAD", "ref: other\n", 0644);
        T_EXPECT("ignored and .git files change nothing", pack_hash(dir, &b, err, sizeof err) == 0 &&
                                                               !strcmp(a.hash, b.hash));
        snprintf(p, sizeof p, "%s/train.py", dir);
        struct timespec ts[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
        utimensat(AT_FDCWD, p, ts, 0);
        T_EXPECT("times change nothing", pack_hash(dir, &b, err, sizeof err) == 0 && !strcmp(a.hash, b.hash));
        chmod(p, 0755);
        T_EXPECT("the executable bit is part of the tree", pack_hash(dir, &b, err, sizeof err) == 0 &&
                                                                   strcmp(a.hash, b.hash));
        chmod(p, 0644);
        put(dir, "train.py", "print('ho')\n", 0644);
        T_EXPECT("contents are part of the tree", pack_hash(dir, &b, err, sizeof err) == 0 && strcmp(a.hash, b.hash));
        put(dir, "train.py", "print('hi')\n", 0644);
        T_EXPECT("back as it was: the same hash", pack_hash(dir, &b, err, sizeof err) == 0 && !strcmp(a.hash, b.hash));
        char out[600];
        snprintf(out, sizeof out, "%s.tar.gz", dir);
        T_EXPECT("packed", pack_write(dir, out, err, sizeof err) == 0);
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "tar -tzf %s | sort | tr '\\n' ' ' > %s.list", out, out);
        int rc = system(cmd);
        snprintf(p, sizeof p, "%s.list", out);
        _cleanup_free_ char *list = NULL;
        size_t len;
        T_EXPECT_STR("the archive holds what the hash covers",
                     rc == 0 && read_file_capped(p, 4096, &list, &len) == 0 ? list : "",
                     ".mayflyignore src/ src/util.py train.py ");
        snprintf(cmd, sizeof cmd, "rm -rf %s %s %s.list", dir, out, out);
        if (system(cmd) != 0)
                printf("could not remove %s\n", dir);
        T_EXPECT("a missing folder is an error", pack_hash("/nonexistent/x", &b, err, sizeof err) < 0 && err[0]);
}

int main(void) {
        test_ignore();
        test_hash();
        return t_summary();
}
