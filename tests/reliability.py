#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make reliability: the full `mayfly run` happy path under each injected fault (the fake cloud's fault rules
sit between mayfly and moto/IMDS), compared byte for byte with a run without faults. Writes the table to
docs/reliability.md (and prints it); exits non-zero if any scenario lost data or left the instance up. Then a sweep
under seeded chaos (tests/blackbox/test_sweep.py sweep_chaos), once per seed (--seeds, default 1-5), CI's check that
runs shared by instances keep their promises whatever the order of the interruptions. Every scenario and sweep has
its own fake cloud: they run side by side (-j, default as tests/run.py's)."""
import argparse
import hashlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "blackbox"))

JOB = {"experiments": [{"name": "a", "command": ["./ok.sh"]}, {"name": "b", "command": "./ok.sh"}],
       "outputs": ["outputs/*"], "checkpoint": {"path": "ckpt", "interval": 60}}

# (name, fault rules for the moto side, IMDS failures, what it models)
SCENARIOS = [
    ("none", [], None, "baseline"),
    ("S3 503 SlowDown burst", [{"method": "PUT", "status": 503, "code": "SlowDown",
                                "message": "Please reduce your request rate.", "count": 2}], None, "throttling"),
    ("S3 500 on the source GET", [{"method": "GET", "path_contains": "exp.tar.gz", "status": 500,
                                   "code": "InternalError", "message": "We encountered an internal error.",
                                   "count": 2}], None, "server errors"),
    ("connection reset mid-request", [{"method": "PUT", "path_contains": "/logs/", "reset": True, "count": 2}], None,
     "reset before an answer"),
    ("reset after the server acted", [{"method": "PUT", "path_contains": "status.json", "reset": "after", "count": 1}],
     None, "answer lost"),
    ("truncated body (short Content-Length)", [{"method": "GET", "path_contains": "exp.tar.gz", "truncate": 100,
                                                "count": 1}], None, "wrong Content-Length"),
    ("slow first byte (5 s)", [{"method": "GET", "delay": 5, "count": 2}], None, "slow server"),
    ("stall past the low-speed timeout", [{"method": "PUT", "path_contains": "/outputs/", "delay": 40, "count": 1}],
     None, "stalled connection"),
    ("EC2 503 RequestLimitExceeded", [{"action": "TerminateInstances", "status": 503, "code": "RequestLimitExceeded",
                                       "message": "Request limit exceeded.", "count": 2}], None, "EC2 throttling"),
    ("IMDS 429 burst", [], {"status": 429, "count": 3}, "IMDS throttling"),
    ("IMDS 500 burst", [], {"status": 500, "count": 2}, "IMDS errors"),
    ("S3 down for the whole ship phase", [{"method": "PUT", "path_contains": "/logs/", "status": 503,
                                           "code": "ServiceUnavailable", "message": "down", "count": -1}], None,
     "endgame: S3 unreachable"),
]


def digest(r):
    """Every result object except the agent's own log and timing-dependent files (status, metrics, live chunks, the
    report with its times and durations): key (run id removed) -> sha."""
    out = {}
    st = r.status()
    if not st:
        return out, None
    pre = "results/t/%s/" % st["run_id"]
    for k in r.keys():
        rel = k[len(pre):]
        if rel.startswith(("live/", "logs/agent.log", "status.json", "metrics.jsonl", "report.html", "cost.json")):
            continue
        # the run id (instance id + start time) is in what the experiments print; it differs by design
        out[rel] = hashlib.sha256(r.get(k).replace(st["run_id"].encode(), b"RUN-ID")).hexdigest()
    return out, st


def scenario(test_run, name, faults, imds):
    """One happy path under one fault: (result objects, status, faults fired, instance state, powered off, wall, an
    agent log dir's stdout.log size)."""
    r = test_run.Run(dict(JOB))
    try:
        if faults:
            r.cloud.control("POST", "/faults", faults)
        if imds:
            r.cloud.control("POST", "/imds/fail", imds)
        t0 = time.time()
        r.run(timeout=600)
        took = time.time() - t0
        files, st = digest(r)
        stats = r.cloud.stats()
        fired = stats["faults_fired"] + stats["imds_status"].get(str(imds["status"]) if imds else "x", 0)
        log = os.path.join(r.dir, "logs", "a", "stdout.log")
        kept = os.path.exists(log) and os.path.getsize(log) > 0
        return files, st, fired, r.instance_state(), os.path.exists(r.marker), took, kept
    finally:
        r.close()


def seeds_of(spec):
    """'2-5' or '2,4' -> [2, 3, 4, 5] / [2, 4]."""
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "reliability.md"))
    ap.add_argument("--seeds", default="1-5", help="sweeps under chaos, one per seed")
    ap.add_argument("-j", type=int, default=int(os.environ.get("MAYFLY_TEST_JOBS", "0") or 0) or
                    max(1, min(8, 2 * (os.cpu_count() or 1))), help="scenarios at once")
    a = ap.parse_args()
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)
    import test_run
    import test_sweep
    from concurrent.futures import ThreadPoolExecutor
    t_all = time.time()
    # every scenario and sweep has its own fake cloud, ports and directories: they run side by side, the sweeps
    # (the longest) first
    with ThreadPoolExecutor(max_workers=a.j) as pool:
        sweep_futs = [(seed, pool.submit(test_sweep.sweep_chaos, seed)) for seed in seeds_of(a.seeds)]
        futs = [(name, what, imds, pool.submit(scenario, test_run, name, faults, imds))
                for name, faults, imds, what in SCENARIOS]
        results = []
        for name, what, imds, f in futs:
            try:
                results.append((name, what, imds, f.result()))
            except Exception as e:  # noqa: BLE001  (a run that timed out or broke: a failed row, not a crash)
                print("%s: %s" % (name, e), flush=True)
                results.append((name, what, imds, ({}, None, "-", "?", False, 0.0, False)))
        sweeps = []
        bad = 0
        for seed, f in sweep_futs:
            try:
                got = f.result()
                sweeps.append((seed, got["notices"], got["kills"], got["instances"], got["attempts"],
                               "%.0f s" % got["makespan"], "%.0f s" % got["teardown"], "ok"))
            except AssertionError as e:
                bad += 1
                sweeps.append((seed, "-", "-", "-", "-", "-", "-", "FAIL: " + str(e).splitlines()[0][:200]))
            print("sweep seed %d: %s" % (seed, sweeps[-1][1:]), flush=True)
    baseline = results[0][3][0]  # "none"
    rows = []
    for name, what, imds, (files, st, fired, state, powered_off, took, kept) in results:
        ended = state in ("shutting-down", "terminated") or powered_off
        end = state if state != "running" else ("powered off" if powered_off else "RUNNING")
        if name.startswith("S3 down"):
            # the disk keeps the only copy: the instance is stopped, not terminated (the next start ships)
            same = "logs kept on disk" if kept else "LOGS LOST"
            ok = kept and state in ("stopping", "stopped")
        else:
            same = "%d/%d identical" % (sum(1 for k in baseline if files.get(k) == baseline[k]), len(baseline))
            ok = files == baseline and ended and st and st["outcome"] == "succeeded"
        if name != "none" and not (isinstance(fired, int) and fired > 0):
            ok, same = False, same + "; THE FAULT NEVER FIRED"  # a scenario without its fault proves nothing
        bad += not ok
        rows.append((name, what, fired, st["outcome"] if st else "no status", same, end, "%.0f s" % took,
                     "ok" if ok else "FAIL"))
        print("%-40s %s" % (name, rows[-1][1:]), flush=True)
    print("make reliability: %d scenarios and %d sweeps, %d at once, in %.0f s" % (
        len(rows), len(sweeps), a.j, time.time() - t_all), flush=True)
    lines = ["# Reliability under injected faults", "",
             "Produced by `make reliability` (tests/reliability.py): the two-experiment happy path of `mayfly run` on",
             "the local fake cloud (moto with SigV4 checking + the IMDS fake), once per fault, the runs side by side. Faults are injected by",
             "the fake cloud between mayfly and moto/IMDS (tests/fakes/README.md). \"Result objects\" are every object",
             "the run leaves in S3 (logs, outputs, checkpoint) compared by SHA-256 with the run without faults.",
             "", "| fault | models | faults fired | outcome | result objects | instance | wall | |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(str(x) for x in row) + " |")
    lines += ["", "## A sweep under chaos", "",
              "12 experiments of 10 s over a group of 4 spot instances (`mayfly launch --instances 4 --spot --recover`)",
              "on the instance simulator; spot notices at random (about one per 20 s of experiment time) and two",
              "instances killed without a word (`kill -9` of everything, then terminated in moto), the random choices",
              "seeded. Passing means: the run ends `succeeded`, every experiment finished exactly once (its output",
              "written once), no experiment ran on two instances at once, every attempt is in its log in S3, resumes",
              "went on from their checkpoints, and within a minute of the final status moto has no group, no launch",
              "template and no pending or running instance of the run. Every seed is here (the sweep is too long for",
              "`make test`'s eight minutes).", "",
              "| seed | spot notices | kills | instances | attempts | launch to final status | teardown | |",
              "|---|---|---|---|---|---|---|---|"]
    for row in sweeps:
        lines.append("| " + " | ".join(str(x) for x in row) + " |")
    lines += ["", "Generated %s." % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
