#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make bench, part 2: the agent's own overheads in `mayfly run` on the local fake cloud.

  start -> first exec   agent process start to the experiment's first instruction, minus the fetch (transfer)
  exit -> terminate     the last experiment's exit to TerminateInstances arriving at the EC2 endpoint
                        (includes the final upload of logs, status and metrics)
  peak RSS              VmHWM/VmRSS of the agent while it supervises a sleeping experiment

Each is measured over a few runs; the median is printed next to the goal from the issue."""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))


def log_time(line):
    ts = line.split(" ", 1)[0]
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def one(test_run, sleep_s):
    test_run.SCRIPTS["stamp.sh"] = ("#!/bin/sh\ndate +%%s.%%N > start.stamp\nsleep %d\n"
                                    "date +%%s.%%N > end.stamp\n" % sleep_s)
    r = test_run.Run({"experiments": [{"name": "s", "command": ["./stamp.sh"]}], "log_interval": 10})
    try:
        t0 = time.time()
        p = r.start()
        rss = {}
        deadline = time.time() + 60
        while time.time() < deadline and not os.path.exists(os.path.join(r.work, "start.stamp")):
            time.sleep(0.01)
        time.sleep(min(5, sleep_s - 1))
        with open("/proc/%d/status" % p.pid) as f:
            for line in f:
                if line.startswith(("VmHWM", "VmRSS", "RssAnon")):
                    k, v = line.split(":")
                    rss[k] = int(v.split()[0])
        p.communicate(timeout=120)
        start = float(open(os.path.join(r.work, "start.stamp")).read())
        end = float(open(os.path.join(r.work, "end.stamp")).read())
        log = open(os.path.join(r.dir, "logs", "agent.log")).read().splitlines()
        fetch0 = [log_time(l) for l in log if " fetching " in l][0]
        fetch1 = [log_time(l) for l in log if "phase PREPARE" in l][0]
        term = [e for e in r.cloud.stats()["moto_log"] if e.get("action") == "TerminateInstances"]
        return {"start_exec": (start - t0) - (fetch1 - fetch0), "fetch": fetch1 - fetch0,
                "exit_term": term[0]["ts"] - end if term else None, "hwm_kb": rss.get("VmHWM"),
                "rss_kb": rss.get("VmRSS"), "anon_kb": rss.get("RssAnon")}
    finally:
        r.close()


def report(label, res):
    med = lambda k: statistics.median([x[k] for x in res if x[k] is not None])  # noqa: E731
    print("\nmayfly run overheads, %s (fake cloud on loopback, median of %d runs)" % (label, len(res)))
    print("%-40s %12s %12s  %s" % ("measure", "mayfly", "goal", "met"))
    rows = [("agent start -> first experiment exec", med("start_exec") * 1000, 100, "ms"),
            ("last exit -> TerminateInstances sent", med("exit_term") * 1000, 1000, "ms"),
            ("peak RSS (VmHWM) supervising a sleep", med("hwm_kb") / 1024, 6, "MB"),
            ("RSS (VmRSS) supervising a sleep", med("rss_kb") / 1024, 6, "MB"),
            ("  of which private (RssAnon)", med("anon_kb") / 1024, 6, "MB")]
    for name, v, goal, unit in rows:
        print("%-40s %9.1f %-2s %9.1f %-2s  %s" % (name, v, unit, goal, unit, "MET" if v <= goal else "NOT MET"))
    print("(fetch of the experiment archive, excluded above: %.0f ms median)" % (med("fetch") * 1000))
    print("raw: " + json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    builds = [("dynamic build (" + a.build + ")", a.build)]
    static = os.path.join(a.build, "static")
    if os.path.exists(os.path.join(static, "mayfly")):
        builds.append(("static musl build (" + static + ")", static))
    for label, b in builds:
        os.environ["MAYFLY_BUILD"] = os.path.abspath(b)
        import test_run
        test_run.MAYFLY = os.path.join(os.path.abspath(b), "mayfly")
        report(label, [one(test_run, 8) for _ in range(a.runs)])
    print("(the dynamic build's RSS counts shared library pages: libcrypto, gnutls via libcurl, libarchive's\n"
          " libxml2/ICU; the private part is the agent's own memory)")


if __name__ == "__main__":
    main()
