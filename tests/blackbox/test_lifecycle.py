# SPDX-License-Identifier: Apache-2.0
"""The one exit path, seen from outside: SIGTERM ships everything before the agent goes; an agent killed in SHIP
finishes SHIP when it starts again; an upload that cannot complete stops the instance (its disk keeps the only
copy) and the next start ships, then ends it; each experiment has its own checkpoint; a state.json from another
instance is ignored; live logs for any number of experiments; a clock stepped back changes no cadence."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

from harness import ROOT, RUN_USER, Skip, check
from test_run import BUCKET, SCRIPTS, Run, with_run

SCRIPTS.update({
    # writes an output at once; on SIGTERM its checkpoint and its last words
    "lastwords.sh": """#!/bin/bash
echo "$MAYFLY_EXPERIMENT attempt=${MAYFLY_ATTEMPT:-?} resume=${MAYFLY_RESUME:-0}" >> runs.txt
if [ "${MAYFLY_RESUME:-0}" = 1 ]; then echo "resumed from $(cat "$MAYFLY_CHECKPOINT_DIR/ckpt.txt")"; exit 0; fi
mkdir -p outputs && echo "partial result" > outputs/partial.txt
trap 'echo "step 7 saved"; echo "step 7" > "$MAYFLY_CHECKPOINT_DIR/ckpt.txt"; echo "my last words"; exit 143' TERM
echo "training"
while true; do sleep 0.2; done
""",
    "bigckpt.sh": """#!/bin/sh
head -c 67108864 /dev/urandom > "$MAYFLY_CHECKPOINT_DIR/model.bin"
echo "$MAYFLY_EXPERIMENT done" >> runs.txt
""",
    "seeckpt.sh": """#!/bin/sh
ls -A "$MAYFLY_CHECKPOINT_DIR" > "seen-$MAYFLY_EXPERIMENT.txt"
echo "$MAYFLY_CHECKPOINT_DIR" > "dir-$MAYFLY_EXPERIMENT.txt"
echo "$MAYFLY_EXPERIMENT" > "$MAYFLY_CHECKPOINT_DIR/mine.txt"
""",
    "chatty.sh": """#!/bin/sh
echo "$MAYFLY_EXPERIMENT" >> runs.txt
i=0
while [ $i -lt ${1:-4} ]; do i=$((i+1)); echo "$MAYFLY_EXPERIMENT line $i"; sleep 1; done
""",
    "ticktrap.sh": """#!/bin/bash
trap 'date +%s > sigterm_at; exit 143' TERM
i=0
while true; do i=$((i+1)); echo "tick $i"; sleep 1; done
""",
})


def _wait(pred, timeout, what, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def _phase(r):
    try:
        with open(os.path.join(r.dir, "state", "state.json")) as f:
            return json.load(f)["phase"]
    except (OSError, ValueError, KeyError):
        return None


def _stop_instance(r):
    """EC2 stops the instance: the agent and the experiment die with it (kill -9 of the agent, and of the experiment's
    process group, from state.json)."""
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait()
    with open(os.path.join(r.dir, "state", "state.json")) as f:
        pids = [x.get("pid") for x in json.load(f)["experiments"] if x.get("pid")]
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _spot_stop_then_back(kill_in, ship_slowly):
    """A spot "stop" notice; the instance stopped while the agent is in phase kill_in; started again without the
    notice: the run goes on, the interrupted experiment resumes with MAYFLY_RESUME=1, the run succeeds."""
    def body(r):
        r.start()
        _wait(lambda: "a attempt=1 resume=0" in r.runs_txt(), 30, "the experiment")
        if ship_slowly:  # the checkpoint's upload in SHIP takes a while
            r.cloud.faults([{"method": "PUT", "path_contains": "/checkpoint/", "delay": 4, "count": -1}])
        r.cloud.control("POST", "/spot", {"in": 120, "action": "stop"})
        _wait(lambda: _phase(r) == kill_in, 60, "phase " + kill_in)
        if ship_slowly:  # stopped in the middle of the checkpoint's upload
            _wait(lambda: r.cloud.control("GET", "/faults")["rules"][0]["fired"], 30, "the checkpoint's upload")
        time.sleep(1)
        _stop_instance(r)
        check(_phase(r) == kill_in, "the agent left %s before it was stopped: %s" % (kill_in, _phase(r)))
        if ship_slowly:
            r.cloud.faults_done()
        r.cloud.control("DELETE", "/spot")  # started again: no notice any more
        rc = r.run(timeout=120)
        check(rc == 0, "exit %d: %s" % (rc, r.stderr))
        check("the instance is back after a spot stop: the run goes on" in r.stderr, r.stderr)
        check(r.runs_txt() == ["a attempt=1 resume=0", "a attempt=2 resume=1", "b"], repr(r.runs_txt()))
        st = r.status()
        check(st["outcome"] == "succeeded" and st["experiments"][0]["attempts"] == 2, json.dumps(st))
        log = r.get("results/t/%s/logs/a/stdout.log" % st["run_id"])
        # stopped in SHIP, the handler had saved; stopped in STOPPING, mid-way through its save: nothing to resume from
        check((b"resumed from step 7" if ship_slowly else b"resumed from \n") in log, repr(log[-300:]))
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
    SCRIPTS["b.sh"] = "#!/bin/sh\necho b >> runs.txt\n"
    # the handler takes its time to save (STOPPING lasts), or saves at once (then SHIP is slow)
    SCRIPTS["slowsave.sh"] = SCRIPTS["lastwords.sh"].replace(
        "trap 'echo \"step 7 saved\"", "trap 'sleep %d; echo \"step 7 saved\"" % (0 if ship_slowly else 20))
    with_run({"experiments": [{"name": "a", "command": ["./slowsave.sh"]}, {"name": "b", "command": ["./b.sh"]}],
              "checkpoint": {"path": "ck", "interval": "1h"}, "spot": {"grace_seconds": 40}}, body)


def test_spot_stop_while_stopping_then_back_resumes():
    _spot_stop_then_back("STOPPING", ship_slowly=False)


def test_spot_stop_while_shipping_then_back_resumes():
    _spot_stop_then_back("SHIP", ship_slowly=True)


def test_sigterm_ships_checkpoint_logs_outputs_and_a_final_status():
    def body(r):
        r.start()
        _wait(lambda: os.path.exists(os.path.join(r.work, "outputs", "partial.txt")), 30, "the experiment")
        time.sleep(1)
        r.proc.send_signal(signal.SIGTERM)  # a shutdown, a scale-in, systemctl stop
        o, e = r.proc.communicate(timeout=60)
        err = e.decode(errors="replace")
        check(r.proc.returncode == 0, "exit %d: %s" % (r.proc.returncode, err))
        st = r.status()
        check(st["outcome"] == "interrupted" and st["reason"] == "agent-stopped", json.dumps(st))
        check(st["experiments"][0]["reason"] == "agent-stopped", json.dumps(st["experiments"][0]))
        pre = "results/t/%s/" % st["run_id"]
        check(r.get(pre + "checkpoint/a/ckpt.txt") == b"step 7\n", "the checkpoint of the SIGTERM handler")
        log = r.get(pre + "logs/a/stdout.log")
        check(log.endswith(b"my last words\n"), "the full log with its last words: %r" % log[-200:])
        check(r.get(pre + "outputs/outputs/partial.txt") == b"partial result\n", "the outputs so far")
        check("metrics.jsonl" in "".join(r.keys()), "metrics")
        check(r.instance_state() == "running", "the agent ended the instance on SIGTERM")
        # the next start resumes the run
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        check(r.runs_txt() == ["a attempt=1 resume=0", "a attempt=2 resume=1", "b"], repr(r.runs_txt()))
        st = r.status()
        check(st["outcome"] == "succeeded" and st["run_id"] in pre, json.dumps(st))
        check(b"resumed from step 7" in r.get(pre + "logs/a/stdout.log"), "not resumed from the checkpoint")
    SCRIPTS["b.sh"] = "#!/bin/sh\necho b >> runs.txt\n"
    with_run({"experiments": [{"name": "a", "command": ["./lastwords.sh"]}, {"name": "b", "command": ["./b.sh"]}],
              "outputs": ["outputs/*"], "checkpoint": {"path": "ck", "interval": "1h"}, "stop_grace": 5}, body)


def test_kill9_during_ship_then_the_restart_finishes_it():
    def body(r):
        # every part of the checkpoint's upload is slow: SHIP is under way for a while
        r.cloud.faults([{"method": "PUT", "path_contains": "/checkpoint/", "delay": 3, "count": -1}])
        r.start()
        _wait(lambda: _phase(r) == "SHIP", 60, "SHIP")
        time.sleep(2)
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        st = r.status()
        pre = "results/t/%s/" % st["run_id"]
        check(pre + "checkpoint/big/model.bin" not in r.keys(), "the checkpoint was complete before the kill")
        r.cloud.faults_done()
        rc = r.run(timeout=180)
        check(rc == 0, r.stderr)
        check("resuming run" in r.stderr and "at phase SHIP" in r.stderr, r.stderr)
        s3 = r.cloud.boto("s3")
        head = s3.head_object(Bucket=BUCKET, Key=pre + "checkpoint/big/model.bin")
        check(head["ContentLength"] == 64 << 20, "checkpoint %d bytes" % head["ContentLength"])
        with open(os.path.join(r.work, "ck", "big", "model.bin"), "rb") as f:
            local = hashlib.md5(f.read()).hexdigest()
        got = hashlib.md5(r.get(pre + "checkpoint/big/model.bin")).hexdigest()
        check(got == local, "the checkpoint in S3 differs from the one on disk")
        check(pre + "metrics.jsonl" in r.keys(), "metrics.jsonl")
        check(r.status()["outcome"] == "succeeded", json.dumps(r.status()))
        check(r.instance_state() in ("shutting-down", "terminated"), "no exit action: " + r.instance_state())
    with_run({"experiments": [{"name": "big", "command": ["./bigckpt.sh"]}],
              "checkpoint": {"path": "ck", "interval": "1h"}}, body)


def test_s3_unreachable_for_the_final_ship_stops_then_ships_and_terminates():
    def body(r):
        r.start()
        _wait(lambda: "long resume=0" in r.runs_txt(), 30, "the experiment")
        # from now on S3 is gone (connections reset), EC2 still answers
        r.cloud.faults([{"service": "s3", "reset": True, "count": -1}])
        o, e = r.proc.communicate(timeout=180)
        err = e.decode(errors="replace")
        check(r.proc.returncode == 6, "exit %d: %s" % (r.proc.returncode, err))
        check("stopped rather than terminate" in err, err)
        check(r.instance_state() in ("stopping", "stopped"), "instance %s" % r.instance_state())
        check(os.path.getsize(os.path.join(r.dir, "logs", "long", "stdout.log")) > 0, "logs not kept on disk")
        # the instance is started again: S3 is back
        r.cloud.faults_done()
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        st = r.status()
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        keys = r.keys()
        pre = "results/t/%s/" % st["run_id"]
        for k in ("logs/long/stdout.log", "outputs/outputs/long.txt", "logs/agent.log"):
            check(pre + k in keys, "missing %s: %r" % (k, keys))
        check(r.get(pre + "logs/long/stdout.log") == b"finished\n", "log")
        check(r.instance_state() in ("shutting-down", "terminated"), r.instance_state())
    SCRIPTS["long.sh"] = SCRIPTS["long.sh"].replace("echo finished", "echo finished; mkdir -p outputs; "
                                                    "echo done > outputs/$MAYFLY_EXPERIMENT.txt")
    with_run({"experiments": [{"name": "long", "command": ["./long.sh", "3"]}], "outputs": ["outputs/*"]}, body,
             env={"AWS_MAX_ATTEMPTS": "2"})


def test_each_experiment_has_its_own_checkpoint_directory():
    def body(r):
        rc = r.run()
        check(rc == 0, r.stderr)
        da = open(os.path.join(r.work, "dir-a.txt")).read().strip()
        db = open(os.path.join(r.work, "dir-b.txt")).read().strip()
        check(da == os.path.join(r.work, "ck", "a") and db == os.path.join(r.work, "ck", "b"), (da, db))
        check(open(os.path.join(r.work, "seen-b.txt")).read() == "", "b saw a's checkpoint")
        pre = "results/t/%s/" % r.status()["run_id"]
        check(r.get(pre + "checkpoint/a/mine.txt") == b"a\n" and r.get(pre + "checkpoint/b/mine.txt") == b"b\n",
              repr(r.keys()))
    with_run({"experiments": [{"name": "a", "command": ["./seeckpt.sh"]}, {"name": "b", "command": ["./seeckpt.sh"]}],
              "checkpoint": {"path": "ck", "interval": "1h"}}, body)


def test_state_from_another_instance_is_ignored():
    def body(r):
        os.makedirs(os.path.join(r.dir, "state"), exist_ok=True)
        with open(r.job_path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        baked = {"job_sha256": sha, "run_id": "i-0baked000000000-20260101T000000Z", "instance_id": "i-0baked000000000",
                 "started": 1767225600, "phase": "DONE", "end": "finished", "outcome": "succeeded",
                 "exit_done": True, "experiments": [{"status": "done", "exit_code": 0, "reason": "exit"}]}
        with open(os.path.join(r.dir, "state", "state.json"), "w") as f:
            json.dump(baked, f)
        rc = r.run()
        check(rc == 0, r.stderr)
        check("state.json was written on instance i-0baked000000000, and this is %s: ignored, a new run starts"
              % r.cloud.info["instance_id"] in r.stderr, r.stderr)
        check(r.runs_txt() == ["a resume=0 user=" + RUN_USER], "the experiment did not run: %r" % r.runs_txt())
        st = r.status()
        check(st["run_id"].startswith(r.cloud.info["instance_id"]), st["run_id"])
    SCRIPTS["ok1.sh"] = "#!/bin/sh\necho \"$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0} user=$(id -un)\" >> runs.txt\n"
    with_run({"experiments": [{"name": "a", "command": ["./ok1.sh"]}]}, body)


def test_ten_experiments_each_live_log_reaches_s3_while_it_runs():
    names = ["e%d" % i for i in range(10)]

    def body(r):
        r.start()
        seen_live = set()
        deadline = time.time() + 150
        while time.time() < deadline and r.proc.poll() is None:
            runs = r.runs_txt()
            if runs:
                running = runs[-1]
                if any("/live/%s/stdout." % running in k for k in r.keys()):
                    seen_live.add(running)
            time.sleep(0.3)
        r.proc.communicate(timeout=60)
        check(r.proc.returncode == 0, "exit %d" % r.proc.returncode)
        check(seen_live == set(names), "no live log while running for %s" % sorted(set(names) - seen_live))
    with_run({"experiments": [{"name": n, "command": ["./chatty.sh", "4"]} for n in names], "log_interval": 1}, body)


def test_clock_stepped_back_keeps_shipping_and_spot_polling():
    if os.environ.get("MAYFLY_SANITIZED"):
        raise Skip("libfaketime's LD_PRELOAD cannot come before the ASan runtime (make test covers it)")
    lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    if not os.path.exists(lib):
        raise AssertionError("libfaketime not installed (tests/deps.sh test installs faketime)")

    def body(r):
        stamp = os.path.join(r.dir, "faketime")
        with open(stamp, "w") as f:
            f.write("+0\n")
        r.env.update(LD_PRELOAD=lib, FAKETIME_TIMESTAMP_FILE=stamp, FAKETIME_NO_CACHE="1",
                     FAKETIME_DONT_FAKE_MONOTONIC="1")
        r.start()
        _wait(lambda: any("/live/tick/stdout." in k for k in r.keys()), 30, "the first live chunk")
        with open(stamp, "w") as f:
            f.write("-10m\n")  # the wall clock steps back 10 minutes
        stepped = time.time()
        time.sleep(1)
        n0 = len([k for k in r.keys() if "/live/tick/stdout." in k])
        time.sleep(8)
        n1 = len([k for k in r.keys() if "/live/tick/stdout." in k])
        check(n1 >= n0 + 2, "live chunks after the step: %d then %d in 8 s (log_interval 2)" % (n0, n1))
        r.cloud.control("POST", "/spot", {"in": 60})
        sent = time.time()
        at = os.path.join(r.work, "sigterm_at")
        _wait(lambda: os.path.exists(at), 15, "SIGTERM after the spot notice")
        check(time.time() - sent < 12, "the notice reached the experiment %.1f s later" % (time.time() - sent))
        check(time.time() - stepped < 40, "test too slow")
        r.proc.send_signal(signal.SIGTERM)
        r.proc.communicate(timeout=60)
    with_run({"experiments": [{"name": "tick", "command": ["./ticktrap.sh"]}], "log_interval": 2,
              "spot": {"grace_seconds": 5}}, body)


def _notify_listener(r, watchdog_s):
    """A NOTIFY_SOCKET standing in for systemd (WATCHDOG_USEC set): a thread collects (time, message)."""
    import socket
    import threading
    path = os.path.join(r.dir, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    r.env.update(NOTIFY_SOCKET=path, WATCHDOG_USEC=str(int(watchdog_s * 1e6)))
    got, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                got.append((time.monotonic(), s.recv(4096).decode()))
            except socket.timeout:
                pass
        s.close()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return got, lambda: (stop.set(), t.join())


def test_watchdog_fed_through_an_s3_stall_at_commit_and_the_enders_teardown():
    """A run with a run_id and a group of others that do not leave at once: S3 holds the done record's PUT for 45 s
    as the experiment ends, then the ender waits out its teardown (~30 s) for the others to leave. From READY=1 to
    the exit, WATCHDOG=1 is never more than 3/4 of WATCHDOG_USEC apart (the agent pings at 1/2)."""
    wd = 20.0
    def body(r):
        got, stop = _notify_listener(r, wd)
        c = r.cloud
        name = "mayfly-wd-1"
        c.boto("ec2").create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
            "ImageId": c.info["ami_id"], "InstanceType": "p3.2xlarge"})
        asg = c.boto("autoscaling")
        asg.create_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=2, DesiredCapacity=2,
                                      AvailabilityZones=[c.info["region"] + "a"], LaunchTemplate={"LaunchTemplateName": name})
        others = [i["InstanceId"] for i in asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"]]
        check(len(others) == 2, "moto started %r" % others)
        c.faults([{"method": "PUT", "path_contains": "/ledger/done/", "delay": 45, "count": 1}])
        t0 = time.monotonic()
        r.start()
        log = os.path.join(r.dir, "logs", "agent.log")
        _wait(lambda: os.path.exists(log) and "other instance(s) of " + name in open(log).read(), 180,
              "the ender's wait for the others")
        c.faults_done()
        time.sleep(30)  # the teardown waits: 1.5 watchdog intervals
        asg.detach_instances(InstanceIds=others, AutoScalingGroupName=name, ShouldDecrementDesiredCapacity=True)
        o, e = r.proc.communicate(timeout=180)
        t_exit = time.monotonic()
        stop()
        err = e.decode(errors="replace")
        check(r.proc.returncode == 0, "exit %d: %s" % (r.proc.returncode, err[-2000:]))
        st = r.status()
        check(st["outcome"] == "succeeded", json.dumps(st)[:1000])
        check(not asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"],
              "the group was not deleted")
        ready = [t for t, m in got if "READY=1" in m]
        pings = [t for t, m in got if "WATCHDOG=1" in m and t >= (ready or [t0])[0]]
        check(ready, "no READY=1: %r" % got[:5])
        marks = [ready[0]] + pings + [t_exit]
        gaps = [b - a for a, b in zip(marks, marks[1:])]
        check(t_exit - t0 > 60, "the run took only %.0f s: the stall or the teardown did not happen" % (t_exit - t0))
        check(max(gaps) <= 0.75 * wd, "WATCHDOG=1 %.1f s apart (at most %.1f): pings at %r" % (
            max(gaps), 0.75 * wd, [round(t - marks[0], 1) for t in marks]))
    with_run({"run_id": "wd-1", "lease_ttl": 6, "stop_grace": 2,
              "fleet": {"group": "mayfly-wd-1", "launch_template": "mayfly-wd-1", "size": 3},
              "experiments": [{"name": "a", "command": ["./long.sh", "2"]}]}, body)
