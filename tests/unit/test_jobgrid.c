/* SPDX-License-Identifier: Apache-2.0 */
/* test_jobgrid.c — grids: a matrix expanded into one experiment per combination, names and commands substituted,
 * and what a matrix may not be. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "jsonx.h"
#include "run/base/job.h"
#include "run/base/jobgrid.h"
#include "util.h"
#include "test.h"

static void test_subst(void) {
        static const struct {
                const char *s, *key, *value, *want;
        } cases[] = {
                { "lr{lr}", "lr", "0.1", "lr0.1" },
                { "--lr={lr} --again={lr}", "lr", "3e-4", "--lr=3e-4 --again=3e-4" },
                { "echo ${lr} {lr}", "lr", "7", "echo ${lr} 7" },
                { "{lrx}{lr}", "lr", "1", "{lrx}1" },
                { "nothing here", "lr", "1", "nothing here" },
                { "", "lr", "1", "" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *got = job_matrix_subst(cases[i].s, cases[i].key, cases[i].value);
                char name[160];
                snprintf(name, sizeof name, "subst %s", cases[i].s);
                T_EXPECT_STR(name, got, cases[i].want);
                free(got);
        }
}

static void test_expand(void) {
        const char *spec = "{\"experiments\": [{\"name\": \"first\", \"command\": \"true\"},"
                           "{\"name\": \"lr{lr}-bs{bs}\", \"command\": [\"python\", \"train.py\", \"--lr\", \"{lr}\","
                           " \"--bs={bs}\", \"${HOME}\"], \"matrix\": {\"lr\": [0.1, 0.01], \"bs\": [32, 64, 128]}},"
                           "{\"name\": \"last\", \"command\": \"echo {lr}\"}]}";
        _cleanup_(cjson_deletep) cJSON *root = cJSON_Parse(spec);
        char err[256] = "";
        T_EXPECT("a 2 x 3 matrix expands", job_expand_matrix(root, JOB_MAX_EXPERIMENTS, err, sizeof err) == 0);
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "experiments");
        T_EXPECT("1 + 6 + 1 experiments, in order", cJSON_GetArraySize(ex) == 8);
        static const char *const names[] = { "first", "lr0.1-bs32", "lr0.1-bs64", "lr0.1-bs128", "lr0.01-bs32",
                                             "lr0.01-bs64", "lr0.01-bs128", "last" };
        bool ok = true;
        for (int i = 0; i < 8; i++)
                ok &= !strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ex, i),
                                                                                    "name")) ?: "", names[i]);
        T_EXPECT("names, the last key fastest", ok);
        const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ex, 5), "command");
        T_EXPECT_STR("values in the command", cJSON_GetStringValue(cJSON_GetArrayItem(cmd, 3)), "0.01");
        T_EXPECT_STR("inside a word too", cJSON_GetStringValue(cJSON_GetArrayItem(cmd, 4)), "--bs=64");
        T_EXPECT_STR("a shell's ${...} is left alone", cJSON_GetStringValue(cJSON_GetArrayItem(cmd, 5)), "${HOME}");
        T_EXPECT("no matrix key left", !cJSON_HasObjectItem(cJSON_GetArrayItem(ex, 1), "matrix"));
        T_EXPECT_STR("an experiment outside the grid is untouched",
                     cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ex, 7), "command")),
                     "echo {lr}");
        /* and the whole spec parses into those experiments */
        const char *job = "{\"name\": \"g\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": \"s3://my-bucket/r/\","
                          "\"experiments\": [{\"name\": \"lr{lr}\", \"command\": \"./t.sh {lr}\", \"matrix\": "
                          "{\"lr\": [1, 2, 3]}}]}";
        struct job j;
        T_EXPECT("a job with a grid parses", job_parse(job, strlen(job), &j, err, sizeof err) == 0);
        T_EXPECT("into its experiments", j.n_experiments == 3 && !strcmp(j.experiments[2].name, "lr3"));
        job_free(&j);
}

static void test_refused(void) {
        static const struct {
                const char *name, *experiments, *want;
        } cases[] = {
                { "a matrix that is a list", "[{\"name\": \"a{x}\", \"command\": \"t\", \"matrix\": [1, 2]}]",
                  "$.experiments[0].matrix: must be an object" },
                { "an empty list of values", "[{\"name\": \"a{x}\", \"command\": \"t\", \"matrix\": {\"x\": []}}]",
                  "$.experiments[0].matrix.x: must be a list" },
                { "an object as a value", "[{\"name\": \"a{x}\", \"command\": \"t\", \"matrix\": {\"x\": [{}]}}]",
                  "$.experiments[0].matrix.x: values are strings, numbers or booleans" },
                { "a name without a key", "[{\"name\": \"a\", \"command\": \"t\", \"matrix\": {\"x\": [1, 2]}}]",
                  "$.experiments[0].name: must name each matrix key" },
                { "a key that is not a word", "[{\"name\": \"a\", \"command\": \"t\", \"matrix\": {\"x y\": [1]}}]",
                  "is not a key" },
                { "too many experiments", "[{\"name\": \"a{x}{y}\", \"command\": \"t\", \"matrix\": {\"x\": [1,2,3,4,"
                  "5,6,7,8,9,10,11,12,13,14,15,16,17], \"y\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}}]",
                  "more than 256 experiments" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char spec[1024], err[256] = "";
                snprintf(spec, sizeof spec, "{\"experiments\": %s}", cases[i].experiments);
                _cleanup_(cjson_deletep) cJSON *root = cJSON_Parse(spec);
                int r = job_expand_matrix(root, JOB_MAX_EXPERIMENTS, err, sizeof err);
                t_result(cases[i].name, r == -EINVAL && strstr(err, cases[i].want), "got %d: %s", r, err);
        }
}

int main(void) {
        test_subst();
        test_expand();
        test_refused();
        return t_summary();
}
