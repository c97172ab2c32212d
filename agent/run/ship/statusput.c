/* SPDX-License-Identifier: Apache-2.0 */
/* statusput.c — status.json and the other texts of the run to S3: the periodic one handed to the shipper's thread,
 * the ones written now; in a run shared by instances only with conditional writes, never over the final status. */
#include "run/ship/statusput.h"

#include "aws/s3cas.h"
#include "aws/xferdir.h"
#include "log.h"

void shipper_set_status(struct shipper *s, const char *json) {
        char *copy = strdup(json);
        pthread_mutex_lock(&s->lock);
        free(s->status_json);
        s->status_json = copy;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
}

int shipper_key(const struct shipper *s, const char *rel, char key[S3_MAX_KEY + 1], struct aws_result *out) {
        int r = pathf(key, S3_MAX_KEY + 1, "%s%s", s->prefix, rel);
        if (r < 0)
                errf(out->msg, sizeof out->msg, "%s%s: longer than an S3 key may be (%d bytes)", s->prefix, rel,
                     S3_MAX_KEY);
        return r;
}

/* status.json of a run shared by instances: written only while the run's end record does not exist, and only over
 * the status.json whose ETag was read before the end record was looked for (If-Match; If-None-Match when there was
 * none). The instance that ends the run writes the end record first and its final status after it, so a running
 * view from here either lands before the final status or fails its condition: it never overwrites it. 0 when
 * written or when there is nothing to write any more (s->status_closed), -errno. */
static int put_shared_status(struct shipper *s, struct http_client *h, const char *key, const char *json,
                             struct aws_result *out) {
        char end[S3_MAX_KEY + 1];
        int r = shipper_key(s, "ledger/end.json", end, out);
        for (int t = 0; r == 0 && t < 3; t++) {
                char etag[128] = "";
                uint64_t size;
                r = s3_head(s->c, h, s->bucket, key, &size, etag, out);
                if (r == -MF_ENOTFOUND) {
                        etag[0] = 0;
                        r = 0;
                }
                _cleanup_free_ char *body = NULL;
                char tag[128];
                int e = r == 0 ? s3cas_get(s->c, h, s->bucket, end, &body, tag, out) : r;
                if (e == 0) {
                        s->status_closed = true; /* the run is over: its final status is the ender's */
                        return 0;
                }
                if (e != -MF_ENOTFOUND)
                        return e;
                r = s3cas_put(s->c, h, s->bucket, key, json, etag[0] ? etag : NULL, !etag[0], tag, out);
                if (r != -MF_EPRECOND && r != -MF_ECONFLICT)
                        return r;
                r = 0; /* another instance wrote it meanwhile: look again */
        }
        if (r == 0)
                errf(out->msg, sizeof out->msg, "status.json: other instances kept writing it; again later");
        return r < 0 ? r : -EAGAIN;
}

/* A shared status.json write that did not land: counted, and said the first time and every 100th (a store that
 * refuses them all would otherwise drop every view of the run without a word; `mayfly status` says it is stale).
 * say: false when the caller reports it itself. */
static int count_refusal(struct shipper *s, int r, const struct aws_result *out, bool say) {
        if (r != -EAGAIN && r != -MF_EPRECOND && r != -MF_ESTORE)
                return r;
        pthread_mutex_lock(&s->lock);
        unsigned long n = ++s->status_refused;
        pthread_mutex_unlock(&s->lock);
        if (say && (n == 1 || n % 100 == 0))
                log_warn("status.json not updated (%lu refused so far): %s", n, out->msg);
        return r;
}

int shipper_put_status(struct shipper *s, const char *json, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = shipper_key(s, "status.json", key, out);
        if (r < 0)
                return r;
        if (!s->status_shared)
                return shipper_put_text(s, "status.json", json, "application/json", out);
        if (s->status_closed)
                return 0;
        struct http_client h;
        if ((r = http_client_init(&h)) < 0)
                return r;
        r = count_refusal(s, put_shared_status(s, &h, key, json, out), out, false);
        http_client_free(&h);
        return r;
}

void shipper_share_status(struct shipper *s) { s->status_shared = true; }

int shipper_put_text(struct shipper *s, const char *rel, const char *text, const char *ctype, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = shipper_key(s, rel, key, out);
        if (r < 0)
                return r;
        struct http_client h;
        r = http_client_init(&h);
        if (r < 0)
                return r;
        r = s3_put(s->c, &h, s->bucket, key, text, -1, 0, strlen(text), ctype, NULL, NULL, out);
        http_client_free(&h);
        return r;
}

int shipper_put_file(struct shipper *s, const char *path, const char *rel, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = shipper_key(s, rel, key, out);
        if (r < 0)
                return r;
        struct xfer_opts o = { .concurrency = 4 };
        return xfer_upload(s->c, path, s->bucket, key, &o, out);
}

int shipper_status_write(struct shipper *s, struct http_client *h, const char *json, struct aws_result *out) {
        char key[S3_MAX_KEY + 1];
        int r = shipper_key(s, "status.json", key, out);
        if (r == 0 && s->status_shared && !s->status_closed) {
                /* a running view refused is counted and said, not a shipping failure: the next one may land, and
                 * the final status is the ender's own (unconditional) write */
                r = count_refusal(s, put_shared_status(s, h, key, json, out), out, true);
                if (r == -EAGAIN || r == -MF_EPRECOND || r == -MF_ESTORE)
                        r = 0;
        } else if (r == 0 && s->status_shared)
                r = 0;
        else if (r == 0)
                r = s3_put(s->c, h, s->bucket, key, json, -1, 0, strlen(json), "application/json", NULL, NULL, out);
        return r;
}
