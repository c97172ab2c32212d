/* SPDX-License-Identifier: Apache-2.0 */
/* test_status.c — status.json as status_build writes it from a job, the run's state, the instance and (in a run
 * shared by instances) the ledger: table-driven over the phases, ends and outcomes a reader must tell apart. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "jsonx.h"
#include "run/view/status.h"
#include "util.h"
#include "test.h"

static const char JOB[] = "{\"name\": \"sweep\", \"source\": \"s3://my-bucket/src.tar.gz\", \"results\": \"s3://my-bucket/results/\","
                          "\"on_exit\": \"terminate\", \"on_error\": \"stop\", \"experiments\": ["
                          "{\"name\": \"a\", \"command\": [\"python\", \"train.py\", \"--lr\", \"0.1\"]},"
                          "{\"name\": \"b\", \"command\": \"./b.sh && echo done\"}]}";

static cJSON *build(const struct job *job, const struct run_state *st, bool final, const struct ledger *L) {
        struct instance_info inst = { .id = "i-0abc", .type = "g5.xlarge", .region = "us-east-1", .az = "us-east-1a",
                                      .ami = "ami-1", .lifecycle = "spot" };
        struct status_parts p = { .job = job, .st = st, .inst = &inst, .results_uri = "s3://b/results/sweep/r/",
                                  .final = final, .ledger = L };
        char *txt = NULL;
        if (status_build(&p, &txt) < 0)
                return NULL;
        cJSON *o = cJSON_Parse(txt);
        free(txt);
        return o;
}

static const char *s(const cJSON *o, const char *k) { return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k)); }

static void test_outcomes(void) {
        struct job job;
        char err[256];
        int r = job_parse(JOB, strlen(JOB), &job, err, sizeof err);
        t_result("the test's job parses", r == 0, "%s", err);
        if (r < 0)
                return;
        static const struct {
                const char *name;
                enum phase phase;
                enum lc_end end;
                enum outcome outcome;
                bool final;
                const char *want_outcome, *want_reason, *want_exit_action;
        } cases[] = {
                { "running: no outcome yet", PH_RUN, END_NONE, OUT_RUNNING, false, "running", NULL, "stop" },
                { "shipping a success: still running until the final status", PH_SHIP, END_FINISHED, OUT_SUCCEEDED,
                  false, "running", "finished", "stop" },
                { "the final status of a success", PH_SHIP, END_FINISHED, OUT_SUCCEEDED, true, "succeeded",
                  "finished", "terminate" },
                { "a spot interruption", PH_EXIT, END_SPOT, OUT_INTERRUPTED, true, "interrupted", "spot-interruption",
                  "stop" },
                { "max_runtime", PH_EXIT, END_MAX_RUNTIME, OUT_TIMEOUT, false, "timeout", "max-runtime", "stop" },
                { "an error", PH_DONE, END_ERROR, OUT_ERROR, true, "error", "error", "stop" },
                { "ended by another instance", PH_SHIP, END_OVER, OUT_FAILED, true, "failed", "over", "stop" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct run_state st = { .phase = cases[i].phase, .end = cases[i].end, .outcome = cases[i].outcome,
                                        .n = 2, .started = 1700000000 };
                snprintf(st.run_id, sizeof st.run_id, "r");
                st.exps[0] = (struct exp_state){ .st = EXP_DONE, .exit_code = 0, .reason = R_EXIT, .attempts = 1 };
                st.exps[1] = (struct exp_state){ .st = EXP_PENDING, .exit_code = -1 };
                _cleanup_(cjson_deletep) cJSON *o = build(&job, &st, cases[i].final, NULL);
                char name[200];
                snprintf(name, sizeof name, "%s: builds", cases[i].name);
                T_EXPECT(name, o != NULL);
                if (!o)
                        continue;
                snprintf(name, sizeof name, "%s: outcome", cases[i].name);
                T_EXPECT_STR(name, s(o, "outcome"), cases[i].want_outcome);
                snprintf(name, sizeof name, "%s: reason", cases[i].name);
                if (cases[i].want_reason)
                        T_EXPECT_STR(name, s(o, "reason"), cases[i].want_reason);
                else
                        T_EXPECT(name, !cJSON_HasObjectItem(o, "reason"));
                snprintf(name, sizeof name, "%s: the exit action it will take", cases[i].name);
                T_EXPECT_STR(name, s(o, "exit_action"), cases[i].want_exit_action);
                snprintf(name, sizeof name, "%s: phase", cases[i].name);
                T_EXPECT_STR(name, s(o, "phase"), phase_name(cases[i].phase));
        }
        job_free(&job);
}

static void test_fields(void) {
        struct job job;
        char err[256];
        if (job_parse(JOB, strlen(JOB), &job, err, sizeof err) < 0)
                return;
        struct run_state st = { .phase = PH_RUN, .n = 2, .started = 1700000000, .spot_time = 1700000600 };
        snprintf(st.run_id, sizeof st.run_id, "r-1");
        snprintf(st.error, sizeof st.error, "checkpoint restore: refused ck/x");
        snprintf(st.spot_action, sizeof st.spot_action, "terminate");
        st.exps[0] = (struct exp_state){ .st = EXP_DONE, .exit_code = -1, .signal = 9, .reason = R_TIMEOUT,
                                         .attempts = 3, .start = 1700000001, .end = 1700000100 };
        st.exps[1] = (struct exp_state){ .st = EXP_RUNNING, .exit_code = -1, .attempts = 1, .start = 1700000101 };
        _cleanup_(cjson_deletep) cJSON *o = build(&job, &st, false, NULL);
        T_EXPECT("builds", o != NULL);
        if (!o) {
                job_free(&job);
                return;
        }
        T_EXPECT_STR("name", s(o, "name"), "sweep");
        T_EXPECT_STR("run id", s(o, "run_id"), "r-1");
        T_EXPECT_STR("error", s(o, "error"), "checkpoint restore: refused ck/x");
        T_EXPECT_STR("results", s(o, "results"), "s3://b/results/sweep/r/");
        T_EXPECT_STR("started, ISO 8601 UTC", s(o, "started"), "2023-11-14T22:13:20Z");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "instance");
        T_EXPECT("instance", in && !strcmp(s(in, "id"), "i-0abc") && !strcmp(s(in, "lifecycle"), "spot") &&
                                     !strcmp(s(in, "availability_zone"), "us-east-1a"));
        T_EXPECT("no GPU inventory: null", cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "gpu")));
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "experiments");
        T_EXPECT("both experiments", cJSON_GetArraySize(ex) == 2);
        const cJSON *a = cJSON_GetArrayItem(ex, 0), *b = cJSON_GetArrayItem(ex, 1);
        T_EXPECT("an argv command stays an array", cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(a, "command")) == 4);
        T_EXPECT_STR("a shell command stays a string", s(b, "command"), "./b.sh && echo done");
        T_EXPECT("killed by a signal: exit_code null, the signal", cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "exit_code")) &&
                                                                   cJSON_GetObjectItemCaseSensitive(a, "signal")->valueint == 9);
        T_EXPECT_STR("its reason", s(a, "reason"), "timeout");
        T_EXPECT("its attempts", cJSON_GetObjectItemCaseSensitive(a, "attempts")->valueint == 3);
        T_EXPECT_STR("the running one", s(b, "status"), "running");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "interruption");
        T_EXPECT("the interruption, when there is one", sp && !strcmp(s(sp, "action"), "terminate") &&
                                                               !strcmp(s(sp, "time"), "2023-11-14T22:23:20Z"));
        T_EXPECT("no ledger: no progress", !cJSON_HasObjectItem(o, "progress") && !cJSON_HasObjectItem(o, "totals"));
        /* a run shared by instances: the ledger's progress */
        struct ledger_exp le[2] = { { .done = true, .start = 100, .end = 160, .n_instances = 1 },
                                    { .held = true, .n_instances = 2 } };
        snprintf(le[0].instances[0], sizeof le[0].instances[0], "i-1");
        snprintf(le[1].instances[0], sizeof le[1].instances[0], "i-1");
        snprintf(le[1].instances[1], sizeof le[1].instances[1], "i-2");
        struct ledger L = { .n = 2, .exps = le };
        _cleanup_(cjson_deletep) cJSON *f = build(&job, &st, false, &L);
        T_EXPECT_STR("progress", f ? s(f, "progress") : NULL, "1/2 done, 1 running");
        const cJSON *t = f ? cJSON_GetObjectItemCaseSensitive(f, "totals") : NULL;
        T_EXPECT("totals", t && cJSON_GetObjectItemCaseSensitive(t, "done")->valueint == 1 &&
                                   cJSON_GetObjectItemCaseSensitive(t, "pending")->valueint == 0);
        const cJSON *fb = f ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(f, "experiments"), 1) : NULL;
        T_EXPECT("who ran it", fb && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(fb, "instances")) == 2);
        T_EXPECT("an ETA while some are left", f && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(f, "eta")));
        /* claimed here since the ledger was last read: running all the same (was "0 running") */
        le[1].held = false;
        _cleanup_(cjson_deletep) cJSON *g = build(&job, &st, false, &L);
        T_EXPECT_STR("running here before the ledger shows the claim", g ? s(g, "progress") : NULL,
                     "1/2 done, 1 running");
        job_free(&job);
}

static void test_bad_input(void) {
        char *txt = NULL;
        struct status_parts p = { 0 };
        T_EXPECT("no job, no state: -EINVAL", status_build(&p, &txt) == -EINVAL && !txt);
}

int main(void) {
        test_outcomes();
        test_fields();
        test_bad_input();
        return t_summary();
}
