/* SPDX-License-Identifier: Apache-2.0 */
/* cost.h — what a run cost: the seconds each instance ran for it times the price EC2 charged for them (spot: the
 * price history of the instance's type in its AZ; on-demand: the Price List API). A price that could not be learnt
 * stays unknown, with the reason: the ledger never guesses. Kept in $STATE_DIRECTORY/cost.json across agent
 * restarts and across the boots of a stopped-and-started instance. */
#pragma once
#include <stdbool.h>
#include <time.h>

#include "aws/aws.h"
#include "aws/pricing.h"

#define COST_MAX_INSTANCES 16
#define COST_MAX_RECORDS 128         /* instances listed in status.json's cost (this one and the others' records) */
#define COST_MAX_POINTS 512           /* spot price changes kept for the current boot */
#define COST_LAUNCH_WINDOW (15 * 60)  /* an instance launched at most this long before the run is charged from launch */
#define COST_LEDGER_FILE "cost.json"
#define COST_CURRENCY "USD"
#define COST_SOURCE_SPOT "ec2:DescribeSpotPriceHistory"
#define COST_SOURCE_ONDEMAND "pricing:GetProducts"

struct cJSON;

struct cost_instance {
        char id[32], type[48], az[32], region[32], lifecycle[16];
        time_t boot;                  /* pendingTime of the boot being counted (identity document) */
        time_t since;                 /* counted from: the boot, or the run's start for an instance up before it */
        time_t last;                  /* last seen running */
        long seconds_before;          /* earlier boots of this instance */
        double cost_before;           /* their cost, unless unknown_before */
        bool unknown_before;
        bool have_price;
        double hourly;                /* on-demand; spot: the price in effect at the last look-up */
        char source[40];
        time_t price_as_of;
        char error[256];              /* why the price is unknown */
        struct price_point points[COST_MAX_POINTS];
        size_t n_points;
};

struct cost_ledger {
        char run_id[160];
        size_t n;
        int current;                  /* index of the instance this agent runs on, -1 none */
        struct cost_instance inst[COST_MAX_INSTANCES];
};

/* What IMDS says of the instance the agent runs on. */
struct cost_seen {
        const char *id, *type, *az, *region, *lifecycle;
        time_t boot;                  /* identity document pendingTime; 0 = unknown (then the run's start) */
        time_t run_started;
        time_t now;
};

void cost_ledger_init(struct cost_ledger *l, const char *run_id);
/* Pure: notes the instance (added, or its boot advanced: a new boot folds the previous one into *_before) and
 * makes it current. NULL when the ledger is full or the id empty. */
struct cost_instance *cost_observe(struct cost_ledger *l, const struct cost_seen *s);
/* Pure: USD for [a, b) at the step prices of points (oldest first, each in effect from its time; before the first
 * point, the first point's). */
double cost_integrate(const struct price_point *p, size_t n, time_t a, time_t b);
/* Pure: seconds and cost of one instance up to `now` (for the current instance; `last` for the others).
 * *ret_known is false when any part of its price is unknown. */
void cost_instance_total(const struct cost_ledger *l, size_t i, time_t now, long *ret_seconds, double *ret_usd,
                         bool *ret_known);
/* Pure: the "cost" object of status.json (see docs/job-spec.md). NULL on allocation failure. */
struct cJSON *cost_to_json(const struct cost_ledger *l, time_t now);

/* Pure: this instance's entry of "cost" (what its record in the run's ledger says of it); NULL when none. */
struct cJSON *cost_current_json(const struct cost_ledger *l, time_t now);
/* Pure: the state of an instance from its record (ledger/instances/<id>.json) at now: "running" (it beats),
 * "gone" (it ended its part), "interrupted" (a spot notice, then it ended or vanished), "lost" (no heartbeat for
 * over its TTL, no word); *ret_vanished when it stopped beating without a last word. */
const char *cost_record_state(const struct cJSON *rec, time_t now, bool *ret_vanished);
/* Pure: cost (from cost_to_json) made the run's: every instance's record adds its own entry (this instance's entry
 * gets its state only), a vanished one costed up to its last heartbeat plus its TTL and marked "estimate"; the
 * total again over all of them. */
int cost_add_records(struct cJSON *cost, const struct cJSON *records, time_t now);

/* The ledger file; -ENOENT, or a ledger of another run: a fresh one for run_id. */
int cost_ledger_load(const char *path, const char *run_id, struct cost_ledger *ret);
int cost_ledger_save(const char *path, const struct cost_ledger *l);

/* Network: the price of instance `in` (spot: its price history since it was counted; on-demand: once). On failure
 * the reason goes to in->error (and out->msg) and the price stays unknown. */
int cost_lookup_price(struct aws_ctx *c, struct cost_instance *in, time_t now, const struct pricing_opts *o,
                      struct aws_result *out);
