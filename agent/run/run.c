/* run.c — `mayfly run`: boot, the lifecycle state machine (FETCH → PREPARE → RUN → SHIP → EXIT), shipping and the
 * exit action. The RUN phase itself (experiment supervision) is in supervise.c; the failsafe in failsafe.c. */
#include "run/run.h"

#include <dirent.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "run/archive_x.h"
#include "exitcode.h"
#include "crypto.h"
#include "run/exitact.h"
#include "log.h"
#include "aws/xferdir.h"


/* ---------- small helpers ---------- */

void run_notify_status(const char *fmt, const char *arg) {
        char s[512];
        snprintf(s, sizeof s, fmt, arg ? arg : "");
        sd_notifyf(0, "STATUS=%s", s);
}

void run_watchdog(struct run *R) {
        double now = now_mono();
        if (R->watchdog_usec > 0 && (now - R->last_watchdog) * 1e6 >= (double)R->watchdog_usec / 2) {
                sd_notify(0, "WATCHDOG=1");
                R->last_watchdog = now;
        }
}

void run_first_dir(char *dst, size_t n, const char *env, const char *def) {
        const char *v = env_nonempty(env);
        if (!v)
                v = def;
        size_t l = strcspn(v, ":");
        snprintf(dst, n, "%.*s", (int)l, v);
}

void run_save_state(struct run *R) {
        int r = runstate_save(R->state_path, &R->st);
        if (r < 0)
                log_warn("cannot save state to %s: %s", R->state_path, strerror(-r));
}

void run_push_status(struct run *R) {
        _cleanup_free_ char *js = NULL;
        if (R->ship_ready && status_build(R, &js) == 0) {
                shipper_set_status(&R->ship, js);
                wrapup_status_changed(R, js); /* integration hook: report.html follows status.json */
        }
}

void run_set_phase(struct run *R, enum phase p) {
        R->st.phase = p;
        run_save_state(R);
        run_notify_status("%s", phase_name(p));
        log_info("phase %s", phase_name(p));
        run_push_status(R);
}

/* Runs fn(arg) on a worker thread while this thread keeps the watchdog fed and notes stop signals. */
struct blocking {
        int (*fn)(struct run *R, void *arg);
        struct run *R;
        void *arg;
        int rc;
        int efd;                  /* written when fn returns, so the loop wakes at once */
        volatile bool done;
};

static void *blocking_main(void *ud) {
        struct blocking *b = ud;
        b->rc = b->fn(b->R, b->arg);
        __atomic_store_n(&b->done, true, __ATOMIC_RELEASE);
        uint64_t one = 1;
        ssize_t n = write(b->efd, &one, sizeof one);
        (void)n;
        return NULL;
}

void run_drain_signals(struct run *R) {
        struct signalfd_siginfo si;
        while (read(R->sfd, &si, sizeof si) == sizeof si)
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                        if (!R->stop_requested)
                                log_info("stop requested (signal %u): the run resumes when the agent starts again",
                                         si.ssi_signo);
                        R->stop_requested = true;
                }
}

int run_blocking_until(struct run *R, int (*fn)(struct run *, void *), void *arg, double deadline) {
        /* on the heap: a worker abandoned at the deadline may still write its result here */
        struct blocking *b = calloc(1, sizeof *b);
        if (!b)
                return fn(R, arg);
        *b = (struct blocking){ .fn = fn, .R = R, .arg = arg, .efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
        pthread_t th;
        if (b->efd < 0 || pthread_create(&th, NULL, blocking_main, b) != 0) {
                if (b->efd >= 0)
                        close(b->efd);
                free(b);
                return fn(R, arg);
        }
        sd_notify(0, "EXTEND_TIMEOUT_USEC=60000000");
        while (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE)) {
                if (deadline > 0 && now_mono() >= deadline) {
                        pthread_detach(th);
                        R->worker_abandoned = true;
                        return -ETIMEDOUT;
                }
                struct pollfd p[2] = { { .fd = R->sfd, .events = POLLIN }, { .fd = b->efd, .events = POLLIN } };
                poll(p, 2, 1000);
                run_drain_signals(R);
                run_watchdog(R);
        }
        pthread_join(th, NULL);
        close(b->efd);
        int rc = b->rc;
        free(b);
        return rc;
}

void run_exit_if_abandoned(struct run *R, int rc) {
        if (!R->worker_abandoned)
                return;
        /* An upload thread still uses the run's state, libcurl and libcrypto: end the process without the exit
         * handlers and library destructors that would pull them from under it. */
        log_close_file();
        fflush(NULL);
        _exit(rc);
}

int run_blocking(struct run *R, int (*fn)(struct run *, void *), void *arg) {
        return run_blocking_until(R, fn, arg, 0);
}

/* ---------- boot ---------- */

static int imds_value(struct run *R, const char *path, char *dst, size_t n) {
        char err[256];
        _cleanup_free_ char *v = NULL;
        int r = imds_get(&R->c.imds, path, &v, NULL, err, sizeof err);
        if (r == 0)
                snprintf(dst, n, "%s", str_trim(v));
        return r;
}

static void doc_field(const cJSON *doc, const char *k, char *dst, size_t n) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, k));
        if (v)
                snprintf(dst, n, "%s", v);
}

/* One read of the instance identity document gives id, type, region, AZ and AMI; meta-data adds the lifecycle
 * ("spot" or "on-demand"; left empty where IMDS has no such key). */
void run_load_instance(struct run *R) {
        char err[256] = "";
        _cleanup_free_ char *txt = NULL;
        size_t len = 0;
        int r = imds_get(&R->c.imds, "dynamic/instance-identity/document", &txt, &len, err, sizeof err);
        cJSON *doc = r == 0 ? cJSON_ParseWithLength(txt, len) : NULL;
        if (doc) {
                doc_field(doc, "instanceId", R->inst.id, sizeof R->inst.id);
                doc_field(doc, "instanceType", R->inst.type, sizeof R->inst.type);
                doc_field(doc, "region", R->inst.region, sizeof R->inst.region);
                doc_field(doc, "availabilityZone", R->inst.az, sizeof R->inst.az);
                doc_field(doc, "imageId", R->inst.ami, sizeof R->inst.ami);
                cJSON_Delete(doc);
        }
        if (!R->inst.id[0] && imds_value(R, "meta-data/instance-id", R->inst.id, sizeof R->inst.id) < 0) {
                log_warn("IMDS unavailable: no instance id (running off EC2?)%s%s", err[0] ? ": " : "", err);
                return;
        }
        (void)imds_value(R, "meta-data/instance-life-cycle", R->inst.lifecycle, sizeof R->inst.lifecycle);
        if (!R->c.region[0] && R->inst.region[0])
                snprintf(R->c.region, sizeof R->c.region, "%s", R->inst.region);
}

int run_setup_results(struct run *R, const char *results, const char *name) {
        char err[256];
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        int r = s3_parse_uri(results, &bucket, &key, err, sizeof err);
        if (r < 0)
                return r;
        snprintf(R->bucket, sizeof R->bucket, "%s", bucket);
        snprintf(R->prefix, sizeof R->prefix, "%s%s%s/%s/", key, *key && !str_has_suffix(key, "/") ? "/" : "", name,
                 R->st.run_id);
        snprintf(R->results_uri, sizeof R->results_uri, "s3://%s/%s", R->bucket, R->prefix);
        r = shipper_init(&R->ship, &R->c, R->bucket, R->prefix, R->job.log_interval);
        R->ship_ready = r == 0;
        return r;
}

void run_new_run_id(struct run *R) {
        char ts[32];
        time_t t = now_wall();
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(R->st.run_id, sizeof R->st.run_id, "%s-%s", R->inst.id[0] ? R->inst.id : "local", ts);
        R->st.started = t;
        snprintf(R->st.instance_id, sizeof R->st.instance_id, "%s", R->inst.id);
}

/* ---------- failure and exit ---------- */

static const char *decide_outcome(const struct run *R) {
        if (R->st.error[0])
                return "error";
        if (R->spot_interrupted)
                return "interrupted";
        bool timeout = false, idle = false, failed = false;
        for (size_t i = 0; i < R->st.n; i++) {
                const struct exp_state *e = &R->st.exps[i];
                timeout |= !strcmp(e->reason, "max-runtime"); /* also one never started for it */
                if (e->st != EXP_DONE)
                        continue;
                timeout |= !strcmp(e->reason, "timeout");
                idle |= !strcmp(e->reason, "gpu-idle");
                failed |= e->exit_code != 0;
        }
        for (size_t i = 0; i < R->st.n; i++)
                failed |= R->st.exps[i].st == EXP_SKIPPED;
        return timeout ? "timeout" : idle ? "gpu-idle" : failed ? "failed" : "succeeded";
}

/* The exit action, repeated until it takes: with terminate chosen the agent never returns leaving the
 * instance up (unless told to stop). */
int run_do_exit_action(struct run *R, enum exit_action a) {
        wrapup_notify(R); /* integration hook: after the final status, before the exit action; bounded, once per run */
        run_set_phase(R, PH_EXIT);
        sd_notify(0, "STOPPING=1");
        for (int attempt = 1;; attempt++) {
                char msg[512];
                log_info("exit action: %s", exit_action_name(a));
                int r = exit_action_perform(&R->c, a, R->inst.id, msg, sizeof msg);
                if (r == 0) {
                        log_info("%s", msg);
                        R->st.exit_done = true;
                        R->st.phase = PH_DONE;
                        run_save_state(R);
                        return 0;
                }
                log_error("exit action %s failed (attempt %d): %s; retrying in 30 s", exit_action_name(a), attempt,
                          msg);
                for (int i = 0; i < 150 && !R->stop_requested; i++) {
                        struct pollfd p = { .fd = R->sfd, .events = POLLIN };
                        poll(&p, 1, 200);
                        run_drain_signals(R);
                        run_watchdog(R);
                }
                if (R->stop_requested)
                        return -ECANCELED;
        }
}

/* ---------- shipping ---------- */

static int upload_outputs(struct run *R, struct aws_result *out) {
        struct xfer_batch b;
        struct xfer_opts o = { .concurrency = 8 };
        int r = xfer_batch_init(&b, &R->c, R->bucket, true, &o);
        char prefix[1400];
        snprintf(prefix, sizeof prefix, "%soutputs/", R->prefix);
        for (char **g = R->job.outputs; r == 0 && g && *g; g++) {
                char pat[8192];
                snprintf(pat, sizeof pat, "%s/%s", R->workdir, *g);
                glob_t gl;
                if (glob(pat, GLOB_NOSORT, NULL, &gl) != 0) {
                        log_warn("outputs: nothing matches %s", *g);
                        continue;
                }
                for (size_t i = 0; r == 0 && i < gl.gl_pathc; i++) {
                        const char *m = gl.gl_pathv[i];
                        const char *rel = m + strlen(R->workdir) + 1;
                        struct stat st;
                        if (lstat(m, &st) < 0)
                                continue;
                        char key[S3_MAX_KEY + 2];
                        if (S_ISDIR(st.st_mode)) {
                                snprintf(key, sizeof key, "%s%s/", prefix, rel);
                                r = xfer_batch_add_tree(&b, m, key, NULL, NULL, out);
                        } else if (S_ISREG(st.st_mode)) {
                                snprintf(key, sizeof key, "%s%s", prefix, rel);
                                r = xfer_batch_add(&b, key, m, (uint64_t)st.st_size);
                        }
                }
                globfree(&gl);
        }
        if (r == 0 && b.n)
                r = xfer_batch_run(&b, out);
        xfer_batch_free(&b);
        return r;
}

static int ship_all(struct run *R, void *arg) {
        int failures = 0;
        struct aws_result res = { 0 };
        /* live chunks first (cheap, keeps `logs --follow` complete), then the whole files */
        if (shipper_flush(&R->ship, &res) < 0) {
                log_warn("shipping live logs: %s", res.msg);
                failures++;
        }
        for (size_t i = 0; i < R->job.n_experiments; i++) {
                static const char *const streams[] = { "stdout", "stderr" };
                for (size_t k = 0; k < 2; k++) {
                        char path[4200], rel[512];
                        snprintf(path, sizeof path, "%s/%s/%s.log", R->logs_dir, R->job.experiments[i].name, streams[k]);
                        snprintf(rel, sizeof rel, "logs/%s/%s.log", R->job.experiments[i].name, streams[k]);
                        if (access(path, F_OK) == 0 && shipper_put_file(&R->ship, path, rel, &res) < 0) {
                                log_warn("shipping %s: %s", rel, res.msg);
                                failures++;
                        }
                }
        }
        if (R->job.outputs && R->job.outputs[0] && upload_outputs(R, &res) < 0) {
                log_warn("shipping outputs: %s", res.msg);
                failures++;
        }
        if (R->job.checkpoint_dir && shipper_sync_checkpoint(&R->ship, &res) < 0) {
                log_warn("shipping the checkpoint: %s", res.msg);
                failures++;
        }
        if (R->metrics_fd >= 0 && access(R->metrics_path, F_OK) == 0 &&
            shipper_put_file(&R->ship, R->metrics_path, "metrics.jsonl", &res) < 0) {
                log_warn("shipping metrics: %s", res.msg);
                failures++;
        }
        char agent_log[2200];
        snprintf(agent_log, sizeof agent_log, "%s/agent.log", R->logs_dir);
        if (access(agent_log, F_OK) == 0)
                shipper_put_file(&R->ship, agent_log, "logs/agent.log", &res);
        wrapup_cost_refresh(R, NULL); /* integration hook: the cost up to now goes into the final status */
        _cleanup_free_ char *js = NULL;
        if (status_build(R, &js) == 0 && shipper_put_text(&R->ship, "status.json", js, "application/json", &res) < 0) {
                log_warn("shipping status.json: %s", res.msg);
                failures++;
        }
        /* integration hook: report.html from the final status (a page for people: its failure fails nothing) */
        if (js && wrapup_final_report(R, js, &res) < 0)
                log_warn("shipping report.html: %s", res.msg);
        return failures ? -EIO : 0;
}

static void ship_phase(struct run *R) {
        run_set_phase(R, PH_SHIP);
        if (!R->ship_ready)
                return;
        shipper_stop(&R->ship);
        /* the spec bounds the final upload: past ship_timeout the exit action goes ahead regardless */
        int r = run_blocking_until(R, ship_all, NULL, now_mono() + (double)R->job.ship_timeout);
        if (r == -ETIMEDOUT)
                log_error("the final upload did not finish within ship_timeout (%lds); going on with the exit "
                          "action; results are kept under %s and %s", R->job.ship_timeout, R->logs_dir, R->workdir);
        else if (r < 0)
                log_error("some results could not be uploaded; they are kept under %s and %s", R->logs_dir,
                          R->workdir);
        else
                log_info("results in %s", R->results_uri);
}

/* Bad input or an unrecoverable failure: status `error`, what can be shipped, then on_error. */
int run_fail_run(struct run *R, int rc, const char *msg) {
        log_error("%s", msg);
        snprintf(R->st.error, sizeof R->st.error, "%s", msg);
        snprintf(R->st.outcome, sizeof R->st.outcome, "error");
        run_save_state(R);
        ship_phase(R);
        run_do_exit_action(R, R->job.on_error);
        return EXIT_RUN_FAILED;
}

/* ---------- FETCH ---------- */

static int fetch(struct run *R, void *arg) {
        char *err = arg;
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        int r = s3_parse_uri(R->job.source, &bucket, &key, err, 512);
        if (r < 0)
                return r;
        struct aws_result res = { 0 };
        struct xfer_opts o = { .concurrency = 8 };
        if (str_has_suffix(R->job.source, "/")) {
                struct xfer_batch b;
                r = xfer_batch_init(&b, &R->c, bucket, false, &o);
                if (r == 0)
                        r = xfer_batch_add_prefix(&b, key, R->workdir, &res);
                if (r == 0 && b.n == 0) {
                        snprintf(res.msg, sizeof res.msg, "source %s holds no objects", R->job.source);
                        r = -MF_ENOTFOUND;
                }
                if (r == 0)
                        r = xfer_batch_run(&b, &res);
                xfer_batch_free(&b);
                if (r < 0)
                        snprintf(err, 512, "fetching %s: %s", R->job.source, res.msg);
                return r;
        }
        const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
        char local[4300];
        snprintf(local, sizeof local, "%s/source-%s", R->cache_dir, base);
        r = xfer_download(&R->c, bucket, key, local, &o, &res);
        if (r < 0) {
                snprintf(err, 512, "fetching %s: %s", R->job.source, res.msg);
                return r;
        }
        r = archive_extract(local, R->workdir, err, 512);
        unlink(local);
        return r;
}

static int phase_fetch(struct run *R) {
        char err[512] = "";
        int r = mkdir_parents(R->workdir, 0755);
        if (r == 0 && mkdir(R->workdir, 0755) < 0 && errno != EEXIST)
                r = -errno;
        if (r < 0) {
                snprintf(err, sizeof err, "cannot create the workdir %s: %s", R->workdir, strerror(-r));
                return run_fail_run(R, r, err);
        }
        run_notify_status("fetching %s", R->job.source);
        log_info("fetching %s into %s", R->job.source, R->workdir);
        r = run_blocking(R, fetch, err);
        if (r < 0)
                return run_fail_run(R, r, err[0] ? err : strerror(-r));
        run_set_phase(R, PH_PREPARE);
        return 0;
}

/* ---------- PREPARE ---------- */

static int open_gpu(struct run *R, char *err, size_t errlen) {
        double deadline = now_mono() + (double)R->job.gpu_wait;
        for (;;) {
                int r = gpu_open(&R->gpu, env_nonempty("MAYFLY_NVML_LIBRARY"), NULL, err, errlen);
                if (r == 0)
                        return 0;
                if (now_mono() >= deadline || R->stop_requested)
                        return r;
                for (int i = 0; i < 10; i++) {
                        struct pollfd p = { .fd = R->sfd, .events = POLLIN };
                        poll(&p, 1, 200);
                        run_drain_signals(R);
                        run_watchdog(R);
                }
        }
}

static int phase_prepare(struct run *R) {
        char err[1024];
        int r = run_user_resolve(R->job.user, &R->user, err, sizeof err);
        if (r < 0)
                return run_fail_run(R, -EINVAL, err);
        struct env_spec es = { .kind = (enum env_kind)R->job.env_kind, .value = R->job.env_value };
        struct envact_search search = { .conda_exe = env_nonempty("CONDA_EXE"), .home = R->user.home };
        r = envact_resolve(&es, &search, &R->env, err, sizeof err);
        if (r < 0)
                return run_fail_run(R, -EINVAL, err);
        if (R->job.gpu_require || R->job.gpu_idle > 0) {
                run_notify_status("waiting for the GPU driver%s", "");
                r = open_gpu(R, err, sizeof err);
                if (r < 0 && R->job.gpu_require) {
                        char m[1200];
                        snprintf(m, sizeof m, "GPU required but none found after %lds: %s", R->job.gpu_wait, err);
                        return run_fail_run(R, -ENODEV, m);
                }
        } else
                gpu_open(&R->gpu, env_nonempty("MAYFLY_NVML_LIBRARY"), NULL, err, sizeof err);
        if (R->gpu) {
                r = gpu_query(R->gpu, &R->gpu_inv, err, sizeof err);
                R->have_gpu_inv = r >= 0;
                if (R->have_gpu_inv)
                        log_info("GPUs: %d (%s, driver %s)", R->gpu_inv.count, R->gpu_inv.source, R->gpu_inv.driver);
                if (R->job.gpu_require && (!R->have_gpu_inv || R->gpu_inv.count < R->job.gpu_min_count)) {
                        char m[1200];
                        snprintf(m, sizeof m, "GPU required: found %d, need at least %d", R->have_gpu_inv ? R->gpu_inv.count : 0,
                                 R->job.gpu_min_count);
                        return run_fail_run(R, -ENODEV, m);
                }
        }
        if (R->user.switch_user) {
                r = chown_tree(R->workdir, R->user.uid, R->user.gid);
                if (r < 0)
                        log_warn("cannot hand %s to %s: %s", R->workdir, R->user.name, strerror(-r));
        }
        run_set_phase(R, PH_RUN);
        return 0;
}

/* After a spot notice: results are shipped; AWS reclaims the instance. Wait for it, then act anyway. */
static int await_reclaim(struct run *R) {
        log_info("results shipped before the interruption; waiting for EC2 to %s the instance", R->st.spot_action);
        /* the notice's time as IMDS gave it, but never more than 2 minutes out (what EC2 gives): a far-off time
         * (a bad answer, a clock far off at boot) must not keep the instance up */
        time_t now = now_wall();
        time_t until = MIN(R->st.spot_time, now + 120) + 300;
        while (now_wall() < until && !R->stop_requested) {
                struct pollfd p = { .fd = R->sfd, .events = POLLIN };
                poll(&p, 1, 500);
                run_drain_signals(R);
                run_watchdog(R);
        }
        if (R->stop_requested)
                return EXIT_FAIL;
        log_warn("the instance is still up 5 minutes after the notice's time");
        run_do_exit_action(R, R->job.on_error);
        return EXIT_FAIL;
}

/* ---------- main ---------- */

int run_read_job(struct run *R, char **ret_text, size_t *ret_len, char *err, size_t errlen) {
        int r = read_file_capped(R->job_path, JOB_MAX_BYTES, ret_text, ret_len);
        if (r < 0)
                snprintf(err, errlen, "cannot read the job spec %s: %s", R->job_path,
                         r == -EFBIG ? "larger than 256 KiB" : strerror(-r));
        return r;
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

int run_setup_signals(struct run *R) {
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGCHLD);
        sigaddset(&m, SIGTERM);
        sigaddset(&m, SIGINT);
        sigaddset(&m, SIGHUP);
        if (pthread_sigmask(SIG_BLOCK, &m, NULL) != 0)
                return -errno;
        signal(SIGPIPE, SIG_IGN);
        R->sfd = signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
        return R->sfd < 0 ? -errno : 0;
}

/* The run was interrupted by a spot notice, and yet the agent runs again: EC2 stopped (spot interruption behaviour
 * stop, or hibernate with a reboot) rather than terminated the instance, and started it again. The run goes on:
 * the interrupted experiments run again with MAYFLY_RESUME=1, the pending ones after them. */
static void back_after_spot(struct run *R) {
        log_info("the instance is back after a spot %s: the run goes on", R->st.spot_action);
        for (size_t i = 0; i < R->st.n; i++) {
                struct exp_state *s = &R->st.exps[i];
                if (s->st == EXP_DONE && !strcmp(s->reason, "interrupted")) {
                        s->st = EXP_RUNNING;
                        s->pid = 0;
                        s->pid_start = 0;
                        s->reason[0] = 0;
                }
        }
        R->st.spot_action[0] = 0;
        R->st.spot_time = 0;
        R->st.outcome[0] = 0;
        R->st.phase = PH_PREPARE;
        run_save_state(R);
}

static int start(struct run *R) {
        char err[1024];
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        snprintf(R->state_path, sizeof R->state_path, "%s/state.json", R->state_dir);
        int r = run_read_job(R, &text, &len, err, sizeof err);
        if (r == 0)
                r = job_parse(text, len, &R->job, err, sizeof err);
        run_load_instance(R);
        if (r < 0) {
                char results[1024] = "", name[80];
                job_defaults(&R->job); /* stop_grace, ship_timeout… for reporting the error */
                if (text)
                        peek_job(R, text, len, results, sizeof results, name, sizeof name);
                run_new_run_id(R);
                if (results[0] && run_setup_results(R, results, name) == 0) {
                        R->job.name = strdup(name);
                        char m[1200];
                        snprintf(m, sizeof m, "bad job spec %s: %s", R->job_path, err);
                        return run_fail_run(R, -EINVAL, m);
                }
                log_error("bad job spec %s: %s (no results location to report to)", R->job_path, err);
                R->ship_ready = false;
                run_do_exit_action(R, R->job.on_error);
                return EXIT_USAGE;
        }
        unsigned char md[32];
        crypto_sha256(text, len, md);
        char sha[65];
        hex_encode(md, 32, sha);
        if (!R->job.workdir) {
                snprintf(R->workdir, sizeof R->workdir, "%s/work", R->state_dir);
        } else
                snprintf(R->workdir, sizeof R->workdir, "%s", R->job.workdir);
        struct run_state old;
        if (runstate_load(R->state_path, &old) == 0 && !strcmp(old.job_sha, sha) && old.n == R->job.n_experiments) {
                R->st = old;
                log_info("resuming run %s at phase %s", R->st.run_id, phase_name(R->st.phase));
                if (R->st.spot_action[0] && !R->st.exit_done && R->st.phase != PH_DONE)
                        back_after_spot(R);
        } else {
                memset(&R->st, 0, sizeof R->st);
                run_new_run_id(R);
                snprintf(R->st.job_sha, sizeof R->st.job_sha, "%s", sha);
                R->st.n = R->job.n_experiments;
                for (size_t i = 0; i < R->st.n; i++)
                        R->st.exps[i].exit_code = -1;
                R->st.phase = PH_FETCH;
                run_save_state(R);
                log_info("new run %s (%s)", R->st.run_id, R->job.name);
        }
        r = run_setup_results(R, R->job.results, R->job.name);
        if (r < 0)
                return run_fail_run(R, r, "cannot set up the results location");
        return 0;
}

static int lifecycle(struct run *R) {
        int rc;
        if (R->st.phase == PH_DONE || R->st.exit_done) {
                /* a finished run whose instance is still up: carry out the exit action again */
                enum exit_action a = !strcmp(R->st.outcome, "succeeded") ? R->job.on_exit : R->job.on_error;
                if (a == EXIT_ACTION_KEEP)
                        return 0;
                return run_do_exit_action(R, a) == 0 ? 0 : EXIT_FAIL;
        }
        if (R->st.phase == PH_FETCH) {
                /* fail before spending hours on a run whose results could not be kept */
                _cleanup_free_ char *js = NULL;
                struct aws_result res = { 0 };
                if (status_build(R, &js) == 0 &&
                    shipper_put_text(&R->ship, "status.json", js, "application/json", &res) < 0) {
                        char m[1200];
                        snprintf(m, sizeof m, "cannot write to the results location %s: %s", R->results_uri, res.msg);
                        R->ship_ready = false; /* nothing can be shipped there */
                        return run_fail_run(R, -EACCES, m);
                }
        }
        shipper_start(&R->ship);
        run_blocking(R, wrapup_cost_refresh, NULL); /* integration hook: the instance and its price, at the start */
        run_push_status(R);
        if (R->st.phase == PH_FETCH && (rc = phase_fetch(R)) != 0)
                return rc;
        if (R->stop_requested)
                return EXIT_OK;
        if (R->st.phase <= PH_RUN && R->st.phase >= PH_PREPARE) {
                /* the user, env and GPU are re-resolved on resume (they are not persisted) */
                if ((rc = phase_prepare(R)) != 0)
                        return rc;
                if ((rc = run_phase_run(R)) != 0)
                        return rc;
        }
        watcher_stop(&R->watch);
        if (R->stop_requested) {
                /* systemd stops us (shutdown, restart): ship what exists, keep the state, resume later */
                shipper_stop(&R->ship);
                struct aws_result res;
                shipper_flush(&R->ship, &res);
                log_info("stopped; the run resumes when the agent starts again");
                return EXIT_OK;
        }
        snprintf(R->st.outcome, sizeof R->st.outcome, "%s", decide_outcome(R));
        run_save_state(R);
        ship_phase(R);
        log_info("outcome: %s", R->st.outcome);
        if (R->spot_interrupted) {
                wrapup_notify(R); /* integration hook: the interruption's notification, when it is due */
                return await_reclaim(R);
        }
        bool ok = !strcmp(R->st.outcome, "succeeded");
        run_do_exit_action(R, ok ? R->job.on_exit : R->job.on_error);
        return ok ? EXIT_OK : EXIT_RUN_FAILED;
}

int cmd_run(int argc, char **argv) {
        static const struct option opts[] = { { "job", required_argument, NULL, 'j' },
                                              { "help", no_argument, NULL, 'h' }, { 0 } };
        struct run *R = calloc(1, sizeof *R);
        if (!R)
                return EXIT_FAIL;
        snprintf(R->job_path, sizeof R->job_path, "%s", JOB_DEFAULT_PATH);
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
                if (ch == 'j')
                        snprintf(R->job_path, sizeof R->job_path, "%s", optarg);
                else {
                        FILE *f = ch == 'h' ? stdout : stderr;
                        fprintf(f, "usage: mayfly run [--job FILE]\n\n"
                                   "  Runs the job (default %s): fetch, prepare, run each experiment, ship the\n"
                                   "  results to S3, then the exit action. State in $STATE_DIRECTORY (default\n"
                                   "  /var/lib/mayfly); a restarted agent resumes. See docs/job-spec.md.\n",
                                JOB_DEFAULT_PATH);
                        free(R);
                        return ch == 'h' ? EXIT_OK : EXIT_USAGE;
                }
        }
        R->metrics_fd = -1;
        run_first_dir(R->state_dir, sizeof R->state_dir, "STATE_DIRECTORY", "/var/lib/mayfly");
        run_first_dir(R->logs_dir, sizeof R->logs_dir, "LOGS_DIRECTORY", "/var/log/mayfly");
        run_first_dir(R->cache_dir, sizeof R->cache_dir, "CACHE_DIRECTORY", "/var/cache/mayfly");
        int rc = EXIT_FAIL;
        const char *dirs[] = { R->state_dir, R->logs_dir, R->cache_dir };
        for (size_t i = 0; i < 3; i++) {
                char probe[2100];
                snprintf(probe, sizeof probe, "%s/x", dirs[i]);
                mkdir_parents(probe, 0755);
        }
        char agent_log[2200];
        snprintf(agent_log, sizeof agent_log, "%s/agent.log", R->logs_dir);
        log_open_file(agent_log);
        uint64_t wd = 0;
        if (sd_watchdog_enabled(0, &wd) > 0)
                R->watchdog_usec = (long)wd;
        if (run_setup_signals(R) < 0 || aws_ctx_init(&R->c) < 0) {
                log_error("cannot initialise: %s", strerror(errno));
                free(R);
                return EXIT_FAIL;
        }
        rc = start(R);
        sd_notify(0, "READY=1");
        if (rc == 0)
                rc = lifecycle(R);
        wrapup_free(R); /* integration hook: before run_exit_if_abandoned (a hanging report upload counts) */
        run_exit_if_abandoned(R, rc);
        watcher_stop(&R->watch);
        if (R->ship_ready)
                shipper_free(&R->ship);
        if (R->metrics_fd >= 0)
                close(R->metrics_fd);
        gpu_close(R->gpu);
        job_free(&R->job);
        aws_ctx_free(&R->c);
        close(R->sfd);
        log_close_file();
        free(R);
        return rc;
}


