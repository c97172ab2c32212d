/* SPDX-License-Identifier: Apache-2.0 */
/* test_regressions.c — every input the fuzzers ever crashed on (tests/fuzz/regressions/<harness>-<what>) fed
 * to its parser again: no crash, and the answer keeps the harness's invariants. */
#include <dirent.h>

#include "run/base/job.h"
#include "test.h"
#include "util.h"
#include "aws/xml.h"

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
                } else if (str_has_prefix(de->d_name, "archive-"))
                        continue; /* test_archive extracts these */
                else
                        t_result(name, 0, "unknown harness prefix");
        }
        closedir(d);
        return t_summary();
}
