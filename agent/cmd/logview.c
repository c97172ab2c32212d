/* SPDX-License-Identifier: Apache-2.0 */
/* logview.c — `mayfly logs`' printer: pieces of logs to whole, prefixed lines, with attempt markers (logview.h). */
#include "cmd/logview.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "termsafe.h"
#include "util.h"

int lv_init(struct logview *v, FILE *out, const char *const *names, size_t n, size_t tail) {
        memset(v, 0, sizeof *v);
        v->out = out;
        v->n = MIN(n, (size_t)LV_MAX_EXPS);
        v->prefix = v->n > 1;
        for (size_t i = 0; i < v->n; i++) {
                v->names[i] = names[i];
                v->width = MAX(v->width, (int)MIN(strlen(names[i]), 40));
        }
        if (tail) {
                v->ring = calloc(tail, sizeof *v->ring);
                if (!v->ring)
                        return -ENOMEM;
                v->tail = tail;
                v->tailing = true;
        }
        return 0;
}

void lv_free(struct logview *v) {
        for (size_t i = 0; v->ring && i < v->tail; i++)
                free(v->ring[i]);
        free(v->ring);
        v->ring = NULL;
}

/* One whole line out (or into the --tail ring); unless raw, made safe for the terminal (termsafe.h). */
static void line(struct logview *v, int exp, char tag, const char *text, size_t n) {
        char head[64] = "", safe[LV_LINE_MAX + 1];
        if (!v->raw && n <= LV_LINE_MAX) {
                n = term_safe(text, n, true, safe);
                text = safe;
        }
        if (v->prefix)
                snprintf(head, sizeof head, "%-*.*s %c ", v->width, v->width, v->names[exp], tag);
        /* a progress bar's \r goes back to the line's start: the prefix is written again after it */
        char *l = NULL;
        size_t ln = 0;
        FILE *f = open_memstream(&l, &ln);
        if (!f)
                return;
        fputs(head, f);
        for (size_t i = 0; i < n; i++) {
                fputc(text[i], f);
                if (text[i] == '\r' && *head && !v->tailing) /* (held back: a line stays its own size) */
                        fputs(head, f);
        }
        if (fclose(f) != 0 || !l) {
                free(l);
                return;
        }
        if (!v->tailing) {
                fwrite(l, 1, ln, v->out); /* (--raw may hold a NUL) */
                fputc('\n', v->out);
                free(l);
                return;
        }
        free(v->ring[v->ring_at]);
        v->ring[v->ring_at] = l;
        v->ring_at = (v->ring_at + 1) % v->tail;
        v->ring_n = MIN(v->ring_n + 1, v->tail);
}

static void end_part(struct logview *v, int exp, int err) {
        struct lv_stream *s = &v->s[exp][err];
        if (s->npart)
                line(v, exp, err ? '!' : '|', s->part, s->npart);
        s->npart = 0;
}

static void marker_line(struct logview *v, struct lv_mark *m) {
        char t[160];
        int k = snprintf(t, sizeof t, "-- attempt %d on %s (resumed)", m->attempt, m->instance);
        end_part(v, m->exp, 0);
        end_part(v, m->exp, 1); /* the earlier attempt's unended lines are its own */
        line(v, m->exp, '|', t, (size_t)MIN(k, (int)sizeof t - 1));
        m->shown = true;
}

void lv_mark(struct logview *v, int exp, int attempt, const char *instance, uint64_t off) {
        if (exp < 0 || (size_t)exp >= v->n || attempt < 2 || v->n_marks >= LV_MAX_MARKS)
                return;
        for (size_t i = 0; i < v->n_marks; i++)
                if (v->marks[i].exp == exp && v->marks[i].attempt == attempt)
                        return;
        struct lv_mark *m = &v->marks[v->n_marks++];
        *m = (struct lv_mark){ .exp = exp, .off = off, .attempt = attempt };
        snprintf(m->instance, sizeof m->instance, "%s", instance ? instance : "?");
        /* learnt after its place was printed: said now rather than never */
        if (off < v->s[exp][0].at || (off == v->s[exp][0].at && off > 0))
                marker_line(v, m);
}

/* The first marker of exp not shown yet at or before offset `to` of its stdout, NULL none. */
static struct lv_mark *due(struct logview *v, int exp, uint64_t to) {
        struct lv_mark *best = NULL;
        for (size_t i = 0; i < v->n_marks; i++) {
                struct lv_mark *m = &v->marks[i];
                if (m->exp == exp && !m->shown && m->off <= to && (!best || m->off < best->off))
                        best = m;
        }
        return best;
}

/* Bytes of one stream, split into lines; no marker falls inside them. */
static void bytes_out(struct logview *v, int exp, int err, const char *p, size_t n) {
        struct lv_stream *s = &v->s[exp][err];
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\n') {
                        line(v, exp, err ? '!' : '|', s->part, s->npart);
                        s->npart = 0;
                        continue;
                }
                if (s->npart == sizeof s->part)
                        end_part(v, exp, err);
                s->part[s->npart++] = p[i];
        }
        s->at += n;
}

int lv_feed(struct logview *v, int exp, int err, uint64_t off, const char *bytes, size_t n) {
        if (exp < 0 || (size_t)exp >= v->n || err < 0 || err > 1)
                return -EINVAL;
        struct lv_stream *s = &v->s[exp][err];
        if (off > s->at)
                return -ERANGE;
        if (off + n <= s->at)
                return 0;
        size_t skip = (size_t)(s->at - off);
        bytes += skip;
        n -= skip;
        while (n) {
                struct lv_mark *m = err ? NULL : due(v, exp, s->at + n); /* (one that begins right after: now) */
                if (!m) {
                        bytes_out(v, exp, err, bytes, n);
                        break;
                }
                size_t k = m->off > s->at ? (size_t)(m->off - s->at) : 0;
                bytes_out(v, exp, err, bytes, k);
                bytes += k;
                n -= k;
                marker_line(v, m);
        }
        return 0;
}

void lv_skip(struct logview *v, int exp, int err, uint64_t to) {
        if (exp < 0 || (size_t)exp >= v->n || err < 0 || err > 1)
                return;
        struct lv_stream *s = &v->s[exp][err];
        if (to > s->at) {
                s->at = to;
                s->npart = 0;
        }
        for (size_t i = 0; !err && i < v->n_marks; i++)
                if (v->marks[i].exp == exp && v->marks[i].off < to)
                        v->marks[i].shown = true;
}

void lv_flush(struct logview *v) {
        for (size_t i = 0; i < v->n; i++)
                for (int e = 0; e < 2; e++)
                        end_part(v, (int)i, e);
        /* an attempt whose stdout never came (it wrote only to stderr, or nothing): said at the end */
        for (size_t k = 0; k < v->n_marks; k++)
                if (!v->marks[k].shown && v->marks[k].off <= v->s[v->marks[k].exp][0].at)
                        marker_line(v, &v->marks[k]);
}

void lv_tail_done(struct logview *v) {
        if (!v->tailing)
                return;
        v->tailing = false;
        size_t first = (v->ring_at + v->tail - v->ring_n) % v->tail;
        for (size_t k = 0; k < v->ring_n; k++) {
                char *l = v->ring[(first + k) % v->tail];
                fprintf(v->out, "%s\n", l ? l : "");
        }
        for (size_t i = 0; i < v->tail; i++) {
                free(v->ring[i]);
                v->ring[i] = NULL;
        }
        v->ring_n = v->ring_at = 0;
}
