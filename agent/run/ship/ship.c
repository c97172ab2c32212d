/* SPDX-License-Identifier: Apache-2.0 */
/* ship.c — what SHIP uploads, in the order that keeps a reader's view consistent. */
#include "run/ship/ship.h"

#include "aws/xferdir.h"
#include "log.h"
#include "run/proc/exptree.h"

struct outputs {
        const struct job *job;
        char prefix[1400];
        struct shipped_files *done;
};

void shipped_files_free(struct shipped_files *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i].key);
        free(s->v);
        *s = (struct shipped_files){ 0 };
}

static struct shipped_file *shipped_find(struct shipped_files *s, const char *key) {
        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->v[i].key, key))
                        return &s->v[i];
        return NULL;
}

/* The batch's keep: a file already shipped with this size and mtime stays out. */
static bool changed(void *ud, const char *key, const struct stat *st) {
        struct shipped_file *f = shipped_find(ud, key);
        int64_t m = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
        return !f || f->size != (uint64_t)st->st_size || f->mtime_ns != m;
}

/* Every file of a batch that reached S3, recorded. */
static int shipped_note(struct shipped_files *s, const struct xfer_batch *b) {
        for (size_t i = 0; i < b->n; i++) {
                struct shipped_file *f = shipped_find(s, b->items[i].key);
                if (!f) {
                        struct shipped_file *v = array_room(s->v, s->n, &s->alloc, sizeof *v, 16);
                        if (!v)
                                return -ENOMEM;
                        s->v = v;
                        char *k = strdup(b->items[i].key);
                        if (!k)
                                return -ENOMEM;
                        f = &s->v[s->n++];
                        f->key = k;
                }
                f->size = b->items[i].size;
                f->mtime_ns = b->items[i].mtime_ns;
        }
        return 0;
}

static int fill_outputs(struct xfer_batch *b, void *ud, struct aws_result *out) {
        struct outputs *o = ud;
        for (char **g = o->job->outputs; g && *g; g++) {
                int r = xfer_batch_add_glob(b, *g, o->prefix, out);
                if (r < 0)
                        return r;
                if (r == 0)
                        log_warn("outputs: nothing matches %s", *g);
        }
        return 0;
}

static void refused(struct ship_plan *p, const char *what, const char *msg) {
        log_error("%s: refused %s", what, msg);
        if (!p->refused[0]) {
                snprintf(p->refused, sizeof p->refused, "%s", msg);
                snprintf(p->refused_what, sizeof p->refused_what, "%s", what);
        }
}

static int upload_outputs(struct ship_plan *p, struct aws_result *out) {
        struct outputs o = { .job = p->job, .done = p->outputs_done };
        if (pathf(o.prefix, sizeof o.prefix, "%soutputs/", p->ship->prefix) < 0) {
                errf(out->msg, sizeof out->msg, "the outputs' S3 prefix is too long");
                return -ENAMETOOLONG;
        }
        struct xfer_batch b;
        struct xfer_opts xo = { .concurrency = 8 };
        int r = xfer_batch_init(&b, p->ship->c, p->ship->bucket, true, &xo);
        if (o.done) {
                b.keep = changed;
                b.keep_ud = o.done;
        }
        if (r == 0)
                r = exptree_transfer(p->user, p->workfd, &b, fill_outputs, &o, out);
        if (r == 0 && o.done)
                (void)shipped_note(o.done, &b); /* out of memory: they are shipped again next time */
        if (b.refused) {
                char m[700];
                exptree_refusal(&b, m, sizeof m);
                refused(p, "outputs", m);
        }
        xfer_batch_free(&b);
        return r;
}

static int put_if_there(struct ship_plan *p, const char *path, const char *rel, int *failures) {
        if (access(path, F_OK) != 0)
                return 0;
        struct aws_result res = { 0 };
        int r = shipper_put_file(p->ship, path, rel, &res);
        if (r < 0) {
                log_warn("shipping %s: %s", rel, res.msg);
                (*failures)++;
        }
        return r;
}

static void ship_logs(struct ship_plan *p, size_t i, int *failures) {
        static const char *const files[] = { "stdout.log", "stderr.log", XMETRICS_FILE };
        const struct job *j = p->job;
        char name[160];
        if (p->node_rank > 0)
                snprintf(name, sizeof name, "%s/node-%d", j->experiments[i].name, p->node_rank);
        else
                snprintf(name, sizeof name, "%s", j->experiments[i].name);
        for (size_t k = 0; k < ARRAY_SIZE(files); k++) {
                char path[4200], rel[512];
                if (pathf(path, sizeof path, "%s/%s/%s", p->logs_dir, name, files[k]) < 0 ||
                    pathf(rel, sizeof rel, "logs/%s/%s", name, files[k]) < 0) {
                        log_warn("shipping the logs of %s: path too long", j->experiments[i].name);
                        (*failures)++;
                        continue;
                }
                put_if_there(p, path, rel, failures);
        }
}

static void ship_checkpoint(struct ship_plan *p, size_t i, int *failures) {
        struct aws_result res = { 0 };
        const struct job *j = p->job;
        if (p->workfd < 0 || !j->checkpoint_dir || p->node_rank > 0)
                return;
        if (shipper_sync_checkpoint(p->ship, (int)i, j->experiments[i].name, &res) < 0) {
                log_warn("shipping the checkpoint of %s: %s", j->experiments[i].name, res.msg);
                (*failures)++;
        }
}

static void ship_outputs(struct ship_plan *p, int *failures) {
        struct aws_result res = { 0 };
        if (p->workfd >= 0 && p->job->outputs && p->job->outputs[0] && upload_outputs(p, &res) < 0) {
                log_warn("shipping outputs: %s", res.msg);
                (*failures)++;
        }
}

int ship_experiment(struct ship_plan *p, size_t i) {
        int failures = 0;
        ship_logs(p, i, &failures);
        if (!p->no_outputs)
                ship_outputs(p, &failures);
        ship_checkpoint(p, i, &failures);
        char m[700];
        if (shipper_refusal(p->ship, m, sizeof m))
                refused(p, "checkpoint", m);
        return failures ? -EIO : 0;
}

int ship_results(struct ship_plan *p) {
        int failures = 0;
        struct aws_result res = { 0 };
        if (shipper_flush(p->ship, &res) < 0) {
                log_warn("shipping live logs: %s", res.msg);
                failures++;
        }
        const struct job *j = p->job;
        for (size_t i = 0; p->experiment_logs && i < j->n_experiments; i++)
                if (!p->only || p->only[i])
                        ship_logs(p, i, &failures);
        if (!p->no_outputs)
                ship_outputs(p, &failures);
        for (size_t i = 0; i < j->n_experiments; i++)
                if (!p->only || p->only[i])
                        ship_checkpoint(p, i, &failures);
        char m[700];
        if (shipper_refusal(p->ship, m, sizeof m))
                refused(p, "checkpoint", m);
        if (p->metrics_path)
                put_if_there(p, p->metrics_path, p->metrics_rel[0] ? p->metrics_rel : "metrics.jsonl", &failures);
        char agent_log[2200];
        if (pathf(agent_log, sizeof agent_log, "%s/agent.log", p->logs_dir) == 0)
                put_if_there(p, agent_log, p->agent_log_rel[0] ? p->agent_log_rel : "logs/agent.log", &failures);
        return failures ? -EIO : 0;
}
