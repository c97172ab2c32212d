/* status.c — status.json: what a user (or `mayfly status`) needs to know about a run. */
#include <cjson/cJSON.h>

#include "run/run.h"

static void iso(cJSON *o, const char *k, time_t t) {
        if (!t) {
                cJSON_AddNullToObject(o, k);
                return;
        }
        char b[32];
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(o, k, b);
}

static void cjson_deletep(cJSON **j) { cJSON_Delete(*j); }

int status_build(const struct run *R, char **ret) {
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "name", R->job.name ? R->job.name : "");
        cJSON_AddStringToObject(o, "run_id", R->st.run_id);
        cJSON_AddStringToObject(o, "outcome", R->st.outcome[0] ? R->st.outcome : "running");
        cJSON_AddStringToObject(o, "phase", phase_name(R->st.phase));
        if (R->st.error[0])
                cJSON_AddStringToObject(o, "error", R->st.error);
        cJSON_AddStringToObject(o, "results", R->results_uri);
        cJSON_AddStringToObject(o, "mayfly_version", MAYFLY_VERSION);
        iso(o, "started", R->st.started);
        iso(o, "updated", now_wall());
        cJSON *in = cJSON_AddObjectToObject(o, "instance");
        cJSON_AddStringToObject(in, "id", R->inst.id);
        cJSON_AddStringToObject(in, "type", R->inst.type);
        cJSON_AddStringToObject(in, "region", R->inst.region);
        cJSON_AddStringToObject(in, "availability_zone", R->inst.az);
        cJSON_AddStringToObject(in, "ami_id", R->inst.ami);
        cJSON_AddStringToObject(in, "lifecycle", R->inst.lifecycle);
        if (R->have_gpu_inv) {
                _cleanup_free_ char *g = NULL;
                if (gpu_state_to_json(&R->gpu_inv, false, &g) == 0)
                        cJSON_AddItemToObject(o, "gpu", cJSON_Parse(g));
        } else
                cJSON_AddNullToObject(o, "gpu");
        cJSON *ex = cJSON_AddArrayToObject(o, "experiments");
        for (size_t i = 0; i < R->job.n_experiments && i < R->st.n; i++) {
                const struct experiment *e = &R->job.experiments[i];
                const struct exp_state *s = &R->st.exps[i];
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "name", e->name);
                if (e->shell)
                        cJSON_AddStringToObject(x, "command", e->argv[0]);
                else {
                        cJSON *a = cJSON_AddArrayToObject(x, "command");
                        for (char **p = e->argv; *p; p++)
                                cJSON_AddItemToArray(a, cJSON_CreateString(*p));
                }
                static const char *const st[] = { "pending", "running", "done", "skipped" };
                cJSON_AddStringToObject(x, "status", st[s->st]);
                iso(x, "start", s->start);
                iso(x, "end", s->end);
                if (s->st == EXP_DONE && s->exit_code >= 0)
                        cJSON_AddNumberToObject(x, "exit_code", s->exit_code);
                else
                        cJSON_AddNullToObject(x, "exit_code");
                if (s->signal)
                        cJSON_AddNumberToObject(x, "signal", s->signal);
                else
                        cJSON_AddNullToObject(x, "signal");
                cJSON_AddStringToObject(x, "reason", s->reason);
                cJSON_AddNumberToObject(x, "attempts", s->attempts);
                cJSON_AddItemToArray(ex, x);
        }
        if (R->st.spot_action[0]) {
                cJSON *sp = cJSON_AddObjectToObject(o, "interruption");
                cJSON_AddStringToObject(sp, "action", R->st.spot_action);
                iso(sp, "time", R->st.spot_time);
        }
        cJSON *cost = wrapup_cost_json(R);
        if (cost)
                cJSON_AddItemToObject(o, "cost", cost);
        cJSON_AddStringToObject(o, "exit_action",
                                exit_action_name(strcmp(R->st.outcome, "succeeded") == 0 ? R->job.on_exit
                                                                                          : R->job.on_error));
        char *txt = cJSON_Print(o);
        if (!txt)
                return -ENOMEM;
        *ret = txt;
        return 0;
}
