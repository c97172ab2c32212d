/* SPDX-License-Identifier: Apache-2.0 */
/* test_status.c — status.json as status_build writes it from a job, the run's state, the instance and (in a run
 * shared by instances) the ledger: table-driven over the phases, ends and outcomes a reader must tell apart. */
#include <cjson/cJSON.h>
#include <math.h>
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

/* Every instance counts: the others' records (one ended after a spot notice, one vanished) join this instance's
 * cost, the total is their sum, the vanished one is an estimate up to its last heartbeat + TTL, the run starts with
 * the first instance, and each experiment's history lists its attempts on all of them. */
static void test_every_instance(void) {
        time_t now = now_wall();
        struct job job;
        char err[256];
        T_EXPECT("job", job_parse(JOB, strlen(JOB), &job, err, sizeof err) == 0);
        struct run_state st = { .started = now - 100, .phase = PH_RUN, .n = 2 };
        st.exps[0] = (struct exp_state){ .st = EXP_RUNNING, .start = now - 90, .attempts = 2, .exit_code = -1 };
        st.exps[1] = (struct exp_state){ .st = EXP_PENDING, .exit_code = -1 };
        char self_cost[512], recs[3000];
        snprintf(self_cost, sizeof self_cost,
                 "{\"currency\": \"USD\", \"instances\": [{\"id\": \"i-0abc\", \"since\": \"%s\", \"seconds\": 100, "
                 "\"hourly_price\": 3.6, \"cost\": 0.1}], \"total\": 0.1}", "2026-12-07T10:00:00Z");
        snprintf(recs, sizeof recs,
                 "[{\"instance\": \"i-old\", \"time\": %lld, \"ttl\": 60, \"ended\": %lld, \"type\": \"g5.xlarge\","
                 "  \"started\": 1796637600,"
                 "  \"interruption\": {\"action\": \"terminate\", \"time\": \"2026-12-07T09:59:00Z\"},"
                 "  \"cost\": {\"id\": \"i-old\", \"since\": \"2026-12-07T09:50:00Z\", \"seconds\": 600, \"hourly_price\": 3.6, \"cost\": 0.6},"
                 "  \"attempts\": [{\"experiment\": \"a\", \"attempt\": 1, \"instance\": \"i-old\", \"status\": \"done\", \"reason\": \"interrupted\"}]},"
                 " {\"instance\": \"i-gone\", \"time\": %lld, \"ttl\": 60, \"type\": \"g5.xlarge\","
                 "  \"cost\": {\"id\": \"i-gone\", \"since\": \"2026-12-07T09:55:00Z\", \"seconds\": 100, \"hourly_price\": 3.6, \"cost\": 0.1},"
                 "  \"attempts\": [{\"experiment\": \"b\", \"attempt\": 1, \"instance\": \"i-gone\", \"status\": \"running\"}]},"
                 " {\"instance\": \"i-0abc\", \"time\": %lld, \"ttl\": 60,"
                 "  \"attempts\": [{\"experiment\": \"a\", \"attempt\": 2, \"instance\": \"i-0abc\", \"status\": \"running\"}]}]",
                 (long long)now - 500, (long long)now - 500, (long long)now - 300, (long long)now);
        struct instance_info inst = { .id = "i-0abc", .type = "g5.xlarge", .region = "us-east-1", .az = "us-east-1a",
                                      .ami = "ami-1", .lifecycle = "spot" };
        struct status_parts p = { .job = &job, .st = &st, .inst = &inst, .results_uri = "s3://b/r/",
                                  .cost = cJSON_Parse(self_cost), .records = cJSON_Parse(recs) };
        char *txt = NULL;
        T_EXPECT("built", status_build(&p, &txt) == 0);
        _cleanup_(cjson_deletep) cJSON *o = cJSON_Parse(txt);
        free(txt);
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "cost");
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(cost, "instances");
        T_EXPECT("three instances in the cost", cJSON_GetArraySize(list) == 3);
        const cJSON *self = cJSON_GetArrayItem(list, 0), *old = cJSON_GetArrayItem(list, 1),
                    *gone = cJSON_GetArrayItem(list, 2);
        T_EXPECT_STR("this one runs", s(self, "state"), "running");
        T_EXPECT_STR("the one after a notice: interrupted", s(old, "state"), "interrupted");
        T_EXPECT("... with its notice", cJSON_HasObjectItem(old, "interruption"));
        T_EXPECT_STR("the silent one: lost", s(gone, "state"), "lost");
        T_EXPECT("... costed up to its last heartbeat + TTL, an estimate",
                 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(gone, "estimate")) &&
                 cJSON_GetObjectItemCaseSensitive(gone, "seconds")->valuedouble == 160 &&
                 fabs(cJSON_GetObjectItemCaseSensitive(gone, "cost")->valuedouble - 0.16) < 1e-9);
        T_EXPECT("the total is their sum", fabs(cJSON_GetObjectItemCaseSensitive(cost, "total")->valuedouble - 0.86) < 1e-9);
        T_EXPECT_STR("the run began when its first instance began its part", s(o, "started"), "2026-12-07T10:00:00Z");
        const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "experiments"), 0);
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(a, "history");
        T_EXPECT("a's history: attempt 1 on i-old, 2 here",
                 cJSON_GetArraySize(h) == 2 && !strcmp(s(cJSON_GetArrayItem(h, 0), "instance"), "i-old") &&
                 !strcmp(s(cJSON_GetArrayItem(h, 1), "instance"), "i-0abc"));
        const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "experiments"), 1);
        const cJSON *hb = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "history"), 0);
        T_EXPECT_STR("an attempt on a vanished instance ended with it", s(hb, "reason"), "lost");
        job_free(&job);
}

/* A record anyone under the prefix may write: whatever it nests under "cost" or an attempt, status.json takes only
 * the named scalars (a deep planted tree once grew it by depth squared, past what the laptop reads). */
static void test_planted_record_stays_small(void) {
        struct job job;
        char err[256];
        T_EXPECT("job", job_parse(JOB, strlen(JOB), &job, err, sizeof err) == 0);
        struct run_state st = { .started = 1700000000, .phase = PH_RUN, .n = 2 };
        st.exps[0].exit_code = st.exps[1].exit_code = -1;
        size_t depth = 900; /* (cJSON parses at most CJSON_NESTING_LIMIT, 1000, levels) */
        char *deep = malloc(2 * depth + 200);
        size_t k = (size_t)sprintf(deep, "[{\"instance\": \"i-x\", \"cost\": {\"seconds\": 5, \"junk\": ");
        for (size_t i = 0; i < depth; i++)
                deep[k++] = '[';
        for (size_t i = 0; i < depth; i++)
                deep[k++] = ']';
        sprintf(deep + k, "}, \"attempts\": [{\"experiment\": \"a\", \"attempt\": 1, \"x\": {\"y\": 1}}]}]");
        struct instance_info inst = { .id = "i-self" };
        struct status_parts p = { .job = &job, .st = &st, .inst = &inst, .results_uri = "s3://b/r/",
                                  .cost = cJSON_Parse("{\"instances\": [], \"currency\": \"USD\"}"),
                                  .records = cJSON_Parse(deep) };
        T_EXPECT("planted", p.records != NULL);
        char *txt = NULL;
        T_EXPECT("built", status_build(&p, &txt) == 0);
        T_EXPECT("status.json stays small (no planted subtree)", txt && strlen(txt) < 8192 && !strstr(txt, "junk") &&
                                                                     !strstr(txt, "\"x\""));
        free(txt);
        free(deep);
        job_free(&job);
}

int main(void) {
        test_every_instance();
        test_planted_record_stays_small();
        test_outcomes();
        test_fields();
        test_bad_input();
        return t_summary();
}
