/* SPDX-License-Identifier: Apache-2.0 */
/* ledgerint.h — what ledger.c shares with gang.c. Internal to agent/run/fleet/. */
#pragma once
#include <cjson/cJSON.h>

#include "aws/http.h"
#include "aws/s3.h"
#include "run/fleet/ledger.h"

/* prefix + "ledger/" + the rest; -ENAMETOOLONG with out->msg. */
int ledger_key(const struct ledger *L, char key[S3_MAX_KEY + 1], struct aws_result *out, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* A ledger record's JSON (its ETag into etag when not NULL); -MF_ENOTFOUND, -MF_EPARSE, -errno. */
int ledger_get_json(struct ledger *L, struct http_client *h, const char *key, cJSON **ret, char *etag,
                    struct aws_result *out);
void ledger_str_field(const cJSON *o, const char *k, char *dst, size_t n);
/* Whether EC2 says holder is going or gone. */
bool ledger_holder_gone(struct ledger *L, struct http_client *h, const char *holder);
/* A lease or slot taken over on the very ETag that was watched (watched), one generation on: its generation + 1
 * into *ret_generation; -MF_EPRECOND when it changed meanwhile (its holder lives). */
int ledger_takeover_generation(struct ledger *L, struct http_client *h, const char *key, const char *watched,
                               long *ret_generation, struct aws_result *out);
/* The held lease's or slot's body (unique per write); released: given back. */
char *ledger_lease_body(const struct ledger *L, long generation, int attempt, bool released);

/* ledger_refresh's work, the caller holding L->lock, or L being a copy no other thread sees (the keeper's). */
int ledger_refresh_locked(struct ledger *L, struct aws_result *out);

/* gang.c's part in ledger.c's work */
int gang_init(struct ledger *L);
void gang_free(struct ledger *L);
void gang_list_begin(struct ledger *L);
void gang_on_item(struct ledger *L, const char *rel, const char *etag);
void gang_refresh(struct ledger *L, struct http_client *h, size_t i, double now);
void gang_read_lease(struct ledger_exp *e, const cJSON *o);
void gang_lease_fields(const struct ledger *L, cJSON *o);
int gang_held_key(const struct ledger *L, char key[S3_MAX_KEY + 1], struct aws_result *out);
/* The keeper's look at the gang it is in (L->lock held once): on its own copy of the ledger, refreshed without the
 * lock; the news, and a wake, when the gang broke. */
void gang_keeper_turn(struct ledger *L);
/* The keeper's copy freed (the keeper's thread, or after it stopped). */
void gang_shadow_free(struct ledger *L);
/* Writes the wake eventfd (under the lock). */
void ledger_wake(struct ledger *L);
