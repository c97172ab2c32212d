/* SPDX-License-Identifier: Apache-2.0 */
/* gang.c — an experiment run by several instances at once (ledger.h: gangs): the slots of ranks 1..K-1, which rank
 * an instance may take, whether the gang is whole, and the keeper's watch over it while it runs. */
#include <arpa/inet.h>
#include <limits.h>

#include "aws/s3cas.h"
#include "jsonx.h"
#include "log.h"
#include "run/fleet/ledgerint.h"
#include "util.h"

#define GANG_POLL 2.0 /* seconds between the keeper's looks at a running gang (ttl / 3 when shorter) */

static int nodes_of(const struct ledger *L, size_t i) {
        return L->job->experiments[i].nodes;
}

int gang_init(struct ledger *L) {
        for (size_t i = 0; i < L->n; i++)
                if (nodes_of(L, i) > 1 &&
                    !(L->exps[i].slots = calloc((size_t)nodes_of(L, i), sizeof *L->exps[i].slots)))
                        return -ENOMEM;
        return 0;
}

void gang_free(struct ledger *L) {
        for (size_t i = 0; L->exps && i < L->n; i++) {
                free(L->exps[i].slots);
                L->exps[i].slots = NULL;
        }
}

void gang_list_begin(struct ledger *L) {
        for (size_t i = 0; i < L->n; i++)
                for (int r = 1; L->exps[i].slots && r < nodes_of(L, i); r++)
                        L->exps[i].slots[r].seen_now = false;
}

/* "slot/<experiment>/<rank>.json" (rank 1..nodes-1, written plainly) in a listing */
void gang_on_item(struct ledger *L, const char *rel, const char *etag) {
        const char *name = rel + strlen("slot/"), *slash = strrchr(name, '/');
        if (!slash)
                return;
        size_t len = (size_t)(slash - name);
        for (size_t i = 0; i < L->n; i++) {
                const char *x = L->job->experiments[i].name;
                if (!L->exps[i].slots || strlen(x) != len || strncmp(x, name, len))
                        continue;
                char *end;
                long r = strtol(slash + 1, &end, 10);
                char canon[32];
                snprintf(canon, sizeof canon, "%ld.json", r);
                if (r < 1 || r >= nodes_of(L, i) || strcmp(slash + 1, canon))
                        return;
                struct ledger_slot *s = &L->exps[i].slots[r];
                s->seen_now = true;
                if (!s->held || strcmp(s->etag, etag)) {
                        snprintf(s->etag, sizeof s->etag, "%s", etag);
                        s->seen_since = now_mono();
                        s->read = false;
                        s->gone = false;
                }
                return;
        }
}

static void read_stop(const cJSON *o, struct ledger_stop *s) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "stop");
        *s = (struct ledger_stop){ 0 };
        if (!cJSON_IsObject(x))
                return;
        s->set = true;
        ledger_str_field(x, "reason", s->reason, sizeof s->reason);
        s->exit_code = (int)json_int(x, "exit_code", -1, 255, -1);
        s->signal = (int)json_int(x, "signal", 0, 128, 0);
}

static void read_ip(const cJSON *o, char ip[16]) {
        char v[64];
        ledger_str_field(o, "ip", v, sizeof v);
        struct in_addr a;
        size_t n = strlen(v);
        ip[0] = 0;
        if (n && n < 16 && inet_pton(AF_INET, v, &a) == 1)
                memcpy(ip, v, n + 1); /* an IPv4 address, or nothing */
}

void gang_read_lease(struct ledger_exp *e, const cJSON *o) {
        e->lease_attempt = (int)json_int(o, "attempt", 0, INT_MAX, 0);
        read_ip(o, e->lease_ip);
        read_stop(o, &e->lease_stop);
        e->lease_formed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "formed"));
}

void gang_lease_fields(const struct ledger *L, cJSON *o) {
        if (L->ip[0])
                cJSON_AddStringToObject(o, "ip", L->ip);
        if (L->rank > 0 && L->part_finished)
                cJSON_AddTrueToObject(o, "finished");
        if (L->rank == 0 && L->gang_formed)
                cJSON_AddTrueToObject(o, "formed");
        cJSON *s = L->stopping.set ? cJSON_AddObjectToObject(o, "stop") : NULL;
        if (s) {
                cJSON_AddStringToObject(s, "reason", L->stopping.reason);
                cJSON_AddNumberToObject(s, "exit_code", L->stopping.exit_code);
                cJSON_AddNumberToObject(s, "signal", L->stopping.signal);
        }
}

int gang_held_key(const struct ledger *L, char key[S3_MAX_KEY + 1], struct aws_result *out) {
        const char *name = L->job->experiments[L->held].name;
        return L->rank > 0 ? ledger_key(L, key, out, "slot/%s/%d.json", name, L->rank)
                           : ledger_key(L, key, out, "lease/%s.json", name);
}

/* A slot's body, once per ETag: its holder, attempt, address, and how it was given back. */
static void read_slot(struct ledger *L, struct http_client *h, size_t i, int r, struct ledger_slot *s) {
        char key[S3_MAX_KEY + 1];
        struct aws_result out = { 0 };
        cJSON *o = NULL;
        if (s->read || ledger_key(L, key, &out, "slot/%s/%d.json", L->job->experiments[i].name, r) < 0 ||
            ledger_get_json(L, h, key, &o, NULL, &out) < 0)
                return;
        ledger_str_field(o, "holder", s->holder, sizeof s->holder);
        s->attempt = (int)json_int(o, "attempt", 0, INT_MAX, 0);
        read_ip(o, s->ip);
        s->released = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "released"));
        s->finished = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "finished"));
        read_stop(o, &s->stop);
        s->read = true;
        cJSON_Delete(o);
}

void gang_refresh(struct ledger *L, struct http_client *h, size_t i, double now) {
        for (int r = 1; r < nodes_of(L, i); r++) {
                struct ledger_slot *s = &L->exps[i].slots[r];
                s->held = s->seen_now;
                if (!s->held) {
                        *s = (struct ledger_slot){ 0 };
                        continue;
                }
                read_slot(L, h, i, r, s);
                bool given_back = s->released || s->finished;
                /* ours: held by this agent now, or by this instance before a restart (taken back at once) */
                s->mine = (L->held == (int)i && L->rank == r && !strcmp(s->etag, L->etag)) ||
                          (!given_back && s->read && !strcmp(s->holder, L->instance));
                bool renewing = !given_back && !s->mine;
                if (renewing && !s->gone && s->holder[0] && ledger_lease_overdue(s->seen_since, now, L->ttl))
                        s->gone = ledger_holder_gone(L, h, s->holder);
                s->stale = !s->mine && !s->finished &&
                           (s->released || s->gone || ledger_lease_expired(s->seen_since, now, L->ttl));
        }
}

int ledger_gang_rank(const struct ledger *L, size_t i) {
        const struct ledger_exp *e = &L->exps[i];
        if (!e->held || e->stale || e->mine)
                return 0;
        if (!e->slots || e->lease_stop.set)
                return -1;
        /* its own slot back (a restart while the gang formed, or a slot of an earlier attempt): never into an
         * attempt that was whole, which went on without it (a second part of that rank would join it) */
        for (int r = 1; r < nodes_of(L, i); r++)
                if (e->slots[r].mine && (!e->lease_formed || e->slots[r].attempt != e->lease_attempt))
                        return r;
        /* once the gang was whole, a place given back or gone in its attempt is not taken again: that attempt is
         * over (rank 0 stops it), and the next one has the places */
        for (int r = 1; r < nodes_of(L, i); r++) {
                const struct ledger_slot *s = &e->slots[r];
                bool older = s->attempt < e->lease_attempt;
                if (!e->lease_formed && (!s->held || (s->stale && !s->finished)))
                        return r;
                if (s->held && older && (s->finished || s->stale))
                        return r;
        }
        return -1;
}

bool ledger_gang_place_here(const struct ledger *L, size_t i) {
        const struct ledger_exp *e = &L->exps[i];
        if (e->held && !e->released && !strcmp(e->holder, L->instance))
                return true;
        for (int r = 1; e->slots && r < nodes_of(L, i); r++) {
                const struct ledger_slot *s = &e->slots[r];
                /* given back "finished" (it is "released" too): its part is done, rank 0's may yet fail */
                if (s->held && (!s->released || s->finished) && !strcmp(s->holder, L->instance))
                        return true;
        }
        return false;
}

bool ledger_gang_whole(const struct ledger *L, size_t i) {
        const struct ledger_exp *e = &L->exps[i];
        if (!e->held || e->stale || e->lease_stop.set)
                return false;
        for (int r = 1; e->slots && r < nodes_of(L, i); r++) {
                const struct ledger_slot *s = &e->slots[r];
                if (!s->held || s->attempt != e->lease_attempt || s->stop.set || (!s->finished && s->stale))
                        return false;
        }
        return true;
}

int ledger_gang_formed(struct ledger *L, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        L->gang_formed = true;
        int r = L->held >= 0 && L->rank == 0 ? ledger_renew(L, out) : 0;
        pthread_mutex_unlock(&L->lock);
        return r;
}

static int claim_slot_locked(struct ledger *L, int i, int r, struct aws_result *out) {
        struct ledger_exp *e = &L->exps[i];
        struct ledger_slot *s = &e->slots[r];
        char key[S3_MAX_KEY + 1];
        int q = ledger_key(L, key, out, "slot/%s/%d.json", L->job->experiments[i].name, r);
        struct http_client h;
        if (q < 0 || (q = http_client_init(&h)) < 0)
                return q;
        long generation = 1;
        const char *if_match = NULL;
        if (s->held) {
                /* given back, stale, or this instance's from before a restart */
                q = ledger_takeover_generation(L, &h, key, s->etag, &generation, out);
                if_match = s->etag;
        }
        L->rank = r; /* the body is this slot's */
        L->stopping = (struct ledger_stop){ 0 };
        L->part_finished = false;
        L->gang_formed = false;
        _cleanup_free_ char *body = q == 0 ? ledger_lease_body(L, generation, e->lease_attempt, false) : NULL;
        double t0 = now_mono();
        char tag[128];
        if (q == 0)
                q = body ? s3cas_put(L->c, &h, L->bucket, key, body, if_match, !if_match, tag, out) : -ENOMEM;
        if (q == -MF_ECONFLICT)
                q = -MF_EPRECOND;
        if (q == 0) {
                L->held = i;
                snprintf(L->etag, sizeof L->etag, "%s", tag);
                L->generation = generation;
                L->renewed_at = t0;
                L->attempt = e->lease_attempt;
        } else
                L->rank = 0;
        http_client_free(&h);
        return q;
}

int ledger_claim_slot(struct ledger *L, int i, int r, struct aws_result *out) {
        if (i < 0 || (size_t)i >= L->n || !L->exps[i].slots || r < 1 || r >= nodes_of(L, (size_t)i))
                return -EINVAL;
        pthread_mutex_lock(&L->lock);
        int q = claim_slot_locked(L, i, r, out);
        pthread_mutex_unlock(&L->lock);
        return q;
}

int ledger_slot_release(struct ledger *L, bool finished, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        int r = 0;
        if (L->held >= 0 && L->rank > 0) {
                char key[S3_MAX_KEY + 1];
                struct http_client h;
                L->part_finished = finished;
                r = gang_held_key(L, key, out);
                if (r == 0 && (r = http_client_init(&h)) == 0) {
                        /* overwritten, not deleted: the others read why it was given back */
                        _cleanup_free_ char *body = ledger_lease_body(L, L->generation, L->attempt, true);
                        char tag[128];
                        r = body ? s3cas_put(L->c, &h, L->bucket, key, body, L->etag, false, tag, out) : -ENOMEM;
                        http_client_free(&h);
                }
                if (r == 0 || r == -MF_EPRECOND || r == -MF_ENOTFOUND) {
                        L->held = -1;
                        L->rank = 0;
                        r = 0;
                }
        }
        pthread_mutex_unlock(&L->lock);
        return r;
}

void ledger_drop(struct ledger *L) {
        pthread_mutex_lock(&L->lock);
        L->held = -1;
        L->rank = 0;
        pthread_mutex_unlock(&L->lock);
}

int ledger_gang_stop(struct ledger *L, const struct ledger_stop *s, struct aws_result *out) {
        pthread_mutex_lock(&L->lock);
        L->stopping = *s;
        L->stopping.set = true;
        int r = L->held >= 0 ? ledger_renew(L, out) : 0;
        pthread_mutex_unlock(&L->lock);
        return r;
}

/* Why rank r is not in the gang of attempt (into why): stopped, gone, given back. A member's own failure is the gang's
 * cause only while nothing else is: a member interrupted or gone makes the others' collectives fail too. */
static void member_missing(struct gang_view *v, int r, const char *holder, const struct ledger_stop *stop,
                           const char *what) {
        v->missing[v->n_missing++] = r;
        bool failure = stop && stop->set && !strcmp(stop->reason, "exit");
        if (v->why[0] && (failure || !(v->stop.set && !strcmp(v->stop.reason, "exit"))))
                return; /* a cause already, and this one is no better */
        v->stop = (struct ledger_stop){ 0 };
        if (stop && stop->set) {
                v->stop = *stop;
                if (!strcmp(stop->reason, "exit") && stop->signal)
                        snprintf(v->why, sizeof v->why, "rank %d (%s) was killed by signal %d", r, holder,
                                 stop->signal);
                else if (!strcmp(stop->reason, "exit"))
                        snprintf(v->why, sizeof v->why, "rank %d (%s) exited with code %d", r, holder,
                                 stop->exit_code);
                else
                        snprintf(v->why, sizeof v->why, "rank %d (%s) stopped: %s", r, holder, stop->reason);
        } else
                snprintf(v->why, sizeof v->why, "rank %d%s%s%s %s", r, holder[0] ? " (" : "", holder,
                         holder[0] ? ")" : "", what);
}

void ledger_gang_view(const struct ledger *L, size_t i, int attempt, int self_rank, struct gang_view *v) {
        const struct ledger_exp *e = &L->exps[i];
        *v = (struct gang_view){ .nodes = nodes_of(L, i), .done = e->done };
        if (self_rank == 0 || (e->held && !e->stale && e->lease_attempt == attempt && !e->lease_stop.set)) {
                v->present++;
                snprintf(v->ips[0], sizeof v->ips[0], "%s", self_rank == 0 ? L->ip : e->lease_ip);
        } else
                member_missing(v, 0, e->holder, &e->lease_stop,
                               !e->held ? "holds no lease" : e->stale ? "is gone (its lease is not renewed)"
                                                                      : "holds the lease for another attempt");
        for (int r = 1; e->slots && r < v->nodes; r++) {
                const struct ledger_slot *s = &e->slots[r];
                bool in = r == self_rank || (s->held && s->attempt == attempt && !s->stop.set &&
                                             (s->finished || (!s->stale && !s->released)));
                if (in) {
                        v->present++;
                        snprintf(v->ips[r], sizeof v->ips[r], "%s", r == self_rank ? L->ip : s->ip);
                } else
                        member_missing(v, r, s->holder, &s->stop,
                                       !s->held ? "is not there" : s->released ? "gave its place back"
                                       : s->gone || s->stale ? "is gone (its lease is not renewed)"
                                                             : "is held for another attempt");
        }
        v->broken = v->present < v->nodes;
}

/* A copy of L for the keeper: its experiments and slots its own, nothing of L's threads or peers. */
static struct ledger *shadow_new(const struct ledger *L) {
        struct ledger *S = malloc(sizeof *S);
        if (!S)
                return NULL;
        memcpy(S, L, sizeof *S);
        S->self = NULL;
        S->n_peers = 0;
        S->shadow = NULL;
        S->keeping = false;
        S->exps = calloc(L->n ? L->n : 1, sizeof *S->exps);
        bool ok = S->exps != NULL;
        for (size_t i = 0; ok && i < L->n; i++) {
                size_t bytes = (size_t)nodes_of(L, i) * sizeof(struct ledger_slot);
                S->exps[i] = L->exps[i];
                S->exps[i].slots = L->exps[i].slots ? malloc(bytes) : NULL;
                if (S->exps[i].slots)
                        memcpy(S->exps[i].slots, L->exps[i].slots, bytes);
                ok = !L->exps[i].slots || S->exps[i].slots;
        }
        if (!ok) {
                if (S->exps)
                        gang_free(S); /* the slots copied so far (free(NULL) for the rest) */
                free(S->exps);
                free(S);
                return NULL;
        }
        return S;
}

void gang_shadow_free(struct ledger *L) {
        struct ledger *S = L->shadow;
        if (!S)
                return;
        gang_free(S);
        free(S->exps);
        free(S);
        L->shadow = NULL;
}

void gang_keeper_turn(struct ledger *L) {
        L->gang_next = now_mono() + MIN(GANG_POLL, (double)L->ttl / 3);
        if (L->held < 0 || L->gang_news)
                return;
        if (L->shadow_reset)
                gang_shadow_free(L);
        L->shadow_reset = false;
        if (!L->shadow && !(L->shadow = shadow_new(L)))
                return;
        struct ledger *S = L->shadow;
        /* what changed since: the held place and its ETag */
        int i = S->held = L->held, attempt = S->attempt = L->attempt, rank = S->rank = L->rank;
        memcpy(S->etag, L->etag, sizeof S->etag);
        /* S3 is asked without the lock: the driver never waits on it for this look */
        pthread_mutex_unlock(&L->lock);
        struct aws_result out = { 0 };
        struct gang_view v;
        int r = ledger_refresh_locked(S, &out);
        if (r == 0)
                ledger_gang_view(S, (size_t)i, attempt, rank, &v);
        pthread_mutex_lock(&L->lock);
        if (r < 0 || L->held != i || L->attempt != attempt || !L->gang_watch || L->gang_news)
                return;
        if (!v.broken && !(v.done && rank > 0))
                return;
        L->gang_news = true;
        L->gang_watch = false;
        snprintf(L->gang_why, sizeof L->gang_why, "%s", v.broken ? v.why : "rank 0 finished the experiment");
        L->gang_stop = v.stop;
        ledger_wake(L);
}

void ledger_gang_watch(struct ledger *L, bool on) {
        pthread_mutex_lock(&L->lock);
        L->gang_watch = on;
        L->shadow_reset = on; /* the keeper's copy is made again from what the driver saw last */
        L->gang_news = false;
        L->gang_next = 0;
        pthread_mutex_unlock(&L->lock);
}

bool ledger_take_gang(struct ledger *L, char *why, size_t n, struct ledger_stop *stop) {
        pthread_mutex_lock(&L->lock);
        bool news = L->gang_news && L->gang_why[0];
        if (news) {
                snprintf(why, n, "%s", L->gang_why);
                *stop = L->gang_stop;
                L->gang_why[0] = 0;
        }
        pthread_mutex_unlock(&L->lock);
        return news;
}
