/* SPDX-License-Identifier: Apache-2.0 */
/* test.h — a tiny table-friendly test harness: one line per case, "PASS name" or "FAIL name: why". */
#pragma once
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int t_passed, t_failed;

static inline void t_result(const char *name, int ok, const char *fmt, ...) {
        if (ok) {
                t_passed++;
                printf("PASS %s\n", name);
                return;
        }
        t_failed++;
        printf("FAIL %s: ", name);
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
}

static inline void t_expect_str(const char *name, const char *got, const char *want) {
        t_result(name, got && strcmp(got, want) == 0, "\n--- got\n%s\n--- want\n%s", got ? got : "(null)", want);
}
#define T_EXPECT_STR(name, got, want) t_expect_str(name, got, want)
#define T_EXPECT(name, cond) t_result(name, (cond), "%s", #cond)

static inline int t_summary(void) {
        printf("%d passed, %d failed\n", t_passed, t_failed);
        return t_failed ? 1 : 0;
}
