/* SPDX-License-Identifier: Apache-2.0 */
/* peers.c — the instances' own records in the ledger (ledger/instances/<id>.json): what this instance says of
 * itself beside its heartbeat (type, launch, cost, the attempts it ran, its end), and the others' records read back,
 * so that whoever writes status.json counts every instance of the run, not only itself. */
#include <cjson/cJSON.h>

#include "jsonx.h"
#include "aws/s3.h"
#include "aws/s3cas.h"
#include "run/fleet/ledger.h"
#include "util.h"

void ledger_set_self(struct ledger *L, const char *json, bool beat) {
        char *copy = json ? strndup(json, LEDGER_SELF_MAX) : NULL;
        pthread_mutex_lock(&L->lock);
        free(L->self);
        L->self = copy;
        if (beat) {
                L->beat_soon = true;
                pthread_cond_broadcast(&L->cond);
        }
        pthread_mutex_unlock(&L->lock);
}

int ledger_beat_now(struct ledger *L, struct aws_result *out) {
        char phase[16], exp[80];
        pthread_mutex_lock(&L->lock);
        snprintf(phase, sizeof phase, "%s", L->phase);
        snprintf(exp, sizeof exp, "%s", L->experiment);
        pthread_mutex_unlock(&L->lock);
        return ledger_heartbeat(L, phase, exp[0] ? exp : NULL, out);
}

struct listed {
        size_t skip;
        const char *self;
        struct ledger_peer v[LEDGER_MAX_PEERS];
        size_t n;
};

static int on_record(void *ud, const struct s3_object *o) {
        struct listed *l = ud;
        const char *rel = o->key + l->skip; /* <id>.json */
        size_t len = strlen(rel);
        if (len <= 5 || len - 5 >= sizeof l->v[0].id || strcmp(rel + len - 5, ".json") || l->n >= LEDGER_MAX_PEERS)
                return 0;
        struct ledger_peer *p = &l->v[l->n];
        memcpy(p->id, rel, len - 5);
        p->id[len - 5] = 0;
        if (!strcmp(p->id, l->self))
                return 0;
        snprintf(p->etag, sizeof p->etag, "%s", o->etag);
        l->n++;
        return 0;
}

/* A copy of the body of peer id as last read, when its ETag is still etag. */
static char *take_unchanged(struct ledger *L, const char *id, const char *etag) {
        for (size_t i = 0; i < L->n_peers; i++)
                if (!strcmp(L->peers[i].id, id) && etag[0] && !strcmp(L->peers[i].etag, etag))
                        return L->peers[i].body ? strdup(L->peers[i].body) : NULL;
        return NULL;
}

int ledger_read_peers(struct ledger *L, struct aws_result *out) {
        char prefix[S3_MAX_KEY + 1];
        if (pathf(prefix, sizeof prefix, "%sledger/instances/", L->prefix) < 0)
                return -ENAMETOOLONG;
        struct listed *l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->skip = strlen(prefix);
        l->self = L->instance;
        struct http_client h;
        int r = http_client_init(&h);
        if (r == 0)
                r = s3_list(L->c, &h, L->bucket, prefix, on_record, l, out);
        if (r == 0) {
                pthread_mutex_lock(&L->lock);
                for (size_t i = 0; i < l->n; i++)
                        l->v[i].body = take_unchanged(L, l->v[i].id, l->v[i].etag);
                pthread_mutex_unlock(&L->lock);
        }
        for (size_t i = 0; r == 0 && i < l->n; i++) {
                char key[S3_MAX_KEY + 1], etag[128];
                struct aws_result o2 = { 0 };
                if (l->v[i].body || pathf(key, sizeof key, "%s%s.json", prefix, l->v[i].id) < 0)
                        continue;
                if (s3cas_get(L->c, &h, L->bucket, key, &l->v[i].body, etag, &o2) == 0)
                        snprintf(l->v[i].etag, sizeof l->v[i].etag, "%s", etag);
        }
        http_client_free(&h);
        if (r == 0) {
                pthread_mutex_lock(&L->lock);
                for (size_t i = 0; i < L->n_peers; i++)
                        free(L->peers[i].body);
                memcpy(L->peers, l->v, l->n * sizeof l->v[0]);
                L->n_peers = l->n;
                pthread_mutex_unlock(&L->lock);
        } else
                for (size_t i = 0; i < l->n; i++)
                        free(l->v[i].body);
        free(l);
        return r;
}

struct cJSON *ledger_peers_json(struct ledger *L) {
        _cleanup_(cjson_deletep) cJSON *a = cJSON_CreateArray();
        if (!a)
                return NULL;
        pthread_mutex_lock(&L->lock);
        for (size_t i = 0; i < L->n_peers; i++) {
                cJSON *o = L->peers[i].body ? cJSON_Parse(L->peers[i].body) : NULL;
                if (cJSON_IsObject(o) && cJSON_AddItemToArray(a, o))
                        continue;
                cJSON_Delete(o); /* not an object: not a record */
        }
        pthread_mutex_unlock(&L->lock);
        return cJSON_GetArraySize(a) ? TAKE_PTR(a) : NULL;
}
