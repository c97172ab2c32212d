/* SPDX-License-Identifier: Apache-2.0 */
/* report.h — report.html: one self-contained page (no scripts, no external fonts, styles or images) that shows a
 * run at a glance: outcome, instance, cost, a timeline of the experiments and their attempts, GPU utilisation and
 * memory per GPU over time as inline SVG, the tail of each log, links to the logs and outputs. A pure module: all
 * it shows is passed in (the parsed status.json, metrics.jsonl, log tails, file links), and everything that comes
 * from the run is HTML-escaped. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

#define REPORT_MAX_BYTES (8u << 20)       /* the page */
#define REPORT_PLOT_BUCKETS 300           /* points of a plotted series, whatever the run's length */
#define REPORT_MAX_GPUS 16                /* plotted GPUs (more are named, not plotted) */
#define REPORT_MAX_SAMPLES (2u << 20)     /* GPU samples read from metrics.jsonl, all GPUs together */
#define REPORT_MAX_METRICS (64u << 20)    /* how much of the end of metrics.jsonl callers pass in */
#define REPORT_TAIL_LINES 40
#define REPORT_TAIL_BYTES 4096            /* read from the end of each log */
#define REPORT_TAILS_BUDGET (96 * 1024)   /* all tails together: fewer bytes each when there are many logs */
#define REPORT_MAX_FILES 500              /* links listed */
#define REPORT_MAX_LANES 256              /* experiments drawn on the timeline */

struct cJSON;

struct report_log {
        const char *experiment, *stream;  /* "train", "stdout" */
        const char *text;                 /* the end of the log as read (any bytes) */
        size_t len;
        bool from_start;                  /* text is the whole log (nothing cut off before it) */
        const char *href;                 /* the whole log; NULL when there is none to link to */
};

struct report_file {
        const char *label;                /* "outputs/model.pt" */
        const char *href;
        uint64_t size;                    /* UINT64_MAX when unknown */
};

struct report_input {
        const struct cJSON *status;       /* status.json, parsed (required) */
        const char *metrics;              /* metrics.jsonl text, or its end (a partial first line is skipped) */
        size_t metrics_len;
        const struct report_log *logs;
        size_t n_logs;
        const struct report_file *files;
        size_t n_files;
        size_t files_more;                /* files not in the list */
        time_t now;                       /* "generated at", and the end of a running run's bars */
        const char *note;                 /* one line under the title (where the page was made, link lifetime) */
};

/* The page, appended to *out (its cap should be REPORT_MAX_BYTES). -EINVAL without a status object, -E2BIG
 * beyond the cap, -ENOMEM. */
int report_render(const struct report_input *in, struct buf *out);

/* A report_input that owns what it points to, built piece by piece (the agent from its disk, `mayfly report`
 * from S3). Strings passed as *_taken belong to the builder afterwards, also on failure. */
struct report_build {
        struct report_input in;
        struct cJSON *status;
        char *metrics;
        struct report_log *logs;
        size_t logs_cap;
        struct report_file *files;
        size_t files_cap;
        char **owned;
        size_t n_owned, owned_cap;
};
char *report_build_own(struct report_build *b, char *taken);
int report_build_log(struct report_build *b, const char *experiment, const char *stream, char *text_taken, size_t len,
                     bool from_start, char *href_taken);
/* Beyond REPORT_MAX_FILES files are only counted (in.files_more). */
int report_build_file(struct report_build *b, const char *label, char *href_taken, uint64_t size);
void report_build_free(struct report_build *b);

/* Pure helpers, exposed for the tests. */
/* s[0..n) as HTML text or attribute value: & < > " ' as entities, invalid UTF-8 as U+FFFD, control characters
 * other than tab and newline dropped. */
int report_escape(struct buf *b, const char *s, size_t n);
/* What a terminal would show of the end of a log, as at most max_lines lines of at most max_bytes of input: '\r'
 * overprinting resolved (the text after the last '\r' of a line), ANSI escape sequences removed, a line cut by
 * the byte limit (or by the caller's read, when !from_start) dropped. Appended to out; *ret_lines counts them. */
int report_tail(const char *text, size_t len, bool from_start, size_t max_bytes, size_t max_lines, struct buf *out,
                size_t *ret_lines);
