/* SPDX-License-Identifier: Apache-2.0 */
/* status.c — status.json: what a user (or `mayfly status`) needs to know about a run. */
#include <cjson/cJSON.h>

#include "run/view/status.h"

#include "run/view/cost.h"

#include "jsonx.h"
#include "util.h"

static void iso(cJSON *o, const char *k, time_t t) {
        if (!t) {
                cJSON_AddNullToObject(o, k);
                return;
        }
        char b[32];
        format_iso8601(t, b);
        cJSON_AddStringToObject(o, k, b);
}

/* Who ran an experiment of a run shared by instances: the instances of its attempts, the one that finished it. */
static void add_fleet_exp(cJSON *x, const struct ledger_exp *e) {
        cJSON *in = cJSON_AddArrayToObject(x, "instances");
        for (size_t k = 0; in && k < e->n_instances; k++)
                cJSON_AddItemToArray(in, cJSON_CreateString(e->instances[k]));
        if (e->done && e->done_by[0])
                cJSON_AddStringToObject(x, "instance", e->done_by);
        else if (e->held && !e->stale)
                cJSON_AddStringToObject(x, "state", "claimed");
}

/* Totals, a progress line and an ETA from the finished experiments' mean duration over the instances at work. */
static void add_progress(cJSON *o, const struct ledger *L, const struct run_state *st) {
        size_t done = 0, running = 0;
        double sum = 0;
        for (size_t i = 0; i < L->n; i++) {
                const struct ledger_exp *e = &L->exps[i];
                if (e->done) {
                        done++;
                        if (e->end > e->start)
                                sum += (double)(e->end - e->start);
                } else if ((e->held && !e->stale) || (i < st->n && st->exps[i].st == EXP_RUNNING))
                        running++; /* held by an instance that renews it, or running here (claimed since the ledger
                                    * was last read) */
        }
        cJSON *t = cJSON_AddObjectToObject(o, "totals");
        cJSON_AddNumberToObject(t, "experiments", (double)L->n);
        cJSON_AddNumberToObject(t, "done", (double)done);
        cJSON_AddNumberToObject(t, "running", (double)running);
        cJSON_AddNumberToObject(t, "pending", (double)(L->n - done - running));
        char line[160];
        snprintf(line, sizeof line, "%zu/%zu done, %zu running", done, L->n, running);
        cJSON_AddStringToObject(o, "progress", line);
        if (done && done < L->n) {
                size_t workers = running ? running : 1;
                double mean = sum / (double)done;
                double left = mean * (double)(L->n - done) / (double)workers;
                iso(o, "eta", now_wall() + (time_t)left);
        } else
                cJSON_AddNullToObject(o, "eta");
}

/* One experiment of status.json: its command, state, times, exit, attempts (and who ran it, in a shared run). */
static cJSON *experiment_json(const struct experiment *e, const struct exp_state *s, const struct ledger_exp *le) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", e->name);
        if (e->shell)
                cJSON_AddStringToObject(x, "command", e->argv[0]);
        else {
                cJSON *a = cJSON_AddArrayToObject(x, "command");
                for (char **v = e->argv; *v; v++)
                        cJSON_AddItemToArray(a, cJSON_CreateString(*v));
        }
        cJSON_AddStringToObject(x, "status", exp_status_name(s->st));
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
        cJSON_AddStringToObject(x, "reason", exp_reason_name(s->reason));
        cJSON_AddNumberToObject(x, "attempts", s->attempts);
        if (e->nodes > 1) /* a gang: its attempts are the gang's, its history has each node's part */
                cJSON_AddNumberToObject(x, "nodes", e->nodes);
        if (le)
                add_fleet_exp(x, le);
        return x;
}

static int by_attempt(const void *a, const void *b) {
        const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
        double i = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "attempt"));
        double k = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(y, "attempt"));
        return i < k ? -1 : i > k;
}

/* An experiment's attempts on every instance (the instances' records), oldest first: "history". */
static void add_history(cJSON *x, const char *name, const cJSON *records, time_t now) {
        const cJSON *rec, *a;
        const cJSON *found[64];
        size_t n = 0;
        cJSON_ArrayForEach(rec, records) {
                cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(rec, "attempts")) {
                        const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "experiment"));
                        if (e && !strcmp(e, name) && n < ARRAY_SIZE(found))
                                found[n++] = a;
                }
        }
        if (!n)
                return;
        qsort(found, n, sizeof found[0], by_attempt);
        cJSON *h = cJSON_AddArrayToObject(x, "history");
        static const char *const fields[] = { "attempt", "instance", "start", "end", "status", "exit_code", "signal",
                                              "reason", "stdout_from", "stderr_from", "node" };
        for (size_t i = 0; h && i < n; i++) /* by name, scalars only (the records are anyone's under the prefix) */
                cJSON_AddItemToArray(h, json_pick(found[i], fields, ARRAY_SIZE(fields), 128));
        /* an attempt still "running" on an instance that stopped beating ended with it, unseen */
        cJSON_ArrayForEach(rec, records) {
                bool vanished;
                const char *state = cost_record_state(rec, now, &vanished);
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "instance"));
                cJSON *c;
                cJSON_ArrayForEach(c, h) {
                        const char *on = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "instance"));
                        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "status"));
                        if (!vanished || !id || !on || strcmp(on, id) || !st || strcmp(st, "running"))
                                continue;
                        cJSON_DeleteItemFromObjectCaseSensitive(c, "status");
                        cJSON_AddStringToObject(c, "status", "done");
                        cJSON_DeleteItemFromObjectCaseSensitive(c, "reason");
                        cJSON_AddStringToObject(c, "reason", !strcmp(state, "interrupted") ? "interrupted" : "lost");
                        iso(c, "end", (time_t)json_int(rec, "time", 0, JSON_TIME_MAX, 0));
                }
        }
}

/* The run began when its first instance began its part (the instances' records), not when this one did. (Not
 * when the first instance was launched: the cost counts from there, the run from its start.) */
static time_t run_started(const struct run_state *st, const cJSON *records) {
        time_t t = st->started;
        const cJSON *x;
        cJSON_ArrayForEach(x, records) {
                time_t s = (time_t)json_int(x, "started", 1, JSON_TIME_MAX, 0);
                if (s && (!t || s < t))
                        t = s;
        }
        return t;
}

/* The instance that wrote this status. */
static void add_instance(cJSON *o, const struct instance_info *inst) {
        cJSON *in = cJSON_AddObjectToObject(o, "instance");
        cJSON_AddStringToObject(in, "id", inst->id);
        cJSON_AddStringToObject(in, "type", inst->type);
        cJSON_AddStringToObject(in, "region", inst->region);
        cJSON_AddStringToObject(in, "availability_zone", inst->az);
        cJSON_AddStringToObject(in, "ami_id", inst->ami);
        cJSON_AddStringToObject(in, "lifecycle", inst->lifecycle);
        if (inst->private_ip[0])
                cJSON_AddStringToObject(in, "private_ip", inst->private_ip);
}

int status_build(const struct status_parts *p, char **ret) {
        _cleanup_(cjson_deletep) cJSON *records = p->records;
        _cleanup_(cjson_deletep) cJSON *staging = p->staging;
        if (!p->job || !p->st) {
                cJSON_Delete(p->cost);
                return -EINVAL;
        }
        time_t now = now_wall();
        if (p->cost && records)
                cost_add_records(p->cost, records, now);
        const struct job *job = p->job;
        const struct run_state *st = p->st;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o) {
                cJSON_Delete(p->cost);
                return -ENOMEM;
        }
        cJSON_AddStringToObject(o, "name", job->name ? job->name : "");
        cJSON_AddStringToObject(o, "run_id", st->run_id);
        bool ended = p->final || st->phase >= PH_EXIT;
        cJSON_AddStringToObject(o, "outcome", outcome_name(ended ? st->outcome : OUT_RUNNING));
        /* why the run ended: finished, error, spot-interruption, agent-stopped, max-runtime, failsafe */
        if (st->end != END_NONE)
                cJSON_AddStringToObject(o, "reason", lc_end_name(st->end));
        cJSON_AddStringToObject(o, "phase", phase_name(st->phase));
        if (st->error[0])
                cJSON_AddStringToObject(o, "error", st->error);
        if (!ended && p->waiting && *p->waiting)
                cJSON_AddStringToObject(o, "waiting", p->waiting);
        if (!ended && staging && cJSON_AddItemToObject(o, "staging", staging))
                staging = NULL; /* taken */
        if (st->cancelled_by[0])
                cJSON_AddStringToObject(o, "cancelled_by", st->cancelled_by);
        cJSON_AddStringToObject(o, "results", p->results_uri);
        cJSON_AddStringToObject(o, "mayfly_version", MAYFLY_VERSION);
        time_t started = run_started(st, records);
        iso(o, "started", started);
        iso(o, "updated", now);
        if (started)
                cJSON_AddNumberToObject(o, "duration_seconds", (double)MAX(now - started, 0));
        add_instance(o, p->inst);
        if (p->gpu) {
                _cleanup_free_ char *g = NULL;
                if (gpu_state_to_json(p->gpu, false, &g) == 0)
                        cJSON_AddItemToObject(o, "gpu", cJSON_Parse(g));
        } else
                cJSON_AddNullToObject(o, "gpu");
        if (p->gpu_hung) {
                /* said plainly: the GPU numbers stopped because the driver stopped answering */
                cJSON *h = cJSON_AddObjectToObject(o, "gpu_health");
                cJSON_AddBoolToObject(h, "hung", true);
                cJSON_AddStringToObject(h, "message", "a GPU query (NVML or nvidia-smi) has not returned");
        }
        cJSON *ex = cJSON_AddArrayToObject(o, "experiments");
        for (size_t i = 0; i < job->n_experiments && i < st->n; i++)
        {
                cJSON *x = experiment_json(&job->experiments[i], &st->exps[i],
                                           p->ledger && i < p->ledger->n ? &p->ledger->exps[i] : NULL);
                if (records)
                        add_history(x, job->experiments[i].name, records, now);
                cJSON_AddItemToArray(ex, x);
        }
        if (p->ledger)
                add_progress(o, p->ledger, st);
        if (st->spot_action[0]) {
                cJSON *sp = cJSON_AddObjectToObject(o, "interruption");
                cJSON_AddStringToObject(sp, "action", st->spot_action);
                iso(sp, "time", st->spot_time);
        }
        if (p->cost)
                cJSON_AddItemToObject(o, "cost", p->cost);
        cJSON_AddStringToObject(o, "exit_action",
                                exit_action_name(ended && st->outcome == OUT_SUCCEEDED ? job->on_exit : job->on_error));
        char *txt = cJSON_Print(o);
        if (!txt)
                return -ENOMEM;
        *ret = txt;
        return 0;
}
