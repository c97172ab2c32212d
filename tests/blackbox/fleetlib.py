# SPDX-License-Identifier: Apache-2.0
"""What the fleet tests (test_fleet.py: runs that outlive their instance, test_sweep.py: sweeps) share: a simulated
cloud with the experiment archive in S3, a job, `mayfly launch` as a user runs it, and readers of what the simulated
instances' root volumes and moto hold. counter.sh counts steps, keeps the count in its checkpoint, goes on from it
when resumed and writes runs.txt in its workdir: one line when an attempt starts (attempt, resume, the step it starts
from, its instance type, the time), one when it is done and one when SIGTERM stops it. With SWEEP_LOCKS set (a
directory every instance sees) it also holds SWEEP_LOCKS/<experiment> while it runs: a second holder at the same time
writes an OVERLAP line there, whatever the instances' clocks say."""
import io
import json
import os
import re
import tarfile
import tempfile
import time

from harness import RUN_USER, Cloud, RunResults, check, mayfly, out

BUCKET = "mayfly-test"
TTL = 6  # seconds: the tests' lease_ttl (takeover after 18 s unchanged)

SCRIPTS = {
    # counts steps, keeps the count in its checkpoint, goes on from it when resumed; on SIGTERM saves and exits
    "counter.sh": """#!/bin/bash
name=$MAYFLY_EXPERIMENT
ck="$MAYFLY_CHECKPOINT_DIR/step"
step=0
if [ "${MAYFLY_RESUME:-0}" = 1 ] && [ -f "$ck" ]; then step=$(cat "$ck"); fi
if [ -n "${SWEEP_LOCKS:-}" ] && ! mkdir "$SWEEP_LOCKS/$name" 2>/dev/null; then
  echo "OVERLAP $name on ${MAYFLY_INSTANCE_ID:-?}" >> "$SWEEP_LOCKS/overlaps"
fi
unlock() { [ -z "${SWEEP_LOCKS:-}" ] || rmdir "$SWEEP_LOCKS/$name" 2>/dev/null || true; }
echo "$name attempt=${MAYFLY_ATTEMPT:-?} resume=${MAYFLY_RESUME:-0} from=$step type=${MAYFLY_INSTANCE_TYPE:-?} at=$(date +%s.%N)" >> "runs.txt"
echo "attempt ${MAYFLY_ATTEMPT:-?} starts at step $step"
save() { echo "$step" > "$ck.tmp" && mv -f "$ck.tmp" "$ck"; }
trap 'save; echo "saved step $step on SIGTERM"; echo "$name stopped step=$step at=$(date +%s.%N)" >> runs.txt; unlock; exit 143' TERM
while [ "$step" -lt "${1:-20}" ]; do
  step=$((step + 1)); save; echo "step $step"; sleep "${2:-0.5}" & wait $!
done
mkdir -p outputs && echo "$name finished at step $step" > "outputs/$name.txt"
echo "$name done at=$(date +%s.%N)" >> "runs.txt"
unlock
exit "${3:-0}"
""",
}


def start_cloud(scripts=None, key="src/fleet.tar.gz", **kw):
    """The fake cloud with the instance simulator, and the experiment's scripts (SCRIPTS unless given) as an
    archive at s3://BUCKET/KEY."""
    c = Cloud(simulate=True, **kw).__enter__()
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, body in (SCRIPTS if scripts is None else scripts).items():
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode = len(body), 0o755
                t.addfile(ti, io.BytesIO(body.encode()))
        c.boto("s3").put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    except BaseException:
        c.__exit__(None, None, None)
        raise
    return c


def job(name, experiments, **extra):
    j = {"name": name, "source": "s3://%s/src/fleet.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
         "user": RUN_USER, "log_interval": 2, "experiments": experiments, "spot": {"grace_seconds": 5},
         "checkpoint": {"path": "ck", "interval": "10s"}, "stop_grace": 5, "outputs": ["outputs/*"]}
    j.update(extra)
    return j


def launch(c, j, *extra):
    """mayfly launch (as a user on a laptop would, with the admin key): the run id and its results prefix."""
    d = tempfile.mkdtemp(prefix="mayfly-fleet-", dir=c.dir)
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump(j, f)
    p = mayfly("launch", jp, "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge", "--install",
               "preinstalled", "--iam-instance-profile", c.info["role"], *extra, env=c.admin_env())
    check(p.returncode == 0, "launch failed: " + out(p))
    m = re.search(r"^run(?: id)?:\s+(\S+)", p.stdout.decode(), re.M)
    check(m, "launch printed no run id: " + out(p))
    return m.group(1), p.stdout.decode()


def lines(inst, name="runs.txt"):
    if not inst.get("root"):
        return []
    p = os.path.join(inst["root"], "state", "work", name)
    return open(p).read().splitlines() if os.path.exists(p) else []


def leftovers(c, run_id):
    """What of the run is still in moto: groups, templates, pending or running instances (the cloud's own aside)."""
    asg, ec2 = c.boto("autoscaling"), c.boto("ec2")
    groups = [g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]]
    templates = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    live = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    live = [i["InstanceId"] for r in live["Reservations"] for i in r["Instances"] if i["InstanceId"] != c.info["instance_id"]]
    return groups, templates, live


def wait_instance_line(c, iid, pattern, timeout, what):
    rx = re.compile(pattern)
    return c.wait_instance(iid, lambda i: any(rx.search(l) for l in lines(i)), timeout=timeout, what=what)


def step_of(inst):
    if not inst.get("root"):
        return 0
    p = os.path.join(inst["root"], "state", "work", "ck")
    best = 0
    for d in os.listdir(p) if os.path.isdir(p) else []:
        f = os.path.join(p, d, "step")
        if os.path.exists(f):
            best = max(best, int(open(f).read().strip() or 0))
    return best


def the_run(c, name, run_id):
    return RunResults(c, "results/%s/%s/" % (name, run_id))


def running_of(l):
    return [i for i in l if i["state"] in ("pending", "running")]


def faults(c, *rules):
    c.faults(rules)


def fired(c):
    return [(r.get("action") or r.get("path_contains"), r["status"], r["fired"])
            for r in c.control("GET", "/faults")["rules"] if "status" in r]


def agent_log(inst):
    p = os.path.join(inst["root"], "console", "agent.stderr")
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def wait_over(c, r, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and ((r.status() or {}).get("outcome") in (None, "running")):
        time.sleep(1)
    return r.status()


def wait_no_leftovers(c, run_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and any(leftovers(c, run_id)):
        time.sleep(1)
    check(leftovers(c, run_id) == ([], [], []), "left in moto: %r" % (leftovers(c, run_id),))
