/* SPDX-License-Identifier: Apache-2.0 */
/* test_logview.c — `mayfly logs`' printer: pieces to whole prefixed lines, a line cut between pieces, attempt
 * markers where attempts began (also learnt late), --since's skipped bytes, --tail's last lines, a piece past a gap
 * refused, long lines. */
#include <stdlib.h>

#include "cmd/logview.h"
#include "util.h"
#include "test.h"

/* Everything printed into a memory stream, as a string. */
struct cap {
        char *buf;
        size_t len;
        FILE *f;
};

static void cap_open(struct cap *c) {
        c->buf = NULL;
        c->len = 0;
        c->f = open_memstream(&c->buf, &c->len);
}

static const char *cap_text(struct cap *c) {
        fflush(c->f);
        return c->buf ? c->buf : "";
}

static void cap_close(struct cap *c) {
        fclose(c->f);
        free(c->buf);
}

static void test_interleave_and_markers(void) {
        static const char *const names[] = { "a", "bb" };
        struct cap c;
        cap_open(&c);
        struct logview v;
        T_EXPECT("init", lv_init(&v, c.f, names, 2, 0) == 0);
        T_EXPECT("stdout piece", lv_feed(&v, 0, 0, 0, "step 1\nste", 10) == 0);
        T_EXPECT("stderr piece", lv_feed(&v, 1, 1, 0, "warn\n", 5) == 0);
        T_EXPECT("a piece past a gap is refused", lv_feed(&v, 0, 0, 20, "x\n", 2) == -ERANGE);
        lv_mark(&v, 0, 2, "i-2", 14);
        lv_mark(&v, 0, 2, "i-2", 14); /* read again next round: once */
        lv_mark(&v, 0, 1, "i-1", 0);  /* the first attempt: no line */
        T_EXPECT("overlapping piece", lv_feed(&v, 0, 0, 7, "step 2\nresumed\n", 15) == 0);
        T_EXPECT_STR("lines, prefixed, the cut line whole, the marker where attempt 2 begins", cap_text(&c),
                     "a  | step 1\n"
                     "bb ! warn\n"
                     "a  | step 2\n"
                     "a  | -- attempt 2 on i-2 (resumed)\n"
                     "a  | resumed\n");
        lv_feed(&v, 1, 0, 0, "10%\r50%\n", 8);
        T_EXPECT("a progress bar's \\r keeps the prefix", strstr(cap_text(&c), "bb | 10%\rbb | 50%\n") != NULL);
        lv_mark(&v, 0, 3, "i-3", 5); /* learnt after its place was printed: said now */
        T_EXPECT("late marker said at once", strstr(cap_text(&c), "a  | -- attempt 3 on i-3 (resumed)\n") != NULL);
        lv_free(&v);
        cap_close(&c);
}

static void test_one_experiment_flush_tail_skip(void) {
        static const char *const names[] = { "only" };
        struct cap c;
        cap_open(&c);
        struct logview v;
        T_EXPECT("init with --tail 2", lv_init(&v, c.f, names, 1, 2) == 0);
        lv_feed(&v, 0, 0, 0, "1\n2\n3\n4", 7);
        lv_flush(&v);
        T_EXPECT_STR("nothing before the tail is done", cap_text(&c), "");
        lv_tail_done(&v);
        T_EXPECT_STR("one experiment: no prefix; the last 2 lines, the unfinished one ended", cap_text(&c), "3\n4\n");
        lv_skip(&v, 0, 1, 100);
        T_EXPECT("skipped bytes count as printed", v.s[0][1].at == 100);
        lv_feed(&v, 0, 1, 100, "late\n", 5);
        T_EXPECT("after the tail, straight out", strstr(cap_text(&c), "3\n4\nlate\n") != NULL);
        lv_free(&v);
        cap_close(&c);
}

static void test_long_line(void) {
        static const char *const names[] = { "x" };
        struct cap c;
        cap_open(&c);
        struct logview v;
        lv_init(&v, c.f, names, 1, 0);
        size_t n = LV_LINE_MAX + 10;
        char *big = malloc(n + 1);
        memset(big, 'z', n);
        big[n] = '\n';
        lv_feed(&v, 0, 0, 0, big, n + 1);
        const char *t = cap_text(&c);
        const char *nl = strchr(t, '\n');
        T_EXPECT("a line longer than the buffer comes out in pieces, nothing lost",
                 nl && (size_t)(nl - t) == LV_LINE_MAX && strlen(t) == n + 2);
        free(big);
        lv_free(&v);
        cap_close(&c);
}

int main(void) {
        test_interleave_and_markers();
        test_one_experiment_flush_tail_skip();
        test_long_line();
        return t_summary();
}
