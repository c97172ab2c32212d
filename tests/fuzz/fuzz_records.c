/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_records.c — the ledger's records as anyone who can write the run's prefix may write them: an experiment's
 * exp and done records, a lease's body as a gang reads it, and instances' records (a JSON array of them) through what
 * status.json makes of them (every instance's cost, state and the experiments' history). Never a crash, never
 * undefined behaviour (numbers of any size), the cost's total the sum of what it lists. */
#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "jsonx.h"
#include "run/fleet/ledger.h"
#include "run/fleet/ledgerint.h"
#include "run/view/cost.h"
#include "run/view/status.h"
#include "util.h"

static const char JOB[] = "{\"name\": \"f\", \"source\": \"s3://my-bucket/src.tar.gz\", \"results\": \"s3://my-bucket/r/\","
                          "\"experiments\": [{\"name\": \"a\", \"command\": [\"python\", \"t.py\"]},"
                          "{\"name\": \"b\", \"command\": \"./b.sh\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(cjson_deletep) cJSON *in = cJSON_ParseWithLength((const char *)data, size);
        if (!in)
                return 0;
        struct ledger_exp e = { 0 };
        ledger_read_exp(&e, in);
        ledger_read_done(&e, in);
        assert(e.attempts >= 0 && e.n_instances <= LEDGER_MAX_INSTANCES && e.exit_code >= -1 && e.exit_code <= 255);
        /* a lease's body as a gang reads it: the attempt, the holder's address, why it stops */
        gang_read_lease(&e, in);
        assert(e.lease_attempt >= 0 && strlen(e.lease_ip) < sizeof e.lease_ip && e.lease_stop.exit_code >= -1 &&
               e.lease_stop.exit_code <= 255 && e.lease_stop.signal >= 0 && e.lease_stop.signal <= 128 &&
               strlen(e.lease_stop.reason) < sizeof e.lease_stop.reason);
        static struct job job;
        static bool have_job;
        char err[256];
        if (!have_job)
                have_job = job_parse(JOB, strlen(JOB), &job, err, sizeof err) == 0;
        assert(have_job);
        cJSON *records = cJSON_IsArray(in) ? cJSON_Duplicate(in, true) : cJSON_CreateArray();
        if (!cJSON_IsArray(in))
                cJSON_AddItemToArray(records, cJSON_Duplicate(in, true));
        struct run_state st = { .started = 1700000000, .phase = PH_RUN, .n = 2 };
        st.exps[0].exit_code = st.exps[1].exit_code = -1;
        struct instance_info inst = { .id = "i-self" };
        cJSON *cost = cJSON_Parse("{\"currency\": \"USD\", \"instances\": [{\"id\": \"i-self\", \"seconds\": 10, "
                                  "\"hourly_price\": 1, \"cost\": 0.5}], \"total\": 0.5}");
        struct status_parts p = { .job = &job, .st = &st, .inst = &inst, .results_uri = "s3://b/r/", .cost = cost,
                                  .records = records };
        char *txt = NULL;
        assert(status_build(&p, &txt) == 0);
        _cleanup_(cjson_deletep) cJSON *o = cJSON_Parse(txt);
        free(txt);
        assert(o);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cost"), *x, *t = cJSON_GetObjectItemCaseSensitive(c, "total");
        double sum = 0;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(c, "instances"))
                sum += cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(x, "cost"))
                               ? cJSON_GetObjectItemCaseSensitive(x, "cost")->valuedouble : 0;
        assert(!cJSON_IsNumber(t) || !isfinite(sum) || fabs(t->valuedouble - sum) <= 1e-6 * (1 + fabs(sum)) + 1e-5);
        return 0;
}
