/* SPDX-License-Identifier: Apache-2.0 */
/* test_job.c — the job spec: every error of a spec at once, each with its JSON path, a typo named with the key it
 * is near; the edit distance behind that. (The accepted forms are covered by tests/blackbox/test_spec.py and the
 * fuzz harness.) */
#include "run/base/job.h"
#include "util.h"
#include "test.h"

static void test_distance(void) {
        static const struct {
                const char *a, *b;
                size_t want;
        } cases[] = { { "experiments", "experiments", 0 }, { "experimets", "experiments", 1 },
                      { "expreiments", "experiments", 1 }, { "resluts", "results", 1 }, { "", "abc", 3 },
                      { "source", "results", 6 } };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char name[120];
                snprintf(name, sizeof name, "distance %s -> %s", cases[i].a, cases[i].b);
                T_EXPECT(name, job_edit_distance(cases[i].a, cases[i].b) == cases[i].want);
        }
}

static bool has(const struct job_errors *e, const char *s) {
        for (size_t i = 0; i < e->n; i++)
                if (strstr(e->lines[i], s))
                        return true;
        return false;
}

static void test_all_errors(void) {
        const char *spec = "{\"name\": \"bad name!\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": "
                           "\"s3://my-bucket/r/\", \"experimets\": [], \"on_exit\": \"explode\", \"stop_grace\": \"x\"}";
        struct job_errors e;
        T_EXPECT("a bad spec is refused", job_check(spec, strlen(spec), NULL, &e) == -EINVAL);
        T_EXPECT("every error at once", e.n >= 4);
        T_EXPECT("the typo, with the key it is near", has(&e, "$.experimets: unknown key (did you mean 'experiments'?)"));
        T_EXPECT("the name", has(&e, "$.name: must be 1-64 characters"));
        T_EXPECT("the missing experiments", has(&e, "$.experiments: is required"));
        T_EXPECT("the exit action", has(&e, "$.on_exit"));
        T_EXPECT("the duration", has(&e, "$.stop_grace"));
        char err[JOB_ERROR_LEN];
        struct job j;
        T_EXPECT("job_parse gives the first of them", job_parse(spec, strlen(spec), &j, err, sizeof err) == -EINVAL &&
                                                              !strcmp(err, e.lines[0]));
        const char *far = "{\"zzzqqq\": 1}";
        job_check(far, strlen(far), NULL, &e);
        T_EXPECT("a key near nothing: no guess", has(&e, "$.zzzqqq: unknown key") && !has(&e, "did you mean"));
        const char *broken = "{\n  \"name\": \"x\",\n  oops\n}";
        job_check(broken, strlen(broken), NULL, &e);
        T_EXPECT("malformed JSON: the line", e.n == 1 && has(&e, "malformed JSON near line 3"));
        const char *good = "{\"name\": \"ok\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": \"s3://my-bucket/r/\","
                           "\"experiments\": [{\"name\": \"a\", \"command\": \"true\"}]}";
        T_EXPECT("a good spec: no errors", job_check(good, strlen(good), &j, &e) == 0 && e.n == 0 && j.n_experiments == 1);
        job_free(&j);
}

static void test_sizes(void) {
        static const struct {
                const char *s;
                int rc;
                uint64_t want;
        } cases[] = { { "0", 0, 0 },           { "1048576", 0, 1048576 },   { "512KiB", 0, 512ull << 10 },
                      { "500MiB", 0, 500ull << 20 }, { "10GiB", 0, 10ull << 30 }, { "10G", 0, 10ull << 30 },
                      { "2TiB", 0, 2ull << 40 }, { "1GB", 0, 1000000000 }, { "3KB", 0, 3000 },
                      { "100B", 0, 100 },       { "", -EINVAL, 0 },         { "GiB", -EINVAL, 0 },
                      { "-1", -EINVAL, 0 },     { " 1", -EINVAL, 0 },       { "1 GiB", -EINVAL, 0 },
                      { "1gib", -EINVAL, 0 },   { "1.5GiB", -EINVAL, 0 },   { "1048577TiB", -EINVAL, 0 },
                      { "99999999999999999999", -EINVAL, 0 } };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char name[120];
                uint64_t v = 0;
                int r = parse_size(cases[i].s, &v);
                snprintf(name, sizeof name, "size '%s'", cases[i].s);
                t_result(name, r == cases[i].rc && (r < 0 || v == cases[i].want), "rc %d, %llu", r,
                         (unsigned long long)v);
        }
        const char *base = "{\"name\": \"ok\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": \"s3://my-bucket/r/\","
                           "\"experiments\": [{\"name\": \"a\", \"command\": \"true\"}]";
        char spec[512];
        struct job j;
        struct job_errors e;
        snprintf(spec, sizeof spec, "%s}", base);
        T_EXPECT("log_max: 10 GiB by default", job_check(spec, strlen(spec), &j, &e) == 0 && j.log_max == 10ull << 30);
        job_free(&j);
        snprintf(spec, sizeof spec, "%s, \"log_max\": \"64MiB\"}", base);
        T_EXPECT("log_max: a size", job_check(spec, strlen(spec), &j, &e) == 0 && j.log_max == 64ull << 20);
        job_free(&j);
        snprintf(spec, sizeof spec, "%s, \"log_max\": 2097152}", base);
        T_EXPECT("log_max: bytes", job_check(spec, strlen(spec), &j, &e) == 0 && j.log_max == 2097152);
        job_free(&j);
        snprintf(spec, sizeof spec, "%s, \"log_max\": \"100KiB\"}", base);
        T_EXPECT("log_max: less than 1 MiB refused", job_check(spec, strlen(spec), NULL, &e) == -EINVAL &&
                                                             has(&e, "$.log_max: must be at least 1.0 MiB"));
        snprintf(spec, sizeof spec, "%s, \"log_max\": \"lots\"}", base);
        T_EXPECT("log_max: not a size", job_check(spec, strlen(spec), NULL, &e) == -EINVAL &&
                                                has(&e, "$.log_max: is not a size"));
}

static int parse_with(const char *extra, struct job *j, struct job_errors *e) {
        char spec[2048];
        snprintf(spec, sizeof spec, "{\"name\": \"ok\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": "
                 "\"s3://my-bucket/r/\", \"experiments\": [{\"name\": \"a\", \"command\": \"true\"}]%s}", extra);
        return job_check(spec, strlen(spec), j, e);
}

static void test_inputs(void) {
        struct job j;
        struct job_errors e;
        int r = parse_with(", \"scratch\": \"prefer-instance-store\", \"checkpoint\": {\"path\": \"scratch:ck\"},"
                           "\"inputs\": [{\"name\": \"image-net\", \"source\": \"s3://data-b/in/\", \"path\": "
                           "\"scratch:data/\", \"read_only\": true}, {\"name\": \"vocab\", \"source\": "
                           "\"s3://data-b/v.txt\", \"sync\": false}]", &j, &e);
        T_EXPECT("inputs: accepted", r == 0 && e.n == 0);
        if (r == 0) {
                T_EXPECT("a prefix, in the scratch directory, its '/' gone", j.n_inputs == 2 && j.inputs[0].prefix &&
                                 j.inputs[0].scratch && !strcmp(j.inputs[0].path, "data") && j.inputs[0].read_only &&
                                 j.inputs[0].sync);
                T_EXPECT("one object: the default place is a directory named after it", !j.inputs[1].prefix &&
                                 !j.inputs[1].scratch && !strcmp(j.inputs[1].path, "inputs/vocab/") &&
                                 !j.inputs[1].sync);
                T_EXPECT("the checkpoint in the scratch directory", j.checkpoint_scratch &&
                                 !strcmp(j.checkpoint_dir, "ck") && j.scratch == JOB_SCRATCH_PREFER);
                job_free(&j);
        }
        char v[JOB_INPUT_NAME_MAX + 1];
        job_input_var("image-net_2", v, sizeof v);
        T_EXPECT("the variable's suffix", !strcmp(v, "IMAGE_NET_2"));
        static const struct {
                const char *extra, *want;
        } bad[] = {
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"s3://b-b/x/\", \"path\": \"../up\"}]",
                  "$.inputs[0].path: must be a path under the workdir" },
                { ", \"inputs\": [{\"name\": \"a b\", \"source\": \"s3://b-b/x/\"}]", "$.inputs[0].name: must be" },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"http://x/\"}]", "$.inputs[0].source: must be an s3" },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"s3://b-b/x/\", \"path\": \"scratch:d\"}]",
                  "$.inputs[0]: is in the scratch directory, which needs" },
                { ", \"inputs\": [{\"name\": \"a-b\", \"source\": \"s3://b-b/x/\"}, {\"name\": \"A_B\", "
                  "\"source\": \"s3://b-b/y/\"}]", "$.inputs[1]: has the same variable MAYFLY_INPUT_… as input 'a-b'" },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"s3://b-b/x/\", \"path\": \"d\"}, {\"name\": "
                  "\"b\", \"source\": \"s3://b-b/y/\", \"path\": \"d/e\"}]", "$.inputs[1]: is staged where input 'a'" },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"s3://b-b/x/\", \"syncc\": false}]",
                  "$.inputs[0].syncc: unknown key (did you mean 'sync'?)" },
                { ", \"inputs\": {}", "$.inputs: must be an array" },
                { ", \"scratch\": \"nvme\"", "$.scratch: must be instance-store or prefer-instance-store" },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"s3://b-b/x/\", \"path\": \"./data\"}]",
                  "$.inputs[0].path: must be a path under the workdir" },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"s3://b-b/x/\", \"path\": \"d//e\"}]",
                  "$.inputs[0].path: must be a path under the workdir" },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"s3://b-b/x/v.txt\", \"path\": \"d/\"}, "
                  "{\"name\": \"b\", \"source\": \"s3://b-b/y/v.txt\", \"path\": \"d/\"}]",
                  "$.inputs[1]: is staged where input 'a'" },
                { ", \"inputs\": [{\"source\": \"s3://b-b/x/\"}, {\"name\": \"b\", \"source\": \"s3://b-b/y/\"}]",
                  "$.inputs[0].name: " },
                { ", \"inputs\": [{\"name\": \"a\", \"source\": \"x/\"}, {\"name\": \"b\", \"source\": \"s3://b-b/y/\"}]",
                  "$.inputs[0].source: must be an s3" },
                { ", \"checkpoint\": {\"path\": \"scratch:ck\"}", "$.checkpoint.path: is in the scratch directory" },
                { ", \"scratch\": \"instance-store\", \"checkpoint\": {\"path\": \"scratch:/abs\"}",
                  "$.checkpoint.path: must be a directory under the workdir, or scratch:DIR" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                char name[200];
                snprintf(name, sizeof name, "refused, named: %s", bad[i].want);
                T_EXPECT(name, parse_with(bad[i].extra, NULL, &e) == -EINVAL && has(&e, bad[i].want));
        }
        T_EXPECT("inputs: two objects into one directory", parse_with(", \"inputs\": [{\"name\": \"a\", \"source\": "
                 "\"s3://b-b/x/v.txt\", \"path\": \"d/\"}, {\"name\": \"b\", \"source\": \"s3://b-b/y/w.txt\", "
                 "\"path\": \"d/\"}]", NULL, &e) == 0);
        T_EXPECT("inputs: data-b and data-bb are not nested", parse_with(", \"inputs\": [{\"name\": \"a\", \"source\": "
                 "\"s3://b-b/x/\", \"path\": \"data\"}, {\"name\": \"b\", \"source\": \"s3://b-b/y/\", \"path\": "
                 "\"database\"}]", NULL, &e) == 0);
}

static int parse_spec(const char *spec, struct job *j, struct job_errors *e) {
        return job_check(spec, strlen(spec), j, e);
}

static void test_gang(void) {
        struct job j;
        struct job_errors e;
        const char *fleet = "\"run_id\": \"r1\", \"fleet\": {\"group\": \"g\", \"launch_template\": \"t\", \"size\": 2}";
        char spec[1024];
        snprintf(spec, sizeof spec, "{\"name\": \"ok\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": "
                 "\"s3://my-bucket/r/\", %s, \"rendezvous_port\": 29600, \"gang_timeout\": \"2m\", \"experiments\": "
                 "[{\"name\": \"a\", \"command\": \"true\", \"nodes\": 2}, {\"name\": \"b\", \"command\": \"true\"}]}", fleet);
        int r = parse_spec(spec, &j, &e);
        T_EXPECT("a gang of 2 in a group of 2: accepted", r == 0 && e.n == 0);
        if (r == 0) {
                T_EXPECT("nodes 2, and 1 by default", j.experiments[0].nodes == 2 && j.experiments[1].nodes == 1);
                T_EXPECT("rendezvous_port and gang_timeout", j.rendezvous_port == 29600 && j.gang_timeout == 120);
                job_free(&j);
        }
        r = parse_with("", &j, &e);
        T_EXPECT("defaults: port 29500, gang_timeout 15 min", r == 0 && j.rendezvous_port == 29500 &&
                         j.gang_timeout == 900 && j.experiments[0].nodes == 1);
        if (r == 0)
                job_free(&j);
        snprintf(spec, sizeof spec, "{\"name\": \"ok\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": "
                 "\"s3://my-bucket/r/\", %s, \"experiments\": [{\"name\": \"a\", \"command\": \"true\", \"nodes\": 3}]}",
                 fleet);
        r = parse_spec(spec, &j, &e);
        T_EXPECT("nodes past the group's size: refused, named", r == -EINVAL &&
                         has(&e, "$.experiments[0].nodes: is more than the group's 2 instances"));
        static const struct { const char *extra, *want; } bad[] = {
                { ", \"rendezvous_port\": 80", "$.rendezvous_port: must be a whole number in 1024..65535" },
                { ", \"gang_timeout\": 2", "$.gang_timeout: must be at least 10 seconds" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
                T_EXPECT(bad[i].want, parse_with(bad[i].extra, NULL, &e) == -EINVAL && has(&e, bad[i].want));
        const char *alone = "{\"name\": \"ok\", \"source\": \"s3://my-bucket/s.tar.gz\", \"results\": "
                            "\"s3://my-bucket/r/\", \"experiments\": [{\"name\": \"a\", \"command\": \"true\", \"nodes\": 2}]}";
        T_EXPECT("a gang without a shared run: refused, named", parse_spec(alone, NULL, &e) == -EINVAL &&
                         has(&e, "$.experiments[0].nodes: needs a run shared by instances"));
}

int main(void) {
        test_distance();
        test_all_errors();
        test_sizes();
        test_inputs();
        test_gang();
        return t_summary();
}
