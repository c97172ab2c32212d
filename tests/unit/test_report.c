/* SPDX-License-Identifier: Apache-2.0 */
/* test_report.c — the pure parts of issue 15: report.html (escaping, tails, plots, size), the cost ledger, SNS
 * ARNs and subjects, the price parsers, the Query form, and the notification's text and timing. */
#include <cjson/cJSON.h>
#include <math.h>

#include "aws/pricing.h"
#include "aws/query.h"
#include "aws/sns.h"
#include "run/view/cost.h"
#include "run/view/notify.h"
#include "run/view/report.h"
#include "test.h"

static void cjson_deletep(cJSON **j) { cJSON_Delete(*j); }

static void test_escape(void) {
        static const struct {
                const char *name, *in, *want;
                size_t n;
        } cases[] = {
                { "escape markup", "<a href=\"x\">&'</a>", "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;", 0 },
                { "escape keeps UTF-8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80", 0 },
                { "escape invalid UTF-8", "a\xff" "b\xc3", "a\xef\xbf\xbd" "b\xef\xbf\xbd", 0 },
                { "escape overlong and surrogate", "\xc0\xaf\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 0 },
                { "escape drops controls", "a\x01\x1b[0m\tb\nc\x7f\xc2\x85", "a[0m\tb\nc", 0 },
                { "escape NUL inside", "a\0b", "ab", 3 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct buf b = BUF_INIT(1024);
                int r = report_escape(&b, cases[i].in, cases[i].n ? cases[i].n : strlen(cases[i].in));
                T_EXPECT_STR(cases[i].name, r == 0 ? b.data : "(failed)", cases[i].want);
                buf_free(&b);
        }
}

static void test_tail(void) {
        static const struct {
                const char *name, *in;
                bool whole;
                size_t bytes, lines;
                const char *want;
        } cases[] = {
                { "tail whole", "a\nb\nc\n", true, 100, 10, "a\nb\nc\n" },
                { "tail last lines", "1\n2\n3\n4\n5\n", true, 100, 2, "4\n5\n" },
                { "tail no final newline", "1\n2\n3", true, 100, 2, "2\n3\n" },
                { "tail cut by bytes drops the partial line", "line one\nline two\nline three\n", true, 15,
                  10, "line three\n" },
                { "tail read from the middle drops the first line", "tial\nwhole\n", false, 100, 10, "whole\n" },
                { "tail carriage returns", "step 1/3\rstep 2/3\rstep 3/3\ndone\r\n", true, 100, 10,
                  "step 3/3\ndone\n" },
                { "tail ANSI colours and titles", "\x1b[1;31mred\x1b[0m \x1b]0;title\x07ok\n", true, 100, 10,
                  "red ok\n" },
                { "tail empty", "", true, 100, 10, "" },
                { "tail one long line without newline", "abcdefgh", false, 4, 10, "fgh\n" },
                { "tail overprint keeps what is longer", "abcdef\rXY\n", true, 100, 10, "XYcdef\n" },
                { "tail erase in line", "progress 50%\r\x1b[Kdone\n", true, 100, 10, "done\n" },
                { "tail erase whole line", "abc\x1b[2Kxy\n", true, 100, 10, "   xy\n" },
                { "tail column moves", "abcdef\x1b[3GZ\x1b[2DY\n", true, 100, 10, "aYZdef\n" },
                { "tail backspace", "ab\bX\n", true, 100, 10, "aX\n" },
                { "tail UTF-8 cells overwritten", "\xe2\x96\x88\xe2\x96\x88\xe2\x96\x88\rab\n", true, 100, 10,
                  "ab\xe2\x96\x88\n" },
                { "tail trailing blanks trimmed", "x  \t \r\n", true, 100, 10, "x  \t\n" },
                { "tail blank lines count", "a\n\n\nb\n", true, 100, 2, "\nb\n" },
                { "tail charset escape", "\x1b(Bok\n", true, 100, 10, "ok\n" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct buf b = BUF_INIT(4096);
                size_t lines = 0;
                int r = tail_render(cases[i].in, strlen(cases[i].in), cases[i].whole, cases[i].bytes, cases[i].lines,
                                    &b, &lines);
                T_EXPECT_STR(cases[i].name, r == 0 ? (b.data ? b.data : "") : "(failed)", cases[i].want);
                buf_free(&b);
        }
        struct buf b = BUF_INIT(1 << 20);
        struct buf in = BUF_INIT(64 * 1024);
        for (int i = 0; i < 3000; i++)
                buf_adds(&in, "x");
        size_t lines = 0;
        T_EXPECT("tail long line rendered", tail_render(in.data, in.len, true, 1 << 20, 10, &b, &lines) == 0);
        t_result("tail long line cut at the columns kept", b.len == TAIL_LINE_CELLS + strlen("…\n") &&
                 str_has_suffix(b.data, "x…\n"), "%zu bytes", b.len);
        buf_free(&b);
        buf_free(&in);
}

/* A log in memory read from its end, as the callers' readers do; counts the reads. */
struct memlog {
        const char *text;
        size_t len, reads, most;
};

static int memlog_read(void *ud, size_t max, char **ret, size_t *ret_len, bool *whole) {
        struct memlog *m = ud;
        size_t n = MIN(max, m->len);
        m->reads++;
        m->most = MAX(m->most, n);
        *ret = malloc(n + 1);
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, m->text + m->len - n, n);
        (*ret)[n] = 0;
        *ret_len = n;
        *whole = n == m->len;
        return 0;
}

/* tqdm: 60 lines of training, then 200 KiB of '\r' progress on one line, then 5 lines: the last 40 lines a
 * terminal shows, the progress bar as its last state. */
static void test_tail_tqdm(void) {
        struct buf log = BUF_INIT(1 << 20);
        for (int i = 0; i < 60; i++)
                buf_printf(&log, "\x1b[32mepoch %d\x1b[0m loss %.3f\n", i, 1.0 / (i + 1));
        for (int i = 0; log.len < 260 * 1024; i++)
                buf_printf(&log, "\r%3d%%|%-20.*s| %d/100000 [00:%02d<00:10, 9999.99it/s]", i * 100 / 20000,
                           i * 20 / 20000, "####################", i * 5, i % 60);
        buf_adds(&log, "\r100%|####################| 100000/100000 [00:10<00:00, 9999.99it/s]\n");
        for (int i = 0; i < 5; i++)
                buf_printf(&log, "eval %d ok\n", i);
        struct memlog m = { log.data, log.len, 0, 0 };
        struct buf out = BUF_INIT(TAIL_KEEP_BYTES + 16);
        size_t lines = 0;
        bool cut = false;
        int r = tail_read(memlog_read, &m, REPORT_TAIL_LINES, &out, &lines, &cut);
        t_result("tqdm tail: 40 lines", r == 0 && lines == 40, "r=%d lines=%zu", r, lines);
        t_result("tqdm tail: read back past the progress bar, within 1 MiB", m.most > 200 * 1024 &&
                 m.most <= TAIL_MAX_READ && m.reads >= 2, "%zu reads, at most %zu bytes", m.reads, m.most);
        const char *o = out.data ? out.data : "";
        T_EXPECT("tqdm tail: the first line shown is epoch 26", str_has_prefix(o, "epoch 26 loss 0.037\n"));
        T_EXPECT("tqdm tail: the bar's last state", strstr(o, "\n100%|####################| 100000/100000 "
                                                             "[00:10<00:00, 9999.99it/s]\neval 0 ok\n") != NULL);
        T_EXPECT("tqdm tail: colours removed, no carriage returns", !strchr(o, '\r') && !strchr(o, 0x1b));
        T_EXPECT("tqdm tail: ends with the last line", str_has_suffix(o, "eval 4 ok\n"));
        T_EXPECT("tqdm tail: cut", cut);
        /* a short log: read once, whole, not cut */
        struct memlog s = { "a\nb\n", 4, 0, 0 };
        buf_reset(&out);
        r = tail_read(memlog_read, &s, REPORT_TAIL_LINES, &out, &lines, &cut);
        T_EXPECT("short log: one read, whole", r == 0 && s.reads == 1 && lines == 2 && !cut);
        /* a log of nothing but progress: stops at 1 MiB, shows the bar */
        struct buf bar = BUF_INIT(3 << 20);
        while (bar.len < (2u << 20))
                buf_adds(&bar, "\r 50%|##########          | 50/100");
        struct memlog b = { bar.data, bar.len, 0, 0 };
        buf_reset(&out);
        r = tail_read(memlog_read, &b, REPORT_TAIL_LINES, &out, &lines, &cut);
        t_result("progress-only log: 1 MiB at most, its one line", r == 0 && b.most == TAIL_MAX_READ && lines == 1 &&
                 out.data && !strcmp(out.data, " 50%|##########          | 50/100\n"), "%zu %s", b.most, out.data);
        buf_free(&bar);
        buf_free(&out);
        buf_free(&log);
}

static cJSON *status_of(const char *text) {
        cJSON *st = cJSON_Parse(text);
        if (!st)
                t_result("status json parses", 0, "bad test JSON");
        return st;
}

static void test_hostile_status(void) {
        _cleanup_(cjson_deletep) cJSON *st = status_of(
                "{\"name\":\"<script>alert(1)</script>\",\"run_id\":\"r\\\"><b>\",\"outcome\":\"failed\","
                "\"error\":\"</td><img src=x onerror=alert(1)>\",\"started\":\"2026-01-01T00:00:00Z\","
                "\"updated\":\"2026-01-01T01:00:00Z\",\"results\":\"s3://b/r/\","
                "\"instance\":{\"id\":\"i-1\",\"type\":\"<svg onload=x>\"},"
                "\"experiments\":[{\"name\":\"a\",\"command\":[\"echo\",\"</code><script>\"],\"status\":\"done\","
                "\"start\":\"2026-01-01T00:00:00Z\",\"end\":\"2026-01-01T00:30:00Z\",\"exit_code\":1,"
                "\"reason\":\"exit\",\"attempts\":1}]}");
        const char *log = "ok\n</pre><script>alert(2)</script>\n";
        struct report_log logs[] = { { .experiment = "a", .stream = "stdout", .text = log, .len = strlen(log),
                                       .from_start = true, .href = "logs/a/stdout.log?x=\"><script>" } };
        struct report_file files[] = { { .label = "outputs/<b>.txt", .href = "outputs/%3Cb%3E.txt", .size = 5 } };
        struct report_input in = { .status = st, .logs = logs, .n_logs = 1, .files = files, .n_files = 1,
                                   .now = 1767229200, .note = "<i>note</i>" };
        struct buf b = BUF_INIT(REPORT_MAX_BYTES);
        int r = report_render(&in, &b);
        T_EXPECT("hostile status renders", r == 0);
        const char *h = b.data ? b.data : "";
        T_EXPECT("hostile: no script element", !strstr(h, "<script"));
        T_EXPECT("hostile: no img element", !strstr(h, "<img"));
        T_EXPECT("hostile: no injected svg", !strstr(h, "<svg onload"));
        T_EXPECT("hostile: no injected b", !strstr(h, "<b>") && !strstr(h, "<i>"));
        T_EXPECT("hostile: the name shows escaped", strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
        T_EXPECT("hostile: the log tail shows escaped", strstr(h, "&lt;/pre&gt;&lt;script&gt;alert(2)") != NULL);
        T_EXPECT("hostile: attribute quotes escaped", strstr(h, "?x=&quot;&gt;&lt;script&gt;") != NULL);
        T_EXPECT("page loads nothing: CSP default-src none", strstr(h, "default-src 'none'") != NULL);
        T_EXPECT("page has no external resources", !strstr(h, " src=\"") && !strstr(h, "<link") && !strstr(h, "url("));
        buf_free(&b);
        struct report_input bad = { 0 };
        struct buf b2 = BUF_INIT(1024);
        T_EXPECT("render needs a status", report_render(&bad, &b2) == -EINVAL);
        buf_free(&b2);
}

/* A 12-hour run sampled every 5 s on 8 GPUs, with two experiments and tails: the page stays small. */
static void test_twelve_hours(void) {
        const time_t t0 = 1767225600; /* 2026-01-01T00:00:00Z */
        const int samples = 12 * 3600 / 5, gpus = 8;
        struct buf m = BUF_INIT(64u << 20);
        int r = 0;
        for (int i = 0; i < samples && r == 0; i++) {
                char ts[32];
                time_t t = t0 + 5 * i;
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
                r = buf_printf(&m, "{\"time\":\"%s\",\"gpu\":{\"count\":%d,\"driver\":\"550.54\",\"source\":\"nvml\","
                                   "\"devices\":[", ts, gpus);
                for (int g = 0; g < gpus && r == 0; g++)
                        r = buf_printf(&m, "%s{\"name\":\"NVIDIA A100-SXM4-40GB\",\"uuid\":\"GPU-%08d\","
                                           "\"memory_total_mib\":40960,\"memory_used_mib\":%d,\"util\":%d}",
                                       g ? "," : "", g, 20000 + (i * 7 + g * 13) % 15000, (i * 31 + g * 17) % 101);
                if (r == 0)
                        r = buf_adds(&m, "]}}\n");
        }
        T_EXPECT("12h metrics generated", r == 0);
        _cleanup_(cjson_deletep) cJSON *st = status_of(
                "{\"name\":\"long\",\"run_id\":\"i-1-20260101T000000Z\",\"outcome\":\"succeeded\","
                "\"started\":\"2026-01-01T00:00:00Z\",\"updated\":\"2026-01-01T12:00:00Z\",\"results\":\"s3://b/r/\","
                "\"instance\":{\"id\":\"i-1\",\"type\":\"p4d.24xlarge\",\"lifecycle\":\"spot\"},"
                "\"experiments\":[{\"name\":\"a\",\"status\":\"done\",\"start\":\"2026-01-01T00:00:10Z\","
                "\"end\":\"2026-01-01T06:00:00Z\",\"exit_code\":0,\"reason\":\"exit\",\"attempts\":1},"
                "{\"name\":\"b\",\"status\":\"done\",\"start\":\"2026-01-01T06:00:00Z\","
                "\"end\":\"2026-01-01T11:59:50Z\",\"exit_code\":0,\"reason\":\"exit\",\"attempts\":2}]}");
        char log[4096];
        for (size_t i = 0; i < sizeof log; i++)
                log[i] = i % 80 == 79 ? '\n' : (char)('a' + i % 26);
        struct report_log logs[4];
        static const char *const names[] = { "a", "b" }, *const streams[] = { "stdout", "stderr" };
        for (int i = 0; i < 4; i++)
                logs[i] = (struct report_log){ .experiment = names[i / 2], .stream = streams[i % 2], .text = log,
                                               .len = sizeof log, .href = "logs/x.log" };
        struct report_input in = { .status = st, .metrics = m.data, .metrics_len = m.len, .logs = logs, .n_logs = 4,
                                   .now = t0 + 43200 };
        struct buf b = BUF_INIT(REPORT_MAX_BYTES);
        r = report_render(&in, &b);
        T_EXPECT("12h report renders", r == 0);
        t_result("12h x 5 s x 8 GPUs report is under 300 KB", b.len < 300 * 1024, "%zu bytes", b.len);
        printf("# 12h x 5 s x 8 GPUs report: %zu bytes\n", b.len);
        int plots = 0;
        for (const char *p = b.data; p && (p = strstr(p, "class=\"gpu-plot\"")); p++)
                plots++;
        t_result("12h report has a plot per GPU", plots == gpus, "%d plots", plots);
        /* each utilisation line has at most one point per bucket: count the numbers in gpu-0's path */
        const char *u = b.data ? strstr(b.data, "id=\"gpu-0-util\" d=\"") : NULL;
        int nums = 0;
        for (const char *p = u ? u + 19 : ""; *p && *p != '"'; p++)
                if ((*p >= '0' && *p <= '9') && !(p[-1] >= '0' && p[-1] <= '9'))
                        nums++;
        t_result("12h utilisation line downsampled to the buckets", u && nums <= 2 * REPORT_PLOT_BUCKETS + 2 &&
                 nums >= REPORT_PLOT_BUCKETS, "%d numbers", nums);
        T_EXPECT("12h timeline has both experiments", b.data && strstr(b.data, "data-experiment=\"a\"") &&
                 strstr(b.data, "data-experiment=\"b\"") && strstr(b.data, "×2"));
        buf_free(&b);
        buf_free(&m);
}

/* Count path commands 'M' in the d attribute of the element with that id. */
static int moves_in(const char *html, const char *id) {
        char pat[96];
        snprintf(pat, sizeof pat, "id=\"%s\" d=\"", id);
        const char *p = html ? strstr(html, pat) : NULL;
        int n = 0;
        for (p = p ? p + strlen(pat) : ""; *p && *p != '"'; p++)
                n += *p == 'M';
        return n;
}

static char *render_samples(const time_t *ts, size_t n, time_t started, time_t updated) {
        struct buf m = BUF_INIT(1 << 20);
        for (size_t i = 0; i < n; i++) {
                char t[32];
                struct tm tm;
                gmtime_r(&ts[i], &tm);
                strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
                buf_printf(&m, "{\"time\":\"%s\",\"gpu\":{\"devices\":[{\"name\":\"G\",\"uuid\":\"U\","
                               "\"memory_total_mib\":100,\"memory_used_mib\":%zu,\"util\":%zu}]}}\n", t, i % 100, i % 100);
        }
        char st[512], a[32], b[32];
        struct tm tm;
        gmtime_r(&started, &tm);
        strftime(a, sizeof a, "%Y-%m-%dT%H:%M:%SZ", &tm);
        gmtime_r(&updated, &tm);
        strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(st, sizeof st, "{\"name\":\"g\",\"outcome\":\"succeeded\",\"started\":\"%s\",\"updated\":\"%s\","
                 "\"experiments\":[]}", a, b);
        cJSON *j = cJSON_Parse(st);
        struct report_input in = { .status = j, .metrics = m.data, .metrics_len = m.len, .now = updated };
        struct buf out = BUF_INIT(REPORT_MAX_BYTES);
        int r = report_render(&in, &out);
        cJSON_Delete(j);
        buf_free(&m);
        if (r < 0) {
                buf_free(&out);
                return NULL;
        }
        return buf_steal(&out);
}

static void test_plot_gaps(void) {
        const time_t t0 = 1767225600;
        time_t ts[400];
        size_t n = 0;
        /* 10 minutes every 5 s, the instance stopped for 2 hours, 10 more minutes */
        for (int i = 0; i < 120; i++)
                ts[n++] = t0 + 5 * i;
        for (int i = 0; i < 120; i++)
                ts[n++] = t0 + 600 + 7200 + 5 * i;
        char *h = render_samples(ts, n, t0, t0 + 8400);
        t_result("plot: a 2-hour stop breaks the line", moves_in(h, "gpu-0-util") == 2, "%d moves",
                 moves_in(h, "gpu-0-util"));
        free(h);
        /* a 12-second run with 3 samples: one line, not three dots */
        time_t few[] = { t0 + 1, t0 + 6, t0 + 11 };
        h = render_samples(few, 3, t0, t0 + 12);
        t_result("plot: sparse samples are joined", moves_in(h, "gpu-0-util") == 1 && h &&
                 strstr(h, "id=\"gpu-0-util-band\" d=\"\""), "%d moves", moves_in(h, "gpu-0-util"));
        free(h);
}

static void test_cost(void) {
        struct price_point p[] = { { 0, 1.0 }, { 1800, 2.0 } };
        t_result("integrate across a price change", fabs(cost_integrate(p, 2, 900, 3600) - 1.25) < 1e-9, "%f",
                 cost_integrate(p, 2, 900, 3600));
        t_result("integrate before the first point uses it", fabs(cost_integrate(p + 1, 1, 0, 3600) - 2.0) < 1e-9,
                 "%f", cost_integrate(p + 1, 1, 0, 3600));
        T_EXPECT("integrate empty range", cost_integrate(p, 2, 50, 50) == 0);

        struct cost_ledger *l = calloc(1, sizeof *l);
        cost_ledger_init(l, "run-1");
        struct cost_seen s = { .id = "i-1", .type = "g5.xlarge", .az = "us-east-1a", .region = "us-east-1",
                               .lifecycle = "on-demand", .boot = 10000, .run_started = 10100, .now = 10200 };
        struct cost_instance *in = cost_observe(l, &s);
        T_EXPECT("observe: launched for the run, counted from launch", in && in->since == 10000);
        struct cost_ledger *l2 = calloc(1, sizeof *l2);
        cost_ledger_init(l2, "run-2");
        struct cost_seen s2 = s;
        s2.boot = 10100 - COST_LAUNCH_WINDOW - 1;
        struct cost_instance *in2 = cost_observe(l2, &s2);
        T_EXPECT("observe: up long before the run, counted from the run's start", in2 && in2->since == 10100);
        free(l2);

        _cleanup_(cjson_deletep) cJSON *j = cost_to_json(l, 10200);
        T_EXPECT("no price: no total, a reason", j && !cJSON_GetObjectItem(j, "total") &&
                 cJSON_GetStringValue(cJSON_GetObjectItem(j, "total_unknown")));
        in->have_price = true;
        in->hourly = 3.6;
        snprintf(in->source, sizeof in->source, "%s", COST_SOURCE_ONDEMAND);
        _cleanup_(cjson_deletep) cJSON *j2 = cost_to_json(l, 13600);
        const cJSON *tot = cJSON_GetObjectItem(j2, "total");
        _cleanup_free_ char *j2s = cJSON_PrintUnformatted(j2);
        t_result("on-demand: 3600 s at $3.60/h", cJSON_IsNumber(tot) && fabs(tot->valuedouble - 3.6) < 1e-6, "%s",
                 j2s ? j2s : "?");

        /* stopped and started again: the first boot (10000..13600) is kept, the second counted from its boot */
        s.boot = 20000;
        s.now = 20000;
        in->last = 13600;
        cost_observe(l, &s);
        long secs;
        double usd;
        bool known;
        cost_instance_total(l, 0, 21800, &secs, &usd, &known);
        t_result("two boots: seconds and cost add up", known && secs == 3600 + 1800 && fabs(usd - 5.4) < 1e-6,
                 "%ld s, %f", secs, usd);
        free(l);
}

static void test_sns(void) {
        static const struct {
                const char *arn;
                int want;
                bool fifo;
                const char *region;
        } cases[] = {
                { "arn:aws:sns:us-east-1:123456789012:mayfly-runs", 0, false, "us-east-1" },
                { "arn:aws:sns:eu-west-1:123456789012:runs.fifo", 0, true, "eu-west-1" },
                { "arn:aws-cn:sns:cn-north-1:123456789012:t", 0, false, "cn-north-1" },
                { "arn:aws:sqs:us-east-1:123456789012:q", -EINVAL, false, NULL },
                { "arn:aws:sns:us-east-1:12345678901:t", -EINVAL, false, NULL },
                { "arn:aws:sns:us-east-1:123456789012:bad name", -EINVAL, false, NULL },
                { "arn:aws:sns:us-east-1:123456789012:", -EINVAL, false, NULL },
                { "arn:aws:sns:us-east-1:123456789012:a:b", -EINVAL, false, NULL },
                { "arn:evil:sns:us-east-1:123456789012:t", -EINVAL, false, NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct sns_arn a;
                int r = sns_parse_arn(cases[i].arn, &a);
                char name[300];
                snprintf(name, sizeof name, "sns arn %s", cases[i].arn);
                t_result(name, r == cases[i].want && (r < 0 || (a.fifo == cases[i].fifo &&
                                                                 !strcmp(a.region, cases[i].region))),
                         "got %d", r);
        }
        char subj[SNS_MAX_SUBJECT + 1];
        sns_subject("mayfly: caf\xc3\xa9\nfailed  ", subj);
        T_EXPECT_STR("sns subject: ASCII, one line", subj, "mayfly: caf? failed");
        char longs[300];
        memset(longs, 'x', sizeof longs - 1);
        longs[sizeof longs - 1] = 0;
        sns_subject(longs, subj);
        T_EXPECT("sns subject: at most 100 characters", strlen(subj) == SNS_MAX_SUBJECT);
        sns_subject("\n\n", subj);
        T_EXPECT_STR("sns subject: never empty", subj, "-");
}

static void test_prices(void) {
        const char *one = "{\"FormatVersion\":\"aws_v1\",\"PriceList\":[\"{\\\"product\\\":{\\\"sku\\\":\\\"X\\\"},"
                          "\\\"terms\\\":{\\\"OnDemand\\\":{\\\"X.JRTCKXETXF\\\":{\\\"priceDimensions\\\":{"
                          "\\\"X.JRTCKXETXF.6YS6EN2CT7\\\":{\\\"unit\\\":\\\"Hrs\\\",\\\"pricePerUnit\\\":"
                          "{\\\"USD\\\":\\\"3.0600000000\\\"}}}}}}}\"]}";
        double usd = 0;
        size_t n = 0;
        char *next = NULL;
        int r = pricing_parse_products(one, strlen(one), &usd, &n, &next);
        t_result("GetProducts: one product", r == 0 && fabs(usd - 3.06) < 1e-9 && n == 1 && !next, "%d %f", r, usd);
        const char *two = "{\"PriceList\":[\"{\\\"terms\\\":{\\\"OnDemand\\\":{\\\"a\\\":{\\\"priceDimensions\\\":{"
                          "\\\"b\\\":{\\\"unit\\\":\\\"Hrs\\\",\\\"pricePerUnit\\\":{\\\"USD\\\":\\\"1.0\\\"}}}}}}}\","
                          "\"{\\\"terms\\\":{\\\"OnDemand\\\":{\\\"a\\\":{\\\"priceDimensions\\\":{"
                          "\\\"b\\\":{\\\"unit\\\":\\\"Hrs\\\",\\\"pricePerUnit\\\":{\\\"USD\\\":\\\"2.0\\\"}}}}}}}\"],"
                          "\"NextToken\":\"tok\"}";
        r = pricing_parse_products(two, strlen(two), &usd, &n, &next);
        T_EXPECT("GetProducts: two prices are refused, not averaged", r == -ERANGE);
        free(next);
        next = NULL;
        r = pricing_parse_products("{\"PriceList\":[]}", 16, &usd, &n, &next);
        T_EXPECT("GetProducts: no product", r == -ENOENT);
        T_EXPECT("GetProducts: garbage", pricing_parse_products("<html>", 6, &usd, &n, &next) == -MF_EPARSE);
        char *body = NULL;
        T_EXPECT("GetProducts request", pricing_products_request("g5.xlarge", "us-east-1", NULL, &body) == 0 && body &&
                 strstr(body, "\"Field\":\"instanceType\",\"Value\":\"g5.xlarge\"") &&
                 strstr(body, "\"Field\":\"regionCode\",\"Value\":\"us-east-1\""));
        free(body);

        const char *xml = "<DescribeSpotPriceHistoryResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
                          "<requestId>r</requestId><spotPriceHistorySet>"
                          "<item><instanceType>g5.xlarge</instanceType><productDescription>Linux/UNIX</productDescription>"
                          "<spotPrice>0.500000</spotPrice><timestamp>2026-01-01T02:00:00.000Z</timestamp>"
                          "<availabilityZone>us-east-1a</availabilityZone></item>"
                          "<item><instanceType>g5.xlarge</instanceType><productDescription>Windows</productDescription>"
                          "<spotPrice>9.9</spotPrice><timestamp>2026-01-01T01:00:00Z</timestamp>"
                          "<availabilityZone>us-east-1a</availabilityZone></item>"
                          "<item><instanceType>g5.xlarge</instanceType><productDescription>Linux/UNIX</productDescription>"
                          "<spotPrice>0.400000</spotPrice><timestamp>2026-01-01T00:00:00Z</timestamp>"
                          "<availabilityZone>us-east-1b</availabilityZone></item>"
                          "</spotPriceHistorySet><nextToken>more</nextToken></DescribeSpotPriceHistoryResponse>";
        struct xml_node *x = NULL;
        struct price_point pts[4];
        n = 0;
        r = xml_parse(xml, strlen(xml), &x);
        if (r == 0)
                r = pricing_parse_spot_page(x, "g5.xlarge", "us-east-1a", pts, 4, &n, &next);
        t_result("spot history page: only Linux/UNIX in the AZ", r == 0 && n == 1 && fabs(pts[0].usd_hour - 0.5) < 1e-9 &&
                 pts[0].t == 1767232800 && next && !strcmp(next, "more"), "%d n=%zu", r, n);
        free(next);
        xml_free(x);
}

static void test_query_form(void) {
        struct buf b = BUF_INIT(1024);
        struct kv p[] = { { "TopicArn", "arn:aws:sns:us-east-1:1:t" }, { "Message", "a b&c=d\n\xc3\xa9" } };
        int r = query_form("Publish", "2010-03-31", p, 2, &b);
        T_EXPECT_STR("query form", r == 0 ? b.data : "(failed)",
                     "Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At"
                     "&Message=a+b%26c%3Dd%0A%C3%A9");
        buf_free(&b);
}

static void test_notify(void) {
        struct job_notify none = { 0 }, hook = { .webhook = "https://h/x" }, all = { .webhook = "https://h/x",
                                                                                     .on_interrupt = true };
        T_EXPECT("due: nothing configured", notify_due(&none, "succeeded", false) == NOTIFY_NONE);
        T_EXPECT("due: running", notify_due(&hook, "running", false) == NOTIFY_NONE);
        T_EXPECT("due: a terminal outcome", notify_due(&hook, "failed", false) == NOTIFY_FINISHED);
        T_EXPECT("due: an interruption that ends the run", notify_due(&hook, "interrupted", false) == NOTIFY_INTERRUPTED);
        T_EXPECT("due: an interruption the run survives", notify_due(&hook, "interrupted", true) == NOTIFY_NONE);
        T_EXPECT("due: on_interrupt", notify_due(&all, "interrupted", true) == NOTIFY_INTERRUPTED);
        char k1[64], k2[64];
        notify_key(NOTIFY_INTERRUPTED, 100, k1);
        notify_key(NOTIFY_INTERRUPTED, 200, k2);
        T_EXPECT("keys: each interruption its own", strcmp(k1, k2) != 0);

        _cleanup_(cjson_deletep) cJSON *st = status_of(
                "{\"name\":\"sweep\",\"run_id\":\"i-1-x\",\"outcome\":\"failed\",\"started\":\"2026-01-01T00:00:00Z\","
                "\"updated\":\"2026-01-01T01:02:03Z\",\"results\":\"s3://b/r/sweep/i-1-x/\",\"exit_action\":\"terminate\","
                "\"instance\":{\"id\":\"i-1\",\"type\":\"g5.xlarge\",\"lifecycle\":\"spot\",\"availability_zone\":\"us-east-1a\"},"
                "\"experiments\":[{\"name\":\"a\",\"status\":\"done\",\"reason\":\"exit\",\"exit_code\":3,"
                "\"start\":\"2026-01-01T00:00:00Z\",\"end\":\"2026-01-01T01:00:00Z\"}],"
                "\"cost\":{\"currency\":\"USD\",\"total\":0.5,\"instances\":[{\"id\":\"i-1\",\"lifecycle\":\"spot\","
                "\"hourly_price\":0.48,\"price_source\":\"ec2:DescribeSpotPriceHistory\"}]}}");
        struct notify_msg m = { 0 };
        int r = notify_compose(st, NOTIFY_FINISHED, "https://b.s3/r/report.html?X-Amz-Signature=1", 1767229200, &m);
        T_EXPECT("compose", r == 0);
        T_EXPECT_STR("compose: subject", m.subject, "mayfly: sweep failed");
        T_EXPECT("compose: text has the outcome, duration, experiment, cost, link",
                 m.text && strstr(m.text, "mayfly: sweep failed") && strstr(m.text, "Duration: 1h02m03s") &&
                 strstr(m.text, "a exit 3 (1h00m00s)") && strstr(m.text, "Cost: $0.5000 USD") &&
                 strstr(m.text, "Report: https://b.s3/r/report.html?X-Amz-Signature=1 (link valid until "));
        _cleanup_(cjson_deletep) cJSON *w = m.json ? cJSON_Parse(m.json) : NULL;
        T_EXPECT("compose: webhook JSON has text (Slack, Teams) and the summary",
                 cJSON_GetStringValue(cJSON_GetObjectItem(w, "text")) &&
                 !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(w, "mayfly"), "outcome")),
                         "failed") &&
                 cJSON_GetObjectItem(cJSON_GetObjectItem(w, "mayfly"), "duration_seconds")->valuedouble == 3723);
        notify_msg_free(&m);
        char red[128];
        notify_redact_url("https://hooks.slack.com/services/T0/B0/secret", red, sizeof red);
        T_EXPECT_STR("redact a webhook URL", red, "https://hooks.slack.com/…");
        notify_redact_url("https://user:pw@example.com:8443", red, sizeof red);
        T_EXPECT_STR("redact user info", red, "https://example.com:8443");
}

static char *render(const char *status, const struct report_xmetrics *xm, size_t n_xm, time_t now) {
        _cleanup_(cjson_deletep) cJSON *st = status_of(status);
        struct report_input in = { .status = st, .xmetrics = xm, .n_xmetrics = n_xm, .now = now };
        struct buf out = BUF_INIT(REPORT_MAX_BYTES);
        if (!st || report_render(&in, &out) < 0) {
                buf_free(&out);
                return NULL;
        }
        return buf_steal(&out);
}

static int count_of(const char *h, const char *what) {
        int n = 0;
        for (const char *p = h; p && (p = strstr(p, what)); p++)
                n++;
        return n;
}

/* The experiment's own metrics: one plot per key (at most 8), downsampled, names escaped, bad lines skipped. */
static void test_xmetrics(void) {
        struct buf m = BUF_INIT(8 << 20);
        buf_adds(&m, "{\"step\": 0, \"lo"); /* a cut first line */
        buf_adds(&m, "\nnot json\n{\"step\": 1, \"loss\": NaN}\n{\"step\": 2, \"loss\": 1e999}\n[1, 2]\n");
        buf_adds(&m, "{\"step\": 3, \"loss\": \"high\", \"acc\": true}\n{\"loss\": 1e300}\n");
        for (int i = 0; i < 5000; i++)
                buf_printf(&m, "{\"step\": %d, \"loss\": %.6f, \"<b>lr</b>\": 0.001, \"epoch\": %d}\n", 10 * i,
                           2.0 / (1 + i * 0.01), i / 1000);
        buf_adds(&m, "{\"step\": 50000");
        for (int k = 0; k < 12; k++)
                buf_printf(&m, ", \"k%d\": %d", k, k);
        buf_adds(&m, "}\n");
        struct buf huge = BUF_INIT(2 * REPORT_XM_MAX_LINE);
        buf_adds(&huge, "{\"step\": 7, \"pad\": \"");
        while (huge.len < REPORT_XM_MAX_LINE + 10)
                buf_adds(&huge, "xxxxxxxxxxxxxxxx");
        buf_adds(&huge, "\", \"loss\": 5}\n");
        buf_add(&m, huge.data, huge.len);
        struct report_xmetrics xm[] = { { .experiment = "train<1>", .text = m.data, .len = m.len },
                                        { .experiment = "empty", .text = "garbage\n", .len = 8 } };
        char *h = render("{\"name\":\"x\",\"outcome\":\"succeeded\",\"started\":\"2026-01-01T00:00:00Z\","
                         "\"updated\":\"2026-01-01T01:00:00Z\",\"experiments\":[]}", xm, 2, 1767229200);
        T_EXPECT("xmetrics: renders", h != NULL);
        t_result("xmetrics: 8 plots (the first 8 keys)", count_of(h, "class=\"xm-plot\"") == 8, "%d",
                 count_of(h, "class=\"xm-plot\""));
        T_EXPECT("xmetrics: loss plotted first", h && strstr(h, "id=\"xm-0-0\"") &&
                 strstr(h, "data-key=\"loss\" aria-label=\"loss\""));
        T_EXPECT("xmetrics: key names escaped", h && strstr(h, "data-key=\"&lt;b&gt;lr&lt;/b&gt;\"") &&
                 !strstr(h, "<b>lr"));
        T_EXPECT("xmetrics: experiment name escaped", h && strstr(h, "<h3>train&lt;1&gt;</h3>"));
        T_EXPECT("xmetrics: keys beyond 8 counted", h && strstr(h, "values of keys beyond the first 8"));
        T_EXPECT("xmetrics: bad lines skipped and counted", h && strstr(h, "8 lines skipped"));
        T_EXPECT("xmetrics: step is x", h && strstr(h, "text-anchor=\"end\">step</text>"));
        const char *u = h ? strstr(h, "id=\"xm-0-0-line\" d=\"") : NULL;
        int nums = 0;
        for (const char *p = u ? u + 20 : ""; *p && *p != '"'; p++)
                if ((*p >= '0' && *p <= '9') && !(p[-1] >= '0' && p[-1] <= '9'))
                        nums++;
        t_result("xmetrics: the loss line downsampled to the buckets", u && nums <= 2 * REPORT_PLOT_BUCKETS + 2 &&
                 nums >= REPORT_PLOT_BUCKETS, "%d numbers", nums);
        T_EXPECT("xmetrics: the min-max band drawn",
                 u && strstr(h, "id=\"xm-0-0-band\" d=\"M"));
        T_EXPECT("xmetrics: an experiment with no numbers says so", h && strstr(h, "<h3>empty</h3>\n<p class=\"muted\">"
                                                                               "No numbers"));
        T_EXPECT("xmetrics: no script", h && !strstr(h, "<script"));
        free(h);
        /* without a step: x is the line's number */
        const char *nostep = "{\"loss\": 3}\n{\"loss\": 2}\n{\"loss\": 1}\n";
        struct report_xmetrics one = { .experiment = "a", .text = nostep, .len = strlen(nostep) };
        h = render("{\"name\":\"x\",\"outcome\":\"running\",\"experiments\":[]}", &one, 1, 1767229200);
        T_EXPECT("xmetrics: no step, x is the line", h && strstr(h, "text-anchor=\"end\">line</text>") &&
                 count_of(h, "class=\"xm-plot\"") == 1);
        free(h);
        h = render("{\"name\":\"x\",\"outcome\":\"running\",\"experiments\":[]}", NULL, 0, 1767229200);
        T_EXPECT("xmetrics: no section without metrics", h && !strstr(h, "id=\"xmetrics\""));
        free(h);
        buf_free(&huge);
        buf_free(&m);
}

/* A finished run shows DONE; a running one is drawn up to now: bars, duration and cost from one clock. */
static void test_clock_and_phase(void) {
        const char *fin = "{\"name\":\"x\",\"outcome\":\"succeeded\",\"phase\":\"SHIP\","
                          "\"started\":\"2026-01-01T00:00:00Z\",\"updated\":\"2026-01-01T00:01:40Z\",\"experiments\":[]}";
        char *h = render(fin, NULL, 0, 1767229200);
        T_EXPECT("finished run: phase DONE", h && strstr(h, "<th>phase</th><td>DONE</td>") && !strstr(h, ">SHIP<"));
        T_EXPECT("finished run: duration to its last status", h && strstr(h, "<th>duration</th><td>1m40s</td>"));
        free(h);
        /* running: status written at 00:00:01 with the instance's cost up to then; the page made at 00:00:26 */
        const char *run = "{\"name\":\"x\",\"outcome\":\"running\",\"phase\":\"RUN\","
                          "\"started\":\"2026-01-01T00:00:00Z\",\"updated\":\"2026-01-01T00:00:01Z\","
                          "\"instance\":{\"id\":\"i-1\",\"type\":\"g5.xlarge\"},\"experiments\":[],"
                          "\"cost\":{\"currency\":\"USD\",\"total\":0.001,\"instances\":[{\"id\":\"i-1\","
                          "\"type\":\"g5.xlarge\",\"since\":\"2026-01-01T00:00:00Z\",\"until\":\"2026-01-01T00:00:01Z\","
                          "\"seconds\":1,\"hourly_price\":3.6,\"cost\":0.001}]}}";
        h = render(run, NULL, 0, 1767225600 + 26);
        T_EXPECT("running run: phase as the status says", h && strstr(h, "<th>phase</th><td>RUN</td>"));
        T_EXPECT("running run: duration so far", h && strstr(h, "<td>26s so far</td>"));
        T_EXPECT("running run: the instance's time up to now", h && strstr(h, "<td>26s</td><td>$3.6000/h</td>"));
        T_EXPECT("running run: its cost up to now", h && strstr(h, "id=\"cost-total\">$0.0260 USD so far<") &&
                 strstr(h, "<td>$0.0260</td>"));
        /* the instance's bar spans the whole axis: the run's span is [started, now] */
        const char *bar = h ? strstr(h, "<rect class=\"bar st-instance\" x=\"150.0\" y=\"9\" width=\"900.0\"") : NULL;
        T_EXPECT("running run: the instance bar reaches now", bar != NULL);
        free(h);
}

int main(int argc, char **argv) {
        test_escape();
        test_tail();
        test_tail_tqdm();
        test_xmetrics();
        test_clock_and_phase();
        test_hostile_status();
        test_twelve_hours();
        test_plot_gaps();
        test_cost();
        test_sns();
        test_prices();
        test_query_form();
        test_notify();
        return t_summary();
}
