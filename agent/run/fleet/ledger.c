/* SPDX-License-Identifier: Apache-2.0 */
/* ledger.c — the run's shared records in S3: leases, attempts, done records, the end, heartbeats. */
#include "run/fleet/ledger.h"
#include "run/fleet/ledgerint.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/random.h>

#include "jsonx.h"
#include "aws/ec2.h"
#include "aws/s3.h"
#include "aws/s3cas.h"
#include "aws/s3traits.h"
#include "log.h"
#include "util.h"

#define CAS_TRIES 6

/* prefix + "ledger/" + the rest; -ENAMETOOLONG with out->msg. */
int ledger_key(const struct ledger *L, char key[S3_MAX_KEY + 1], struct aws_result *out, const char *fmt, ...) {
        char rest[512];
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(rest, sizeof rest, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t)k >= sizeof rest || pathf(key, S3_MAX_KEY + 1, "%sledger/%s", L->prefix, rest) < 0) {
                errf(out->msg, sizeof out->msg, "a ledger key under %s is too long", L->prefix);
                return -ENAMETOOLONG;
        }
        return 0;
}

int ledger_init(struct ledger *L, struct aws_ctx *c, const char *bucket, const char *prefix, const char *instance,
                const struct job *job, long ttl) {
        *L = (struct ledger){ .c = c, .job = job, .ttl = ttl > 0 ? ttl : LEDGER_DEFAULT_TTL, .held = -1,
                              .n = job->n_experiments, .wake_fd = -1 };
        /* recursive: commit gives the lease back under the same lock */
        pthread_mutexattr_t ma;
        pthread_mutexattr_init(&ma);
        pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&L->lock, &ma);
        pthread_mutexattr_destroy(&ma);
        pthread_mutex_init(&L->beat_lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&L->cond, &ca);
        pthread_condattr_destroy(&ca);
        if (pathf(L->bucket, sizeof L->bucket, "%s", bucket) < 0 || pathf(L->prefix, sizeof L->prefix, "%s", prefix) < 0 ||
            pathf(L->instance, sizeof L->instance, "%s", instance && *instance ? instance : "local") < 0)
                return -ENAMETOOLONG;
        L->exps = calloc(L->n ? L->n : 1, sizeof *L->exps);
        return L->exps ? gang_init(L) : -ENOMEM;
}

void ledger_free(struct ledger *L) {
        ledger_keeper_stop(L);
        gang_shadow_free(L);
        gang_free(L);
        free(L->exps);
        L->exps = NULL;
        free(L->self);
        L->self = NULL;
        for (size_t i = 0; i < L->n_peers; i++)
                free(L->peers[i].body);
        L->n_peers = 0;
        pthread_mutex_destroy(&L->lock);
        pthread_mutex_destroy(&L->beat_lock);
        pthread_cond_destroy(&L->cond);
}

bool ledger_lease_expired(double seen_since, double now, long ttl) {
        return now - seen_since >= (double)ttl * LEDGER_SKEW;
}

static int index_of(const struct ledger *L, const char *name, size_t len) {
        for (size_t i = 0; i < L->n; i++)
                if (strlen(L->job->experiments[i].name) == len && !strncmp(L->job->experiments[i].name, name, len))
                        return (int)i;
        return -1;
}

struct listing {
        struct ledger *L;
        size_t skip;
        bool seen_lease[256], seen_done[256], seen_exp[256];
        char exp_etag[256][128];
        bool end, cancel;
};

/* "<kind>/<name>.json" under the ledger: which experiment, or -1. */
static int parse_rel(const struct ledger *L, const char *rel, const char *kind) {
        size_t kl = strlen(kind);
        if (strncmp(rel, kind, kl) || rel[kl] != '/' || !str_has_suffix(rel, ".json"))
                return -1;
        const char *name = rel + kl + 1;
        return index_of(L, name, strlen(name) - 5);
}

static int on_item(void *ud, const struct s3_object *o) {
        struct listing *l = ud;
        const char *rel = o->key + l->skip;
        int i;
        if (!strcmp(rel, "end.json"))
                l->end = true;
        else if (!strcmp(rel, "cancel.json"))
                l->cancel = true;
        else if ((i = parse_rel(l->L, rel, "lease")) >= 0 && i < 256) {
                l->seen_lease[i] = true;
                struct ledger_exp *e = &l->L->exps[i];
                const char *etag = o->etag ? o->etag : "";
                if (!e->held || strcmp(e->lease_etag, etag)) {
                        /* a lease that changed under this instance's eyes has a holder that renews it */
                        e->alive = e->held;
                        snprintf(e->lease_etag, sizeof e->lease_etag, "%s", etag);
                        e->seen_since = now_mono();
                        e->seen_holder = false;
                        e->released = false;
                        e->holder[0] = 0;
                        e->holder_gone = false;
                }
        } else if (str_has_prefix(rel, "slot/"))
                gang_on_item(l->L, rel, o->etag ? o->etag : "");
        else if ((i = parse_rel(l->L, rel, "done")) >= 0 && i < 256)
                l->seen_done[i] = true;
        else if ((i = parse_rel(l->L, rel, "exp")) >= 0 && i < 256) {
                l->seen_exp[i] = true;
                snprintf(l->exp_etag[i], sizeof l->exp_etag[i], "%s", o->etag ? o->etag : "");
        }
        return 0;
}

int ledger_get_json(struct ledger *L, struct http_client *h, const char *key, cJSON **ret, char *etag,
                    struct aws_result *out) {
        _cleanup_free_ char *body = NULL;
        char tag[128];
        int r = s3cas_get(L->c, h, L->bucket, key, &body, etag ? etag : tag, out);
        if (r < 0)
                return r;
        *ret = cJSON_Parse(body);
        if (!*ret) {
                errf(out->msg, sizeof out->msg, "s3://%s/%s is not JSON", L->bucket, key);
                return -MF_EPARSE;
        }
        return 0;
}

void ledger_str_field(const cJSON *o, const char *k, char *dst, size_t n) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
        snprintf(dst, n, "%s", v ? v : "");
}


void ledger_read_exp(struct ledger_exp *e, const cJSON *o) {
        e->attempts = (int)json_int(o, "attempts", 0, INT_MAX, 0);
        e->n_instances = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(o, "instances")) {
                if (e->n_instances < LEDGER_MAX_INSTANCES && cJSON_IsString(x))
                        snprintf(e->instances[e->n_instances++], sizeof e->instances[0], "%s", x->valuestring);
        }
}

void ledger_read_done(struct ledger_exp *e, const cJSON *o) {
        e->done = true;
        e->exit_code = (int)json_int(o, "exit_code", -1, 255, -1);
        e->signal = (int)json_int(o, "signal", 0, 128, 0);
        e->start = (time_t)json_int(o, "start", 0, JSON_TIME_MAX, 0);
        e->end = (time_t)json_int(o, "end", 0, JSON_TIME_MAX, 0);
        ledger_str_field(o, "reason", e->reason, sizeof e->reason);
        ledger_str_field(o, "instance", e->done_by, sizeof e->done_by);
        if ((int)json_int(o, "attempts", 0, INT_MAX, 0) > e->attempts)
                e->attempts = (int)json_int(o, "attempts", 0, INT_MAX, 0);
}

bool ledger_lease_overdue(double seen_since, double now, long ttl) {
        return now - seen_since > (double)ttl / 2.0;
}

bool ledger_instance_gone(const char *ec2_state) {
        static const char *const gone[] = { "shutting-down", "terminated", "stopping", "stopped" };
        for (size_t i = 0; ec2_state && i < ARRAY_SIZE(gone); i++)
                if (!strcmp(ec2_state, gone[i]))
                        return true;
        return false;
}

/* Whether EC2 says the lease's holder is going or gone (DescribeInstances): its experiment is taken over at once,
 * not after ttl × LEDGER_SKEW. Without ec2:DescribeInstances (said once), only the TTL counts. */
bool ledger_holder_gone(struct ledger *L, struct http_client *h, const char *holder) {
        if (L->ec2_denied || strncmp(holder, "i-", 2))
                return false;
        char state[32] = "";
        struct aws_result out = { 0 };
        int r = ec2_describe_state(L->c, h, holder, state, sizeof state, &out);
        if (r == -MF_ENOTFOUND || (r < 0 && !strcmp(out.err.code, "InvalidInstanceID.NotFound")))
                snprintf(state, sizeof state, "terminated"); /* long gone: EC2 no longer lists it */
        else if (r < 0) {
                if (out.status == 403 || strstr(out.err.code, "Unauthorized") != NULL) {
                        L->ec2_denied = true;
                        log_warn("the instance role may not call ec2:DescribeInstances (%s): an experiment whose "
                                 "holder vanished is taken over only after its lease expires (docs/iam.md)", out.msg);
                }
                return false;
        }
        bool gone = ledger_instance_gone(state);
        if (gone)
                log_info("the holder of a lease, %s, is %s: its experiment is taken over now", holder, state);
        return gone;
}

/* The run's end record and cancel record, once each, when the listing shows them. */
static void read_end_and_cancel(struct ledger *L, struct http_client *h, const struct listing *l,
                                struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        cJSON *o = NULL;
        if (l->end && !L->ended && ledger_key(L, key, out, "end.json") == 0 && ledger_get_json(L, h, key, &o, NULL, out) == 0) {
                L->ended = true;
                ledger_str_field(o, "outcome", L->end_outcome, sizeof L->end_outcome);
                ledger_str_field(o, "reason", L->end_reason, sizeof L->end_reason);
                ledger_str_field(o, "instance", L->end_by, sizeof L->end_by);
        }
        cJSON_Delete(o);
        o = NULL;
        if (l->cancel && !L->cancelled && ledger_key(L, key, out, "cancel.json") == 0 &&
            ledger_get_json(L, h, key, &o, NULL, out) == 0) {
                L->cancelled = true;
                ledger_str_field(o, "by", L->cancel_by, sizeof L->cancel_by);
        }
        cJSON_Delete(o);
}

int ledger_refresh_locked(struct ledger *L, struct aws_result *out) {
        char prefix[S3_MAX_KEY + 1];
        int r = ledger_key(L, prefix, out, "%s", "");
        if (r < 0)
                return r;
        struct http_client h;
        if ((r = http_client_init(&h)) < 0)
                return r;
        struct listing *l = calloc(1, sizeof *l);
        if (!l) {
                http_client_free(&h);
                return -ENOMEM;
        }
        l->L = L;
        l->skip = strlen(prefix);
        gang_list_begin(L);
        r = s3_list(L->c, &h, L->bucket, prefix, on_item, l, out);
        double now = now_mono();
        for (size_t i = 0; r == 0 && i < L->n && i < 256; i++) {
                struct ledger_exp *e = &L->exps[i];
                e->held = l->seen_lease[i];
                char key[S3_MAX_KEY + 1];
                cJSON *o = NULL;
                if (e->held && !e->seen_holder &&
                    ledger_key(L, key, out, "lease/%s.json", L->job->experiments[i].name) == 0 &&
                    ledger_get_json(L, &h, key, &o, NULL, out) == 0) {
                        ledger_str_field(o, "holder", e->holder, sizeof e->holder);
                        e->released = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "released"));
                        gang_read_lease(e, o);
                        e->seen_holder = true;
                }
                cJSON_Delete(o);
                o = NULL;
                /* ours: held by this agent now, or by this instance before a restart (taken back at once) */
                e->mine = e->held && ((L->held == (int)i && !strcmp(e->lease_etag, L->etag)) ||
                                      !strcmp(e->holder, L->instance));
                e->stale = e->held && !e->mine && ledger_lease_expired(e->seen_since, now, L->ttl);
                if (e->held && !e->mine && !e->stale && e->holder[0] && !e->holder_gone &&
                    ledger_lease_overdue(e->seen_since, now, L->ttl))
                        e->holder_gone = ledger_holder_gone(L, &h, e->holder);
                e->stale |= e->holder_gone || (e->released && !e->mine);
                if (!e->held) {
                        e->lease_stop.set = e->lease_formed = false;
                        e->lease_attempt = 0;
                        e->lease_ip[0] = 0;
                }
                if (e->slots)
                        gang_refresh(L, &h, i, now);
                if (l->seen_exp[i] && strcmp(L->exp_etag[i], l->exp_etag[i]) &&
                    ledger_key(L, key, out, "exp/%s.json", L->job->experiments[i].name) == 0 &&
                    ledger_get_json(L, &h, key, &o, NULL, out) == 0) {
                        ledger_read_exp(e, o);
                        snprintf(L->exp_etag[i], sizeof L->exp_etag[i], "%s", l->exp_etag[i]);
                }
                cJSON_Delete(o);
                o = NULL;
                if (l->seen_done[i] && !e->done && ledger_key(L, key, out, "done/%s.json", L->job->experiments[i].name) == 0 &&
                    ledger_get_json(L, &h, key, &o, NULL, out) == 0) {
                        ledger_read_done(e, o); /* a done record never changes: read once */
                }
                cJSON_Delete(o);
        }
        if (r == 0)
                read_end_and_cancel(L, &h, l, out);
        free(l);
        http_client_free(&h);
        return r;
}

int ledger_refresh(struct ledger *L, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        int r = ledger_refresh_locked(L, out);
        pthread_mutex_unlock(&L->lock);
        return r;
}

/* Finished, for what waits on it: done (whatever its exit code). */
static bool waits_done(const struct ledger *L, bool sequential, size_t i) {
        const struct experiment *x = &L->job->experiments[i];
        if (sequential && i > 0 && !L->exps[i - 1].done)
                return false;
        for (size_t k = 0; k < x->n_after; k++)
                if (!L->exps[x->after[k]].done)
                        return false;
        return true;
}

enum ledger_next ledger_pick(const struct ledger *L, bool sequential, int *ret_index) {
        if (L->ended)
                return LEDGER_ALL_DONE;
        bool all_done = true, can_come = false, unproven = false, gang_waits = false;
        for (size_t i = 0; i < L->n; i++) {
                const struct ledger_exp *e = &L->exps[i];
                if (e->done)
                        continue;
                all_done = false;
                if (!waits_done(L, sequential, i)) {
                        can_come = true; /* after something still to finish */
                        continue;
                }
                if (!e->held || e->stale || e->mine || (e->slots && ledger_gang_rank(L, i) > 0)) {
                        *ret_index = (int)i; /* its lease, or a gang's free slot (ledger_gang_rank) */
                        return LEDGER_CLAIM;
                }
                can_come = true; /* held by a live instance: it may give it back */
                unproven |= !e->alive; /* ... or by one that vanished: not seen renewing yet */
                /* a gang between attempts, or whose rank 0 is still at work after this one's part finished: its
                 * members stay for the next attempt */
                gang_waits |= e->slots && (!ledger_gang_whole(L, i) || ledger_gang_place_here(L, i));
        }
        if (all_done)
                return LEDGER_ALL_DONE;
        /* in a run, it waits for the holder; in a sweep, it leaves only once every holder of what is left has been
         * seen renewing (one that vanished would leave its experiment to nobody): until then it watches */
        return (sequential && can_come) || unproven || gang_waits ? LEDGER_WAIT : LEDGER_NOTHING_LEFT;
}

static void nonce(char out[17]) {
        unsigned char b[8] = { 0 };
        if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
                memset(b, 0, sizeof b);
        hex_encode(b, sizeof b, out);
}

/* The lease's body: unique per write, so that a lost answer can be recognised by reading it back. released: given
 * back (on a store that ignores If-Match on DELETE a claim is given back so, never deleted): free to take at once. */
char *ledger_lease_body(const struct ledger *L, long generation, int attempt, bool released) {
        char n[17];
        nonce(n);
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o)
                return NULL;
        cJSON_AddStringToObject(o, "holder", L->instance);
        cJSON_AddNumberToObject(o, "generation", (double)generation);
        cJSON_AddNumberToObject(o, "attempt", attempt);
        cJSON_AddNumberToObject(o, "ttl", (double)L->ttl);
        cJSON_AddNumberToObject(o, "time", (double)now_wall());
        cJSON_AddStringToObject(o, "nonce", n);
        if (released)
                cJSON_AddTrueToObject(o, "released");
        gang_lease_fields(L, o);
        return cJSON_PrintUnformatted(o);
}

static char *lease_body(const struct ledger *L, long generation, int attempt) {
        return ledger_lease_body(L, generation, attempt, false);
}

/* attempts + 1 and this instance in the experiment's record (compare-and-swap, retried). The new count; -E2BIG,
 * with nothing written, when max_attempts (> 0) are spent. */
int ledger_takeover_generation(struct ledger *L, struct http_client *h, const char *key, const char *watched,
                               long *ret_generation, struct aws_result *out) {
        cJSON *o = NULL;
        char etag[128];
        int r = ledger_get_json(L, h, key, &o, etag, out);
        if (r == 0 && strcmp(etag, watched))
                r = -MF_EPRECOND; /* renewed meanwhile: its holder lives */
        if (r == 0)
                *ret_generation = (long)json_int(o, "generation", 0, LONG_MAX - 1, 0) + 1;
        cJSON_Delete(o);
        return r;
}

static int count_attempt(struct ledger *L, struct http_client *h, int i, int max_attempts, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = ledger_key(L, key, out, "exp/%s.json", L->job->experiments[i].name);
        for (int t = 0; r >= 0 && t < CAS_TRIES; t++) {
                cJSON *o = NULL;
                char etag[128] = "";
                r = ledger_get_json(L, h, key, &o, etag, out);
                if (r == -MF_ENOTFOUND) {
                        r = 0;
                        etag[0] = 0;
                }
                if (r < 0)
                        break;
                struct ledger_exp e = { 0 };
                if (o)
                        ledger_read_exp(&e, o);
                cJSON_Delete(o);
                if (max_attempts > 0 && e.attempts >= max_attempts) {
                        L->exps[i].attempts = e.attempts;
                        return -E2BIG;
                }
                _cleanup_(cjson_deletep) cJSON *n = cJSON_CreateObject();
                cJSON *inst = n ? cJSON_AddArrayToObject(n, "instances") : NULL;
                if (!inst)
                        return -ENOMEM;
                cJSON_AddNumberToObject(n, "attempts", e.attempts + 1);
                for (size_t k = 0; k < e.n_instances; k++)
                        cJSON_AddItemToArray(inst, cJSON_CreateString(e.instances[k]));
                cJSON_AddItemToArray(inst, cJSON_CreateString(L->instance));
                _cleanup_free_ char *body = cJSON_PrintUnformatted(n);
                char tag[128];
                r = body ? s3cas_put(L->c, h, L->bucket, key, body, etag[0] ? etag : NULL, !etag[0], tag, out) : -ENOMEM;
                if (r == 0) {
                        L->exps[i].attempts = e.attempts + 1;
                        return e.attempts + 1;
                }
                if (r != -MF_EPRECOND && r != -MF_ECONFLICT)
                        break;
        }
        return r < 0 ? r : -EAGAIN;
}

static int ledger_claim_locked(struct ledger *L, int i, int max_attempts, struct aws_result *out) {
        struct ledger_exp *e = &L->exps[i];
        char key[S3_MAX_KEY + 1];
        int r = ledger_key(L, key, out, "lease/%s.json", L->job->experiments[i].name);
        if (r < 0)
                return r;
        struct http_client h;
        if ((r = http_client_init(&h)) < 0)
                return r;
        if (!L->probed) {
                /* how this store gives a claim back: asked once, before the first claim */
                char scratch[S3_MAX_KEY + 1];
                struct aws_result o2 = { 0 };
                if (ledger_key(L, scratch, &o2, "probe/%s.json", L->instance) == 0 &&
                    s3cas_probe_delete(L->c, &h, L->bucket, scratch, &o2) >= 0)
                        L->probed = true;
        }
        long generation = 1;
        const char *if_match = NULL;
        L->rank = 0;
        L->stopping = (struct ledger_stop){ 0 };
        L->gang_formed = false;
        if (e->held && L->held != i) {
                /* a stale lease, or this instance's own from before a restart */
                r = ledger_takeover_generation(L, &h, key, e->lease_etag, &generation, out);
                if_match = e->lease_etag;
        }
        int guess = e->attempts + 1;
        _cleanup_free_ char *body = r == 0 ? lease_body(L, generation, guess) : NULL;
        double t0 = now_mono();
        char tag[128];
        if (r == 0)
                r = body ? s3cas_put(L->c, &h, L->bucket, key, body, if_match, !if_match, tag, out) : -ENOMEM;
        if (r == -MF_ECONFLICT)
                r = -MF_EPRECOND; /* someone else wrote at the same moment: not ours */
        if (r == 0) {
                L->held = i;
                snprintf(L->etag, sizeof L->etag, "%s", tag);
                L->generation = generation;
                L->renewed_at = t0;
                int a = count_attempt(L, &h, i, max_attempts, out);
                if (a < 0)
                        r = a;
                else
                        L->attempt = a;
                struct aws_result o2 = { 0 };
                if (a > 0 && a != guess && e->slots)
                        ledger_renew(L, &o2); /* a gang joins the attempt its lease names: the counted one */
                if (r < 0) {
                        s3cas_delete(L->c, &h, L->bucket, key, L->etag, &o2);
                        L->held = -1;
                }
        }
        http_client_free(&h);
        return r;
}

int ledger_claim(struct ledger *L, int i, int max_attempts, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        int r = ledger_claim_locked(L, i, max_attempts, out);
        pthread_mutex_unlock(&L->lock);
        return r;
}

double ledger_lease_left(const struct ledger *L) {
        return L->held < 0 ? -1 : (double)L->ttl - (now_mono() - L->renewed_at);
}


static int ledger_renew_locked(struct ledger *L, struct aws_result *out) {
        if (L->held < 0)
                return -ENOENT;
        char key[S3_MAX_KEY + 1];
        int r = gang_held_key(L, key, out);
        if (r < 0)
                return r;
        struct http_client h;
        if ((r = http_client_init(&h)) < 0)
                return r;
        for (int t = 0; t < CAS_TRIES; t++) {
                _cleanup_free_ char *body = lease_body(L, L->generation, L->attempt);
                double t0 = now_mono();
                char tag[128];
                /* a 412 here is a lease another instance wrote: s3cas_put has read it back (a store that refused a
                 * write whose condition held is -MF_ESTORE, not a loss) */
                r = body ? s3cas_put(L->c, &h, L->bucket, key, body, L->etag, false, tag, out) : -ENOMEM;
                if (r == 0) {
                        snprintf(L->etag, sizeof L->etag, "%s", tag);
                        L->renewed_at = t0;
                        break;
                }
                if (r != -MF_ECONFLICT)
                        break; /* 412: taken; anything else: try at the next renewal */
        }
        if (r == -MF_EPRECOND || r == -MF_ENOTFOUND) {
                L->held = -1; /* another instance has it now */
                r = -MF_EPRECOND;
        }
        http_client_free(&h);
        return r;
}

int ledger_renew(struct ledger *L, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        int r = ledger_renew_locked(L, out);
        pthread_mutex_unlock(&L->lock);
        return r;
}

static int ledger_release_locked(struct ledger *L, struct aws_result *out) {
        if (L->held < 0)
                return 0;
        if (L->rank > 0)
                return ledger_slot_release(L, L->part_finished, out); /* a part that finished stays "finished" */
        char key[S3_MAX_KEY + 1];
        int r = ledger_key(L, key, out, "lease/%s.json", L->job->experiments[L->held].name);
        struct http_client h;
        if (r == 0 && (r = http_client_init(&h)) == 0) {
                if (s3traits_get(L->c, L->bucket) & S3T_DELETE_IGNORES_IFMATCH) {
                        /* a delete would not check the ETag: the lease is overwritten as released, on its ETag */
                        _cleanup_free_ char *body = ledger_lease_body(L, L->generation, L->attempt, true);
                        char tag[128];
                        r = body ? s3cas_put(L->c, &h, L->bucket, key, body, L->etag, false, tag, out) : -ENOMEM;
                } else {
                        r = s3cas_delete(L->c, &h, L->bucket, key, L->etag, out);
                }
                http_client_free(&h);
        }
        if (r == 0 || r == -MF_EPRECOND)
                L->held = -1;
        return r == -MF_EPRECOND ? 0 : r;
}

int ledger_release(struct ledger *L, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        int r = ledger_release_locked(L, out);
        pthread_mutex_unlock(&L->lock);
        return r;
}

static int ledger_commit_locked(struct ledger *L, const struct ledger_done *d, struct aws_result *out) {
        if (L->held < 0)
                return -ENOENT;
        int i = L->held;
        char key[S3_MAX_KEY + 1];
        int r = ledger_key(L, key, out, "done/%s.json", L->job->experiments[i].name);
        if (r < 0)
                return r;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "instance", L->instance);
        cJSON_AddNumberToObject(o, "attempts", L->attempt);
        cJSON_AddNumberToObject(o, "exit_code", d->exit_code);
        cJSON_AddNumberToObject(o, "signal", d->signal);
        cJSON_AddStringToObject(o, "reason", d->reason ? d->reason : "");
        cJSON_AddNumberToObject(o, "start", (double)d->start);
        cJSON_AddNumberToObject(o, "end", (double)d->end);
        _cleanup_free_ char *body = cJSON_PrintUnformatted(o);
        struct http_client h;
        if (!body || (r = http_client_init(&h)) < 0)
                return body ? r : -ENOMEM;
        char tag[128];
        r = s3cas_put(L->c, &h, L->bucket, key, body, NULL, true, tag, out);
        http_client_free(&h);
        if (r == -MF_EPRECOND)
                r = 0; /* committed before (by this very run of the experiment, or a takeover that finished it) */
        if (r == 0) {
                struct ledger_exp *e = &L->exps[i];
                e->done = true;
                e->exit_code = d->exit_code;
                e->signal = d->signal;
                e->start = d->start;
                e->end = d->end;
                snprintf(e->reason, sizeof e->reason, "%s", d->reason ? d->reason : "");
                snprintf(e->done_by, sizeof e->done_by, "%s", L->instance);
                struct aws_result o2 = { 0 };
                ledger_release(L, &o2);
        }
        return r;
}

int ledger_commit(struct ledger *L, const struct ledger_done *d, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        int r = ledger_commit_locked(L, d, out);
        pthread_mutex_unlock(&L->lock);
        return r;
}

static int ledger_end_locked(struct ledger *L, const char *outcome, const char *reason, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = ledger_key(L, key, out, "end.json");
        if (r < 0)
                return r;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "outcome", outcome);
        cJSON_AddStringToObject(o, "reason", reason);
        cJSON_AddStringToObject(o, "instance", L->instance);
        cJSON_AddNumberToObject(o, "time", (double)now_wall());
        _cleanup_free_ char *body = cJSON_PrintUnformatted(o);
        struct http_client h;
        if (!body || (r = http_client_init(&h)) < 0)
                return body ? r : -ENOMEM;
        char tag[128];
        r = s3cas_put(L->c, &h, L->bucket, key, body, NULL, true, tag, out);
        http_client_free(&h);
        if (r == 0) {
                L->ended = true;
                snprintf(L->end_outcome, sizeof L->end_outcome, "%s", outcome);
                snprintf(L->end_reason, sizeof L->end_reason, "%s", reason);
                snprintf(L->end_by, sizeof L->end_by, "%s", L->instance);
                return 1;
        }
        if (r == -MF_EPRECOND) {
                struct aws_result o2 = { 0 };
                ledger_refresh(L, &o2);
                return 0;
        }
        return r;
}

int ledger_end(struct ledger *L, const char *outcome, const char *reason, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        int r = ledger_end_locked(L, outcome, reason, out);
        pthread_mutex_unlock(&L->lock);
        return r;
}

static int heartbeat_locked(struct ledger *L, const char *phase, const char *experiment, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = ledger_key(L, key, out, "instances/%s.json", L->instance);
        if (r < 0)
                return r;
        _cleanup_(cjson_deletep) cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "instance", L->instance);
        cJSON_AddNumberToObject(o, "time", (double)now_wall());
        cJSON_AddStringToObject(o, "phase", phase ? phase : "");
        if (experiment)
                cJSON_AddStringToObject(o, "experiment", experiment);
        cJSON_AddNumberToObject(o, "ttl", (double)L->ttl);
        pthread_mutex_lock(&L->lock);
        _cleanup_(cjson_deletep) cJSON *self = L->self ? cJSON_Parse(L->self) : NULL;
        pthread_mutex_unlock(&L->lock);
        /* what the instance did for the run, after the heartbeat's own fields (which it cannot override) */
        for (cJSON *x = self ? self->child : NULL, *next; x; x = next) {
                next = x->next;
                if (x->string && !cJSON_HasObjectItem(o, x->string))
                        cJSON_AddItemToObject(o, x->string, cJSON_DetachItemViaPointer(self, x));
        }
        _cleanup_free_ char *body = cJSON_PrintUnformatted(o);
        struct http_client h;
        if (!body || (r = http_client_init(&h)) < 0)
                return body ? r : -ENOMEM;
        char tag[128];
        r = s3cas_put(L->c, &h, L->bucket, key, body, NULL, false, tag, out);
        http_client_free(&h);
        return r;
}

/* Serialised: the snapshot of this instance's fields and its PUT go together, so that the last word (end_here) is
 * never overwritten by a heartbeat that took its snapshot before it. */
int ledger_heartbeat(struct ledger *L, const char *phase, const char *experiment, struct aws_result *out) {
        pthread_mutex_lock(&L->beat_lock);
        int r = heartbeat_locked(L, phase, experiment, out);
        pthread_mutex_unlock(&L->beat_lock);
        return r;
}

struct beats {
        size_t skip;
        char keys[LEDGER_MAX_INSTANCES * 4][S3_MAX_KEY + 1];
        size_t n;
        bool any, ended;
};

static int on_beat(void *ud, const struct s3_object *o) {
        struct beats *b = ud;
        const char *rel = o->key + b->skip;
        b->any = true;
        if (!strcmp(rel, "end.json"))
                b->ended = true;
        else if (str_has_prefix(rel, "instances/") && b->n < ARRAY_SIZE(b->keys))
                snprintf(b->keys[b->n++], sizeof b->keys[0], "%s", o->key);
        return 0;
}

int ledger_liveness(struct aws_ctx *c, const char *bucket, const char *prefix, struct ledger_liveness *ret,
                    struct aws_result *out) {
        *ret = (struct ledger_liveness){ .ttl = LEDGER_DEFAULT_TTL };
        char lp[S3_MAX_KEY + 1];
        if (pathf(lp, sizeof lp, "%sledger/", prefix) < 0)
                return -ENAMETOOLONG;
        struct beats *b = calloc(1, sizeof *b);
        if (!b)
                return -ENOMEM;
        b->skip = strlen(lp);
        struct http_client h;
        int r = http_client_init(&h);
        if (r < 0) {
                free(b);
                return r;
        }
        r = s3_list(c, &h, bucket, lp, on_beat, b, out);
        ret->has_ledger = b->any;
        ret->ended = b->ended;
        ret->instances = b->n;
        for (size_t i = 0; r == 0 && i < b->n; i++) {
                _cleanup_free_ char *body = NULL;
                char etag[128];
                struct aws_result o2 = { 0 };
                if (s3cas_get(c, &h, bucket, b->keys[i], &body, etag, &o2) < 0)
                        continue;
                _cleanup_(cjson_deletep) cJSON *j = cJSON_Parse(body);
                time_t t = (time_t)json_int(j, "time", 0, JSON_TIME_MAX, 0);
                if (t > ret->last_beat) {
                        ret->last_beat = t;
                        ret->ttl = (long)json_int(j, "ttl", 1, 86400, LEDGER_DEFAULT_TTL);
                        ledger_str_field(j, "instance", ret->last_instance, sizeof ret->last_instance);
                        ledger_str_field(j, "phase", ret->last_phase, sizeof ret->last_phase);
                }
        }
        http_client_free(&h);
        free(b);
        return r;
}

/* ---------- the keeper ---------- */

/* Whether the run's end record exists (another instance ended the run). 1, 0, or -errno. */
/* A record of the ledger (end.json, cancel.json): 1 with its body in *ret (when ret), 0 when there is none, -errno. */
static int record_exists(struct ledger *L, const char *name, char **ret) {
        char key[S3_MAX_KEY + 1];
        struct aws_result out = { 0 };
        int r = ledger_key(L, key, &out, "%s", name);
        struct http_client h;
        if (r < 0 || (r = http_client_init(&h)) < 0)
                return r;
        _cleanup_free_ char *body = NULL;
        char etag[128];
        r = s3cas_get(L->c, &h, L->bucket, key, &body, etag, &out);
        http_client_free(&h);
        if (r == 0 && ret)
                *ret = TAKE_PTR(body);
        return r == 0 ? 1 : r == -MF_ENOTFOUND ? 0 : r;
}

/* Who cancelled the run, from cancel.json's text. */
static void cancel_by_of(const char *body, char *by, size_t n) {
        _cleanup_(cjson_deletep) cJSON *o = body ? cJSON_Parse(body) : NULL;
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "by"));
        snprintf(by, n, "%s", v ? v : "");
}

void ledger_wake(struct ledger *L) {
        if (L->wake_fd >= 0) {
                uint64_t one = 1;
                ssize_t n = write(L->wake_fd, &one, sizeof one);
                (void)n;
        }
}

static void lose(struct ledger *L) {
        L->lost = true;
        L->held = -1;
        ledger_wake(L);
}

static void *keeper(void *ud) {
        struct ledger *L = ud;
        double next_beat = 0;
        pthread_mutex_lock(&L->lock);
        while (!L->stop) {
                double now = now_mono();
                if (L->held >= 0 && now - L->renewed_at >= (double)L->ttl / 3) {
                        struct aws_result out = { 0 };
                        int r = ledger_renew(L, &out); /* under the lock: the driver waits for it */
                        if (r == -MF_EPRECOND)
                                lose(L);
                        else if (r == -MF_ESTORE && !L->broken) {
                                L->broken = true; /* the run cannot be kept on this store: the driver ends it */
                                snprintf(L->broken_msg, sizeof L->broken_msg, "%s", out.msg);
                                ledger_wake(L);
                        }
                        else if (r < 0 && ledger_lease_left(L) < (double)L->ttl / 6)
                                lose(L); /* cannot renew in time: give it up while no one can take it yet */
                }
                if (L->gang_watch && L->held >= 0 && now >= L->gang_next)
                        gang_keeper_turn(L); /* looks without the lock; wakes the driver when the gang broke */
                else if (!L->gang_watch)
                        gang_shadow_free(L);
                if (now >= next_beat || L->beat_soon) {
                        L->beat_soon = false;
                        char phase[16], exp[80];
                        snprintf(phase, sizeof phase, "%s", L->phase);
                        snprintf(exp, sizeof exp, "%s", L->experiment);
                        pthread_mutex_unlock(&L->lock);
                        struct aws_result out = { 0 };
                        ledger_heartbeat(L, phase, exp[0] ? exp : NULL, &out);
                        /* the run ended elsewhere (a failure with continue_on_failure false, max_attempts): the
                         * work here stops too */
                        bool over = !L->over && record_exists(L, "end.json", NULL) == 1;
                        /* `mayfly cancel`: the work here stops, and the run ends */
                        _cleanup_free_ char *cancel = NULL;
                        bool cancelled = !over && !L->cancel_seen && record_exists(L, "cancel.json", &cancel) == 1;
                        ledger_read_peers(L, &out); /* what the others did, for status.json */
                        pthread_mutex_lock(&L->lock);
                        if (over) {
                                L->over = true;
                                L->over_news = true;
                                ledger_wake(L);
                        }
                        if (cancelled) {
                                L->cancel_seen = true;
                                L->cancel_news = true;
                                cancel_by_of(cancel, L->cancel_news_by, sizeof L->cancel_news_by);
                                ledger_wake(L);
                        }
                        next_beat = now_mono() + (double)L->ttl / 3;
                }
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += 1;
                if (!L->stop)
                        pthread_cond_timedwait(&L->cond, &L->lock, &ts);
        }
        pthread_mutex_unlock(&L->lock);
        return NULL;
}

int ledger_keeper_start(struct ledger *L, int wake_fd) {
        if (L->keeping)
                return 0;
        L->wake_fd = wake_fd;
        L->stop = false;
        int r = pthread_create(&L->th, NULL, keeper, L);
        if (r != 0)
                return -r;
        L->keeping = true;
        return 0;
}

void ledger_keeper_stop(struct ledger *L) {
        if (!L->keeping)
                return;
        pthread_mutex_lock(&L->lock);
        L->stop = true;
        pthread_cond_broadcast(&L->cond);
        pthread_mutex_unlock(&L->lock);
        pthread_join(L->th, NULL);
        L->keeping = false;
}

void ledger_set_phase(struct ledger *L, const char *phase, const char *experiment) {
        pthread_mutex_lock(&L->lock);
        snprintf(L->phase, sizeof L->phase, "%s", phase ? phase : "");
        snprintf(L->experiment, sizeof L->experiment, "%s", experiment ? experiment : "");
        pthread_mutex_unlock(&L->lock);
}

void ledger_set_wake(struct ledger *L, int wake_fd) {
        pthread_mutex_lock(&L->lock);
        L->wake_fd = wake_fd;
        pthread_mutex_unlock(&L->lock);
}

int ledger_held(struct ledger *L) {
        pthread_mutex_lock(&L->lock);
        int held = L->held;
        pthread_mutex_unlock(&L->lock);
        return held;
}

bool ledger_take_over(struct ledger *L) {
        pthread_mutex_lock(&L->lock);
        bool news = L->over_news;
        L->over_news = false;
        pthread_mutex_unlock(&L->lock);
        return news;
}

bool ledger_take_cancel(struct ledger *L, char *by, size_t n) {
        pthread_mutex_lock(&L->lock);
        bool news = L->cancel_news;
        L->cancel_news = false;
        if (news)
                snprintf(by, n, "%s", L->cancel_news_by);
        pthread_mutex_unlock(&L->lock);
        return news;
}

bool ledger_take_broken(struct ledger *L, char *msg, size_t n) {
        pthread_mutex_lock(&L->lock);
        bool news = L->broken && !L->broken_taken;
        if (news) {
                L->broken_taken = true;
                snprintf(msg, n, "%s", L->broken_msg);
        }
        pthread_mutex_unlock(&L->lock);
        return news;
}

bool ledger_take_lost(struct ledger *L) {
        pthread_mutex_lock(&L->lock);
        bool lost = L->lost;
        L->lost = false;
        pthread_mutex_unlock(&L->lock);
        return lost;
}
