# SPDX-License-Identifier: Apache-2.0
"""Sweeps through the instance simulator: `mayfly launch --instances M --spot --recover` makes one group of M, every
instance claims the next experiment that is neither finished nor held, and the fleet ends itself. Under seeded
chaos (spot notices, instances killed without a word) every experiment finishes exactly once; clocks skewed by
minutes change nothing; a failure with continue_on_failure false ends the sweep everywhere; a group over two types
and two subnets. tests/reliability.py runs sweep_chaos with more seeds (make reliability)."""
import collections
import json
import os
import random
import re
import shutil
import tempfile
import time
import urllib.parse

from fleetlib import (BUCKET, TTL, agent_log, job, launch, leftovers, lines, running_of, start_cloud, the_run,
                      wait_no_leftovers, wait_over)
from harness import Skip, check

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
START = re.compile(r"^(\S+) attempt=(\d+) resume=(\d) from=(\d+) type=(\S+) at=([\d.]+)$")
END = re.compile(r"^(\S+) (done|stopped)(?: step=\d+)? at=([\d.]+)$")


def spans(insts, killed):
    """Per experiment: (start, end, instance, how) of every attempt, from the instances' runs.txt; an attempt on a
    killed instance without an end line ends at the kill; one that never ended is open (end None)."""
    out = collections.defaultdict(list)
    for inst in insts:
        iid, cur = inst["instance_id"], {}
        for l in lines(inst):
            m = START.match(l)
            if m:
                cur[m.group(1)] = float(m.group(6))
                continue
            m = END.match(l)
            if m and m.group(1) in cur:
                out[m.group(1)].append((cur.pop(m.group(1)), float(m.group(3)), iid, m.group(2)))
        for name, t in cur.items():
            out[name].append((t, killed.get(iid), iid, "killed" if iid in killed else "open"))
    return out


def overlaps(sp):
    bad = []
    for name, l in sp.items():
        l = sorted(l, key=lambda x: x[0])
        for a, b in zip(l, l[1:]):
            if a[1] is None or b[0] < a[1]:
                bad.append((name, a, b))
    return bad


def busy(inst, since=0.0):
    """The experiment the instance runs now (from its runs.txt) and has for at least `since` seconds, or None."""
    cur, at = None, 0.0
    for l in lines(inst):
        m = START.match(l)
        if m:
            cur, at = m.group(1), float(m.group(6))
        elif END.match(l):
            cur = None
    return cur if cur and time.time() - at >= since else None


def s3_requests(c, prefix):
    """moto's answers to S3 requests under the run's prefix (a LIST counts when it lists under it), from the fake
    cloud's request log: (method, key, status)."""
    rx = re.compile(r"moto (GET|PUT|POST|HEAD|DELETE) /%s(?:/([^?\s]*))?(\?\S*)? -> (\d+)" % BUCKET)
    got = []
    with open(os.path.join(c.dir, "cloud.log"), errors="replace") as f:
        for l in f:
            m = rx.search(l)
            if not m:
                continue
            key = m.group(2) or ""
            if key.startswith(prefix) or not key and prefix in urllib.parse.unquote(m.group(3) or ""):
                got.append((m.group(1), key, int(m.group(4))))
    return got


def sweep_chaos(seed, n_exp=12, m=4, steps=20, dt=0.5, kills=2, every=20.0, timeout=600):
    """n_exp experiments of steps x dt seconds over m spot instances of one group; spot notices at random (seeded:
    about one per `every` seconds of experiment time), `kills` instances killed without a word after some results
    are in. Checks every promise and returns what happened (for make reliability and make bench)."""
    rng = random.Random(seed)
    c = start_cloud()
    try:
        names = ["e%02d" % k for k in range(1, n_exp + 1)]
        j = job("sweep", [{"name": n, "command": ["./counter.sh", str(steps), str(dt)]} for n in names],
                lease_ttl=TTL)
        t0 = time.time()
        run_id, _ = launch(c, j, "--spot", "--recover", "--instances", str(m))
        r = the_run(c, "sweep", run_id)
        kill_after = sorted(rng.sample(range(1, n_exp - 1), kills))
        noticed, killed, last, st = set(), {}, time.time(), None
        while time.time() < t0 + timeout:
            st = r.status()
            if st and st.get("outcome") not in (None, "running"):
                break
            now = time.time()
            tick, last = now - last, now
            insts = [i for i in c.instances() if i["state"] == "running" and i["agent_running"]]
            work = [i for i in insts if i["instance_id"] not in noticed and i["instance_id"] not in killed and busy(i)]
            if work and rng.random() < len(work) * tick / every:
                i = rng.choice(work)
                c.spot(i["instance_id"], in_s=rng.choice((35, 40, 50)))  # SIGTERM, 5 s grace, then 30 s to ship
                noticed.add(i["instance_id"])
            done = len([k for k in r.keys("ledger/done/")])
            # a hardware loss loses what the agent had not shipped yet (at most log_interval of log): kill an
            # instance whose experiment has run past that, so that every attempt's start is in S3
            settled = [i for i in work if busy(i, since=j["log_interval"] + 2)]
            if kill_after and done >= kill_after[0] and settled:
                i = rng.choice(settled)
                c.kill(i["instance_id"])
                killed[i["instance_id"]] = time.time()
                kill_after.pop(0)
            time.sleep(0.5)
        ended = time.time()
        check(st and st["outcome"] == "succeeded", "seed %d: %s" % (seed, json.dumps(st)[:3000]))
        check(sorted(x["name"] for x in st["experiments"] if x["status"] == "done" and x["exit_code"] == 0) == names,
              "seed %d: not all done: %s" % (seed, json.dumps(st["experiments"])))
        keys = r.keys()
        check(all("ledger/done/%s.json" % n in keys for n in names), "seed %d: done records: %r" % (seed, keys))
        # every output written once, and only once
        prefix = "results/sweep/%s/" % run_id
        reqs = s3_requests(c, prefix)
        puts = collections.Counter(k for meth, k, s in reqs if meth == "PUT" and s == 200 and "/outputs/outputs/" in "/" + k)
        check(all(puts[prefix + "outputs/outputs/%s.txt" % n] == 1 for n in names),
              "seed %d: outputs not written exactly once: %r" % (seed, dict(puts)))
        for n in names:
            check(r.get("outputs/outputs/%s.txt" % n) == ("%s finished at step %d\n" % (n, steps)).encode(),
                  "seed %d: output of %s: %r" % (seed, n, r.get("outputs/outputs/%s.txt" % n)))
        # every attempt's start in the experiment's one log in S3, in order; a resume goes on from its checkpoint
        insts = c.instances()
        resumed_from = []
        for x in st["experiments"]:
            log = r.get("logs/%s/stdout.log" % x["name"]).decode()
            got = [int(a) for a in re.findall(r"^attempt (\d+) starts at step", log, re.M)]
            check(got == list(range(1, x["attempts"] + 1)), "seed %d: %s's log has attempts %r of %d" %
                  (seed, x["name"], got, x["attempts"]))
            resumed_from += [int(s) for a, s in re.findall(r"^attempt (\d+) starts at step (\d+)", log, re.M) if a != "1"]
        # every instance that ran an attempt is in the run's cost (a killed one as lost, an estimate), the total
        # their sum; report.html names every one
        ran = {i["instance_id"] for i in insts if lines(i)}
        costed = {x["id"]: x for x in st["cost"]["instances"]}
        check(ran <= set(costed), "seed %d: ran on %r, cost lists %r" % (seed, sorted(ran), sorted(costed)))
        check(all(costed[i]["state"] == "lost" and costed[i].get("estimate") for i in killed if i in costed),
              "seed %d: killed instances in the cost: %r" % (seed, [costed.get(i) for i in killed]))
        check("total" not in st["cost"] or abs(st["cost"]["total"] - sum(x.get("cost", 0) for x in costed.values())) < 1e-5,
              "seed %d: the total is not the instances' sum: %s" % (seed, json.dumps(st["cost"])[:2000]))
        page = r.get("report.html").decode()
        check(all(i in page for i in ran), "seed %d: report.html does not name every instance" % seed)
        sp = spans(insts, killed)
        check(overlaps(sp) == [], "seed %d: an experiment ran on two instances at once: %r" % (seed, overlaps(sp)))
        finished = collections.Counter(n for n, l in sp.items() for a in l if a[3] == "done")
        check(all(finished[n] == 1 for n in names), "seed %d: finished per experiment %r" % (seed, dict(finished)))
        if noticed:
            check(any(s > 0 for s in resumed_from), "seed %d: no resume went on from a checkpoint: %r" %
                  (seed, resumed_from))
        # the fleet ends itself: nothing left within a minute of the last result; no relaunch loop
        wait_no_leftovers(c, run_id, 60)
        gone = time.time()
        interruptions = len(noticed) + len(killed)
        check(len(insts) <= 2 * m + interruptions, "seed %d: %d instances for %d interruptions" %
              (seed, len(insts), interruptions))
        starts = [a[0] for l in sp.values() for a in l]
        ends = [a[1] for l in sp.values() for a in l if a[3] == "done"]
        return {"seed": seed, "instances": len(c.instances()), "notices": len(noticed), "kills": len(killed),
                "work_span": max(ends) - min(starts),
                "s3_by_method": dict(collections.Counter(meth for meth, _, _ in reqs)),
                "attempts": sum(x["attempts"] for x in st["experiments"]), "experiments": n_exp,
                "makespan": ended - t0, "teardown": gone - ended, "s3_requests": len(reqs),
                "resumed_from": resumed_from}
    finally:
        c.__exit__(None, None, None)


def shared_dir():
    """A directory every simulated instance's experiment (the worker's run user) can write."""
    d = tempfile.mkdtemp(prefix="mayfly-sweep-")
    os.chmod(d, 0o1777)
    return d


def test_clocks_skewed_five_minutes_never_run_an_experiment_twice_at_once():
    if os.environ.get("MAYFLY_SANITIZED"):
        raise Skip("libfaketime's LD_PRELOAD cannot come before the ASan runtime (make test covers it)")
    check(os.path.exists(FAKETIME), "libfaketime not installed (tests/deps.sh test installs faketime)")
    locks = shared_dir()
    c = start_cloud()
    try:
        skew = {"LD_PRELOAD": FAKETIME, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}
        c.boot_env(dict(skew, FAKETIME="+5m"), dict(skew, FAKETIME="-5m"))
        names = ["s%d" % k for k in range(1, 7)]
        j = job("skew", [{"name": n, "command": ["./counter.sh", "12", "0.5"]} for n in names], lease_ttl=TTL,
                environment={"SWEEP_LOCKS": locks})
        run_id, _ = launch(c, j, "--spot", "--recover", "--instances", "2")
        r = the_run(c, "skew", run_id)
        got = c.wait_instances(lambda l: len(running_of(l)) == 2 and all(busy(i) for i in running_of(l)), 120,
                               what="both instances at work")
        # the clocks are skewed: each instance's heartbeat says its own time
        beats = {}
        deadline = time.time() + 30
        while len(beats) < 2 and time.time() < deadline:
            for k in r.keys("ledger/instances/"):
                b = json.loads(r.get(k))
                beats[b["instance"]] = b["time"] - time.time()
            time.sleep(1)
        check(sorted(round(v / 60) for v in beats.values()) == [-5, 5], "the clocks are not skewed: %r" % beats)
        # the +5 min instance gets a spot notice: its experiment is taken up by the other or the replacement
        plus = [i["instance_id"] for i in got if beats.get(i["instance_id"], 0) > 0][0]
        c.spot(plus, in_s=12)
        st = wait_over(c, r, 300)
        check(st and st["outcome"] == "succeeded", json.dumps(st)[:3000])
        ov = os.path.join(locks, "overlaps")
        check(not os.path.exists(ov), "an experiment ran on two instances at once: %s" %
              (open(ov).read() if os.path.exists(ov) else ""))
        insts = c.instances()
        finished = collections.Counter(n for inst in insts for l in lines(inst) for n in [l.split()[0]]
                                       if " done at=" in l)
        check(all(finished[n] == 1 for n in names), "finished per experiment: %r" % dict(finished))
        check(any(x["attempts"] == 2 for x in st["experiments"]), "the notice interrupted nothing: %s" %
              json.dumps(st["experiments"]))
        wait_no_leftovers(c, run_id, 60)
    finally:
        c.__exit__(None, None, None)
        shutil.rmtree(locks, ignore_errors=True)


def test_a_failure_with_continue_on_failure_false_ends_the_sweep_everywhere():
    c = start_cloud()
    try:
        exps = [{"name": "bad", "command": ["./counter.sh", "16", "0.5", "3"]}] + \
               [{"name": "w%d" % k, "command": ["./counter.sh", "240", "0.5"]} for k in range(1, 8)]
        j = job("failfast", exps, lease_ttl=TTL, continue_on_failure=False)
        run_id, _ = launch(c, j, "--spot", "--recover", "--instances", "4")
        r = the_run(c, "failfast", run_id)
        st = wait_over(c, r, 180)
        ended = time.time()
        check(st and st["outcome"] == "failed", json.dumps(st)[:3000])
        e = {x["name"]: x for x in st["experiments"]}
        check(e["bad"]["status"] == "done" and e["bad"]["exit_code"] == 3, json.dumps(e["bad"]))
        end = json.loads(r.get("ledger/end.json"))
        check(end["outcome"] == "failed", repr(end))
        # every other instance stops its experiment, ships it and goes; the group with it
        got = c.wait_instances(lambda l: l and not running_of(l), 90, what="every instance ends")
        gone = time.time()
        wait_no_leftovers(c, run_id, 30)
        worked = [i for i in got if lines(i)]
        check(len(worked) == 4, "not four instances at work: %r" % [lines(i) for i in got])
        stopped = [i for i in worked if any(" stopped " in l for l in lines(i))]
        check(len(stopped) == 3, "the others did not stop their work: %r" % [lines(i) for i in worked])
        check(not any(" done at=" in l for i in stopped for l in lines(i)), "a long experiment finished")
        starts = sum(1 for i in worked for l in lines(i) if START.match(l))
        check(starts == 4, "an experiment started after the failure: %r" % [lines(i) for i in worked])
        for i in stopped:
            check("ended by another instance" in agent_log(i) or "is over" in agent_log(i), agent_log(i)[-1500:])
        stopped_logs = [x for x in r.keys("logs/") if x.endswith("/stdout.log")]
        check(len(stopped_logs) == 4, "the stopped experiments' logs did not reach S3: %r" % stopped_logs)
        check(gone - ended < 60, "the fleet took %.0f s to go" % (gone - ended))
    finally:
        c.__exit__(None, None, None)


def test_a_group_over_two_types_and_two_subnets_goes_on_after_a_notice():
    c = start_cloud()
    try:
        ec2 = c.boto("ec2")
        subs = sorted(ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"],
                      key=lambda s: s["AvailabilityZone"])[:2]
        ids = [s["SubnetId"] for s in subs]
        names = ["m%d" % k for k in range(1, 5)]
        j = job("mixed", [{"name": n, "command": ["./counter.sh", "20", "0.5"]} for n in names], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--spot", "--recover", "--instances", "2", "--instance-type", "g4dn.xlarge",
                           "--subnet-id", ids[0], "--subnet-id", ids[1])
        name = "mayfly-" + run_id
        [g] = c.boto("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
        mip = g["MixedInstancesPolicy"]
        types = [o["InstanceType"] for o in mip["LaunchTemplate"]["Overrides"]]
        check(types == ["g5.xlarge", "g4dn.xlarge"], repr(mip))
        check(mip["InstancesDistribution"]["SpotAllocationStrategy"] == "price-capacity-optimized", repr(mip))
        check(g["VPCZoneIdentifier"] == ",".join(ids), repr(g["VPCZoneIdentifier"]))
        got = c.wait_instances(lambda l: len(running_of(l)) == 2 and all(busy(i) for i in running_of(l)), 120,
                               what="both instances at work")
        c.spot(got[0]["instance_id"], in_s=12)
        r = the_run(c, "mixed", run_id)
        st = wait_over(c, r, 240)
        check(st and st["outcome"] == "succeeded", json.dumps(st)[:3000])
        insts = c.instances()
        check(len(insts) >= 3, "no replacement: %r" % [i["instance_id"] for i in insts])
        desc = {i["InstanceId"]: i for res in ec2.describe_instances()["Reservations"] for i in res["Instances"]}
        for inst in insts:
            d = desc[inst["instance_id"]]
            check(d["InstanceType"] in types and d["SubnetId"] in ids, "%s: %s in %s" %
                  (inst["instance_id"], d["InstanceType"], d["SubnetId"]))
            for l in lines(inst):
                m = START.match(l)
                if m:
                    check(m.group(5) == d["InstanceType"], "MAYFLY_INSTANCE_TYPE %s on a %s" %
                          (m.group(5), d["InstanceType"]))
        check(any(x["attempts"] == 2 for x in st["experiments"]), json.dumps(st["experiments"]))
        wait_no_leftovers(c, run_id, 60)
    finally:
        c.__exit__(None, None, None)
