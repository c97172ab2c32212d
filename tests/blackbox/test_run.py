# SPDX-License-Identifier: Apache-2.0
"""`mayfly run` end to end against moto (SigV4 checking on) and the IMDS fake: happy path, live logs, spot
notice, agent crash and resume, max_runtime, exit-action fallbacks, and each kind of bad input."""
import io
import json
import os
import signal
import subprocess
import tarfile
import tempfile
import time

from harness import MAYFLY, ROOT, RUN_USER, Cloud, ResultsView, check, mayfly, out

BUCKET = ResultsView.BUCKET
FAKE_NVML = os.path.join(os.environ.get("MAYFLY_BUILD", os.path.join(ROOT, "build")), "fakes", "nvml",
                         "libnvidia-ml.so.1")

SCRIPTS = {
    "ok.sh": """#!/bin/sh
echo "hello from $MAYFLY_EXPERIMENT run $MAYFLY_RUN_ID"
printf 'progress 10%%\\rprogress 100%%\\n'
echo "to stderr" >&2
mkdir -p outputs && echo "result of $MAYFLY_EXPERIMENT" > "outputs/$MAYFLY_EXPERIMENT.txt"
mkdir -p "$MAYFLY_CHECKPOINT_DIR" && echo ck > "$MAYFLY_CHECKPOINT_DIR/$MAYFLY_EXPERIMENT.ckpt"
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0} user=$(id -un)" >> runs.txt
""",
    "ticker.sh": """#!/bin/sh
i=0
while [ $i -lt "$1" ]; do i=$((i+1)); echo "line $i"; sleep 1; done
""",
    "spot.sh": """#!/bin/bash
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
trap 'echo "got SIGTERM, checkpointing"; mkdir -p "$MAYFLY_CHECKPOINT_DIR"; echo saved > "$MAYFLY_CHECKPOINT_DIR/ckpt.txt"; exit 143' TERM
while true; do sleep 0.2; done
""",
    # checkpoints on SIGTERM; a resumed attempt finishes from the checkpoint
    "spotresume.sh": """#!/bin/bash
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
if [ "${MAYFLY_RESUME:-0}" = 1 ]; then echo "resumed from $(cat "$MAYFLY_CHECKPOINT_DIR/ckpt.txt")"; exit 0; fi
trap 'mkdir -p "$MAYFLY_CHECKPOINT_DIR"; echo saved > "$MAYFLY_CHECKPOINT_DIR/ckpt.txt"; exit 143' TERM
while true; do sleep 0.2; done
""",
    "stubborn.sh": """#!/bin/bash
trap 'echo "ignoring SIGTERM"' TERM
while true; do sleep 0.2; done
""",
    "long.sh": """#!/bin/sh
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
sleep "${1:-8}"
echo finished
""",
    "fail.sh": """#!/bin/sh
echo failing >&2
exit 3
""",
}


def make_archive(path, extra=None):
    with tarfile.open(path, "w:gz") as t:
        for name, body in SCRIPTS.items():
            data = body.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o755
            t.addfile(ti, io.BytesIO(data))
        for ti, data in (extra or []):
            t.addfile(ti, io.BytesIO(data) if data is not None else None)


def s3_upload(cloud, path, key, bucket=BUCKET):
    """What `aws s3 cp PATH s3://BUCKET/KEY` does (the same transfer manager, the type it guesses), without the
    second or so of starting the CLI: every Run uploads its archive."""
    import mimetypes
    kind = mimetypes.guess_type(path)[0]
    cloud.boto("s3").upload_file(path, bucket, key, ExtraArgs={"ContentType": kind} if kind else None)


class Run(ResultsView):
    """One job on one fresh fake cloud (a fresh instance to terminate)."""

    def __init__(self, job, cloud_args=None, archive_extra=None, upload=True, env=None):
        self.cloud = Cloud(**(cloud_args or {})).__enter__()
        self.dir = tempfile.mkdtemp(prefix="mayfly-run-")
        os.chmod(self.dir, 0o755)
        self.work = os.path.join(self.dir, "work")
        self.marker = os.path.join(self.dir, "poweroff-ran")
        base = {"name": "t", "source": "s3://%s/src/exp.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
                "workdir": self.work, "user": RUN_USER, "log_interval": 2}
        base.update(job)
        self.job = {k: v for k, v in base.items() if v is not None}
        if upload:
            tgz = os.path.join(self.dir, "exp.tar.gz")
            make_archive(tgz, archive_extra)
            s3_upload(self.cloud, tgz, "src/exp.tar.gz")
        self.job_path = os.path.join(self.dir, "job.json")
        with open(self.job_path, "w") as f:
            if isinstance(job, str):
                f.write(job)
            else:
                json.dump(self.job, f)
        self.env = self.cloud.role_env()
        self.env.update(STATE_DIRECTORY=os.path.join(self.dir, "state"), LOGS_DIRECTORY=os.path.join(self.dir, "logs"),
                        CACHE_DIRECTORY=os.path.join(self.dir, "cache"),
                        MAYFLY_POWEROFF_COMMAND="touch " + self.marker,
                        MAYFLY_NVML_LIBRARY=os.path.join(self.dir, "no-such-libnvidia-ml.so.1"))
        self.env.update(env or {})
        self.proc = None

    def write_raw_job(self, text):
        with open(self.job_path, "w") as f:
            f.write(text)

    def start(self):
        self.proc = subprocess.Popen([MAYFLY, "run", "--job", self.job_path], env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self.proc

    def run(self, timeout=180):
        self.start()
        o, e = self.proc.communicate(timeout=timeout)
        self.stderr = e.decode(errors="replace")
        return self.proc.returncode

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.cloud.__exit__(None, None, None)

    def runs_txt(self):
        p = os.path.join(self.work, "runs.txt")
        return open(p).read().splitlines() if os.path.exists(p) else []


def with_run(job, fn, **kw):
    r = Run(job, **kw)
    try:
        return fn(r)
    finally:
        r.close()


def test_happy_path_two_experiments():
    def body(r):
        rc = r.run()
        check(rc == 0, r.stderr)
        keys = r.keys()
        st = r.status()
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        pre = "results/t/%s/" % st["run_id"]
        check(st["run_id"].startswith(r.cloud.info["instance_id"] + "-"), st["run_id"])
        for k in ("logs/a/stdout.log", "logs/a/stderr.log", "logs/b/stdout.log", "outputs/outputs/a.txt",
                  "outputs/outputs/b.txt", "checkpoint/a/a.ckpt", "checkpoint/b/b.ckpt", "metrics.jsonl", "status.json", "logs/agent.log"):
            check(pre + k in keys, "missing " + k + " in " + repr(keys))
        log = r.get(pre + "logs/a/stdout.log")
        check(b"progress 10%\rprogress 100%\n" in log, "\\r not kept raw: %r" % log)
        check(r.get(pre + "logs/a/stderr.log") == b"to stderr\n", "stderr log")
        check([e["exit_code"] for e in st["experiments"]] == [0, 0], repr(st["experiments"]))
        check(st["experiments"][0]["command"] == ["./ok.sh"] and st["experiments"][1]["command"] == "./ok.sh",
              repr(st["experiments"]))
        inst = st["instance"]
        check(inst["id"] == r.cloud.info["instance_id"] and inst["type"] and inst["region"] and inst["availability_zone"]
              and inst["ami_id"] and inst["lifecycle"] == "spot", repr(inst))
        check(st["mayfly_version"] and st["started"], repr(st))
        check(r.runs_txt() == ["a resume=0 user=" + RUN_USER, "b resume=0 user=" + RUN_USER], repr(r.runs_txt()))
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
        check(not os.path.exists(r.marker), "fell back to power-off although TerminateInstances works")
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}, {"name": "b", "command": "./ok.sh"}],
              "outputs": ["outputs/*"], "checkpoint": {"path": "ckpt", "interval": 60}}, body)


def test_log_grows_in_s3_while_running():
    def body(r):
        r.start()
        seen = []
        t0 = time.time()
        deadline = t0 + 40
        while time.time() < deadline and r.proc.poll() is None:
            live = [k for k in r.keys() if "/live/tick/stdout." in k]
            total = sum(len(r.get(k)) for k in live)
            seen.append((time.time() - t0, total))
            time.sleep(1)
        r.proc.communicate(timeout=60)
        check(r.proc.returncode == 0, "agent failed")
        # while the ticker prints a line a second for 30 s, S3 must never lag by more than log_interval + 5 s
        grew = [(t, n) for t, n in seen if n > 0]
        check(grew and grew[0][0] <= 5 + 5 + 3, "first log bytes reached S3 only at %r" % (grew[:1],))
        for t, n in seen:
            if 8 <= t <= 28:
                expected_lines = int(t - 2) - (5 + 5)
                check(n >= max(0, expected_lines) * len("line 10\n") // 2,
                      "at %.0fs S3 had %d bytes: log not growing (%r)" % (t, n, seen))
        sizes = [n for _, n in seen]
        check(len(set(sizes)) >= 4, "log did not grow in steps: %r" % seen)
        st = r.status()
        full = r.get("results/t/%s/logs/tick/stdout.log" % st["run_id"])
        check(full.count(b"\n") == 30, "final log has %d lines" % full.count(b"\n"))
    with_run({"experiments": [{"name": "tick", "command": ["./ticker.sh", "30"]}], "log_interval": 5}, body)


def test_spot_notice_checkpoint_before_deadline():
    def body(r):
        r.start()
        deadline = time.time() + 30
        while time.time() < deadline and "spot resume=0" not in r.runs_txt():
            time.sleep(0.2)
        check(r.runs_txt(), "experiment did not start")
        notice = r.cloud.control("POST", "/spot", {"in": 50})
        notice_time = time.time() + 50
        shipped_at = None
        while time.time() < notice_time:
            st = r.status()
            if st and st["outcome"] == "interrupted":
                shipped_at = time.time()
                break
            time.sleep(0.5)
        check(shipped_at is not None, "no interrupted status before the notice time")
        st = r.status()
        pre = "results/t/%s/" % st["run_id"]
        keys = r.keys()
        check(pre + "checkpoint/spot/ckpt.txt" in keys, "checkpoint not in S3: %r" % keys)
        check(r.get(pre + "checkpoint/spot/ckpt.txt") == b"saved\n", "wrong checkpoint")
        log = r.get(pre + "logs/spot/stdout.log")
        check(b"got SIGTERM" in log, "experiment did not get SIGTERM: %r" % log)
        check(st["experiments"][0]["reason"] == "interrupted" and st["interruption"]["action"] == "terminate",
              repr(st))
        check(r.proc.poll() is None, "agent exited instead of letting AWS act")
        check(r.instance_state() == "running", "the agent terminated the instance itself")
        r.proc.send_signal(signal.SIGTERM)
        r.proc.communicate(timeout=30)
    with_run({"experiments": [{"name": "spot", "command": ["./spot.sh"]}],
              "checkpoint": {"path": "ckpt", "interval": 600}}, body)


def test_spot_stop_then_start_again_goes_on():
    """Spot interruption behaviour `stop`: after the notice the agent ships and waits; EC2 stops the instance (systemd
    stops the agent); when the instance starts again the run goes on instead of ending `failed` with on_error."""
    def body(r):
        r.start()
        deadline = time.time() + 30
        while time.time() < deadline and "spot resume=0" not in r.runs_txt():
            time.sleep(0.2)
        check(r.runs_txt(), "experiment did not start")
        r.cloud.control("POST", "/spot", {"in": 60, "action": "stop"})
        deadline = time.time() + 30
        while time.time() < deadline and not (r.status() and r.status()["outcome"] == "interrupted"):
            time.sleep(0.5)
        check(r.status()["outcome"] == "interrupted", json.dumps(r.status()))
        r.proc.send_signal(signal.SIGTERM)  # EC2 stops the instance: systemd stops the agent
        r.proc.communicate(timeout=30)
        r.cloud.control("DELETE", "/spot")  # started again: no notice any more
        rc = r.run(timeout=120)
        check(rc == 0, "exit %d: %s" % (rc, r.stderr))
        check("the instance is back after a spot stop: the run goes on" in r.stderr, r.stderr)
        check(r.runs_txt() == ["spot resume=0", "spot resume=1", "later resume=0 user=" + RUN_USER], repr(r.runs_txt()))
        st = r.status()
        check(st["outcome"] == "succeeded" and st["experiments"][0]["attempts"] == 2, json.dumps(st))
        log = r.get("results/t/%s/logs/spot/stdout.log" % st["run_id"])
        check(b"resumed from saved" in log, repr(log))
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
    with_run({"experiments": [{"name": "spot", "command": ["./spotresume.sh"]}, {"name": "later", "command": "./ok.sh"}],
              "checkpoint": {"path": "ckpt", "interval": 600}}, body)


def _crash_mid_experiment(r):
    """Starts the run and kill -9s the agent once its second experiment runs (as systemd would see a crash)."""
    r.start()
    deadline = time.time() + 30
    while time.time() < deadline and "long resume=0" not in r.runs_txt():
        time.sleep(0.2)
    check("long resume=0" in r.runs_txt(), "second experiment never started: %r" % r.runs_txt())
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait()


def test_agent_kill9_resumes_without_refetch_or_rerun():
    def body(r):
        _crash_mid_experiment(r)
        first = r.proc.stderr.read().decode(errors="replace")
        check("fetching" in first, first)
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        check("resuming run" in r.stderr and "fetching" not in r.stderr, r.stderr)
        runs = r.runs_txt()
        check(runs.count("first resume=0 user=" + RUN_USER) == 1, "finished experiment re-ran: %r" % runs)
        check(runs[-1] == "long resume=1", "interrupted experiment not restarted with MAYFLY_RESUME=1: %r" % runs)
        check(len(runs) == 3, repr(runs))
        st = r.status()
        check(st["outcome"] == "succeeded" and st["experiments"][1]["attempts"] == 2, repr(st))
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
    with_run({"experiments": [{"name": "first", "command": "./ok.sh"},
                              {"name": "long", "command": ["./long.sh", "6"]}]}, body)


def test_resume_after_max_runtime_starts_nothing():
    """An agent restarted after max_runtime ran out (crash, watchdog) ends the run as timeout without restarting the
    interrupted experiment for a moment (it could checkpoint its fresh state over the good one) or starting the next."""
    def body(r):
        _crash_mid_experiment(r)
        time.sleep(7)  # max_runtime (6 s from the run's start) runs out while no agent is there
        rc = r.run(timeout=120)
        check(rc == 6, "exit %d (want 6: finished, outcome not succeeded): %s" % (rc, r.stderr))
        check("resuming run" in r.stderr and "experiment long not restarted: max_runtime (6s) is spent" in r.stderr,
              r.stderr)
        runs = r.runs_txt()
        check(runs == ["first resume=0 user=" + RUN_USER, "long resume=0"], "ran again: %r" % runs)
        st = r.status()
        e = st["experiments"]
        check(st["outcome"] == "timeout", json.dumps(st))
        check(e[1]["reason"] == "max-runtime" and e[1]["attempts"] == 1, repr(e[1]))
        check(e[2]["status"] == "skipped", repr(e[2]))
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
    with_run({"experiments": [{"name": "first", "command": "./ok.sh"},
                              {"name": "long", "command": ["./long.sh", "60"]},
                              {"name": "later", "command": "./ok.sh"}], "max_runtime": 6}, body)


def _failsafe(r, job=None):
    p = subprocess.run([MAYFLY, "failsafe", "--job", job or r.job_path], env=r.env, capture_output=True, timeout=120)
    return p.returncode, p.stderr.decode(errors="replace")


def test_failsafe_after_crashes_ships_error_and_terminates():
    def body(r):
        _crash_mid_experiment(r)
        rc, err = _failsafe(r)
        check(rc == 0, "exit %d: %s" % (rc, err))
        check("failsafe: the agent failed repeatedly" in err, err)
        st = r.status()
        check(st["outcome"] == "error" and "systemd gave up restarting it" in st["error"], json.dumps(st))
        pre = "results/t/%s/" % st["run_id"]
        check(pre + "logs/agent.log" in r.keys(), "the agent's log was not shipped: %r" % r.keys())
        check(b"new run" in r.get(pre + "logs/agent.log"), "agent.log lacks the crashed agent's lines")
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
        check(not os.path.exists(r.marker), "powered off although TerminateInstances works")
    with_run({"experiments": [{"name": "first", "command": "./ok.sh"}, {"name": "long", "command": ["./long.sh", "4"]}]},
             body)


def test_failsafe_keeps_the_instance_when_on_error_is_keep():
    def body(r):
        _crash_mid_experiment(r)
        rc, err = _failsafe(r)
        # exit 0: the chosen action took; a failure would make systemd power off (FailureAction=poweroff)
        check(rc == 0, "exit %d: %s" % (rc, err))
        check(r.status()["outcome"] == "error", json.dumps(r.status()))
        check(r.instance_state() == "running" and not os.path.exists(r.marker), "on_error keep not kept")
    with_run({"experiments": [{"name": "first", "command": "./ok.sh"}, {"name": "long", "command": ["./long.sh", "4"]}],
              "on_error": "keep"}, body)


def test_failsafe_leaves_a_finished_run_alone():
    def body(r):
        check(r.run() == 0, r.stderr)
        before = r.status()
        rc, err = _failsafe(r)
        check(rc == 0, "exit %d: %s" % (rc, err))
        check(r.status() == before, "the failsafe rewrote a finished run's status: %r" % r.status())
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
    with_run({"experiments": [{"name": "a", "command": "./ok.sh"}]}, body)


def test_failsafe_without_a_job_powers_off():
    def body(r):
        rc, err = _failsafe(r, job=os.path.join(r.dir, "no-such-job.json"))
        check(rc == 1, "exit %d: %s" % (rc, err))
        check("no-such-job.json" in err and "powering off" in err, err)
        check(os.path.exists(r.marker), "the power-off command did not run")
    with_run({"experiments": [{"name": "a", "command": "./ok.sh"}]}, body, upload=False)


def test_max_runtime_kills_sigterm_ignoring_experiment():
    def body(r):
        t0 = time.time()
        rc = r.run(timeout=120)
        took = time.time() - t0
        check(rc != 0, "exit 0 for a timed-out run")
        st = r.status()
        check(st["outcome"] == "timeout" and st["experiments"][0]["reason"] == "max-runtime", json.dumps(st))
        check(st["experiments"][0]["signal"] == 9, "not SIGKILLed: %r" % st["experiments"][0])
        check(st["experiments"][1]["status"] == "skipped", repr(st["experiments"][1]))
        check(took < 30, "took %.0fs" % took)
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
        log = r.get("results/t/%s/logs/stubborn/stdout.log" % st["run_id"])
        check(b"ignoring SIGTERM" in log, repr(log))
    with_run({"experiments": [{"name": "stubborn", "command": ["./stubborn.sh"]},
                              {"name": "never", "command": ["./ok.sh"]}],
              "max_runtime": 4, "stop_grace": 2}, body)


def test_experiment_timeout_and_failure_outcomes():
    def body(r):
        rc = r.run(timeout=120)
        st = r.status()
        check(rc != 0 and st["outcome"] == "timeout", json.dumps(st))
        ex = st["experiments"]
        check(ex[0]["exit_code"] == 3 and ex[0]["reason"] == "exit", repr(ex[0]))
        check(ex[1]["reason"] == "timeout", repr(ex[1]))
        check(ex[2]["exit_code"] == 0, repr(ex[2]))
    with_run({"experiments": [{"name": "fails", "command": ["./fail.sh"]},
                              {"name": "slow", "command": ["./long.sh", "30"], "timeout": 2},
                              {"name": "fine", "command": ["./ok.sh"]}],
              "continue_on_failure": True, "stop_grace": 2}, body)


def test_terminate_denied_falls_back_to_poweroff():
    def body(r):
        rc = r.run()
        check(rc == 0, r.stderr)
        check("UnauthorizedOperation" in r.stderr, r.stderr)
        check(os.path.exists(r.marker), "power-off fallback did not run")
        check(r.instance_state() == "running", r.instance_state())
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}]}, body, cloud_args={"deny_terminate": True})


def test_ec2_down_falls_back_to_poweroff():
    def body(r):
        t0 = time.time()
        rc = r.run()
        check(rc == 0, r.stderr)
        check(os.path.exists(r.marker), "power-off fallback did not run: " + r.stderr)
        check(time.time() - t0 < 60, "took too long")
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}]}, body,
             env={"AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:9"})


def bad_input(job, expect, cloud_args=None, archive_extra=None, upload=True, raw=None, env=None, status=True,
              rc_expected=None):
    def body(r):
        if raw is not None:
            r.write_raw_job(raw)
        rc = r.run(timeout=120)
        check(rc != 0, "exit 0 for bad input")
        if rc_expected is not None:
            check(rc == rc_expected, "exit %d" % rc)
        errs = [l for l in r.stderr.splitlines() if expect in l]
        check(errs, "no clear error containing %r in:\n%s" % (expect, r.stderr))
        check("Traceback" not in r.stderr and "Segmentation" not in r.stderr, r.stderr)
        # a job that cannot be parsed still runs with the defaults (it once had ship_timeout 0: the final upload was
        # abandoned at once and the process crashed at exit under the abandoned thread)
        check("cannot save state" not in r.stderr and "did not finish within ship_timeout" not in r.stderr, r.stderr)
        if status:
            st = r.status()
            check(st and st["outcome"] == "error" and expect in st["error"], json.dumps(st))
            check("results/t/%s/logs/agent.log" % st["run_id"] in r.keys(), "agent.log not shipped: %r" % r.keys())
        check(r.instance_state() in ("shutting-down", "terminated"), "on_error terminate not carried out")
        check(not os.path.exists(os.path.join(r.dir, "escaped")), "wrote outside the workdir")
    base = {"experiments": [{"name": "a", "command": ["./ok.sh"]}]}
    base.update(job)
    with_run(base, body, cloud_args=cloud_args, archive_extra=archive_extra, upload=upload, env=env)


def test_bad_malformed_json():
    bad_input({}, "malformed JSON", raw='{"name": "t", "results": "s3://mayfly-test/results/", ', status=False,
              rc_expected=2)


def test_bad_unknown_key():
    bad_input({"experimentz": []}, "$.experimentz: unknown key")


def test_bad_missing_source():
    bad_input({"source": "s3://mayfly-test/src/nope.tar.gz"}, "does not exist")


def tar_entry(name, typ=tarfile.REGTYPE, linkname="", data=b"x"):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.linkname = linkname
    ti.size = len(data) if typ == tarfile.REGTYPE else 0
    return ti, data if typ == tarfile.REGTYPE else None


def test_bad_archive_dotdot():
    bad_input({}, "refusing archive entry '../escaped'", archive_extra=[tar_entry("../escaped")])


def test_bad_archive_absolute():
    bad_input({}, "absolute path", archive_extra=[tar_entry("/tmp/mayfly-abs-escaped")])
    check(not os.path.exists("/tmp/mayfly-abs-escaped"), "absolute path extracted")


def test_bad_archive_escaping_symlink():
    bad_input({}, "escapes the workdir", archive_extra=[tar_entry("link", tarfile.SYMTYPE, "../../.."),
                                                         tar_entry("link/escaped")])


def test_bad_conda_env_not_found():
    bad_input({"env": {"conda": "nope"}}, "nope")


def test_status_says_the_run_waits_for_the_gpu_driver():
    def body(r):
        r.start()
        deadline, st = time.time() + 30, None
        while time.time() < deadline and not (st and st.get("waiting")):
            time.sleep(0.5)
            st = r.status()
        check(st and "GPU driver" in st.get("waiting", "") and st["phase"] == "PREPARE", json.dumps(st))
        p = mayfly("status", "s3://mayfly-test/results/t/%s/" % st["run_id"], env=r.cloud.admin_env())
        check(p.returncode == 0 and "waiting:  waiting for the GPU driver" in p.stdout.decode(), out(p))
        r.proc.communicate(timeout=120)
        st = r.status()
        check(st["outcome"] == "error" and "waiting" not in st and "GPU required" in st["error"], json.dumps(st))
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}], "gpu": {"require": True, "wait_seconds": 8}},
             body)


def test_bad_gpu_required_none_present():
    bad_input({"gpu": {"require": True, "wait_seconds": 0}}, "GPU required")


def test_bad_results_bucket_not_writable():
    def body(r):
        rc = r.run(timeout=120)
        check(rc != 0, "exit 0 although nothing could be shipped")
        check("cannot write to the results location s3://no-such-bucket-x/" in r.stderr and "NoSuchBucket" in r.stderr,
              r.stderr)
        check(not r.runs_txt(), "experiments ran although their results could not be kept")
        check(r.instance_state() in ("shutting-down", "terminated"), "exit action not carried out")
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}], "results": "s3://no-such-bucket-x/r/"}, body)


def test_bad_disk_full_during_fetch():
    def body(r):
        small = os.path.join(r.dir, "small")
        os.makedirs(small)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small], check=True)
        try:
            r.env["CACHE_DIRECTORY"] = small
            rc = r.run(timeout=120)
            check(rc != 0, "exit 0 with a full disk")
            check("no space" in r.stderr.lower(), r.stderr)
            st = r.status()
            check(st and st["outcome"] == "error", json.dumps(st))
            check(r.instance_state() in ("shutting-down", "terminated"), "on_error not carried out")
        finally:
            subprocess.run(["umount", small])
    big = os.urandom(2 << 20)
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}]}, body,
             archive_extra=[tar_entry("big.bin", data=big)])


def test_gpu_inventory_and_idle_stop():
    if not os.path.exists(FAKE_NVML):
        raise AssertionError("fake NVML not built: " + FAKE_NVML)

    def body(r):
        state = os.path.join(r.dir, "nvml.state")
        with open(state, "w") as f:
            f.write("count=2\nname0=Tesla V100-SXM2-16GB\nname1=Tesla V100-SXM2-16GB\nutil0=0\nutil1=0\n")
        r.env.update(MAYFLY_NVML_LIBRARY=FAKE_NVML, FAKE_NVML_STATE=state)
        t0 = time.time()
        rc = r.run(timeout=120)
        st = r.status()
        check(st["gpu"]["count"] == 2 and "V100" in st["gpu"]["devices"][0]["name"], json.dumps(st["gpu"]))
        check(st["outcome"] == "gpu-idle" and st["experiments"][0]["reason"] == "gpu-idle", json.dumps(st))
        check(time.time() - t0 < 60, "idle stop took too long")
        m = r.get("results/t/%s/metrics.jsonl" % st["run_id"]).decode().splitlines()
        check(len(m) >= 2 and json.loads(m[0])["gpu"]["count"] == 2, repr(m[:2]))
    with_run({"experiments": [{"name": "idle", "command": ["./long.sh", "60"]}],
              "gpu": {"require": True, "min_count": 2, "wait_seconds": 5, "idle_minutes": 0.2}, "stop_grace": 2},
             body)


def test_systemd_notify_ready_status_watchdog():
    import socket
    def body(r):
        path = os.path.join(r.dir, "notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(0.2)
        r.env.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
        r.start()
        msgs = []
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                msgs.append(s.recv(4096).decode())
            except socket.timeout:
                if r.proc.poll() is not None:
                    break
        r.proc.communicate(timeout=30)
        text = "\n".join(msgs)
        check("READY=1" in text, text)
        for st in ("STATUS=fetching s3://", "STATUS=PREPARE", "STATUS=RUN", "STATUS=running w", "STATUS=SHIP", "STATUS=EXIT", "STOPPING=1"):
            check(st in text, "missing %s in %r" % (st, msgs))
        check(text.count("WATCHDOG=1") >= 4, "watchdog pinged %d times in a 3 s experiment" % text.count("WATCHDOG=1"))
    with_run({"experiments": [{"name": "w", "command": ["./long.sh", "3"]}]}, body)


def test_rebalance_sends_sigusr1():
    SCRIPTS["usr1.sh"] = """#!/bin/bash
trap 'echo "got SIGUSR1"; echo early > early.ckpt' USR1
for i in $(seq 100); do sleep 0.1; done
"""
    def body(r):
        r.start()
        time.sleep(2)
        r.cloud.control("POST", "/rebalance", {})
        o, e = r.proc.communicate(timeout=120)
        check(r.proc.returncode == 0, e.decode())
        check(os.path.exists(os.path.join(r.work, "early.ckpt")), "no SIGUSR1 delivered")
        check("rebalance recommendation" in e.decode(), e.decode())
    with_run({"experiments": [{"name": "u", "command": ["./usr1.sh"]}], "spot": {"sigusr1_on_rebalance": True}}, body)


def test_checkpoint_restored_from_s3_on_resume():
    SCRIPTS["ckpt.sh"] = """#!/bin/sh
if [ "${MAYFLY_RESUME:-0}" = 1 ]; then
  echo "resumed with $(cat "$MAYFLY_CHECKPOINT_DIR/state.txt" 2>/dev/null || echo nothing)" >> restored.txt
  exit 0
fi
mkdir -p "$MAYFLY_CHECKPOINT_DIR" && echo "step 42" > "$MAYFLY_CHECKPOINT_DIR/state.txt"
sleep 60
"""
    def body(r):
        r.start()
        deadline = time.time() + 40
        while time.time() < deadline and not [k for k in r.keys() if k.endswith("checkpoint/c/state.txt")]:
            time.sleep(0.5)
        check([k for k in r.keys() if k.endswith("checkpoint/c/state.txt")], "checkpoint never synced to S3")
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        import shutil
        shutil.rmtree(os.path.join(r.work, "ck", "c"))  # the local copy is gone (e.g. instance-store workdir)
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        got = open(os.path.join(r.work, "restored.txt")).read()
        check(got == "resumed with step 42\n", repr(got))
    with_run({"experiments": [{"name": "c", "command": ["./ckpt.sh"]}], "checkpoint": {"path": "ck", "interval": 10},
              "stop_grace": 1}, body)


def test_imds_unreachable_at_boot_powers_off():
    def body(r):
        r.cloud.control("POST", "/imds/disable")
        t0 = time.time()
        rc = r.run(timeout=120)
        check(rc != 0, "exit 0 without IMDS")
        check("IMDS" in r.stderr and "no credentials" not in r.stderr.lower() or "IMDS" in r.stderr, r.stderr)
        check(os.path.exists(r.marker), "no power-off fallback without IMDS: " + r.stderr)
        check(time.time() - t0 < 60, "took %.0fs" % (time.time() - t0))
        check(not r.runs_txt(), "experiments ran without credentials")
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}]}, body)


def test_disk_full_while_logging_keeps_running():
    SCRIPTS["chatty.sh"] = """#!/bin/sh
i=0
while [ $i -lt 3000 ]; do i=$((i+1)); echo "line $i of a log that will not fit on the disk, padded to be long enough"; done
echo finished > done.txt
"""
    def body(r):
        small = os.path.join(r.dir, "logs")
        os.makedirs(small)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small], check=True)
        try:
            rc = r.run(timeout=120)
            check(os.path.exists(os.path.join(r.work, "done.txt")), "the experiment was blocked by the full disk")
            check("cannot write the experiment's log" in r.stderr, r.stderr)
            st = r.status()
            check(st and st["experiments"][0]["exit_code"] == 0, json.dumps(st))
            check(r.instance_state() in ("shutting-down", "terminated"), "exit action not carried out")
        finally:
            subprocess.run(["umount", small])
    with_run({"experiments": [{"name": "c", "command": ["./chatty.sh"]}]}, body)


def test_ship_timeout_bounds_the_final_upload():
    def body(r):
        # every upload of the final phase stalls (held 100 s each, then retried): ship_timeout must cut it short
        r.cloud.faults([{"method": "PUT", "path_contains": "/logs/", "delay": 100, "count": -1}])
        t0 = time.time()
        rc = r.run(timeout=180)
        took = time.time() - t0
        r.cloud.faults_done()
        check("did not finish within ship_timeout" in r.stderr, r.stderr)
        check(took < 45, "the exit action came after %.0fs" % took)
        # the disk holds the only copy of what did not reach S3: stopped, not terminated
        check(r.instance_state() in ("stopping", "stopped"), "instance %s" % r.instance_state())
        check(rc == 6, "exit %d" % rc)
        check(os.path.getsize(os.path.join(r.dir, "logs", "a", "stdout.log")) > 0, "logs not kept on disk")
    with_run({"experiments": [{"name": "a", "command": ["./ok.sh"]}], "ship_timeout": 12}, body)
