/* SPDX-License-Identifier: Apache-2.0 */
/* run.c — `mayfly run` and `mayfly failsafe`: the driver of the lifecycle (lifecycle.h). It performs the action the
 * table names for the phase and the event, and feeds the event the action ends with back to the table. Every ending
 * goes STOPPING → SHIP → EXIT; nothing else ships or ends the instance. The state is saved at each step, so a
 * restarted agent resumes where it was. */
#include "run/drive/run.h"
#include "run/drive/xcreds.h"

#include <cjson/cJSON.h>
#include <systemd/sd-daemon.h>

#include "crypto.h"
#include "aws/chain.h"
#include "exitcode.h"
#include "log.h"
#include "yamljson.h"
#include "run/proc/exptree.h"

#include "run/drive/exit.h"
#include "run/drive/fleetrun.h"
#include "run/drive/phases.h"

/* The first directory of a systemd *_DIRECTORY list (or def). */
static void first_dir(char *dst, size_t n, const char *env, const char *def) {
        const char *v = env_nonempty(env);
        if (!v)
                v = def;
        size_t l = strcspn(v, ":");
        snprintf(dst, n, "%.*s", (int)l, v);
}

/* ---------- the driver ---------- */

/* A step of the table: the end (the first one counts), the phase, and what the status says of them. */
static void enter(struct run *R, const struct lc_step *s) {
        if (s->end == END_CLEAR) {
                R->st.end = END_NONE;
                R->st.outcome = OUT_RUNNING;
                R->st.spot_action[0] = 0;
                R->st.spot_time = 0;
        } else if (s->end != END_NONE && R->st.end == END_NONE) {
                R->st.end = s->end;
                R->st.ended_in = R->st.phase;
        }
        if (s->next == R->st.phase)
                return;
        R->st.phase = s->next;
        if (s->next == PH_SHIP)
                R->st.outcome = decide_outcome(R);
        if (R->ledger_ok)
                ledger_set_phase(&R->ledger, phase_name(s->next), NULL);
        save_state(R);
        waiter_status("%s", phase_name(s->next));
        log_info("phase %s", phase_name(s->next));
        push_status(R);
}

/* SHIP: the live shipping stops; in a shared run who ends it is decided (the final status depends on it); the
 * final upload; then the claim this instance still holds goes back. */
static int ship(struct run *R) {
        if (!ship_begin(R))
                return EV_DONE;
        if (R->fleet)
                fleet_decide(R);
        int ev = act_ship(R);
        if (ev == EV_DONE && R->fleet)
                fleet_release_claim(R);
        return ev;
}

static int perform(struct run *R, enum lc_action a) {
        switch (a) {
        case A_FETCH: return act_fetch(R);
        case A_PREPARE: return act_prepare(R);
        case A_START: return R->fleet ? fleet_start(R) : act_start(R);
        case A_STOP: case A_BAIL: return act_stop(R);
        case A_SHIP: return ship(R);
        case A_EXIT: return act_exit(R);
        case A_NONE: case A_HOLE: case A__MAX: break;
        }
        return STOP_DRIVING;
}

static void drive(struct run *R, enum lc_event ev) {
        for (;;) {
                enum phase was = R->st.phase;
                struct lc_step s = lc_transition(was, ev);
                if (s.action == A_BAIL)
                        /* a defect of the agent's: the run ends through STOPPING and SHIP like any failure */
                        failed(R, "internal error: event %s in phase %s", lc_event_name(ev), phase_name(was));
                else if (s.action == A_HOLE)
                        log_error("internal error: the lifecycle has no answer to event %s in phase %s",
                                  lc_event_name(ev), phase_name(was));
                enter(R, &s);
                int next = perform(R, s.action);
                if (next < 0)
                        return;
                ev = (enum lc_event)next;
        }
}

/* ---------- start ---------- */

static int setup_results(struct run *R, const char *results, const char *name) {
        char err[256];
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        int r = s3_parse_uri(results, &bucket, &key, err, sizeof err);
        if (r < 0)
                return r;
        if (pathf(R->bucket, sizeof R->bucket, "%s", bucket) < 0 ||
            pathf(R->prefix, sizeof R->prefix, "%s%s%s/%s/", key, *key && !str_has_suffix(key, "/") ? "/" : "", name,
                  R->st.run_id) < 0 ||
            pathf(R->results_uri, sizeof R->results_uri, "s3://%s/%s", R->bucket, R->prefix) < 0)
                return -ENAMETOOLONG;
        r = shipper_init(&R->ship, &R->c, R->bucket, R->prefix, R->job.log_interval);
        R->ship_ready = r == 0;
        return r;
}

static void new_run(struct run *R, const char *sha) {
        memset(&R->st, 0, sizeof R->st);
        char ts[32];
        time_t t = now_wall();
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
        if (R->job.run_id) /* one run shared by the instances that run the job */
                snprintf(R->st.run_id, sizeof R->st.run_id, "%s", R->job.run_id);
        else
                snprintf(R->st.run_id, sizeof R->st.run_id, "%s-%s", R->inst.id[0] ? R->inst.id : "local", ts);
        R->st.started = t;
        snprintf(R->st.instance_id, sizeof R->st.instance_id, "%s", R->inst.id);
        snprintf(R->st.job_sha, sizeof R->st.job_sha, "%s", sha ? sha : "");
        R->st.n = R->job.n_experiments;
        for (size_t i = 0; i < R->st.n; i++)
                R->st.exps[i].exit_code = -1;
        R->st.phase = PH_FETCH;
}

/* Best effort for a spec that does not validate: where should the error status go, what on error? */
static void peek_job(struct run *R, const char *text, size_t len, char *results, size_t rn, char *name, size_t nn) {
        cJSON *j = cJSON_ParseWithLength(text, len);
        const char *res = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "results"));
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "name"));
        const char *oe = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "on_error"));
        snprintf(results, rn, "%s", res && str_has_prefix(res, "s3://") ? res : "");
        snprintf(name, nn, "%s", nm && *nm && !strchr(nm, '/') && strlen(nm) <= 64 ? nm : "invalid-job");
        R->job.on_error = EXIT_ACTION_TERMINATE;
        if (oe)
                for (int a = EXIT_ACTION_TERMINATE; a <= EXIT_ACTION_KEEP; a++)
                        if (!strcmp(oe, exit_action_name((enum exit_action)a)))
                                R->job.on_error = (enum exit_action)a;
        cJSON_Delete(j);
}

/* A job that cannot be parsed still runs, with the defaults, to report that: EV_FAILED from a new run. */
static enum lc_event bad_spec(struct run *R, const char *text, size_t len, const char *err) {
        char results[1024] = "", name[80] = "invalid-job";
        job_defaults(&R->job); /* stop_grace, ship_timeout… for reporting the error */
        if (text)
                peek_job(R, text, len, results, sizeof results, name, sizeof name);
        R->job.name = strdup(name);
        R->bad_spec = true;
        new_run(R, NULL);
        if (!results[0] || setup_results(R, results, name) < 0) {
                log_error("bad job spec %s: %s (no results location to report to)", R->job_path, err);
                R->ship_ready = false;
                errf(R->st.error, sizeof R->st.error, "bad job spec: %s", err);
                return EV_FAILED;
        }
        return failed(R, "bad job spec %s: %s", R->job_path, err);
}

/* The instance is back after a spot stop (EC2 stopped, then started it): the interrupted experiment runs again. */
static void back_after_spot(struct run *R) {
        log_info("the instance is back after a spot %s: the run goes on", R->st.spot_action);
        for (size_t i = 0; i < R->st.n; i++) {
                struct exp_state *s = &R->st.exps[i];
                if (s->st == EXP_DONE && s->reason == R_INTERRUPTED) {
                        s->st = EXP_RUNNING;
                        s->pid = 0;
                        s->pid_start = 0;
                        s->reason = R_NONE;
                }
        }
}

/* The run this instance was in (state.json of this job, written on this instance), or a new one. */
static void resume_or_begin(struct run *R, const char *sha) {
        struct run_state old;
        bool have = runstate_load(R->state_path, &old) == 0 && !strcmp(old.job_sha, sha) && old.n == R->job.n_experiments;
        if (have && old.instance_id[0] && R->inst.id[0] && strcmp(old.instance_id, R->inst.id)) {
                /* an AMI baked after a run, a volume moved: that run was another instance's */
                log_info("state.json was written on instance %s, and this is %s: ignored, a new run starts",
                         old.instance_id, R->inst.id);
                have = false;
        }
        if (have) {
                R->st = old;
                log_info("resuming run %s at phase %s", R->st.run_id, phase_name(R->st.phase));
        } else {
                new_run(R, sha);
                save_state(R);
                log_info("new run %s (%s)", R->st.run_id, R->job.name);
        }
}

/* A run shared by instances (a run_id): its ledger, read once. EV_OVER when the run is over already (this instance
 * booted into it: no work, only what is left of its group goes), EV_FAILED, or -1. */
static int join_the_fleet(struct run *R) {
        R->fleet = true;
        shipper_share_status(&R->ship); /* the final status is the ender's alone */
        R->sweep = R->job.fleet.size > 1;
        for (size_t i = 0; i < R->job.n_experiments; i++)
                R->sweep |= R->job.experiments[i].n_after > 0;
        if (ledger_init(&R->ledger, &R->c, R->bucket, R->prefix, R->inst.id, &R->job, R->job.fleet.lease_ttl) < 0)
                return failed(R, "cannot set up the run's ledger");
        R->ledger_ok = true;
        snprintf(R->ledger.ip, sizeof R->ledger.ip, "%s", R->inst.private_ip); /* a gang's members meet there */
        struct aws_result out = { 0 };
        if (ledger_refresh(&R->ledger, &out) < 0)
                log_warn("reading the run's ledger: %s", out.msg);
        else if (R->ledger.ended && !(R->st.phase >= PH_SHIP && R->st.end != END_NONE)) {
                log_info("run %s is over (%s, ended by %s): nothing to do here", R->st.run_id, R->ledger.end_outcome,
                         R->ledger.end_by);
                role_news(R, FN_OVER);
                return EV_OVER;
        } else if (R->ledger.cancelled && !(R->st.phase >= PH_SHIP && R->st.end != END_NONE)) {
                /* booted into a cancelled run no instance has ended yet: this one ends it */
                note_cancel(R, R->ledger.cancel_by);
                return EV_CANCEL;
        }
        return -1;
}

/* A YAML job (a hand-run `mayfly run` of the dynamic build): the JSON it stands for, in place of the text. */
static int yaml_text(char **text, size_t *len, char *err, size_t errlen) {
        cJSON *j = NULL;
        int r = yaml_to_json(*text, *len, &j, NULL, err, errlen);
        if (r < 0)
                return r;
        free(*text);
        *text = cJSON_Print(j);
        cJSON_Delete(j);
        if (!*text)
                return -ENOMEM;
        *len = strlen(*text);
        return 0;
}

static enum lc_event start(struct run *R, bool failsafe) {
        char err[1024];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        /* the directories come from systemd (StateDirectory=, LogsDirectory=): short; the job's workdir is checked */
        if (pathf(R->state_path, sizeof R->state_path, "%s/state.json", R->state_dir) < 0 ||
            pathf(R->metrics_path, sizeof R->metrics_path, "%s/metrics.jsonl", R->logs_dir) < 0)
                log_warn("the state or logs directory's path is too long: %s, %s", R->state_dir, R->logs_dir);
        if (instance_load(&R->c.imds, &R->inst, err, sizeof err) < 0)
                log_warn("IMDS unavailable: no instance id (running off EC2?)%s%s", err[0] ? ": " : "", err);
        if (!R->c.region[0] && R->inst.region[0])
                snprintf(R->c.region, sizeof R->c.region, "%s", R->inst.region);
        int r = read_file_capped(R->job_path, JOB_MAX_BYTES, &text, &len);
        if (r < 0)
                errf(err, sizeof err, "cannot read the job spec %s: %s", R->job_path,
                         r == -EFBIG ? "larger than 256 KiB" : strerror(-r));
        else if (yaml_is_yaml_path(R->job_path))
                r = yaml_text(&text, &len, err, sizeof err);
        if (r == 0)
                r = job_parse(text, len, &R->job, err, sizeof err);
        if (r < 0)
                return bad_spec(R, text, len, err);
        unsigned char md[32];
        crypto_sha256(text, len, md);
        char sha[65];
        hex_encode(md, 32, sha);
        if ((R->job.workdir ? pathf(R->workdir, sizeof R->workdir, "%s", R->job.workdir)
                            : pathf(R->workdir, sizeof R->workdir, "%s/work", R->state_dir)) < 0)
                return failed(R, "the workdir's path is too long");
        resume_or_begin(R, sha);
        if (R->job.max_runtime)
                R->deadline = now_mono() + (double)(R->st.started + R->job.max_runtime - now_wall());
        if (setup_results(R, R->job.results, R->job.name) < 0)
                return failed(R, "cannot set up the results location %s", R->job.results);
        if (R->job.run_id) {
                int ev = join_the_fleet(R);
                if (ev >= 0)
                        return ev;
        }
        if (failsafe) {
                if (R->st.end == END_NONE && !R->st.error[0])
                        snprintf(R->st.error, sizeof R->st.error,
                                 "the agent failed repeatedly (systemd gave up restarting it)");
                return EV_FAILSAFE;
        }
        /* a spot stop: EC2 stopped the instance (in STOPPING, SHIP or EXIT) and started it again, the notice gone;
         * only a run that was ending for that notice goes on (one ending for a failure goes on ending) */
        if (R->st.spot_action[0] && R->st.end == END_SPOT && !R->st.exit_done && R->st.phase >= PH_STOPPING &&
            R->st.phase <= PH_EXIT && R->inst.id[0] && !instance_spot_pending(&R->c.imds)) {
                back_after_spot(R);
                role_news(R, FN_BACK);
                return EV_BACK;
        }
        return EV_BOOT;
}

/* The run's directories (systemd's StateDirectory=, LogsDirectory=, CacheDirectory=), the agent's log, the signals
 * and the AWS context. NULL when it cannot even start. */
static struct run *run_new(const char *job_path) {
        struct run *R = calloc(1, sizeof *R);
        if (!R)
                return NULL;
        snprintf(R->job_path, sizeof R->job_path, "%s", job_path);
        R->metrics_fd = -1;
        R->workfd = -1;
        R->scratchfd = -1;
        R->cur_idx = -1;
        R->gang.exp = -1;
        R->rc = EXIT_FAIL;
        first_dir(R->state_dir, sizeof R->state_dir, "STATE_DIRECTORY", "/var/lib/mayfly");
        first_dir(R->logs_dir, sizeof R->logs_dir, "LOGS_DIRECTORY", "/var/log/mayfly");
        first_dir(R->cache_dir, sizeof R->cache_dir, "CACHE_DIRECTORY", "/var/cache/mayfly");
        const char *dirs[] = { R->state_dir, R->logs_dir, R->cache_dir };
        for (size_t i = 0; i < 3; i++) {
                char probe[2100];
                if (pathf(probe, sizeof probe, "%s/x", dirs[i]) == 0)
                        mkdir_parents(probe, 0755);
        }
        char agent_log[2200];
        if (pathf(agent_log, sizeof agent_log, "%s/agent.log", R->logs_dir) == 0)
                log_open_file(agent_log);
        int r = waiter_init(&R->w);
        if (r == 0)
                r = aws_ctx_init(&R->c);
        if (r < 0) {
                log_error("cannot initialise: %s", strerror(-r));
                free(R);
                return NULL;
        }
        return R;
}

/* The end of the process: threads stopped, everything freed (or, with a worker still running, _exit). */
static int run_free(struct run *R, bool failsafe) {
        drop_credentials(R); /* the experiment is over: its credentials and the IMDS rule go */
        if (R->ledger_ok)
                ledger_keeper_stop(&R->ledger);
        stop_watch(R);
        if (!wrapup_free(&R->wrap))
                R->w.abandoned = true; /* a report.html upload hangs */
        if (failsafe)
                R->rc = R->st.exit_done && !R->bad_spec ? EXIT_OK : EXIT_FAIL;
        if (R->w.abandoned) {
                /* a worker still uses the run's state, libcurl and libcrypto: end without the exit handlers and
                 * library destructors that would pull them from under it */
                log_close_file();
                fflush(NULL);
                _exit(R->rc);
        }
        int rc = R->rc;
        if (R->ledger_ok)
                ledger_free(&R->ledger);
        if (R->ship_ready)
                shipper_free(&R->ship);
        shipped_files_free(&R->outputs_done);
        if (R->metrics_fd >= 0)
                close(R->metrics_fd);
        if (R->workfd >= 0)
                close(R->workfd);
        if (R->scratchfd >= 0)
                close(R->scratchfd);
        gpu_close(R->gpu);
        job_free(&R->job);
        aws_ctx_free(&R->c);
        waiter_free(&R->w);
        log_close_file();
        free(R);
        return rc;
}

int run_main(const char *job_path, bool failsafe) {
        struct run *R = run_new(job_path);
        if (!R)
                return EXIT_FAIL;
        if (failsafe)
                log_error("failsafe: the agent failed repeatedly; shipping what exists and ending the instance");
        enum lc_event ev = start(R, failsafe);
        if (failsafe && R->bad_spec) {
                /* without a readable job: power off (an instance launched with InstanceInitiatedShutdownBehavior=
                 * terminate ends); exit 1 even then, so that the unit's FailureAction makes sure of it */
                log_error("failsafe: no readable job: powering off");
                R->job.on_error = EXIT_ACTION_POWEROFF;
        }
        sd_notify(0, "READY=1");
        if (R->ship_ready) {
                struct wrapup_run wr = { .c = &R->c, .bucket = R->bucket, .prefix = R->prefix, .logs_dir = R->logs_dir,
                                         .state_dir = R->state_dir, .metrics_path = R->metrics_path,
                                         .inst = &R->inst, .job = &R->job, .st = &R->st, .w = &R->w };
                wrapup_init(&R->wrap, &wr);
                /* the instance and its price, at the start (bounded) */
                waiter_blocking(&R->w, wrapup_cost_refresh, &R->wrap, 0);
        }
        if (!failsafe && R->ship_ready) {
                watcher_start(&R->watch, R->inst.id[0] ? &R->c.imds : NULL);
                shipper_start(&R->ship);
                push_status(R);
        }
        /* the claim's keeper, which wakes the supervision when the claim is lost */
        if (R->ledger_ok)
                ledger_keeper_start(&R->ledger, R->watch.running ? R->watch.efd : -1);
        drive(R, ev);
        return run_free(R, failsafe);
}
