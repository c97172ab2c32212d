/* SPDX-License-Identifier: Apache-2.0 */
/* test_manifest.c — what was staged of an input: written and read back (mtimes to the nanosecond, keys of any
 * bytes), found by key in any order, a file judged unchanged only when S3's entry and the file both are, a manifest
 * of another source or place read as empty, one cut short read as incomplete, a bad line named. */
#include "run/proc/manifest.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>

static struct stat file_of(uint64_t size, int64_t sec, long ns) {
        struct stat st = { .st_mode = S_IFREG | 0644, .st_size = (off_t)size };
        st.st_mtim.tv_sec = sec;
        st.st_mtim.tv_nsec = ns;
        return st;
}

static void test_round_trip(void) {
        struct manifest m, r;
        manifest_init(&m, "s3://b/data/", "/work/datasets/data");
        const int64_t t = 1733600000LL * 1000000000 + 123456789; /* past 2^53: a double would round it */
        manifest_add(&m, "data/z.bin", 10, "\"e-z\"", 10, t, true);
        manifest_add(&m, "data/a \"quoted\"\nline.bin", 0, "\"d41d8cd98f00b204e9800998ecf8427e\"", 0, t + 1, true);
        manifest_add(&m, "data/pending.bin", 5, "\"e-p\"", 0, 0, false);
        m.complete = true;
        char *text = NULL;
        size_t len = 0;
        T_EXPECT("formatted", manifest_format(&m, &text, &len) == 0 && text);
        manifest_init(&r, "s3://b/data/", "/work/datasets/data");
        char err[200];
        int rc = manifest_parse(&r, text, len, err, sizeof err);
        T_EXPECT("read back: the entries with a file only", rc == 0 && r.n == 2 && r.complete);
        struct staged *z = manifest_find(&r, "data/z.bin");
        struct staged *a = manifest_find(&r, "data/a \"quoted\"\nline.bin");
        T_EXPECT("found by key, after sorting", z && a && !manifest_find(&r, "data/pending.bin") &&
                                                        !manifest_find(&r, "data/y.bin"));
        T_EXPECT("the mtime to the nanosecond", z && z->lmtime == t && a && a->lmtime == t + 1);
        struct stat same = file_of(10, t / 1000000000, (long)(t % 1000000000));
        T_EXPECT("unchanged: same object, same file", manifest_unchanged(z, 10, "e-z", &same));
        T_EXPECT("changed in S3: another ETag", !manifest_unchanged(z, 10, "\"e-z2\"", &same));
        T_EXPECT("changed in S3: another size", !manifest_unchanged(z, 11, "\"e-z\"", &same));
        struct stat touched = file_of(10, t / 1000000000, (long)(t % 1000000000) + 1);
        T_EXPECT("changed here: a nanosecond later", !manifest_unchanged(z, 10, "\"e-z\"", &touched));
        struct stat grown = file_of(11, t / 1000000000, (long)(t % 1000000000));
        T_EXPECT("changed here: another size", !manifest_unchanged(z, 10, "\"e-z\"", &grown));
        struct stat link = same;
        link.st_mode = S_IFLNK | 0777;
        T_EXPECT("changed here: a link now", !manifest_unchanged(z, 10, "\"e-z\"", &link));
        T_EXPECT("no entry: not staged", !manifest_unchanged(NULL, 10, "\"e-z\"", &same));
        manifest_free(&r);

        manifest_init(&r, "s3://b/other/", "/work/datasets/data");
        T_EXPECT("another source: read as empty", manifest_parse(&r, text, len, err, sizeof err) == 0 && r.n == 0 &&
                                                          !r.complete);
        manifest_free(&r);
        manifest_init(&r, "s3://b/data/", "/scratch/data");
        T_EXPECT("another place: read as empty", manifest_parse(&r, text, len, err, sizeof err) == 0 && r.n == 0);
        manifest_free(&r);
        manifest_init(&r, "s3://b/data/", "/work/datasets/data");
        char *cut = strrchr(text, '{'); /* the last line gone: the staging never ended */
        T_EXPECT("cut short: incomplete", manifest_parse(&r, text, (size_t)(cut - text), err, sizeof err) == 0 &&
                                                  r.n == 2 && !r.complete);
        manifest_free(&r);
        free(text);
        manifest_free(&m);
}

static void test_bad(void) {
        static const struct {
                const char *text, *want;
        } cases[] = {
                { "{\"manifest\": 2, \"source\": \"s\", \"place\": \"p\"}\n", "line 1: not a mayfly manifest" },
                { "[]\n", "line 1: not a JSON object" },
                { "{\"manifest\": 1, \"source\": \"s\", \"place\": \"p\"}\n{\"k\": \"x\", \"s\": -1, \"e\": \"e\", \"ls\": 1, "
                  "\"lm\": 1, \"ln\": 0}\n", "line 2: an object without" },
                { "{\"manifest\": 1, \"source\": \"s\", \"place\": \"p\"}\n{\"k\": \"x\", \"s\": 1, \"e\": \"e\", \"ls\": 1, "
                  "\"lm\": 1, \"ln\": 1000000000}\n", "line 2: an object without" },
                { "{\"manifest\": 1, \"source\": \"s\", \"place\": \"p\"}\nnot json\n", "line 2: not a JSON object" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct manifest m;
                manifest_init(&m, "s", "p");
                char err[200] = "";
                int r = manifest_parse(&m, cases[i].text, strlen(cases[i].text), err, sizeof err);
                char name[160];
                snprintf(name, sizeof name, "refused: %s", cases[i].want);
                T_EXPECT(name, r == -EINVAL && strstr(err, cases[i].want));
                manifest_free(&m);
        }
        struct manifest m;
        manifest_init(&m, "s", "p");
        char err[200];
        T_EXPECT("a missing file: empty, no error", manifest_load(&m, "/nonexistent/mayfly/m.jsonl", err,
                                                                  sizeof err) == 0 && m.n == 0 && !m.complete);
        manifest_free(&m);
}

int main(void) {
        test_round_trip();
        test_bad();
        return t_summary();
}
