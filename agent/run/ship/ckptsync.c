/* SPDX-License-Identifier: Apache-2.0 */
/* ckptsync.c — the running experiment's checkpoint files to S3 as they change: read as the run user, beneath the
 * workdir, only what changed since the last sync. */
#include "run/ship/ckptsync.h"


#include "run/proc/exptree.h"

int shipper_set_checkpoint(struct shipper *s, const struct run_user *u, int rootfd, const char *base, size_t n,
                           long interval) {
        time_t *since = calloc(n ? n : 1, sizeof *since);
        if (!since)
                return -ENOMEM;
        pthread_mutex_lock(&s->lock);
        snprintf(s->ckpt_base, sizeof s->ckpt_base, "%s", base ? base : "");
        s->ckpt_user = u;
        s->ckpt_rootfd = rootfd;
        s->ckpt_interval = interval;
        s->ckpt_last = now_mono();
        free(s->ckpt_since);
        s->ckpt_since = since;
        s->ckpt_n = n;
        pthread_mutex_unlock(&s->lock);
        return 0;
}

void shipper_checkpoint_current(struct shipper *s, int idx, const char *name) {
        pthread_mutex_lock(&s->lock);
        s->ckpt_current = idx;
        snprintf(s->ckpt_name, sizeof s->ckpt_name, "%s", name ? name : "");
        s->ckpt_last = now_mono();
        pthread_mutex_unlock(&s->lock);
}

bool shipper_refusal(struct shipper *s, char *dst, size_t n) {
        pthread_mutex_lock(&s->lock);
        bool any = s->refusal[0] != 0;
        if (any)
                snprintf(dst, n, "%s", s->refusal);
        pthread_mutex_unlock(&s->lock);
        return any;
}

static bool ckpt_filter(void *ud, const char *rel, const struct stat *st) {
        time_t since = *(time_t *)ud;
        return st->st_mtime >= since;
}

struct ckpt_walk {
        char dir[4200];
        char prefix[1400];
        time_t since;
};

static int fill_ckpt(struct xfer_batch *b, void *ud, struct aws_result *out) {
        struct ckpt_walk *w = ud;
        return xfer_batch_add_tree(b, w->dir, w->prefix, ckpt_filter, &w->since, out);
}

/* One experiment's checkpoint files changed since its last sync, read as the run user beneath the workdir: a file
 * swapped for a link to /etc/shadow between the walk and the read is refused, not read as root. */
int shipper_sync_checkpoint(struct shipper *s, int idx, const char *name, struct aws_result *out) {
        struct ckpt_walk w;
        pthread_mutex_lock(&s->lock);
        bool set = s->ckpt_base[0] && s->ckpt_rootfd >= 0 && idx >= 0 && (size_t)idx < s->ckpt_n;
        if (set && (pathf(w.dir, sizeof w.dir, "%s/%s", s->ckpt_base, name) < 0 ||
                    pathf(w.prefix, sizeof w.prefix, "%scheckpoint/%s/", s->prefix, name) < 0)) {
                pthread_mutex_unlock(&s->lock);
                errf(out->msg, sizeof out->msg, "the checkpoint directory of %s: path or key too long", name);
                return -ENAMETOOLONG;
        }
        if (set)
                w.since = s->ckpt_since[idx];
        const struct run_user *u = s->ckpt_user;
        int rootfd = s->ckpt_rootfd;
        pthread_mutex_unlock(&s->lock);
        if (!set)
                return 0;
        time_t start = now_wall() - 1;
        struct xfer_batch b;
        struct xfer_opts o = { .concurrency = 4 };
        int r = xfer_batch_init(&b, s->c, s->bucket, true, &o);
        if (r == 0)
                r = exptree_transfer(u, rootfd, &b, fill_ckpt, &w, out);
        if (r == -ENOENT)
                r = 0; /* no checkpoint (yet) */
        if (b.refused) {
                pthread_mutex_lock(&s->lock);
                if (!s->refusal[0])
                        exptree_refusal(&b, s->refusal, sizeof s->refusal);
                pthread_mutex_unlock(&s->lock);
        }
        xfer_batch_free(&b);
        if (r == 0) {
                pthread_mutex_lock(&s->lock);
                if ((size_t)idx < s->ckpt_n)
                        s->ckpt_since[idx] = start;
                pthread_mutex_unlock(&s->lock);
        }
        return r;
}
