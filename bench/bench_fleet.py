#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make bench, part 4: runs shared by instances, on the instance simulator (tests/fakes/instances.py: every
instance moto starts boots the agent; S3 is moto behind the fake cloud, signatures checked).

  sweep makespan     12 experiments of 20 s on 4 instances of one group (mayfly launch --instances 4), no faults:
                     from the first experiment's start to the last one's end, against the ideal 3 x 20 s; the
                     coordination overhead is the ratio. And the S3 requests the run cost, per experiment.
  replacement        a spot notice takes the instance of an experiment with a 256 MiB checkpoint; the group's
                     replacement boots: from its agent's start to the experiment exec'd again with the checkpoint
                     restored, next to `aws s3 cp --recursive` restoring the same bytes from the same S3.
  gang               a gang of 2 ("nodes": 2 on --instances 2): a spot notice on rank 1's instance; from the
                     replacement's agent start to the gang running again (both members' commands exec'd for attempt
                     2), next to the same for an experiment of one instance (--recover): what forming a gang costs.

Numbers are printed, nothing is asserted."""
import argparse
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))

BIG = 256 << 20
BIG_SH = """#!/bin/bash
ck="$MAYFLY_CHECKPOINT_DIR"
echo "attempt=$MAYFLY_ATTEMPT resume=${MAYFLY_RESUME:-0} at=$(date +%%s.%%N)" >> runs.txt
if [ "${MAYFLY_RESUME:-0}" = 1 ]; then
  echo "restored $(stat -c %%s "$ck/blob" 2>/dev/null || echo 0)" >> runs.txt
  exit 0
fi
head -c %d /dev/urandom > "$ck/blob.tmp" && mv "$ck/blob.tmp" "$ck/blob" && echo written >> runs.txt
trap 'exit 143' TERM
while :; do sleep 1 & wait $!; done
""" % BIG


def sweep(test_sweep):
    got = test_sweep.sweep_chaos(seed=0, n_exp=12, m=4, steps=40, dt=0.5, kills=0, every=1e12)
    ideal = 3 * 20.0
    print("\nsweep: 12 experiments x 20 s on 4 simulated instances (one group, no faults)")
    print("%-46s %10s %10s" % ("measure", "mayfly", "ideal"))
    print("%-46s %8.1f s %8.1f s   overhead x%.2f" % ("first experiment start -> last experiment end",
                                                     got["work_span"], ideal, got["work_span"] / ideal))
    print("%-46s %8.1f s" % ("mayfly launch -> the run's final status.json", got["makespan"]))
    print("%-46s %8.1f s" % ("final status -> group, template, instances gone", got["teardown"]))
    per = got["s3_requests"] / got["experiments"]
    print("%-46s %8.1f     (%s)" % ("S3 requests per experiment (all instances)", per,
                                    ", ".join("%s %d" % kv for kv in sorted(got["s3_by_method"].items()))))
    print("raw: " + json.dumps(got))


def replacement(fleetlib):
    fleetlib.SCRIPTS["big.sh"] = BIG_SH
    c = fleetlib.start_cloud()
    try:
        j = fleetlib.job("big", [{"name": "big", "command": ["./big.sh"]}], lease_ttl=fleetlib.TTL)
        j["spot"] = {"grace_seconds": 60}
        run_id, _ = fleetlib.launch(c, j, "--spot", "--recover")
        r = fleetlib.the_run(c, "big", run_id)
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(fleetlib.running_of(l)) == 1, 120)]
        fleetlib.wait_instance_line(c, i1, r"^written$", 120, "the 256 MiB checkpoint written")
        key = "checkpoint/big/blob"
        s3 = c.boto("s3")
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if s3.head_object(Bucket="mayfly-test", Key=r.prefix + key)["ContentLength"] == BIG:
                    break
            except Exception:  # noqa: BLE001 - not there yet
                pass
            time.sleep(1)
        c.spot(i1, in_s=60)
        got = c.wait_instances(lambda l: len(l) >= 2, 300, what="the replacement")
        i2 = [i["instance_id"] for i in got if i["instance_id"] != i1][0]
        inst = fleetlib.wait_instance_line(c, i2, r"^restored \d+$", 300, "the experiment again on the replacement")
        runs = fleetlib.lines(inst)
        restored = int(runs[-1].split()[1])
        at = float(re.search(r"at=([\d.]+)", [l for l in runs if l.startswith("attempt=2")][0]).group(1))
        with open(os.path.join(inst["root"], "console", "agents.jsonl")) as f:
            start = [json.loads(l)["t"] for l in f if '"event": "start"' in l][0]
        d = tempfile.mkdtemp(prefix="mayfly-bench-restore-")
        t0 = time.time()
        c.aws("s3", "cp", "--recursive", "--only-show-errors", "s3://mayfly-test/%scheckpoint/big/" % r.prefix, d)
        aws_s = time.time() - t0
        size = os.path.getsize(os.path.join(d, "blob"))
        os.unlink(os.path.join(d, "blob"))
        os.rmdir(d)
        print("\nreplacement: a spot notice, then the group's next instance resumes a 256 MiB checkpoint")
        print("%-58s %9s" % ("measure", "seconds"))
        print("%-58s %9.2f  (%d bytes restored)" % ("agent start on the replacement -> experiment exec'd again",
                                                     at - start, restored))
        print("%-58s %9.2f  (%d bytes)" % ("aws s3 cp --recursive of the same checkpoint (baseline)", aws_s, size))
    finally:
        c.__exit__(None, None, None)


def _replacement_start(inst):
    with open(os.path.join(inst["root"], "console", "agents.jsonl")) as f:
        return [json.loads(l)["t"] for l in f if '"event": "start"' in l][0]


def _gang_rejoin(fleetlib, test_gang):
    """gang.sh on 2 instances; a spot notice on rank 1's; from the replacement's agent start to both members'
    commands exec'd for attempt 2, and to the replacement's own."""
    c = fleetlib.start_cloud(scripts={"gang.sh": test_gang.GANG_SH})
    try:
        from harness import worker_ports
        j = test_gang.gang_job("benchgang", ["./gang.sh", "400", "0.5"], worker_ports()[3])
        j["spot"] = {"grace_seconds": 10}
        fleetlib.launch(c, j, "--spot", "--recover", "--instances", "2")

        def member(inst, attempt, rank=None):
            return [m for m in test_gang.members(inst) if m["attempt"] == attempt and rank in (None, m["rank"])]

        got = c.wait_instances(lambda l: any(member(i, "1", "1") for i in l), 180, what="rank 1 running")
        c.spot([i for i in got if member(i, "1", "1")][0]["instance_id"], in_s=15)
        got = c.wait_instances(lambda l: sum(len(member(i, "2")) for i in l) >= 2, 300, what="attempt 2 whole")
        repl = [i for i in got if member(i, "2") and not member(i, "1")][0]  # the survivor ran attempt 1 too
        start = _replacement_start(repl)
        return (max(float(m["at"]) for i in got for m in member(i, "2")) - start,
                float(member(repl, "2")[0]["at"]) - start)
    finally:
        c.__exit__(None, None, None)


def _solo_rejoin(fleetlib):
    """counter.sh on one instance (--recover); a spot notice; from the replacement's agent start to the experiment
    exec'd for attempt 2."""
    c = fleetlib.start_cloud()
    try:
        j = fleetlib.job("benchsolo", [{"name": "a", "command": ["./counter.sh", "400", "0.5"]}],
                         lease_ttl=fleetlib.TTL)
        j["spot"] = {"grace_seconds": 10}
        fleetlib.launch(c, j, "--spot", "--recover")
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(fleetlib.running_of(l)) == 1, 120)]
        fleetlib.wait_instance_line(c, i1, r"^a attempt=1", 120, "attempt 1")
        c.spot(i1, in_s=15)
        got = c.wait_instances(lambda l: len(l) >= 2, 300, what="the replacement")
        i2 = [i["instance_id"] for i in got if i["instance_id"] != i1][0]
        inst = fleetlib.wait_instance_line(c, i2, r"^a attempt=2", 300, "attempt 2")
        at = float(re.search(r"at=([\d.]+)", [l for l in fleetlib.lines(inst) if "attempt=2" in l][0]).group(1))
        return at - _replacement_start(inst)
    finally:
        c.__exit__(None, None, None)


def gang(fleetlib, test_gang):
    g_all, g_own = _gang_rejoin(fleetlib, test_gang)
    s_all = _solo_rejoin(fleetlib)
    print("\ngang: a spot notice on rank 1 of a gang of 2; the group's replacement joins the survivor")
    print("%-66s %9s" % ("measure", "seconds"))
    print("%-66s %9.2f" % ("agent start on the replacement -> the gang running again", g_all))
    print("%-66s %9.2f" % ("  ... -> the replacement's own part exec'd", g_own))
    print("%-66s %9.2f" % ("one instance (--recover): agent start -> experiment exec'd (baseline)", s_all))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--only", choices=("sweep", "replacement", "gang"), help="one part alone")
    a = ap.parse_args()
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)
    import fleetlib
    import test_gang
    import test_sweep
    for part, run in (("sweep", lambda: sweep(test_sweep)), ("replacement", lambda: replacement(fleetlib)),
                      ("gang", lambda: gang(fleetlib, test_gang))):
        if a.only in (None, part):
            run()


if __name__ == "__main__":
    main()
