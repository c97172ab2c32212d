# SPDX-License-Identifier: Apache-2.0
"""`mayfly ls RESULTS_URI [--json]` (issue 15) over 30 runs of three jobs with mixed outcomes (and a launch's
sources/ folder, a run without cost, one whose price is unknown, one still running): newest first, one line each,
a job's prefix lists only its runs, a run's prefix lists that run."""
import json
import random
import time

from harness import Cloud, check, mayfly, out
from jobrun import BUCKET

OUTCOMES = ["succeeded", "failed", "timeout", "interrupted", "gpu-idle", "error"]
T0 = 1767225600  # 2026-01-01T00:00:00Z


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def make_runs():
    rnd = random.Random(15)
    runs = []
    for i in range(30):
        name = ("resnet", "bert", "sweep")[i % 3]
        start = T0 + rnd.randrange(0, 30 * 86400)
        dur = rnd.randrange(60, 12 * 3600)
        inst = "i-%017x" % rnd.getrandbits(68)
        run_id = "%s-%s" % (inst, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start)))
        st = {"name": name, "run_id": run_id, "outcome": OUTCOMES[i % len(OUTCOMES)], "started": iso(start),
              "updated": iso(start + dur), "results": "s3://%s/results/%s/%s/" % (BUCKET, name, run_id),
              "instance": {"id": inst, "type": "g5.xlarge"}, "experiments": []}
        if i == 7:
            st["outcome"] = "running"
        if i != 4:
            st["cost"] = {"currency": "USD", "instances": []}
            if i == 11:
                st["cost"]["total_unknown"] = "the price of an instance is unknown"
            else:
                st["cost"]["total"] = round(dur / 3600 * 1.006, 6)
        runs.append(st)
    return runs


def setup():
    cloud = Cloud().__enter__()
    s3 = cloud.boto("s3")
    runs = make_runs()
    for st in runs:
        pre = "results/%s/%s/" % (st["name"], st["run_id"])
        s3.put_object(Bucket=BUCKET, Key=pre + "status.json", Body=json.dumps(st).encode())
        s3.put_object(Bucket=BUCKET, Key=pre + "logs/a/stdout.log", Body=b"x\n")
    s3.put_object(Bucket=BUCKET, Key="results/resnet/sources/20260101T000000Z.tar.gz", Body=b"tgz")
    return {"cloud": cloud, "runs": runs}


def teardown(ctx):
    ctx["cloud"].__exit__(None, None, None)


def newest_first(runs):
    return sorted(runs, key=lambda s: (s["started"], s["run_id"]), reverse=True)


def test_ls_thirty_runs_newest_first(ctx):
    p = mayfly("ls", "s3://%s/results/" % BUCKET, env=ctx["cloud"].admin_env())
    check(p.returncode == 0, out(p))
    lines = p.stdout.decode().splitlines()
    check(len(lines) == 31 and lines[0].split()[:3] == ["NAME", "RUN", "ID"], "\n".join(lines[:3]))
    want = newest_first(ctx["runs"])
    for line, st in zip(lines[1:], want):
        f = line.split()
        check(f[0] == st["name"] and f[1] == st["run_id"] and f[2] == st["outcome"], "%r vs %s" % (line, st["run_id"]))
        check(" ".join(f[3:5]) == time.strftime("%Y-%m-%d %H:%MZ", time.strptime(st["started"], "%Y-%m-%dT%H:%M:%SZ")),
              line)
        cost = st.get("cost")
        want_cost = "-" if cost is None else "?" if "total" not in cost else \
            ("$%.2f" % cost["total"] if cost["total"] >= 1 else "$%.4f" % cost["total"])
        check(f[-1] == want_cost, "%r: cost %s, want %s" % (line, f[-1], want_cost))
        if st["outcome"] == "running":
            check(f[5].endswith("+"), "a running run's duration goes on: %r" % line)
    for o in OUTCOMES + ["running"]:
        n = sum(1 for st in ctx["runs"] if st["outcome"] == o)
        check(sum(1 for line in lines[1:] if line.split()[2] == o) == n, "%s: not %d lines" % (o, n))


def test_ls_json_and_prefixes(ctx):
    env = ctx["cloud"].admin_env()
    p = mayfly("ls", "s3://%s/results/" % BUCKET, "--json", env=env)
    check(p.returncode == 0, out(p))
    rows = json.loads(p.stdout)
    want = newest_first(ctx["runs"])
    check([r["run_id"] for r in rows] == [s["run_id"] for s in want], "order")
    by_id = {s["run_id"]: s for s in ctx["runs"]}
    for r in rows:
        s = by_id[r["run_id"]]
        check(r["name"] == s["name"] and r["outcome"] == s["outcome"] and r["started"] == s["started"] and
              r["results"] == s["results"], json.dumps(r))
        if s["outcome"] != "running":
            d = int(time.mktime(time.strptime(s["updated"], "%Y-%m-%dT%H:%M:%SZ")) -
                    time.mktime(time.strptime(s["started"], "%Y-%m-%dT%H:%M:%SZ")))
            check(r["duration_seconds"] == d, json.dumps(r))
        c = s.get("cost") or {}
        check(r["cost"] == c.get("total") and r.get("cost_unknown") == c.get("total_unknown"), json.dumps(r))
    # a job's prefix: its runs only (its sources/ folder is no run); a run's prefix: that run
    p = mayfly("ls", "s3://%s/results/bert" % BUCKET, "--json", env=env)
    rows = json.loads(p.stdout)
    check(p.returncode == 0 and len(rows) == 10 and {r["name"] for r in rows} == {"bert"}, out(p))
    p = mayfly("ls", "s3://%s/results/resnet/" % BUCKET, "--json", env=env)
    check(p.returncode == 0 and len(json.loads(p.stdout)) == 10, out(p))
    one = want[0]
    p = mayfly("ls", one["results"], env=env)
    check(p.returncode == 0 and len(p.stdout.decode().splitlines()) == 2 and one["run_id"] in out(p), out(p))
    p = mayfly("ls", "s3://%s/nothing-here/" % BUCKET, env=env)
    check(p.returncode == 0 and "no runs under" in out(p) and not p.stdout, out(p))
    p = mayfly("ls", "s3://%s/nothing-here/" % BUCKET, "--json", env=env)
    check(p.returncode == 0 and json.loads(p.stdout) == [], out(p))
    p = mayfly("ls", env=env)
    check(p.returncode == 2, out(p))
