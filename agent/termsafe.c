/* SPDX-License-Identifier: Apache-2.0 */
/* termsafe.c — text from S3 made safe for a terminal (termsafe.h). */
#include "termsafe.h"

#include <cjson/cJSON.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at p (not overlong, no surrogate, at most U+10FFFF), 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
        unsigned char c = p[0];
        size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!len || len > n)
                return 0;
        for (size_t k = 1; k < len; k++)
                if ((p[k] & 0xc0) != 0x80)
                        return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
            (c == 0xf4 && p[1] > 0x8f))
                return 0;
        return len;
}

/* The end of the escape sequence that starts at in[i] (ESC), exclusive; *sgr when it is an SGR (colour). */
static size_t escape_end(const unsigned char *in, size_t n, size_t i, bool *sgr) {
        *sgr = false;
        if (i + 1 >= n)
                return n;
        unsigned char k = in[i + 1];
        if (k == '[') { /* CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, a final byte 0x40-0x7e */
                size_t j = i + 2;
                bool only_digits = true;
                while (j < n && in[j] >= 0x20 && in[j] <= 0x3f) {
                        only_digits &= (in[j] >= '0' && in[j] <= '9') || in[j] == ';';
                        j++;
                }
                if (j < n && in[j] >= 0x40 && in[j] <= 0x7e) {
                        *sgr = only_digits && in[j] == 'm';
                        return j + 1;
                }
                return j; /* cut short: dropped up to where it stops */
        }
        if (k == ']' || k == 'P' || k == 'X' || k == '^' || k == '_') {
                /* OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \) */
                for (size_t j = i + 2; j < n; j++) {
                        if (in[j] == 0x07)
                                return j + 1;
                        if (in[j] == 0x1b && j + 1 < n && in[j + 1] == '\\')
                                return j + 2;
                }
                return n;
        }
        return i + 2; /* a two-byte escape (ESC c, ESC 7, ...) */
}

size_t term_safe(const char *text, size_t n, bool log_mode, char *out) {
        const unsigned char *in = (const unsigned char *)text;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
                unsigned char c = in[i];
                if (c == 0x1b) {
                        bool sgr;
                        size_t e = escape_end(in, n, i, &sgr);
                        if (sgr && log_mode) {
                                memmove(out + o, in + i, e - i);
                                o += e - i;
                        }
                        i = e;
                } else if (c >= 0x80) {
                        /* whole, valid UTF-8 sequences only (so that nothing removed joins what is left into a new
                         * control), and no C1 control (U+0080 to U+009F: CSI, OSC, ... in their 8-bit form) */
                        size_t len = utf8_seq(in + i, n - i);
                        bool c1 = len == 2 && c == 0xc2 && in[i + 1] <= 0x9f;
                        if (len && !c1) {
                                memmove(out + o, in + i, len);
                                o += len;
                        }
                        i += len ? len : 1;
                } else if (c < 0x20 || c == 0x7f) {
                        if (log_mode && (c == '\n' || c == '\t' || c == '\r'))
                                out[o++] = (char)c;
                        i++;
                } else
                        out[o++] = (char)in[i++];
        }
        return o;
}

char *term_safe_str(char *s) {
        s[term_safe(s, strlen(s), false, s)] = 0; /* only ever shorter: in place */
        return s;
}

void term_safe_json(cJSON *o) {
        for (cJSON *x = o; x; x = x->next) {
                if (cJSON_IsString(x) && x->valuestring)
                        term_safe_str(x->valuestring);
                if (x->child)
                        term_safe_json(x->child);
        }
}
