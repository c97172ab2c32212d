/* SPDX-License-Identifier: Apache-2.0 */
/* logview.h — `mayfly logs`' printer, pure: pieces of each experiment's stdout and stderr (at their byte offsets,
 * in the order the caller merged them by time) become whole lines, each prefixed with its experiment ("name | " for
 * stdout, "name ! " for stderr) unless one experiment is shown; an attempt that began at an offset of its
 * experiment's stdout gets a "-- attempt N on i-… (resumed)" line there; --tail keeps only the last N lines of what
 * was there at the start. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define LV_MAX_EXPS 256
#define LV_LINE_MAX 8192              /* a longer line is printed in pieces of this size */
#define LV_MAX_MARKS 512

struct lv_stream {
        uint64_t at;                  /* the next byte offset of the stream to print */
        char part[LV_LINE_MAX];       /* the line begun but not yet ended */
        size_t npart;
};

struct lv_mark {
        int exp;
        uint64_t off;                 /* where the attempt's stdout begins */
        int attempt;
        char instance[32];
        bool shown;
};

struct logview {
        FILE *out;
        bool prefix;                  /* several experiments shown: every line names its own */
        bool raw;                     /* the bytes as stored (--raw), else made safe for the terminal */
        int width;                    /* of the widest name */
        const char *names[LV_MAX_EXPS];
        size_t n;
        struct lv_stream s[LV_MAX_EXPS][2]; /* [exp][0 stdout, 1 stderr] */
        struct lv_mark marks[LV_MAX_MARKS];
        size_t n_marks;
        /* --tail N: the last N lines held back until lv_tail_done */
        size_t tail;
        char **ring;
        size_t ring_n, ring_at;
        bool tailing;
};

/* names: the experiments shown (borrowed; they must outlive v); tail 0: everything. -ENOMEM. */
int lv_init(struct logview *v, FILE *out, const char *const *names, size_t n, size_t tail);
void lv_free(struct logview *v);
/* An attempt of experiment exp whose stdout begins at off (attempt >= 2 get a line); a repeat is ignored. */
void lv_mark(struct logview *v, int exp, int attempt, const char *instance, uint64_t off);
/* bytes [off, off + n) of experiment exp's stream err (0 stdout, 1 stderr); what was printed already is skipped,
 * a piece that begins past s->at is refused (-ERANGE: the bytes between are not there yet). */
int lv_feed(struct logview *v, int exp, int err, uint64_t off, const char *bytes, size_t n);
/* bytes that are not to be shown (--since): skipped, as if printed. */
void lv_skip(struct logview *v, int exp, int err, uint64_t to);
/* Every begun line ended (the run's logs are complete). */
void lv_flush(struct logview *v);
/* The held-back lines of --tail printed; from now on lines go straight out. */
void lv_tail_done(struct logview *v);
