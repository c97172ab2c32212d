# SPDX-License-Identifier: Apache-2.0
"""`make test-vm`: mayfly on a simulated EC2 instance, one boot per scenario (see tests/vm/README.md)."""
import calendar
import glob
import json
import os
import time

import harness
from harness import Skip, check
import vmlib
from scenario import BUCKET, Scenario, log

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MAYFLY_BUILD", os.path.join(ROOT, "build"))

with open(os.path.join(ROOT, "examples", "experiment", "train.py")) as _f:
    TRAIN = _f.read()

SCRIPTS = {
    "train.py": TRAIN,
    # ignores SIGTERM and runs forever
    "stubborn.sh": """#!/bin/bash
echo "stubborn started as $(id -un)"
trap 'echo "ignoring SIGTERM"' TERM
while true; do sleep 0.5; done
""",
    # checkpoints on SIGTERM (the spot notice)
    "spot.sh": """#!/bin/bash
trap 'echo "got SIGTERM, checkpointing"; mkdir -p "$MAYFLY_CHECKPOINT_DIR"; echo saved > "$MAYFLY_CHECKPOINT_DIR/ckpt.txt"; exit 143' TERM
echo "spot started"
while true; do sleep 0.2; done
""",
    # first attempt: kills the agent (kill -9), as a crash would; the resumed attempt finishes
    "crash.sh": """#!/bin/bash
mkdir -p outputs
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> outputs/runs.txt
if [ "${MAYFLY_RESUME:-0}" != 1 ]; then
  sleep 2
  echo "killing the agent: $(pidof mayfly)"
  kill -9 $(pidof mayfly)
  sleep 120
  echo "still alive after the agent died" >&2
  exit 1
fi
echo "resumed, finishing"
""",
    # first attempt: freezes the agent (SIGSTOP), as a hang would; then both attempts outlive max_runtime
    "freeze.sh": """#!/bin/sh
mkdir -p outputs
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> outputs/runs.txt
if [ "${MAYFLY_RESUME:-0}" != 1 ]; then
  logger -t mayfly-test "freezing the agent: $(pidof mayfly)"
  kill -STOP $(pidof mayfly)
fi
while true; do sleep 1; done
""",
    # stops the agent for good, as an admin would: a clean stop is no failure (no restart, no failsafe), and the
    # agent, told to stop, leaves the instance alone (a stop may be a reboot; the run resumes after it)
    "sabotage.sh": """#!/bin/sh
logger -t mayfly-test "sabotage: systemctl stop mayfly.service"
systemctl stop --no-block mayfly.service
sleep 600
""",
    # every attempt kills the agent (kill -9): a crash loop, until systemd gives up (StartLimitBurst=5)
    "crashloop.sh": """#!/bin/sh
logger -t mayfly-test "crash loop: killing the agent $(pidof mayfly) (resume=${MAYFLY_RESUME:-0})"
kill -9 $(pidof mayfly)
sleep 600
""",
    "mark.sh": """#!/bin/sh
mkdir -p outputs
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> outputs/runs.txt
""",
}

# counts to $1 (0.3 s a step), saving the step in its checkpoint; resumed, it goes on from the saved step for 10
# more and ends
COUNT = """#!/bin/bash
ck="$MAYFLY_CHECKPOINT_DIR/step"
step=0
end="$1"
if [ "${MAYFLY_RESUME:-0}" = 1 ] && [ -f "$ck" ]; then step=$(cat "$ck"); end=$((step + 10)); fi
echo "attempt ${MAYFLY_ATTEMPT:-?} from step $step resume=${MAYFLY_RESUME:-0} on ${MAYFLY_INSTANCE_ID:-?}"
trap 'echo "SIGTERM at step $step"; exit 143' TERM
while [ "$step" -lt "$end" ]; do
  step=$((step + 1)); echo "$step" > "$ck.tmp" && mv -f "$ck.tmp" "$ck"
  sleep 0.3 & wait $!
done
mkdir -p outputs && echo "counted to $step" > outputs/count.txt
"""

TWO_EXPERIMENTS = {
    "experiments": [{"name": "baseline", "command": ["python3", "train.py", "5"], "timeout": "10m"},
                    {"name": "wider", "command": "python3 train.py 8 && echo wider finished as $(id -un)",
                     "timeout": "10m"}],
    "outputs": ["outputs/*"],
    "checkpoint": {"path": "checkpoints", "interval": "1m"},
    "max_runtime": "30m",
}


def _build(*parts):
    return os.path.join(BUILD, *parts)


def run_batch(name, artifact, route, sandbox=False):
    """sandbox: two more experiments check the experiment's sandbox under real systemd (SANDBOX, below)."""
    job, files = TWO_EXPERIMENTS, SCRIPTS
    if sandbox:
        job = dict(TWO_EXPERIMENTS, outputs=TWO_EXPERIMENTS["outputs"] + ["outputs/sandbox.txt"],
                   experiments=TWO_EXPERIMENTS["experiments"] + [{"name": "escape", "command": ["./escape.sh"]},
                                                                 {"name": "check", "command": ["./check.sh"]}])
        files = dict(SCRIPTS, **SANDBOX)
    with Scenario(name, job, files, artifact, route=route) as s:
        s.boot()
        ended = s.finish()
        st = s.status()
        check(st is not None, "no status.json in S3")
        check(st["outcome"] == "succeeded", "outcome %s %s" % (st["outcome"], st.get("error", "")))
        check([e["exit_code"] for e in st["experiments"]] == [0] * len(job["experiments"]), repr(st["experiments"]))
        check(st["instance"]["id"] == s.cloud.info["instance_id"], repr(st["instance"]))
        check(st["exit_action"] == "terminate", repr(st.get("exit_action")))
        pre = s.prefix()
        keys = s.keys()
        # `mayfly launch` (the static route) gives the run a run id that any instance running the job shares: each
        # instance ships its own agent log then; `mayfly userdata` alone leaves a run of this instance
        agent_log = "logs/agent-%s.log" % s.cloud.info["instance_id"] if route == "static" else "logs/agent.log"
        for k in ("status.json", agent_log, "logs/baseline/stdout.log", "logs/wider/stdout.log",
                  "outputs/outputs/baseline-model.txt", "outputs/outputs/wider-model.txt",
                  "checkpoint/baseline/baseline.json", "checkpoint/wider/wider.json"):
            check(pre + k in keys, "missing %s in S3: %r" % (k, keys))
        out = s.get(pre + "logs/wider/stdout.log").decode(errors="replace")
        check("wider finished as mayfly" in out, "wider's log: %r" % out[-300:])
        check(s.get(pre + "outputs/outputs/wider-model.txt").startswith(b"experiment wider final loss"),
              "wider's output")
        if sandbox:
            got = s.get(pre + "outputs/outputs/sandbox.txt").decode(errors="replace").splitlines()
            check(got == ["escapee.pid gone", "escapee2.pid gone", "imds closed", "mayfly", "mayfly"], repr(got))
            log = s.get(pre + agent_log).decode(errors="replace")
            check("IMDS (169.254.169.254, fd00:ec2::254) is closed to the run user mayfly" in log, log[-2000:])
        check(s.instance_state() == "terminated", "instance is %s in moto" % s.instance_state())
        check(ended == "terminated", "the guest %s instead of going down after TerminateInstances" % ended)


# Scenarios other than the install routes set the workdir, so that they test their own layer whatever the default
# workdir does (see test_binary).
WORKDIR = "/srv/mayfly-work"


def _missing(path, how):
    """A package the scenario needs was not built: a skip locally, a failure under MAYFLY_VM_STRICT=1 (CI builds
    both first, so a skip there would hide a broken install route)."""
    msg = "no %s (%s builds it)" % (path, how)
    if os.environ.get("MAYFLY_VM_STRICT") == "1":
        raise AssertionError(msg)
    raise Skip(msg)


def test_binary():
    """The dynamic build/mayfly (the guest has the runtime libraries), default workdir, with the user-data that
    `mayfly launch --install static=build/mayfly` gives: the binary uploaded next to the job's sources, fetched by the
    guest's install script from S3 with the instance role (curl --aws-sigv4), its sha256 pinned. And the experiment's
    sandbox under real systemd: the default run user `mayfly` (no supplementary group), IMDS closed to it by the
    nftables rule while the agent's own IMDS calls go on, both escapees of an experiment (setsid + fork, one with its
    environment cleared) gone before the next one starts."""
    run_batch("binary", _build("mayfly"), "static", sandbox=True)


def test_deb():
    """build/packages/mayfly_*_amd64.deb by the deb route (`make deb` builds it; this harness does not)."""
    debs = sorted(glob.glob(_build("packages", "mayfly_*_amd64.deb")))
    if not debs:
        _missing(_build("packages", "mayfly_*_amd64.deb"), "make deb")
    run_batch("deb", debs[-1], "deb")


def test_static():
    """build/static/mayfly (musl, fully static) by the binary route from an HTTP URL (`make static` builds it)."""
    path = _build("static", "mayfly")
    if not os.path.exists(path):
        _missing(path, "make static")
    run_batch("static", path, "binary")


def test_spot():
    """A spot notice mid-experiment: SIGTERM, checkpoint and status `interrupted` in S3 before the notice's time;
    the agent leaves the instance to EC2, which then reclaims it."""
    job = {"experiments": [{"name": "spot", "command": ["./spot.sh"]}], "workdir": WORKDIR,
           "checkpoint": {"path": "ckpt", "interval": 600}}
    with Scenario("spot", job, SCRIPTS, _build("mayfly")) as s:
        s.boot()
        # its first line in S3 (live log) means the script has set its trap
        s.wait_status(lambda st: any(k.startswith("results/spot/%s/live/spot/stdout." % st["run_id"])
                                     for k in s.keys()), 300, "the experiment's first log line in S3")
        s.cloud.control("POST", "/spot", {"in": 100})
        notice_time = time.time() + 100
        log("spot notice at %.0fs, for %.0fs" % (s.t(), s.t() + 100))
        want = ("checkpoint/spot/ckpt.txt", "logs/spot/stdout.log", "logs/agent.log")
        st = s.wait_status(lambda st: st["outcome"] == "interrupted" and
                           all("results/spot/%s/%s" % (st["run_id"], k) in s.keys() for k in want),
                           max(1, notice_time - time.time()), "status interrupted, checkpoint and logs in S3")
        seen = time.time()
        pre = s.prefix()
        log("interrupted status, checkpoint and logs in S3 %.0fs before the notice's time" % (notice_time - seen))
        check(seen < notice_time, "shipped only after the notice's time")
        check(s.get(pre + "checkpoint/spot/ckpt.txt") == b"saved\n", "wrong checkpoint")
        check(b"got SIGTERM" in s.get(pre + "logs/spot/stdout.log"), "the experiment did not get SIGTERM")
        check(st["experiments"][0]["reason"] == "interrupted" and st["interruption"]["action"] == "terminate",
              repr(st))
        time.sleep(5)
        check(s.instance_state() == "running", "the agent ended the instance itself: %s" % s.instance_state())
        check(s.guest.running(), "the guest went down by itself after the notice")
        s.terminate_as_ec2()
        ended = s.finish()
        check(ended == "terminated", "the guest %s when EC2 reclaimed it" % ended)


def test_spot_then_a_second_instance_resumes_the_run():
    """A run with a run id (what `mayfly launch` writes): a spot notice on the first guest during the first
    experiment, which checkpoints its step; EC2 reclaims it. A second boot from the same user-data as a new instance
    (new instance id in IMDS, fresh disk, cloud-init's per-instance run again) picks the run up from the ledger in
    S3: the first experiment again from its step with MAYFLY_RESUME=1 and MAYFLY_ATTEMPT=2, then the second; the run
    ends succeeded under one prefix and the second instance terminates."""
    run_id = "vmrun-%d" % int(time.time())
    job = {"experiments": [{"name": "count", "command": ["./count.sh", "400"]},
                           {"name": "after", "command": ["./mark.sh"]}],
           "run_id": run_id, "lease_ttl": 10, "workdir": WORKDIR, "outputs": ["outputs/*"],
           "checkpoint": {"path": "ckpt", "interval": 600}}
    with Scenario("resume", job, dict(SCRIPTS, **{"count.sh": COUNT}), _build("mayfly")) as s:
        pre = "results/resume/%s/" % run_id
        first = s.cloud.info["instance_id"]
        s.boot()
        s.wait_status(lambda st: any(k.startswith(pre + "live/count/stdout.") for k in s.keys(pre)), 300,
                      "the first experiment's first log line in S3")
        time.sleep(3)
        s.cloud.control("POST", "/spot", {"in": 100})
        log("spot notice at %.0fs" % s.t())
        # shipped and given back: its checkpoint and log in S3, its lease gone
        deadline = time.time() + 95
        while time.time() < deadline:
            keys = s.keys(pre)
            if pre + "checkpoint/count/step" in keys and pre + "logs/count/stdout.log" in keys and \
                    pre + "ledger/lease/count.json" not in keys:
                break
            time.sleep(1)
        else:
            raise AssertionError("no checkpoint, log and released lease in S3 before the notice's time: %r" % keys)
        step = int(s.get(pre + "checkpoint/count/step"))
        check(step > 0, "checkpointed step %d" % step)
        s.terminate_as_ec2()
        check(s.finish() == "terminated", "the first guest did not go down when EC2 reclaimed it")
        # the replacement: a new instance from the same user-data
        second = s.cloud.control("POST", "/instance/replace", {})["instance_id"]
        s.cloud.info["instance_id"] = second
        log("second boot as %s (the first was %s)" % (second, first))
        s.boot()
        ended = s.finish()
        st = s.status()
        check(st and st["run_id"] == run_id and st["outcome"] == "succeeded", repr(st and
                                                                                  (st["run_id"], st["outcome"])))
        e = {x["name"]: x for x in st["experiments"]}
        check(e["count"]["attempts"] == 2 and e["count"]["instances"] == [first, second], repr(e["count"]))
        check(e["after"]["attempts"] == 1 and e["after"]["instances"] == [second], repr(e["after"]))
        out = s.get(pre + "logs/count/stdout.log").decode(errors="replace")
        check("attempt 1 from step 0" in out and "attempt 2 from step %d resume=1" % step in out,
              "the log of count: %r" % out[-600:])
        check(len([k for k in s.keys("results/resume/") if k.endswith("/status.json")]) == 1, "more than one run")
        check(s.instance_state() == "terminated" and ended == "terminated", "second instance %s, guest %s" %
              (s.instance_state(), ended))


def test_agent_crash():
    """The experiment kill -9s the agent: systemd restarts it, the run resumes without refetching or re-running
    finished experiments, the killed experiment runs again with MAYFLY_RESUME=1, then the instance ends."""
    job = {"experiments": [{"name": "first", "command": ["./mark.sh"]}, {"name": "crash", "command": ["./crash.sh"]},
                           {"name": "last", "command": ["./mark.sh"]}],
           "user": "root", "workdir": WORKDIR, "outputs": ["outputs/runs.txt"]}
    with Scenario("crash", job, SCRIPTS, _build("mayfly")) as s:
        s.boot()
        ended = s.finish()
        st = s.status()
        check(st and st["outcome"] == "succeeded", "outcome %s %s" % (st and st["outcome"], st and st.get("error", "")))
        check([e["attempts"] for e in st["experiments"]] == [1, 2, 1],
              "attempts %r" % [e["attempts"] for e in st["experiments"]])
        runs = s.get(s.prefix() + "outputs/outputs/runs.txt").decode().splitlines()
        check(runs == ["first resume=0", "crash resume=0", "crash resume=1", "last resume=0"], "runs.txt %r" % runs)
        j = "\n".join(s.guest.journal_lines())
        check("mayfly.service: Main process exited, code=killed, status=9/KILL" in j, "no kill -9 in the journal")
        check(j.count("fetching s3://") == 1, "the source was fetched %d times" % j.count("fetching s3://"))
        check("resuming run" in j, "no 'resuming run' from the restarted agent")
        check(s.instance_state() == "terminated", "instance is %s in moto" % s.instance_state())
        check(ended == "terminated", "the guest %s" % ended)


def test_hung_job():
    """An experiment that ignores SIGTERM and would run forever: max_runtime -> SIGTERM -> stop_grace -> SIGKILL,
    outcome timeout, TerminateInstances, the guest goes down, all on time."""
    max_runtime, grace = 30, 5
    job = {"experiments": [{"name": "stubborn", "command": ["./stubborn.sh"]}, {"name": "never", "command": ["./mark.sh"]}],
           "workdir": WORKDIR, "max_runtime": max_runtime, "stop_grace": grace}
    with Scenario("hung", job, SCRIPTS, _build("mayfly")) as s:
        s.boot()
        st = s.wait_status(lambda st: st["experiments"][0]["status"] == "running", 300, "experiment running")
        started = calendar.timegm(time.strptime(st["started"], "%Y-%m-%dT%H:%M:%SZ"))
        ended = s.finish()
        check("terminated" in s.events, "the instance was never terminated (the guest %s)" % ended)
        gone = s.guest.t0 + s.events["terminated"]
        log("run started -> TerminateInstances seen: %.0fs (max_runtime %ds, stop_grace %ds)"
            % (gone - started, max_runtime, grace))
        st = s.status()
        check(st["outcome"] == "timeout", "outcome %s" % st["outcome"])
        e = st["experiments"]
        check(e[0]["reason"] == "max-runtime" and e[0]["signal"] == 9, "not SIGKILLed at max_runtime: %r" % e[0])
        check(e[1]["status"] == "skipped", repr(e[1]))
        check(b"ignoring SIGTERM" in s.get(s.prefix() + "logs/stubborn/stdout.log"), "no SIGTERM first")
        check(gone - started <= max_runtime + grace + 30, "terminated %.0fs after the start" % (gone - started))
        j = "\n".join(s.guest.journal_lines())
        check("Started mayfly-backstop.timer" in j, "the backstop timer was not armed")
        check(s.instance_state() == "terminated", "instance is %s in moto" % s.instance_state())
        check(ended == "terminated", "the guest %s" % ended)


def test_poweroff_fallback():
    """TerminateInstances denied to the role: mayfly falls back to power-off and the guest really powers off
    (qemu exits by itself); the instance stays `running` in moto (real EC2 would apply
    InstanceInitiatedShutdownBehavior)."""
    job = {"experiments": [{"name": "only", "command": ["./mark.sh"]}], "workdir": WORKDIR}
    with Scenario("poweroff", job, SCRIPTS, _build("mayfly"), cloud_args={"deny_terminate": True}) as s:
        s.boot()
        ended = s.finish()
        st = s.status()
        check(st and st["outcome"] == "succeeded", "outcome %s %s" % (st and st["outcome"], st and st.get("error", "")))
        j = "\n".join(s.guest.journal_lines())
        check("UnauthorizedOperation" in j and "falling back to power-off" in j, "no power-off fallback in the journal")
        check(ended == "powered-off", "the guest %s instead of powering itself off" % ended)
        check(s.instance_state() == "running", "instance is %s in moto" % s.instance_state())


def test_agent_hang():
    """The agent hangs (the experiment, as root, SIGSTOPs it): systemd's watchdog (WatchdogSec=120) kills it, the
    restarted agent resumes, finds max_runtime spent and ends the run (outcome timeout) and the instance."""
    job = {"experiments": [{"name": "freeze", "command": ["./freeze.sh"]}, {"name": "never", "command": ["./mark.sh"]}],
           "user": "root", "workdir": WORKDIR, "max_runtime": 60, "outputs": ["outputs/runs.txt"]}
    with Scenario("hang", job, SCRIPTS, _build("mayfly"), timeout=540) as s:
        s.boot()
        ended = s.finish()
        j = "\n".join(s.guest.journal_lines())
        frozen = vmlib.since_boot(s.guest, r"mayfly-test.*freezing the agent")
        barked = vmlib.since_boot(s.guest, r"mayfly\.service: Watchdog timeout")
        check(frozen is not None, "the experiment never froze the agent")
        check(barked is not None, "no watchdog timeout for the frozen agent in the journal")
        log("agent frozen at %.0fs, watchdog at %.0fs (guest clock)" % (frozen, barked))
        check(barked - frozen <= 125, "the watchdog took %.0fs (WatchdogSec=120)" % (barked - frozen))
        check("resuming run" in j, "no 'resuming run' from the restarted agent")
        st = s.status()
        check(st and st["outcome"] == "timeout", "outcome %s %s" % (st and st["outcome"], st and st.get("error", "")))
        check(st["experiments"][1]["status"] == "skipped", repr(st["experiments"]))
        check(s.instance_state() == "terminated", "instance is %s in moto" % s.instance_state())
        check(ended == "terminated", "the guest %s" % ended)


def test_backstop():
    """The agent stopped for good mid-run (systemctl stop: no restart, no failsafe, no exit action): the backstop
    timer (boot + max_runtime + --backstop-margin) powers the guest off by itself, on time."""
    max_runtime, margin = 20, 120
    deadline = max_runtime + margin
    job = {"experiments": [{"name": "sabotage", "command": ["./sabotage.sh"]}], "user": "root", "workdir": WORKDIR,
           "max_runtime": max_runtime}
    with Scenario("backstop", job, SCRIPTS, _build("mayfly"), userdata_args=("--backstop-margin", str(margin))) as s:
        s.boot()
        ended = s.finish()
        sabotaged = vmlib.since_boot(s.guest, r"mayfly\[\d+\]: stopped; the run resumes")
        fired = vmlib.since_boot(s.guest, r"Start(ing|ed) mayfly-backstop\.service")
        check(sabotaged is not None, "the agent never stopped")
        check(fired is not None, "the backstop never fired")
        log("agent stopped at %.0fs, backstop at %.0fs, deadline %ds (guest clock)" % (sabotaged, fired, deadline))
        check(sabotaged < fired, "the backstop fired at %.0fs, before the agent stopped (%.0fs)" % (fired, sabotaged))
        # AccuracySec=1min: the timer may fire up to a minute after its deadline
        check(deadline <= fired <= deadline + 65, "the backstop fired at %.0fs, deadline %ds" % (fired, deadline))
        check(ended == "powered-off", "the guest %s instead of powering itself off" % ended)
        check(s.instance_state() == "running", "instance is %s in moto: something of mayfly's still acted"
              % s.instance_state())
        st = s.status()
        # systemctl stop is a SIGTERM: the agent stopped the experiment and shipped (interrupted, agent-stopped),
        # but did no exit action: that is the backstop's
        check(st and st["outcome"] == "interrupted" and st.get("reason") == "agent-stopped",
              "outcome %s: the agent finished after all" % (st and st["outcome"]))


def test_failsafe():
    """The agent crashes on every start (the experiment kill -9s it): after five starts systemd gives up,
    OnFailure= runs mayfly-failsafe.service, which ships the logs and an `error` status and terminates."""
    job = {"experiments": [{"name": "crashloop", "command": ["./crashloop.sh"]}], "user": "root", "workdir": WORKDIR}
    with Scenario("failsafe", job, SCRIPTS, _build("mayfly")) as s:
        s.boot()
        ended = s.finish()
        j = "\n".join(s.guest.journal_lines())
        kills = j.count("crash loop: killing the agent")
        gave_up = vmlib.since_boot(s.guest, r"mayfly\.service: Start request repeated too quickly")
        failsafe = vmlib.since_boot(s.guest, r"failsafe: the agent failed repeatedly")
        check(kills == 5, "the agent was killed %d times (StartLimitBurst=5)" % kills)
        check(gave_up is not None, "systemd never gave up restarting the agent")
        check(failsafe is not None and failsafe >= gave_up, "the failsafe did not run after systemd gave up")
        log("5 crashes, systemd gave up at %.0fs, failsafe at %.0fs (guest clock)" % (gave_up, failsafe))
        st = s.status()
        check(st and st["outcome"] == "error" and "systemd gave up" in st.get("error", ""), repr(st))
        check(s.prefix() + "logs/agent.log" in s.keys(), "the failsafe did not ship the agent's log")
        check(s.instance_state() == "terminated", "instance is %s in moto" % s.instance_state())
        check(ended == "terminated", "the guest %s" % ended)


SANDBOX = {
    # as the default run user: IMDS (its real address, 169.254.169.254) is closed to it; two escapees, one that keeps
    # the environment (the marker sweep sees it) and one that clears it (only the cgroup sweep sees it)
    "escape.sh": """#!/bin/sh
if curl -s -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token \\
   >/dev/null 2>&1; then echo "imds open"; else echo "imds closed"; fi > imds.txt
setsid sh -c 'sh -c "while true; do sleep 0.5; done" & echo $! > escapee.pid' &
setsid env -i /bin/sh -c 'echo $$ > escapee2.pid; exec sleep 600' &
sleep 2
""",
    "check.sh": """#!/bin/sh
mkdir -p outputs
for f in escapee.pid escapee2.pid; do
  if kill -0 "$(cat $f)" 2>/dev/null; then echo "$f alive"; else echo "$f gone"; fi
done > outputs/sandbox.txt
cat imds.txt >> outputs/sandbox.txt
{ id -un; id -Gn; } >> outputs/sandbox.txt
""",
}



# As the run user: where $MAYFLY_SCRATCH is, whose it is, what is mounted there, what the input staged under it holds;
# a file written on the first boot found on the second.
SCRATCH_SH = """#!/bin/sh
mkdir -p outputs
{
  echo "scratch=$MAYFLY_SCRATCH me=$(id -un) owner=$(stat -c %U:%a "$MAYFLY_SCRATCH")"
  echo "mount=$(findmnt -n -r -o TARGET,FSTYPE,SOURCE --target "$MAYFLY_SCRATCH")"
  echo "input=$MAYFLY_INPUT_DATA $(cat "$MAYFLY_INPUT_DATA/a.txt") $(stat -c %U "$MAYFLY_INPUT_DATA/a.txt")"
  if [ -f "$MAYFLY_SCRATCH/kept.txt" ]; then echo "kept=$(cat "$MAYFLY_SCRATCH/kept.txt")"; else echo "kept=none"; fi
  grep -o '^md[0-9]* : active raid0 .*' /proc/mdstat
} > outputs/scratch.txt 2>&1
[ -f "$MAYFLY_SCRATCH/kept.txt" ] || echo "written on $MAYFLY_INSTANCE_ID" > "$MAYFLY_SCRATCH/kept.txt"
"""


def test_scratch():
    """"scratch": "instance-store" on a guest with two qemu NVMe devices as its instance store
    (MAYFLY_INSTANCE_STORE_MODEL set to qemu's model, which qemu 7.2 cannot change) and a third NVMe device playing an
    EBS volume (serial vol…, its sysfs model bind-mounted to EBS's by the image): the two striped (mdadm RAID 0),
    formatted ext4 and mounted at /mnt/mayfly-scratch by `mayfly scratch` (mayfly-scratch.service); $MAYFLY_SCRATCH owned by
    the run user `mayfly` (0700) and on that mount; an input staged under it (scratch:data). A second boot of the same
    NVMe disks (a new root disk, a new instance) reassembles the array and reuses the file system: the file the first
    run wrote is there, the log says "reused". The EBS volume's bytes are the same after both boots."""
    job = {"experiments": [{"name": "scratch", "command": ["./scratch.sh"]}], "workdir": WORKDIR,
           "scratch": "instance-store", "outputs": ["outputs/*"],
           "inputs": [{"name": "data", "source": "s3://%s/data/" % BUCKET, "path": "scratch:data"}]}
    with Scenario("scratch", job, dict(SCRIPTS, **{"scratch.sh": SCRATCH_SH}), _build("mayfly"),
                  userdata_args=("--env", "MAYFLY_INSTANCE_STORE_MODEL=QEMU NVMe Ctrl")) as s:
        data = os.path.join(s.dir, "a.txt")
        with open(data, "w") as f:
            f.write("staged\n")
        s.cloud.aws("s3", "cp", data, "s3://%s/data/a.txt" % BUCKET)
        disks = []
        for name, serial, mib in (("is0", "AWS1111", 256), ("is1", "AWS2222", 256), ("ebs", "vol0ebs0001", 64)):
            path = os.path.join(s.dir, name + ".img")
            with open(path, "wb") as f:
                f.truncate(mib << 20)
            disks.append((path, serial))
        ebs = disks[2][0]
        with open(ebs, "r+b") as f:  # an EBS volume with data on it: a file system's worth of bytes
            f.write(os.urandom(1 << 20))
        ebs_sha = harness.file_sha256(ebs)

        def one_boot(n):
            s.boot(nvme=disks)
            ended = s.finish()
            j = "\n".join(s.guest.journal_lines())
            check("plays an EBS volume" in j, "the image did not make the vol… device read as EBS")
            runs = sorted(k for k in s.keys("results/scratch/") if k.endswith("/status.json"))
            check(len(runs) == n, "runs: %r" % runs)
            pre = [r for r in runs if r not in seen][0][:-len("status.json")]
            seen.append(pre + "status.json")
            st = json.loads(s.get(pre + "status.json"))
            check(st["outcome"] == "succeeded", "boot %d: outcome %s %s" % (n, st["outcome"], st.get("error", "")))
            out = s.get(pre + "outputs/outputs/scratch.txt").decode(errors="replace")
            agent = s.get(pre + "logs/agent.log").decode(errors="replace")
            line = [l for l in agent.splitlines() if "scratch: " in l]
            log("boot %d: %s" % (n, line[-1] if line else "(no scratch line in the agent's log)"))
            log("boot %d: the experiment saw: %s" % (n, out.strip().replace("\n", " | ")))
            check(ended == "terminated", "boot %d: the guest %s" % (n, ended))
            return out, agent

        seen = []
        out, agent = one_boot(1)
        want = "scratch=/mnt/mayfly-scratch/mayfly me=mayfly owner=mayfly:700"
        check(want in out, "boot 1: %r" % out)
        check("mount=/mnt/mayfly-scratch ext4 /dev/md" in out, "boot 1: not the array's ext4: %r" % out)
        check("input=/mnt/mayfly-scratch/mayfly/data staged mayfly" in out, "boot 1: the input: %r" % out)
        check("kept=none" in out and "active raid0 nvme" in out, "boot 1: %r" % out)
        check("formatted at /mnt/mayfly-scratch" in agent and "RAID 0" in agent, "boot 1: not formatted")
        check("1 NVMe device of another model (EBS) not touched" in agent, "boot 1: the EBS device: %r" % agent)
        check(harness.file_sha256(ebs) == ebs_sha, "the EBS volume's bytes changed")

        second = s.cloud.control("POST", "/instance/replace", {})["instance_id"]
        s.cloud.info["instance_id"] = second
        out, agent = one_boot(2)
        check(want in out and "mount=/mnt/mayfly-scratch ext4 /dev/md" in out, "boot 2: %r" % out)
        check("kept=written on i-" in out, "boot 2: the first boot's file is gone: %r" % out)
        check("reused at /mnt/mayfly-scratch" in agent, "boot 2: the file system was not reused")
        check(harness.file_sha256(ebs) == ebs_sha, "the EBS volume's bytes changed on the second boot")
