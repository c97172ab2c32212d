/* SPDX-License-Identifier: Apache-2.0 */
/* test_regressions.c — every input the fuzzers ever crashed on (tests/fuzz/regressions/<harness>-<what>) fed
 * to its parser again: no crash, and the answer keeps the harness's invariants. */
#include <dirent.h>

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "../fuzz/fuzzinput.h"
#include "cmd/logview.h"
#include "cmd/statusview.h"
#include "jsonx.h"
#include "run/base/job.h"
#include "run/proc/manifest.h"
#include "run/view/cost.h"
#include "termsafe.h"
#include "test.h"
#include "util.h"
#include "aws/xml.h"

/* records-*: instances' records (an array, or one) joining a cost: no crash, no leak (under ASan). */
static bool records_ok(const char *data, size_t len) {
        _cleanup_(cjson_deletep) cJSON *in = cJSON_ParseWithLength(data, len);
        _cleanup_(cjson_deletep) cJSON *cost = cJSON_Parse("{\"instances\": [], \"currency\": \"USD\"}");
        if (!in)
                return true;
        _cleanup_(cjson_deletep) cJSON *arr = cJSON_IsArray(in) ? cJSON_Duplicate(in, true) : cJSON_CreateArray();
        if (!cJSON_IsArray(in))
                cJSON_AddItemToArray(arr, cJSON_Duplicate(in, true));
        return cost_add_records(cost, arr, 1700000000) == 0;
}

/* laptop-*: status.json NUL record NUL log, through status' and logs' printers: nothing unsafe comes out. */
static bool laptop_ok(const char *data, size_t len) {
        struct parts3 in = split3(data, len);
        char *out = NULL;
        size_t olen = 0;
        FILE *f = open_memstream(&out, &olen);
        _cleanup_(cjson_deletep) cJSON *st = cJSON_ParseWithLength(in.p[0], in.n[0]);
        if (cJSON_IsObject(st)) {
                term_safe_json(st);
                status_print_body(f, st);
        }
        fflush(f);
        bool ok = terminal_safe((const unsigned char *)out, olen, false);
        fclose(f);
        free(out);
        out = NULL;
        f = open_memstream(&out, &olen);
        static const char *const names[] = { "a", "b" };
        struct logview v;
        lv_init(&v, f, names, 2, 0);
        lv_feed(&v, 0, 0, 0, in.p[2], in.n[2]);
        lv_flush(&v);
        lv_free(&v);
        fflush(f);
        ok &= terminal_safe((const unsigned char *)out, olen, true);
        fclose(f);
        free(out);
        return ok;
}

int main(int argc, char **argv) {
        DIR *d = opendir("tests/fuzz/regressions");
        if (!d) {
                t_result("regressions directory", 0, "tests/fuzz/regressions missing (run from the repo root)");
                return t_summary();
        }
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char path[512], name[600];
                snprintf(path, sizeof path, "tests/fuzz/regressions/%s", de->d_name);
                snprintf(name, sizeof name, "regression %s", de->d_name);
                _cleanup_free_ char *data = NULL;
                size_t len = 0;
                if (read_file_capped(path, 1 << 20, &data, &len) < 0) {
                        t_result(name, 0, "unreadable");
                        continue;
                }
                if (str_has_prefix(de->d_name, "job-")) {
                        struct job j;
                        char err[512] = "";
                        int r = job_parse(data, len, &j, err, sizeof err);
                        if (r == 0)
                                job_free(&j);
                        t_result(name, r == 0 || (err[0] && !strchr(err, '\n')), "error not one line: %s", err);
                } else if (str_has_prefix(de->d_name, "xml-")) {
                        struct aws_error e;
                        int r = aws_error_parse(data, len, &e);
                        t_result(name, r < 0 || e.code[0], "an error with an empty code was accepted");
                } else if (str_has_prefix(de->d_name, "records-")) {
                        t_result(name, records_ok(data, len), "the records were refused");
                } else if (str_has_prefix(de->d_name, "laptop-")) {
                        t_result(name, laptop_ok(data, len), "a control character reached the terminal");
                } else if (str_has_prefix(de->d_name, "manifest-")) {
                        struct manifest m;
                        char err[200] = "";
                        bool ok = manifest_init(&m, "s", "p") == 0;
                        int r = ok ? manifest_parse(&m, data, len, err, sizeof err) : 0;
                        for (size_t i = 0; ok && r == 0 && i < m.n; i++)
                                ok = manifest_find(&m, m.v[i].key) != NULL;
                        manifest_free(&m);
                        t_result(name, ok && (r == 0 || !strncmp(err, "line ", 5)), "an error that names no line: %s",
                                 err);
                } else if (str_has_prefix(de->d_name, "archive-"))
                        continue; /* test_archive extracts these */
                else
                        t_result(name, 0, "unknown harness prefix");
        }
        closedir(d);
        return t_summary();
}
