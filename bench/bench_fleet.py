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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)
    import fleetlib
    import test_sweep
    sweep(test_sweep)
    replacement(fleetlib)


if __name__ == "__main__":
    main()
