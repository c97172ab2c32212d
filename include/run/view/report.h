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

#include "run/view/tail.h"
#include "util.h"

#define REPORT_MAX_BYTES (8u << 20)       /* the page */
#define REPORT_PLOT_BUCKETS 300           /* points of a plotted series, whatever the run's length */
#define REPORT_MAX_GPUS 16                /* plotted GPUs (more are named, not plotted) */
#define REPORT_MAX_SAMPLES (2u << 20)     /* GPU samples read from metrics.jsonl, all GPUs together */
#define REPORT_MAX_METRICS (64u << 20)    /* how much of the end of metrics.jsonl callers pass in */
#define REPORT_TAIL_LINES 40              /* of each log, as a terminal shows them (tail.h) */
#define REPORT_TAILS_BUDGET (512 * 1024)  /* all tails together: fewer bytes each when there are many logs */
#define REPORT_XM_MAX_BYTES (4u << 20)    /* how much of the end of an experiment's metrics file callers pass in */
#define REPORT_XM_MAX_KEYS 8              /* scalar metrics plotted per experiment */
#define REPORT_XM_MAX_POINTS (1u << 20)   /* points read per experiment, all keys together */
#define REPORT_XM_MAX_LINE 65536          /* a longer line of a metrics file is skipped */
#define REPORT_XM_MAX_ABS 1e15            /* a value beyond it (or not finite) is skipped */
#define REPORT_MAX_FILES 500              /* links listed */
#define REPORT_MAX_LANES 256              /* experiments drawn on the timeline */

struct cJSON;

struct report_log {
        const char *experiment, *stream;  /* "train", "stdout" */
        const char *text;                 /* the end of the log as read (any bytes) */
        size_t len;
        bool from_start;                  /* text is the whole log (nothing cut off before it) */
        bool cut;                         /* text is a rendered tail of a log that has more before it */
        const char *href;                 /* the whole log; NULL when there is none to link to */
};

/* An experiment's own metrics: the end of the JSON lines it wrote to $MAYFLY_METRICS_FILE. */
struct report_xmetrics {
        const char *experiment;
        const char *text;                 /* any bytes: a cut first line, bad lines are skipped */
        size_t len;
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
        const struct report_xmetrics *xmetrics;
        size_t n_xmetrics;
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
        struct report_xmetrics *xm;
        size_t xm_cap;
        char **owned;
        size_t n_owned, owned_cap;
};
char *report_build_own(struct report_build *b, char *taken);
int report_build_log(struct report_build *b, const char *experiment, const char *stream, char *text_taken, size_t len,
                     bool from_start, char *href_taken);
/* A log's tail as a terminal shows it, read through read_end (tail.h) in growing windows: the last
 * REPORT_TAIL_LINES lines. read_end's error is returned (-MF_ENOTFOUND: the log does not exist; nothing added). */
int report_build_tail(struct report_build *b, const char *experiment, const char *stream, tail_read_fn read_end,
                      void *ud, char *href_taken);
int report_build_xmetrics(struct report_build *b, const char *experiment, char *text_taken, size_t len);
/* Beyond REPORT_MAX_FILES files are only counted (in.files_more). */
int report_build_file(struct report_build *b, const char *label, char *href_taken, uint64_t size);
void report_build_free(struct report_build *b);

/* Pure helpers, exposed for the tests. */
/* s[0..n) as HTML text or attribute value: & < > " ' as entities, invalid UTF-8 as U+FFFD, control characters
 * other than tab and newline dropped. */
int report_escape(struct buf *b, const char *s, size_t n);
/* The phase the page shows: status.json's, or DONE once the outcome is no longer "running". */
const char *report_phase(const struct cJSON *status);
/* The clock the page draws a run with: for a running run now (bars, duration and cost up to now), else the time of
 * the status (its "updated"), else now. */
time_t report_clock(const struct cJSON *status, time_t now);
