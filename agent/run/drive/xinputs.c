/* SPDX-License-Identifier: Apache-2.0 */
/* xinputs.c — the job's inputs staged at PREPARE, their progress in status.json, their variables (xinputs.h). */
#include "run/drive/xinputs.h"

#include <sys/stat.h>

#include "log.h"

struct stage_call {
        struct run *R;
        const struct job_input *in;
        char manifest[2600];
        struct stage_stats st;
        char err[1024];
};

static int stage_one(void *arg) {
        struct stage_call *sc = arg;
        struct run *R = sc->R;
        const char *root;
        int fd = run_tree(R, sc->in->scratch, &root);
        return inputs_stage(&R->c, sc->in, &R->user, fd, root, sc->manifest, &R->stage, &sc->st, sc->err,
                            sizeof sc->err);
}

/* On the driver while an input is staged: status.json follows, and a stop or a notice stops the staging. */
static void stage_tick(void *ud) {
        struct run *R = ud;
        if (R->stage_event < 0) {
                R->stage_event = pending_event(R);
                if (R->stage_event >= 0)
                        atomic_store(&R->stage.cancel, true);
        }
        push_status(R);
}

static void say_staged(const struct job_input *in, const struct stage_stats *st, double secs) {
        char b[32];
        fmt_bytes(st->bytes, b);
        if (st->skipped)
                log_info("input %s: staged before, not checked (\"sync\": false)", in->name);
        else if (!st->fetched && !st->removed)
                log_info("input %s: all %zu object%s staged already, nothing downloaded", in->name, st->listed,
                         st->listed == 1 ? "" : "s");
        else
                log_info("input %s: %zu of %zu object%s downloaded (%s in %.1fs, %.1f MiB/s), %zu kept, %zu removed",
                         in->name, st->fetched, st->listed, st->listed == 1 ? "" : "s", b, secs,
                         secs > 0 ? (double)st->bytes / 1048576.0 / secs : 0.0, st->kept, st->removed);
}

int stage_inputs(struct run *R) {
        if (!R->job.n_inputs)
                return -1;
        char dir[2200];
        if (pathf(dir, sizeof dir, "%s/inputs", R->state_dir) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
                return failed(R, "cannot make %s for the inputs' manifests: %s", dir, strerror(errno));
        R->stage_event = -1;
        int ev = -1;
        for (size_t i = 0; i < R->job.n_inputs && ev < 0; i++) {
                const struct job_input *in = &R->job.inputs[i];
                const char *root;
                if (run_tree(R, in->scratch, &root) < 0) {
                        ev = failed(R, "input %s: it goes in the scratch directory, which this start has not got",
                                    in->name);
                        break;
                }
                struct stage_call sc = { .R = R, .in = in };
                if (pathf(sc.manifest, sizeof sc.manifest, "%s/%s.jsonl", dir, in->name) < 0) {
                        ev = failed(R, "input %s: the manifest's path is too long", in->name);
                        break;
                }
                /* what status.json shows counts this input's objects and bytes */
                if (stage_progress_reset(&R->stage, (int)i) < 0) {
                        ev = failed(R, "input %s: out of memory", in->name);
                        break;
                }
                R->stage_start = now_mono();
                waiter_status("staging input %s", in->name);
                log_info("staging input %s: %s into %s/%s%s", in->name, in->source, root, in->path,
                         in->read_only ? " (read-only)" : "");
                push_status(R);
                double t0 = now_mono();
                int r = waiter_blocking_ticks(&R->w, stage_one, &sc, 0, stage_tick, R,
                                              (double)MAX(2, MIN(R->job.log_interval, 10)));
                if (r < 0 && R->stage_event >= 0)
                        ev = R->stage_event; /* stopped for it: said by whoever acts on it */
                else if (r < 0)
                        ev = failed(R, "%s", sc.err[0] ? sc.err : strerror(-r));
                else {
                        say_staged(in, &sc.st, now_mono() - t0);
                        if (R->stage_event >= 0)
                                ev = R->stage_event;
                }
        }
        stage_progress_end(&R->stage);
        R->stage_start = 0;
        return ev;
}

char **inputs_env(const struct run *R) {
        char **v = calloc(R->job.n_inputs + 1, sizeof *v);
        for (size_t i = 0; v && i < R->job.n_inputs; i++) {
                const struct job_input *in = &R->job.inputs[i];
                const char *root;
                char var[JOB_INPUT_NAME_MAX + 1], place[4096];
                run_tree(R, in->scratch, &root);
                job_input_var(in->name, var, sizeof var);
                size_t n = strlen(var) + strlen(root) + sizeof place + 32;
                if (job_input_place(in, place, sizeof place) < 0 || !(v[i] = malloc(n))) {
                        strv_free(v);
                        return NULL;
                }
                snprintf(v[i], n, "MAYFLY_INPUT_%s=%s/%s", var, root, place);
        }
        return v;
}
