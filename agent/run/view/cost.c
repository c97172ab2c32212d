/* SPDX-License-Identifier: Apache-2.0 */
/* cost.c — the run's cost ledger: instance-seconds times the price EC2 charged for them. */
#include "run/view/cost.h"

#include <cjson/cJSON.h>
#include <math.h>

#include "jsonx.h"
#include "run/base/runstate.h"

void cost_ledger_init(struct cost_ledger *l, const char *run_id) {
        memset(l, 0, sizeof *l);
        l->current = -1;
        snprintf(l->run_id, sizeof l->run_id, "%s", run_id ? run_id : "");
}

double cost_integrate(const struct price_point *p, size_t n, time_t a, time_t b) {
        if (!n || b <= a)
                return 0;
        double usd = 0;
        for (size_t i = 0; i < n; i++) {
                /* point i is in effect from its time (the first one also before it) until the next point */
                time_t from = i == 0 ? a : MAX(a, p[i].t);
                time_t to = i + 1 < n ? MIN(b, p[i + 1].t) : b;
                if (to > from)
                        usd += p[i].usd_hour * (double)(to - from) / 3600.0;
        }
        return usd;
}

/* Cost of the boot being counted, up to `end`; false when its price is unknown. */
static bool boot_cost(const struct cost_instance *in, time_t end, double *ret) {
        if (!in->have_price)
                return false;
        if (!strcmp(in->source, COST_SOURCE_SPOT))
                *ret = cost_integrate(in->points, in->n_points, in->since, end);
        else
                *ret = in->hourly * (double)MAX(end - in->since, 0) / 3600.0;
        return true;
}

struct cost_instance *cost_observe(struct cost_ledger *l, const struct cost_seen *s) {
        if (!s->id || !*s->id)
                return NULL;
        struct cost_instance *in = NULL;
        for (size_t i = 0; i < l->n && !in; i++)
                if (!strcmp(l->inst[i].id, s->id))
                        in = &l->inst[i];
        time_t boot = s->boot ? s->boot : s->run_started;
        if (!in) {
                if (l->n >= COST_MAX_INSTANCES)
                        return NULL;
                in = &l->inst[l->n++];
                memset(in, 0, sizeof *in);
                snprintf(in->id, sizeof in->id, "%s", s->id);
                in->boot = boot;
                /* launched for this run (cloud-init, install, fetch) or up before it (a hand-run agent, a kept
                 * instance running its next job): the run pays only for what it caused */
                in->since = boot && s->run_started - boot <= COST_LAUNCH_WINDOW ? boot : s->run_started;
                in->last = s->now;
        } else if (boot > in->boot) {
                /* the instance was stopped and started again: its earlier boot is done */
                double usd = 0;
                bool known = boot_cost(in, in->last, &usd);
                in->seconds_before += (long)MAX(in->last - in->since, 0);
                in->cost_before += known ? usd : 0;
                in->unknown_before |= !known;
                in->boot = in->since = boot;
                in->n_points = 0;
                if (!strcmp(in->source, COST_SOURCE_SPOT))
                        in->have_price = false; /* a new history to look up */
        }
        snprintf(in->type, sizeof in->type, "%s", s->type ? s->type : "");
        snprintf(in->az, sizeof in->az, "%s", s->az ? s->az : "");
        snprintf(in->region, sizeof in->region, "%s", s->region ? s->region : "");
        snprintf(in->lifecycle, sizeof in->lifecycle, "%s", s->lifecycle ? s->lifecycle : "");
        in->last = MAX(in->last, s->now);
        l->current = (int)(in - l->inst);
        return in;
}

void cost_instance_total(const struct cost_ledger *l, size_t i, time_t now, long *ret_seconds, double *ret_usd,
                         bool *ret_known) {
        const struct cost_instance *in = &l->inst[i];
        time_t end = (int)i == l->current ? MAX(now, in->last) : in->last;
        double usd = 0;
        bool known = boot_cost(in, end, &usd) && !in->unknown_before;
        *ret_seconds = in->seconds_before + (long)MAX(end - in->since, 0);
        *ret_usd = known ? in->cost_before + usd : 0;
        *ret_known = known;
}

static double money(double usd) { return round(usd * 1e6) / 1e6; }

static bool add_time(cJSON *o, const char *k, time_t t) {
        char b[32];
        format_iso8601(t, b);
        return cJSON_AddStringToObject(o, k, b) != NULL;
}

static bool instance_json(cJSON *arr, const struct cost_ledger *l, size_t i, time_t now, double *sum, bool *all) {
        const struct cost_instance *in = &l->inst[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o))
                return cJSON_Delete(o), false;
        long secs;
        double usd;
        bool known;
        cost_instance_total(l, i, now, &secs, &usd, &known);
        bool ok = cJSON_AddStringToObject(o, "id", in->id) && cJSON_AddStringToObject(o, "type", in->type) &&
                  cJSON_AddStringToObject(o, "availability_zone", in->az) &&
                  cJSON_AddStringToObject(o, "region", in->region) &&
                  cJSON_AddStringToObject(o, "lifecycle", in->lifecycle) && add_time(o, "since", in->since) &&
                  add_time(o, "until", (int)i == l->current ? MAX(now, in->last) : in->last) &&
                  cJSON_AddNumberToObject(o, "seconds", (double)secs);
        if (ok && in->have_price)
                ok = cJSON_AddNumberToObject(o, "hourly_price", money(in->hourly)) &&
                     cJSON_AddStringToObject(o, "price_source", in->source) &&
                     add_time(o, "price_as_of", in->price_as_of) &&
                     (!in->error[0] || cJSON_AddStringToObject(o, "price_note", in->error));
        if (ok && known)
                ok = cJSON_AddNumberToObject(o, "cost", money(usd)) != NULL;
        else if (ok)
                ok = cJSON_AddStringToObject(o, "price_unknown",
                                             in->unknown_before && in->have_price ? "the price of an earlier boot is unknown"
                                             : in->error[0]                       ? in->error
                                                                                  : "not looked up yet") != NULL;
        *sum += known ? usd : 0;
        *all &= known;
        return ok;
}

struct cJSON *cost_to_json(const struct cost_ledger *l, time_t now) {
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        cJSON *arr = o ? cJSON_AddArrayToObject(o, "instances") : NULL;
        if (!arr || !cJSON_AddStringToObject(o, "currency", COST_CURRENCY))
                return NULL;
        double sum = 0;
        bool all = l->n > 0;
        for (size_t i = 0; i < l->n; i++)
                if (!instance_json(arr, l, i, now, &sum, &all))
                        return NULL;
        bool ok;
        if (all)
                ok = cJSON_AddNumberToObject(o, "total", money(sum)) != NULL;
        else
                ok = cJSON_AddStringToObject(o, "total_unknown", l->n ? "the price of an instance is unknown"
                                                                      : "no EC2 instance seen (no instance metadata)");
        if (!ok || !cJSON_AddStringToObject(o, "covers", "EC2 instance time only (not EBS, data transfer or S3)"))
                return NULL;
        return TAKE_PTR(o);
}

/* ---------- the ledger file ---------- */

static void get_str(const cJSON *o, const char *k, char *dst, size_t n) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
        snprintf(dst, n, "%s", v ? v : "");
}

/* A finite number at key k, else dflt. */
static double get_num(const cJSON *o, const char *k, double dflt) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : dflt;
}

static void load_instance(const cJSON *x, struct cost_instance *in) {
        memset(in, 0, sizeof *in);
        get_str(x, "id", in->id, sizeof in->id);
        get_str(x, "type", in->type, sizeof in->type);
        get_str(x, "az", in->az, sizeof in->az);
        get_str(x, "region", in->region, sizeof in->region);
        get_str(x, "lifecycle", in->lifecycle, sizeof in->lifecycle);
        get_str(x, "source", in->source, sizeof in->source);
        get_str(x, "error", in->error, sizeof in->error);
        in->boot = (time_t)json_int(x, "boot", 0, JSON_TIME_MAX, 0);
        in->since = (time_t)json_int(x, "since", 0, JSON_TIME_MAX, 0);
        in->last = (time_t)json_int(x, "last", 0, JSON_TIME_MAX, 0);
        in->seconds_before = (long)json_int(x, "seconds_before", 0, JSON_TIME_MAX, 0);
        in->cost_before = get_num(x, "cost_before", 0);
        in->unknown_before = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "unknown_before"));
        in->have_price = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "have_price"));
        in->hourly = get_num(x, "hourly", 0);
        in->price_as_of = (time_t)json_int(x, "price_as_of", 0, JSON_TIME_MAX, 0);
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(x, "points")) {
                if (in->n_points >= COST_MAX_POINTS || cJSON_GetArraySize(p) != 2)
                        break;
                in->points[in->n_points++] = (struct price_point){
                        .t = (time_t)json_int_value(cJSON_GetArrayItem(p, 0), 0, JSON_TIME_MAX, 0),
                        .usd_hour = cJSON_GetNumberValue(cJSON_GetArrayItem(p, 1)) };
        }
        if (in->have_price && !in->source[0])
                in->have_price = false;
}

int cost_ledger_load(const char *path, const char *run_id, struct cost_ledger *ret) {
        cost_ledger_init(ret, run_id);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file_capped(path, 4u << 20, &text, &len);
        if (r < 0)
                return r;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_ParseWithLength(text, len);
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "run_id"));
        if (!id || strcmp(id, ret->run_id))
                return -ENOENT; /* another run's: start afresh */
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, "instances")) {
                if (ret->n >= COST_MAX_INSTANCES)
                        break;
                load_instance(x, &ret->inst[ret->n]);
                if (ret->inst[ret->n].id[0])
                        ret->n++;
        }
        return 0;
}

static bool save_instance(cJSON *arr, const struct cost_instance *in) {
        cJSON *x = cJSON_CreateObject();
        if (!x || !cJSON_AddItemToArray(arr, x))
                return cJSON_Delete(x), false;
        bool ok = cJSON_AddStringToObject(x, "id", in->id) && cJSON_AddStringToObject(x, "type", in->type) &&
                  cJSON_AddStringToObject(x, "az", in->az) && cJSON_AddStringToObject(x, "region", in->region) &&
                  cJSON_AddStringToObject(x, "lifecycle", in->lifecycle) &&
                  cJSON_AddStringToObject(x, "source", in->source) && cJSON_AddStringToObject(x, "error", in->error) &&
                  cJSON_AddNumberToObject(x, "boot", (double)in->boot) &&
                  cJSON_AddNumberToObject(x, "since", (double)in->since) &&
                  cJSON_AddNumberToObject(x, "last", (double)in->last) &&
                  cJSON_AddNumberToObject(x, "seconds_before", (double)in->seconds_before) &&
                  cJSON_AddNumberToObject(x, "cost_before", in->cost_before) &&
                  cJSON_AddBoolToObject(x, "unknown_before", in->unknown_before) &&
                  cJSON_AddBoolToObject(x, "have_price", in->have_price) &&
                  cJSON_AddNumberToObject(x, "hourly", in->hourly) &&
                  cJSON_AddNumberToObject(x, "price_as_of", (double)in->price_as_of);
        cJSON *pts = ok ? cJSON_AddArrayToObject(x, "points") : NULL;
        for (size_t i = 0; pts && i < in->n_points; i++) {
                double v[2] = { (double)in->points[i].t, in->points[i].usd_hour };
                cJSON *p = cJSON_CreateDoubleArray(v, 2);
                if (!p || !cJSON_AddItemToArray(pts, p))
                        return cJSON_Delete(p), false;
        }
        return pts != NULL;
}

int cost_ledger_save(const char *path, const struct cost_ledger *l) {
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        cJSON *arr = o ? cJSON_AddArrayToObject(o, "instances") : NULL;
        if (!arr || !cJSON_AddStringToObject(o, "run_id", l->run_id))
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++)
                if (!save_instance(arr, &l->inst[i]))
                        return -ENOMEM;
        _cleanup_free_ char *text = cJSON_PrintUnformatted(o);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0640);
}

/* ---------- the price ---------- */

int cost_lookup_price(struct aws_ctx *c, struct cost_instance *in, time_t now, const struct pricing_opts *o,
                      struct aws_result *out) {
        *out = (struct aws_result){ 0 };
        int r;
        if (!in->type[0] || !in->region[0]) {
                snprintf(out->msg, sizeof out->msg, "the instance type or region is unknown");
                r = -ENOENT;
        } else if (!strcmp(in->lifecycle, "spot")) {
                if (!in->az[0]) {
                        snprintf(out->msg, sizeof out->msg, "the availability zone is unknown");
                        r = -ENOENT;
                } else {
                        struct http_client h;
                        size_t n = 0;
                        r = http_client_init(&h);
                        if (r == 0)
                                r = pricing_spot_history(c, &h, in->type, in->az, in->since, now, o, in->points,
                                                         COST_MAX_POINTS, &n, out);
                        http_client_free(&h);
                        if (r == 0 && !n) {
                                snprintf(out->msg, sizeof out->msg, "DescribeSpotPriceHistory has no Linux/UNIX price "
                                                                    "for %s in %s", in->type, in->az);
                                r = -ENOENT;
                        }
                        if (r == 0) {
                                in->n_points = n;
                                in->hourly = in->points[n - 1].usd_hour;
                                snprintf(in->source, sizeof in->source, "%s", COST_SOURCE_SPOT);
                        }
                }
        } else if (!strcmp(in->lifecycle, "on-demand")) {
                if (in->have_price)
                        return 0; /* list prices do not move within a run */
                struct http_client h;
                double usd = 0;
                r = http_client_init(&h);
                if (r == 0)
                        r = pricing_ondemand(c, &h, in->type, in->region, o, &usd, out);
                http_client_free(&h);
                if (r == 0) {
                        in->hourly = usd;
                        snprintf(in->source, sizeof in->source, "%s", COST_SOURCE_ONDEMAND);
                }
        } else {
                snprintf(out->msg, sizeof out->msg, "instance lifecycle '%s' has no price source",
                         in->lifecycle[0] ? in->lifecycle : "unknown");
                r = -ENOENT;
        }
        if (r < 0) {
                /* a spot history looked up earlier still prices the time it covers: keep it, say why it is old */
                if (!(in->have_price && !strcmp(in->source, COST_SOURCE_SPOT)))
                        in->have_price = false;
                errf(in->error, sizeof in->error, "%s", out->msg);
                return r;
        }
        in->have_price = true;
        in->price_as_of = now;
        in->error[0] = 0;
        return 0;
}

/* ---------- every instance of the run ---------- */

static cJSON *entry_of(cJSON *instances, const char *id) {
        cJSON *x;
        cJSON_ArrayForEach(x, instances) {
                const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(x, "id"));
                if (v && !strcmp(v, id))
                        return x;
        }
        return NULL;
}

const char *cost_record_state(const struct cJSON *rec, time_t now, bool *ret_vanished) {
        bool ended = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(rec, "ended"));
        bool notice = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(rec, "interruption"));
        double t = (double)json_int(rec, "time", 0, JSON_TIME_MAX, 0), ttl = (double)json_int(rec, "ttl", 1, 86400, 60);
        *ret_vanished = !ended && (double)now - t > ttl;
        if (notice && (ended || *ret_vanished))
                return "interrupted";
        return ended ? "gone" : *ret_vanished ? "lost" : "running";
}

/* An instance known only from its record: what it says of itself (its cost up to its last word). */
static cJSON *peer_entry(const cJSON *rec, const char *id) {
        static const char *const fields[] = { "id", "type", "availability_zone", "region", "lifecycle", "since", "until",
                                              "seconds", "hourly_price", "price_source", "price_as_of", "price_note",
                                              "cost", "price_unknown" };
        /* by name, scalars only: a record anyone under the prefix may write never grows status.json past its cap */
        cJSON *e = json_pick(cJSON_GetObjectItemCaseSensitive(rec, "cost"), fields, ARRAY_SIZE(fields), 256);
        if (!e)
                return NULL;
        static const char *const keys[] = { "type", "availability_zone", "region", "lifecycle" };
        if (!cJSON_HasObjectItem(e, "id"))
                cJSON_AddStringToObject(e, "id", id);
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, keys[i]));
                if (v && !cJSON_HasObjectItem(e, keys[i]))
                        cJSON_AddStringToObject(e, keys[i], v);
        }
        if (!cJSON_HasObjectItem(e, "cost") && !cJSON_HasObjectItem(e, "price_unknown"))
                cJSON_AddStringToObject(e, "price_unknown", "the instance did not report its cost");
        return e;
}

/* A vanished instance ran on, unseen, at most until its lease could be taken: its last heartbeat plus the TTL. */
static void estimate(cJSON *e, const cJSON *rec) {
        double ttl = (double)json_int(rec, "ttl", 1, 86400, 60), t = (double)json_int(rec, "time", 0, JSON_TIME_MAX, 0);
        double secs = get_num(e, "seconds", 0), hourly = get_num(e, "hourly_price", -1), usd = get_num(e, "cost", -1);
        /* from where its own word stops (its cost's "until", maybe long before its last heartbeat) */
        time_t until = 0;
        const char *u = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "until"));
        if (!u || parse_iso8601(u, &until) < 0 || (double)until > t)
                until = (time_t)t;
        double extra = t > 0 ? t + ttl - (double)until : ttl;
        ttl = extra; /* what is added below */
        cJSON_DeleteItemFromObjectCaseSensitive(e, "seconds");
        cJSON_AddNumberToObject(e, "seconds", secs + ttl);
        if (t > 0) {
                cJSON_DeleteItemFromObjectCaseSensitive(e, "until");
                add_time(e, "until", (time_t)(t + ttl));
        }
        if (usd >= 0 && hourly >= 0)
                cJSON_ReplaceItemInObjectCaseSensitive(e, "cost", cJSON_CreateNumber(money(usd + hourly * ttl / 3600)));
        /* (cost is there: usd >= 0 came from it) */
        cJSON_AddBoolToObject(e, "estimate", true);
        cJSON_AddStringToObject(e, "estimate_note", "it vanished: counted up to its last heartbeat plus the lease TTL");
}

static void retotal(cJSON *cost) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(cost, "instances"), *x;
        double sum = 0;
        bool all = cJSON_GetArraySize(arr) > 0, est = false;
        cJSON_ArrayForEach(x, arr) {
                const cJSON *c = cJSON_GetObjectItemCaseSensitive(x, "cost");
                all &= cJSON_IsNumber(c);
                sum += cJSON_IsNumber(c) ? c->valuedouble : 0;
                est |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "estimate"));
        }
        cJSON_DeleteItemFromObjectCaseSensitive(cost, "total");
        cJSON_DeleteItemFromObjectCaseSensitive(cost, "total_unknown");
        cJSON_DeleteItemFromObjectCaseSensitive(cost, "total_estimated");
        if (all)
                cJSON_AddNumberToObject(cost, "total", money(sum));
        else
                cJSON_AddStringToObject(cost, "total_unknown", "the price of an instance is unknown");
        if (all && est)
                cJSON_AddBoolToObject(cost, "total_estimated", true);
}

int cost_add_records(struct cJSON *cost, const struct cJSON *records, time_t now) {
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(cost, "instances");
        if (!cJSON_IsArray(arr))
                return -EINVAL;
        const cJSON *rec;
        cJSON_ArrayForEach(rec, records) {
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "instance"));
                if (!id || !*id)
                        continue;
                bool vanished;
                const char *state = cost_record_state(rec, now, &vanished);
                cJSON *e = entry_of(arr, id);
                if (!e) { /* another instance: its own word, up to its last heartbeat */
                        if (cJSON_GetArraySize(arr) >= COST_MAX_RECORDS || !(e = peer_entry(rec, id)))
                                continue;
                        cJSON_AddItemToArray(arr, e);
                        if (vanished)
                                estimate(e, rec);
                }
                cJSON_DeleteItemFromObjectCaseSensitive(e, "state");
                cJSON_AddStringToObject(e, "state", state);
                static const char *const notice_fields[] = { "action", "time" };
                const cJSON *notice = cJSON_GetObjectItemCaseSensitive(rec, "interruption");
                if (cJSON_IsObject(notice) && !cJSON_HasObjectItem(e, "interruption"))
                        cJSON_AddItemToObject(e, "interruption", json_pick(notice, notice_fields, 2, 64));
        }
        retotal(cost);
        return 0;
}

struct cJSON *cost_current_json(const struct cost_ledger *l, time_t now) {
        if (l->current < 0)
                return NULL;
        _cleanup_(cjson_deletep) cJSON *arr = cJSON_CreateArray();
        double sum = 0;
        bool all = true;
        if (!arr || !instance_json(arr, l, (size_t)l->current, now, &sum, &all))
                return NULL;
        return cJSON_DetachItemFromArray(arr, 0);
}
