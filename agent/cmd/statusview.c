/* SPDX-License-Identifier: Apache-2.0 */
/* statusview.c — what `mayfly status` prints of a status.json (pure: the caller reads it, makes its strings safe for
 * the terminal and adds what the network says: liveness, the report's link). */
#include "cmd/statusview.h"

#include <string.h>

#include "jsonx.h"
#include "util.h"

static const char *str_of(const cJSON *o, const char *k) { return cJSON_GetStringValue(cJSON_GetObjectItem(o, k)); }

static void print_cost(FILE *f, const cJSON *cost) {
        const cJSON *t = cJSON_GetObjectItem(cost, "total");
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(cost, "instances"), 0);
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(first, "price_unknown"));
        if (cJSON_IsNumber(t))
                fprintf(f, "cost:     $%.4f %s (EC2 instance time)\n", t->valuedouble,
                       cJSON_GetStringValue(cJSON_GetObjectItem(cost, "currency")) ?: "USD");
        else if (cJSON_IsObject(cost))
                fprintf(f, "cost:     unknown (%s)\n",
                       why ? why : cJSON_GetStringValue(cJSON_GetObjectItem(cost, "total_unknown")) ?: "no price");
}

/* One experiment's state as a person reads it: an interrupted one that will resume says so. */
static void experiment_state(const cJSON *e, bool run_goes_on, char *out, size_t n) {
        const char *stt = str_of(e, "status"), *rs = str_of(e, "reason");
        const cJSON *ec = cJSON_GetObjectItem(e, "exit_code"), *sg = cJSON_GetObjectItem(e, "signal");
        const cJSON *at = cJSON_GetObjectItem(e, "attempts");
        int attempts = (int)json_int_value(at, 0, INT_MAX - 1, 0); /* (the next one is attempts + 1) */
        char code[32] = "";
        if (cJSON_IsNumber(ec))
                snprintf(code, sizeof code, "exit %d", ec->valueint);
        else if (cJSON_IsNumber(sg))
                snprintf(code, sizeof code, "signal %d", sg->valueint);
        stt = stt ? stt : "?";
        if (run_goes_on && rs && (!strcmp(rs, "interrupted") || !strcmp(rs, "lease-lost") || !strcmp(rs, "gang-stopped") || !strcmp(rs, "agent-stopped")))
                snprintf(out, n, "interrupted (%s), will resume (attempt %d)", rs, attempts + 1);
        else if (!strcmp(stt, "running"))
                snprintf(out, n, "running%s", attempts > 1 ? " (attempt" : "");
        else if (!strcmp(stt, "done"))
                snprintf(out, n, "%s%s%s", rs && *rs && strcmp(rs, "exit") ? rs : "done", *code ? ", " : "", code);
        else
                snprintf(out, n, "%s%s%s", stt, rs && *rs ? ", " : "", rs && *rs ? rs : "");
        if (!strcmp(stt, "running") && attempts > 1) {
                size_t l = strlen(out);
                snprintf(out + l, n - l, " %d)", attempts);
        }
}

/* Every instance the run used (status.json's cost): its state, how long and what it cost. False when none. */
static bool print_instances(FILE *f, const cJSON *st) {
        const cJSON *x;
        size_t n = 0;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(cJSON_GetObjectItem(st, "cost"), "instances")) {
                const cJSON *c = cJSON_GetObjectItem(x, "cost");
                char usd[32] = "cost unknown";
                if (cJSON_IsNumber(c))
                        snprintf(usd, sizeof usd, "$%.4f%s", c->valuedouble,
                                 cJSON_IsTrue(cJSON_GetObjectItem(x, "estimate")) ? " (estimate)" : "");
                fprintf(f, "instance: %s %s %s %s  %-11s %6lds  %s\n", str_of(x, "id") ?: "?", str_of(x, "type") ?: "?",
                       str_of(x, "lifecycle") ?: "?", str_of(x, "availability_zone") ?: "?",
                       str_of(x, "state") ?: "", (long)json_int(x, "seconds", 0, JSON_TIME_MAX, 0), usd);
                n++;
        }
        return n > 0;
}

/* "staging:  input imagenet (1 of 2): 400 of 1281167 objects, 45.0 GiB of 150.0 GiB, 1.2 GiB/s, ETA 90s" */
static void print_staging(FILE *f, const cJSON *sg, const char *name) {
        long long od = json_int(sg, "objects_done", 0, 1LL << 53, 0), ot = json_int(sg, "objects_total", 0, 1LL << 53, 0);
        long long bd = json_int(sg, "bytes_done", 0, 1LL << 53, 0), bt = json_int(sg, "bytes_total", 0, 1LL << 53, 0);
        long long rate = json_int(sg, "bytes_per_second", 0, 1LL << 53, 0), eta = json_int(sg, "eta_seconds", 0, 1LL << 40, -1);
        long long i = json_int(sg, "inputs_done", 0, 1000, 0), n = json_int(sg, "inputs", 0, 1000, 0);
        char d[32], t[32], r[32];
        fmt_bytes((uint64_t)bd, d);
        fmt_bytes((uint64_t)bt, t);
        fmt_bytes((uint64_t)rate, r);
        fprintf(f, "staging:  input %s (%lld of %lld): %lld of %lld objects, %s of %s, %s/s", name, i + 1, n, od, ot, d,
                t, r);
        if (eta >= 0)
                fprintf(f, ", ETA %llds", eta);
        fputc('\n', f);
}

/* Progress, error, what it waits for, GPU health, the instances, each experiment, the cost. */
void status_print_body(FILE *f, const cJSON *st) {
        const char *g, *outcome = str_of(st, "outcome");
        bool goes_on = outcome && !strcmp(outcome, "running");
        if ((g = str_of(st, "progress")))
                fprintf(f, "progress: %s%s%s\n", g, str_of(st, "eta") ? ", ETA " : "", str_of(st, "eta") ?: "");
        if ((g = str_of(st, "error")))
                fprintf(f, "error:    %s\n", g);
        if (goes_on && (g = str_of(st, "waiting")))
                fprintf(f, "waiting:  %s\n", g);
        const cJSON *sg = cJSON_GetObjectItem(st, "staging");
        if (goes_on && cJSON_IsObject(sg) && (g = str_of(sg, "input")))
                print_staging(f, sg, g);
        const cJSON *gh = cJSON_GetObjectItem(st, "gpu_health");
        if (gh && (g = str_of(gh, "message")))
                fprintf(f, "gpu:      %s\n", g);
        if (!print_instances(f, st)) {
                cJSON *in = cJSON_GetObjectItem(st, "instance");
                fprintf(f, "instance: %s (%s, %s)\n", str_of(in, "id") ?: "?", str_of(in, "type") ?: "?",
                       str_of(in, "availability_zone") ?: "?");
        }
        cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(st, "experiments")) {
                char state[160];
                experiment_state(e, goes_on, state, sizeof state);
                const cJSON *at = cJSON_GetObjectItem(e, "attempts");
                bool more = cJSON_IsNumber(at) && at->valueint > 1 && !strstr(state, "attempt");
                fprintf(f, "  %-20s %s", str_of(e, "name") ?: "?", state);
                if (more)
                        fprintf(f, " (%d attempts)", at->valueint);
                long long nodes = json_int(e, "nodes", 0, 64, 0);
                if (nodes > 1)
                        fprintf(f, " [gang of %lld nodes]", nodes);
                fputc('\n', f);
        }
        print_cost(f, cJSON_GetObjectItem(st, "cost"));
}
