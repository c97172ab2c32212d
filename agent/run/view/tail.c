/* SPDX-License-Identifier: Apache-2.0 */
/* tail.c — the end of a log as a terminal shows it ('\r' overprinting, escape sequences), read back as far as it
 * takes: a pure renderer and a reader that grows its window. */
#include "run/view/tail.h"

/* ---------- one line, as a terminal draws it ---------- */

struct cell {
        char b[4];
        unsigned char n;
};

struct term {
        struct cell c[TAIL_LINE_CELLS];
        size_t width, cur;       /* columns drawn; the cursor's column */
        bool more;               /* something was drawn beyond the last column kept */
};

/* Length of the UTF-8 sequence led by p[0] when its continuation bytes are there, else 1 (the escaper shows an
 * invalid byte as U+FFFD). */
static size_t seq_len(const unsigned char *p, size_t n) {
        size_t l = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 1;
        if (l > n)
                return 1;
        for (size_t i = 1; i < l; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 1;
        return l;
}

static void put(struct term *t, const char *p, size_t n) {
        if (t->cur >= TAIL_LINE_CELLS) {
                t->more = true;
                return;
        }
        for (size_t k = t->width; k < t->cur; k++)
                t->c[k] = (struct cell){ " ", 1 };
        memcpy(t->c[t->cur].b, p, n);
        t->c[t->cur].n = (unsigned char)n;
        t->cur++;
        t->width = MAX(t->width, t->cur);
}

/* CSI parameters, then a final byte 0x40..0x7e: erase in line (K) and the column moves (G, C, D) are applied, the
 * rest (colours, other rows) dropped. i is just past "ESC ["; returns the index past the sequence. */
static size_t csi(struct term *t, const char *s, size_t n, size_t i) {
        size_t p = 0;
        bool have = false;
        for (; i < n && !(s[i] >= 0x40 && s[i] <= 0x7e); i++) {
                if (s[i] >= '0' && s[i] <= '9' && p < 100000) {
                        p = p * 10 + (size_t)(s[i] - '0');
                        have = true;
                } else if (s[i] == ';')
                        p = 0, have = false; /* the ones applied take one parameter: the last counts */
        }
        if (i >= n)
                return n;
        size_t step = have && p ? p : 1;
        switch (s[i]) {
        case 'K':
                if (p == 1)
                        for (size_t k = 0; k < MIN(t->cur + 1, t->width); k++)
                                t->c[k] = (struct cell){ " ", 1 };
                else {
                        t->width = p == 2 ? 0 : MIN(t->width, t->cur);
                        t->more = t->more && p != 2 && t->cur >= TAIL_LINE_CELLS;
                }
                break;
        case 'G': t->cur = MIN(step - 1, (size_t)TAIL_LINE_CELLS); break;
        case 'C': t->cur = MIN(t->cur + step, (size_t)TAIL_LINE_CELLS); break;
        case 'D': t->cur -= MIN(t->cur, step); break;
        default: break;
        }
        return i + 1;
}

/* An escape sequence; i is just past ESC. Returns the index past it. */
static size_t escape(struct term *t, const char *s, size_t n, size_t i) {
        if (i >= n)
                return n;
        if (s[i] == '[')
                return csi(t, s, n, i + 1);
        if (s[i] == ']') { /* OSC (a window title): up to BEL or ESC \ */
                for (i++; i < n && s[i] != 0x07 && s[i] != 0x1b; i++)
                        ;
                return MIN(n, i + (i < n && s[i] == 0x1b ? 2 : 1));
        }
        if (strchr("()*+#%", s[i]) && s[i])
                return MIN(n, i + 2); /* a character set: one more byte */
        return i + 1;
}

/* s[0..n) (no '\n') drawn, then appended to out as one line: trailing blanks trimmed, "…" when cut. */
static int draw_line(struct term *t, const char *s, size_t n, struct buf *out) {
        t->width = t->cur = 0;
        t->more = false;
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char)s[i];
                if (c == '\r')
                        t->cur = 0, i++;
                else if (c == '\b')
                        t->cur -= t->cur ? 1 : 0, i++;
                else if (c == 0x1b)
                        i = escape(t, s, n, i + 1);
                else if ((c < 0x20 && c != '\t') || c == 0x7f)
                        i++;
                else {
                        size_t l = seq_len((const unsigned char *)s + i, n - i);
                        put(t, s + i, l);
                        i += l;
                }
        }
        size_t w = t->width;
        while (w && t->c[w - 1].n == 1 && t->c[w - 1].b[0] == ' ')
                w--;
        int r = 0;
        for (size_t k = 0; k < w && r >= 0; k++)
                r = buf_add(out, t->c[k].b, t->c[k].n);
        if (r >= 0 && t->more)
                r = buf_adds(out, "…");
        return r < 0 ? r : buf_addc(out, '\n');
}

/* ---------- the last lines ---------- */

/* Where the last max_lines lines of text[0..end) start, each [starts[k], ends[k]); returns how many (the line cut
 * by the window's start left out, unless it is the only one). */
static size_t find_lines(const char *s, size_t end, bool from_start, size_t max_lines, size_t *starts, size_t *ends) {
        size_t n = 0, b = end;
        while (n < max_lines) {
                size_t a = b;
                while (a > 0 && s[a - 1] != '\n')
                        a--;
                if (a == 0 && !from_start && n > 0)
                        break; /* the window began inside this line */
                starts[n] = a;
                ends[n] = b;
                n++;
                if (a == 0)
                        break;
                b = a - 1;
        }
        return n;
}

/* The end of one rendered line (line[0..len), its '\n' last) in at most max bytes, cut at a UTF-8 boundary. */
static int keep_end(const char *line, size_t len, size_t max, struct buf *out) {
        size_t text = len - 1, from = text - MIN(text, max ? max - 1 : 0);
        while (from < text && ((unsigned char)line[from] & 0xc0) == 0x80)
                from++;
        int r = buf_add(out, line + from, text - from);
        return r < 0 ? r : buf_addc(out, '\n');
}

int tail_render(const char *text, size_t len, bool from_start, size_t max_bytes, size_t max_lines, struct buf *out,
                size_t *ret_lines) {
        size_t end = len && text[len - 1] == '\n' ? len - 1 : len;
        size_t *starts = calloc(max_lines + 1, sizeof *starts), *ends = calloc(max_lines + 1, sizeof *ends);
        size_t *at = calloc(max_lines + 2, sizeof *at);
        struct term *t = malloc(sizeof *t);
        struct buf all = BUF_INIT(max_lines * (4 * TAIL_LINE_CELLS + 8) + 16);
        int r = starts && ends && at && t ? 0 : -ENOMEM;
        size_t n = r == 0 && len ? find_lines(text, end, from_start, max_lines, starts, ends) : 0;
        for (size_t k = n; r == 0 && k > 0; k--) { /* found newest first */
                at[n - k] = all.len;
                r = draw_line(t, text + starts[k - 1], ends[k - 1] - starts[k - 1], &all);
        }
        at[n] = all.len;
        size_t first = 0;
        while (r == 0 && first < n && all.len - at[first] > max_bytes)
                first++;
        if (r == 0 && first < n)
                r = buf_add(out, all.data + at[first], all.len - at[first]);
        else if (r == 0 && n)
                r = keep_end(all.data + at[n - 1], all.len - at[n - 1], max_bytes, out);
        if (r == 0 && ret_lines)
                *ret_lines = first < n ? n - first : n ? 1 : 0;
        free(starts);
        free(ends);
        free(at);
        free(t);
        buf_free(&all);
        return r;
}

int tail_read(tail_read_fn read_end, void *ud, size_t max_lines, struct buf *out, size_t *ret_lines, bool *ret_cut) {
        for (size_t want = TAIL_FIRST_READ;; want = MIN(2 * want, (size_t)TAIL_MAX_READ)) {
                char *text = NULL;
                size_t len = 0, lines = 0;
                bool whole = false;
                int r = read_end(ud, want, &text, &len, &whole);
                if (r < 0)
                        return r;
                bool last = whole || len < want || want >= TAIL_MAX_READ;
                size_t end = len && text[len - 1] == '\n' ? len - 1 : len, nl = 0;
                for (size_t i = 0; i < end && nl < max_lines; i++)
                        nl += text[i] == '\n';
                if (nl >= max_lines || last) {
                        /* enough: max_lines whole lines after the first '\n' (or nothing more to read) */
                        r = tail_render(text, len, whole, TAIL_KEEP_BYTES, max_lines, out, &lines);
                        free(text);
                        if (r == 0) {
                                *ret_lines = lines;
                                *ret_cut = !whole || (len ? nl + 1 : 0) > lines;
                        }
                        return r;
                }
                free(text);
        }
}
