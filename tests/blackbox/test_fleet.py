"""Runs that outlive their instance, through the instance simulator (every instance moto starts boots the agent from
its user-data): `mayfly launch --spot --recover` makes a group of one; spot notices take its instances and the group's
replacements go on with the run from the ledger in S3 and each experiment's checkpoint; the instance that ends the
run deletes the group and its template; an instance booting into a finished run does nothing; two instances on one
run never run an experiment at once; --max-attempts; 409 and 412 on lease writes; a run lost without a word."""
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time

from harness import MAYFLY, Cloud, RunResults, check, mayfly, out

BUCKET = "mayfly-test"
TTL = 6  # seconds: the tests' lease_ttl (takeover after 18 s unchanged)

SCRIPTS = {
    # counts steps, keeps the count in its checkpoint, goes on from it when resumed; on SIGTERM saves and exits
    "counter.sh": """#!/bin/bash
name=$MAYFLY_EXPERIMENT
ck="$MAYFLY_CHECKPOINT_DIR/step"
step=0
if [ "${MAYFLY_RESUME:-0}" = 1 ] && [ -f "$ck" ]; then step=$(cat "$ck"); fi
echo "$name attempt=${MAYFLY_ATTEMPT:-?} resume=${MAYFLY_RESUME:-0} from=$step at=$(date +%s.%N)" >> "runs.txt"
echo "attempt ${MAYFLY_ATTEMPT:-?} starts at step $step"
save() { echo "$step" > "$ck.tmp" && mv -f "$ck.tmp" "$ck"; }
trap 'save; echo "saved step $step on SIGTERM"; exit 143' TERM
while [ "$step" -lt "${1:-20}" ]; do
  step=$((step + 1)); save; echo "step $step"; sleep "${2:-0.5}"
done
mkdir -p outputs && echo "$name finished at step $step" > "outputs/$name.txt"
echo "$name done at=$(date +%s.%N)" >> "runs.txt"
""",
}


def start_cloud(**kw):
    c = Cloud(simulate=True, **kw).__enter__()
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name, body in SCRIPTS.items():
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode = len(body), 0o755
                t.addfile(ti, io.BytesIO(body.encode()))
        c.boto("s3").put_object(Bucket=BUCKET, Key="src/fleet.tar.gz", Body=buf.getvalue())
    except BaseException:
        c.__exit__(None, None, None)
        raise
    return c


def job(name, experiments, **extra):
    j = {"name": name, "source": "s3://%s/src/fleet.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
         "user": "nobody", "log_interval": 2, "experiments": experiments, "spot": {"grace_seconds": 5},
         "checkpoint": {"path": "ck", "interval": "10s"}, "stop_grace": 5, "outputs": ["outputs/*"]}
    j.update(extra)
    return j


def launch(c, j, *extra):
    """mayfly launch (as a user on a laptop would, with the admin key): the run id and its results prefix."""
    d = tempfile.mkdtemp(prefix="mayfly-fleet-", dir=c.dir)
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump(j, f)
    p = mayfly("launch", jp, "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge",
               "--iam-instance-profile", c.info["role"], *extra, env=c.admin_env())
    check(p.returncode == 0, "launch failed: " + out(p))
    m = re.search(r"^run(?: id)?:\s+(\S+)", p.stdout.decode(), re.M)
    check(m, "launch printed no run id: " + out(p))
    return m.group(1), p.stdout.decode()


def lines(inst, name="runs.txt"):
    if not inst.get("root"):
        return []
    p = os.path.join(inst["root"], "state", "work", name)
    return open(p).read().splitlines() if os.path.exists(p) else []


def running(c):
    return [i for i in c.instances() if i["state"] in ("pending", "running") and i["agent_running"]]


def leftovers(c, run_id):
    """What of the run is still in moto: groups, templates, pending or running instances (the cloud's own aside)."""
    asg, ec2 = c.boto("autoscaling"), c.boto("ec2")
    groups = [g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]]
    templates = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    live = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    live = [i["InstanceId"] for r in live["Reservations"] for i in r["Instances"] if i["InstanceId"] != c.info["instance_id"]]
    return groups, templates, live


def wait_line(c, iid, pattern, timeout, what):
    rx = re.compile(pattern)
    return c.wait_instance(iid, lambda i: any(rx.search(l) for l in lines(i)), timeout=timeout, what=what)


def step_of(inst):
    p = os.path.join(inst["root"], "state", "work", "ck")
    best = 0
    for d in os.listdir(p) if os.path.isdir(p) else []:
        f = os.path.join(p, d, "step")
        if os.path.exists(f):
            best = max(best, int(open(f).read().strip() or 0))
    return best


def the_run(c, name, run_id):
    return RunResults(c, "results/%s/%s/" % (name, run_id))


def test_spot_losses_resume_from_the_checkpoint_and_the_group_goes():
    c = start_cloud()
    try:
        j = job("recov", [{"name": "a", "command": ["./counter.sh", "30", "0.5"]},
                          {"name": "b", "command": ["./counter.sh", "30", "0.5"]}], lease_ttl=TTL)
        run_id, printed = launch(c, j, "--spot", "--recover")
        # instance 1: experiment a, then a spot notice in the middle of it
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1, 90, what="instance 1")]
        inst = wait_line(c, i1, r"^a attempt=1 resume=0 from=0", 90, "a starts on instance 1")
        c.wait_instance(i1, lambda i: step_of(i) >= 6, 60, "a counts on instance 1")
        c.spot(i1, in_s=25)
        # instance 2 (the group's replacement): a again from its checkpoint, attempt 2
        got = c.wait_instances(lambda l: len(l) >= 2, 120, what="a replacement")
        i2 = [i["instance_id"] for i in got if i["instance_id"] != i1][0]
        inst2 = wait_line(c, i2, r"^a attempt=2 resume=1 from=([1-9][0-9]*)", 120, "a resumes on instance 2")
        first = [l for l in lines(inst2) if l.startswith("a attempt=2")][0]
        from_step = int(re.search(r"from=(\d+)", first).group(1))
        check(from_step >= 6, "a did not go on from its checkpoint: %s" % first)
        # then b on instance 2, and a spot notice during b
        wait_line(c, i2, r"^b attempt=1 resume=0", 120, "b starts on instance 2")
        c.wait_instance(i2, lambda i: step_of(i) >= 4 and any(l.startswith("a done") for l in lines(i)), 60,
                        "b counts on instance 2")
        c.spot(i2, in_s=25)
        got = c.wait_instances(lambda l: len(l) >= 3, 120, what="a second replacement")
        i3 = [i["instance_id"] for i in got if i["instance_id"] not in (i1, i2)][0]
        inst3 = wait_line(c, i3, r"^b attempt=2 resume=1 from=([1-9][0-9]*)", 120, "b resumes on instance 3")
        check(not any(l.startswith("a ") for l in lines(inst3)), "instance 3 ran a again: %r" % lines(inst3))
        # the run ends succeeded under one prefix; nothing of it is left in moto
        r = the_run(c, "recov", run_id)
        deadline = time.time() + 120
        while time.time() < deadline and ((r.status() or {}).get("outcome") in (None, "running")):
            time.sleep(1)
        st = r.status()
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        check(st["run_id"] == run_id, st["run_id"])
        e = {x["name"]: x for x in st["experiments"]}
        check(e["a"]["attempts"] == 2 and e["b"]["attempts"] == 2, json.dumps(st["experiments"]))
        check(e["a"]["instances"] == [i1, i2] and e["b"]["instances"] == [i2, i3], json.dumps(st["experiments"]))
        keys = r.keys()
        for k in ("ledger/done/a.json", "ledger/done/b.json", "ledger/end.json", "outputs/outputs/a.txt",
                  "outputs/outputs/b.txt", "logs/a/stdout.log", "logs/b/stdout.log"):
            check(k in keys, "missing %s: %r" % (k, keys))
        check(r.get("outputs/outputs/a.txt") == b"a finished at step 30\n", r.get("outputs/outputs/a.txt"))
        alog = r.get("logs/a/stdout.log").decode()
        check("attempt 1 starts at step 0" in alog and "attempt 2 starts at step %d" % from_step in alog,
              "a's log lost an attempt: %s" % alog[-400:])
        deadline = time.time() + 60
        while time.time() < deadline and any(leftovers(c, run_id)):
            time.sleep(1)
        check(leftovers(c, run_id) == ([], [], []), "left in moto: %r" % (leftovers(c, run_id),))
    finally:
        c.__exit__(None, None, None)


def running_of(l):
    return [i for i in l if i["state"] in ("pending", "running")]
