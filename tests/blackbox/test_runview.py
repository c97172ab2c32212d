# SPDX-License-Identifier: Apache-2.0
"""A run as the laptop sees it, across every instance it used (through the instance simulator): a `--spot --recover`
run that loses two instances to spot notices has all three in status.json's cost (the total their sum), in
report.html's timeline (both notices marked) and in `mayfly ls`' duration; `mayfly logs --follow` started right
after `launch`, before any status.json, prints both experiments' stdout and stderr across the three instances with
attempt markers and returns by itself with the run's exit code (0, and 6 for a run that failed)."""
import json
import re
import subprocess
import time

from fleetlib import (BUCKET, SCRIPTS, TTL, job, launch, lines, running_of, start_cloud, step_of, the_run,
                      wait_instance_line as wait_line, wait_over)
from harness import MAYFLY, check, mayfly, out

# counter.sh that also says something on stderr at every step
TALK = SCRIPTS["counter.sh"].replace('echo "step $step"; sleep', 'echo "step $step"; echo "warn $step" >&2; sleep')


def uri(name, run_id):
    return "s3://%s/results/%s/%s/" % (BUCKET, name, run_id)


def follow(c, name, run_id, *args):
    return subprocess.Popen([MAYFLY, "logs", uri(name, run_id), "--follow", *args], env=c.admin_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_three_instances_two_notices_counted_drawn_and_followed():
    c = start_cloud(scripts={"talk.sh": TALK})
    try:
        j = job("view", [{"name": "a", "command": ["./talk.sh", "30", "0.5"]},
                         {"name": "b", "command": ["./talk.sh", "30", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--spot", "--recover")
        t_launched = time.time()
        logs = follow(c, "view", run_id)  # before any status.json
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1, 90, what="instance 1")]
        inst1 = wait_line(c, i1, r"^a attempt=1 resume=0", 90, "a starts on instance 1")
        t_first = float(re.search(r" at=([\d.]+)$", [l for l in lines(inst1) if l.startswith("a attempt=1")][0]).group(1))
        c.wait_instance(i1, lambda i: step_of(i) >= 6, 60, "a counts on instance 1")
        c.spot(i1, in_s=12)
        got = c.wait_instances(lambda l: len(l) >= 2, 120, what="a replacement")
        i2 = [i["instance_id"] for i in got if i["instance_id"] != i1][0]
        wait_line(c, i2, r"^b attempt=1 resume=0", 180, "b starts on instance 2")
        c.wait_instance(i2, lambda i: step_of(i) >= 4, 60, "b counts on instance 2")
        c.spot(i2, in_s=12)
        got = c.wait_instances(lambda l: len(l) >= 3, 120, what="a second replacement")
        i3 = [i["instance_id"] for i in got if i["instance_id"] not in (i1, i2)][0]
        wait_line(c, i3, r"^b attempt=2 resume=1", 120, "b resumes on instance 3")
        r = the_run(c, "view", run_id)
        st = wait_over(c, r, 180)
        check(st and st["outcome"] == "succeeded", json.dumps(st)[:2000])
        # every instance counts: all three in the cost, the total their sum, both notices
        cost = st["cost"]
        ids = [x["id"] for x in cost["instances"]]
        check(sorted(ids) == sorted([i1, i2, i3]), "cost lists %r, not the run's three instances" % ids)
        check(abs(cost["total"] - sum(x["cost"] for x in cost["instances"])) < 1e-5, json.dumps(cost))
        state = {x["id"]: x.get("state") for x in cost["instances"]}
        check(state == {i1: "interrupted", i2: "interrupted", i3: "gone"}, "states: %r" % state)
        check(all(x["seconds"] > 0 for x in cost["instances"]), json.dumps(cost))
        hist = {x["name"]: x.get("history", []) for x in st["experiments"]}
        check([(h["attempt"], h["instance"]) for h in hist["a"]] == [(1, i1), (2, i2)], json.dumps(hist))
        check([(h["attempt"], h["instance"]) for h in hist["b"]] == [(1, i2), (2, i3)], json.dumps(hist))
        # the run began with instance 1 (before its first experiment), not with the instance that ended it
        t_end = time.time()
        p = mayfly("ls", "s3://%s/results/" % BUCKET, "--json", env=c.admin_env())
        check(p.returncode == 0, out(p))
        [row] = [x for x in json.loads(p.stdout) if x["run_id"] == run_id]
        real = calendar_seconds(st["updated"]) - t_first
        check(row["duration_seconds"] >= real - 1, "ls says %ss for a run of at least %.0fs" %
              (row["duration_seconds"], real))
        check(row["duration_seconds"] <= t_end - t_launched + 120, "ls says %ss" % row["duration_seconds"])
        # report.html: every instance a lane, both notices marked
        page = r.get("report.html").decode()
        for i in (i1, i2, i3):
            check(i in page, "report.html does not name %s" % i)
        check(page.count('<g class="interrupt notice">') + page.count('id="interruption"') >= 2,
              "report.html does not mark both notices")
        # logs --follow: both experiments, both streams, all three instances' attempts, and it returned by itself
        try:
            o, e = logs.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            logs.kill()
            o, e = logs.communicate()
            check(False, "logs --follow did not return after the run ended: %s" % e.decode()[-2000:])
        text = o.decode()
        check(logs.returncode == 0, "logs --follow exited %d: %s" % (logs.returncode, e.decode()[-2000:]))
        for want in ("a | step 1", "b | step 1", "a ! warn 1", "b ! warn 1", "a | step 30",
                     "b | step 30", "a | -- attempt 2 on %s (resumed)" % i2, "b | -- attempt 2 on %s (resumed)" % i3):
            check(want in text, "logs --follow lacks %r:\n%s" % (want, text[-3000:]))
        a_lines = [l[4:] for l in text.splitlines() if l.startswith("a | ")]
        k = a_lines.index("-- attempt 2 on %s (resumed)" % i2)
        check(a_lines[k + 1].startswith("attempt 2 starts at step"), "the marker is not where attempt 2 begins: %r"
              % a_lines[k - 2:k + 3])
        steps = [int(m) for m in re.findall(r"^a \| step (\d+)$", text, re.M)]
        check(steps == sorted(steps) and steps[-1] == 30, "a's steps out of order: %r" % steps)
    finally:
        c.__exit__(None, None, None)


def calendar_seconds(iso):
    import calendar
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def test_logs_follow_of_a_failed_run_returns_6_and_an_unknown_experiment_is_an_error():
    c = start_cloud(scripts={"talk.sh": TALK})
    try:
        j = job("fails", [{"name": "a", "command": ["./talk.sh", "3", "0.3", "3"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--recover")
        logs = follow(c, "fails", run_id)
        try:
            o, e = logs.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            logs.kill()
            o, e = logs.communicate()
        check(logs.returncode == 6, "logs --follow of a failed run exited %s: %s" % (logs.returncode, e.decode()))
        text = o.decode()
        # one experiment: its lines as they are, stderr's too
        check("step 3" in text.splitlines() and "warn 3" in text.splitlines(), text)
        p = mayfly("logs", uri("fails", run_id), "--experiment", "nope", env=c.admin_env())
        check(p.returncode == 2 and "no experiment 'nope'" in out(p) and "its experiments: a" in out(p), out(p))
        p = mayfly("logs", uri("fails", run_id), "--tail", "2", "--stderr", env=c.admin_env())
        check(p.returncode == 0 and p.stdout.decode().splitlines() == ["warn 2", "warn 3"], out(p))
    finally:
        c.__exit__(None, None, None)
