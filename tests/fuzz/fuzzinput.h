/* SPDX-License-Identifier: Apache-2.0 */
/* fuzzinput.h — what the harnesses that take several inputs at once, and test_regressions that feeds them again,
 * share: an input split at its first two NUL bytes, and the check that text bound for a terminal carries no escape
 * or control character (but SGR colours, \r and tab in a log, and newlines). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct parts3 {
        const char *p[3];
        size_t n[3];
};

/* Pure: data split at its first two NUL bytes; a part that is not there is "" (length 0). */
static inline struct parts3 split3(const char *data, size_t size) {
        const char *end = data + size;
        const char *z1 = memchr(data, 0, size), *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(end - z1 - 1)) : NULL;
        struct parts3 r = { { data, z1 ? z1 + 1 : "", z2 ? z2 + 1 : "" },
                            { z1 ? (size_t)(z1 - data) : size, 0, z2 ? (size_t)(end - z2 - 1) : 0 } };
        if (z1)
                r.n[1] = (size_t)((z2 ? z2 : end) - r.p[1]);
        return r;
}

/* Only SGR sequences (ESC [ digits ; m) and \r \t (log_mode) and \n among the controls; no 8-bit C1 control. */
static inline bool terminal_safe(const unsigned char *s, size_t n, bool log_mode) {
        for (size_t i = 0; i < n; i++) {
                if (s[i] == 0x1b) {
                        if (!log_mode || i + 1 >= n || s[i + 1] != '[')
                                return false;
                        size_t j = i + 2;
                        while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == ';'))
                                j++;
                        if (j >= n || s[j] != 'm')
                                return false;
                        i = j;
                } else if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
                        return false;
                else if ((s[i] < 0x20 || s[i] == 0x7f) && s[i] != '\n' &&
                         !(log_mode && (s[i] == '\r' || s[i] == '\t')))
                        return false;
        }
        return true;
}
