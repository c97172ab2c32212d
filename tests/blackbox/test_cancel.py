# SPDX-License-Identifier: Apache-2.0
"""`mayfly cancel` through the instance simulator: a sweep cancelled mid-training (SIGTERM reaches every running
experiment, their checkpoints ship, nothing more starts, no replacement, every instance ends, the group and the
template go, outcome `cancelled` and by whom); a second cancel; a cancel while a replacement boots; a run that never
booted and a LOST run, ended from the laptop."""
import json
import re
import time

from fleetlib import BUCKET, TTL, job, launch, leftovers, lines, running_of, start_cloud, step_of, the_run, wait_no_leftovers
from harness import check, mayfly, out


def cancel(c, run_id, name, *args):
    return mayfly("cancel", "s3://%s/results/%s/%s/" % (BUCKET, name, run_id), *args, env=c.admin_env(), timeout=300)


def caller(c):
    return c.boto("sts").get_caller_identity()["Arn"]


def started_after(insts, t):
    """Experiment starts ('<name> attempt=N ... at=T') on any instance after time t."""
    got = []
    for i in insts:
        for l in lines(i):
            m = re.match(r"^(\S+) attempt=\d+ .* at=([\d.]+)$", l)
            if m and float(m.group(2)) > t:
                got.append((i["instance_id"], l))
    return got


def test_cancel_a_sweep_mid_training():
    c = start_cloud()
    try:
        names = ["e%d" % k for k in range(1, 5)]
        j = job("cx", [{"name": n, "command": ["./counter.sh", "400", "0.5"]} for n in names], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--spot", "--recover", "--instances", "2")
        insts = c.wait_instances(lambda l: len(running_of(l)) == 2 and all(step_of(i) >= 3 for i in running_of(l)),
                                 120, what="both instances train")
        ids = [i["instance_id"] for i in insts]
        t0 = time.time()
        p = cancel(c, run_id, "cx")
        check(p.returncode == 0 and "cancel requested" in out(p), out(p))
        # every instance ends within 90 s; no replacement boots
        got = c.wait_instances(lambda l: all(i["state"] == "terminated" for i in l), 90, what="every instance ends")
        check(sorted(i["instance_id"] for i in got) == sorted(ids), "a replacement came: %r" %
              [i["instance_id"] for i in got])
        r = the_run(c, "cx", run_id)
        st = r.status()
        check(st["outcome"] == "cancelled" and st.get("cancelled_by") == caller(c), json.dumps(st)[:1500])
        # SIGTERM reached both running experiments, and their checkpoints are in S3
        for i in got:
            stopped = [l for l in lines(i) if " stopped step=" in l]
            check(stopped, "%s: its experiment got no SIGTERM: %r" % (i["instance_id"], lines(i)))
            exp = stopped[0].split()[0]
            check(r.exists("checkpoint/%s/step" % exp), "%s's checkpoint is not in S3" % exp)
        check(started_after(got, t0) == [], "started after the cancel: %r" % started_after(got, t0))
        check(all(x["status"] != "running" for x in st["experiments"]), json.dumps(st["experiments"]))
        wait_no_leftovers(c, run_id)
        # a second cancel says so, exit 0
        p = cancel(c, run_id, "cx")
        check(p.returncode == 0 and "ended already: cancelled" in out(p), out(p))
    finally:
        c.__exit__(None, None, None)


def test_cancel_while_a_replacement_boots():
    c = start_cloud(boot_delay=8)
    try:
        j = job("cxr", [{"name": "a", "command": ["./counter.sh", "400", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--recover")
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1 and
                                                           step_of(running_of(l)[0]) >= 2, 120, what="a trains")]
        c.kill(i1)
        c.wait_instances(lambda l: any(i["state"] == "pending" for i in l), 60, what="the replacement is pending")
        p = cancel(c, run_id, "cxr", "--wait")
        check(p.returncode == 0, out(p))
        c.wait_instances(lambda l: all(i["state"] == "terminated" for i in l), 120, what="every instance ends")
        wait_no_leftovers(c, run_id)
        st = the_run(c, "cxr", run_id).status()
        check(st["outcome"] == "cancelled", json.dumps(st)[:1500])
    finally:
        c.__exit__(None, None, None)


def test_cancel_a_run_that_never_booted():
    c = start_cloud(boot_delay=600)
    try:
        j = job("cxn", [{"name": "a", "command": ["./counter.sh", "4", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--recover", "--instances", "2")
        c.wait_instances(lambda l: len(l) == 2, 60, what="two pending instances")
        p = cancel(c, run_id, "cxn")
        check(p.returncode == 0 and "deleted the Auto Scaling group" in out(p) and "nothing of it is left" in out(p),
              out(p))
        check(leftovers(c, run_id) == ([], [], []), "left in moto: %r" % (leftovers(c, run_id),))
        st = the_run(c, "cxn", run_id).status()
        check(st and st["outcome"] == "cancelled" and st["cancelled_by"] == caller(c), json.dumps(st))
        p = cancel(c, run_id, "cxn")
        check(p.returncode == 0 and "ended already" in out(p), out(p))
    finally:
        c.__exit__(None, None, None)


def test_cancel_a_lost_run():
    c = start_cloud()
    try:
        j = job("cxl", [{"name": "a", "command": ["./counter.sh", "400", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j)  # RunInstances: nothing replaces it
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1 and
                                                           step_of(running_of(l)[0]) >= 2, 120, what="a trains")]
        c.kill(i1)
        time.sleep(TTL * 3 + 2)  # no heartbeat for ttl x 3: LOST
        p = mayfly("status", "s3://%s/results/cxl/%s/" % (BUCKET, run_id), env=c.admin_env())
        check("LOST" in out(p), out(p))
        p = cancel(c, run_id, "cxl")
        check(p.returncode == 0 and "nothing of it is left" in out(p), out(p))
        check(leftovers(c, run_id) == ([], [], []), "left in moto: %r" % (leftovers(c, run_id),))
        st = the_run(c, "cxl", run_id).status()
        check(st["outcome"] == "cancelled" and st["reason"] == "cancelled", json.dumps(st)[:1500])
    finally:
        c.__exit__(None, None, None)


def test_cancel_of_nothing_is_not_found():
    c = start_cloud()
    try:
        p = mayfly("cancel", "s3://%s/results/none/r-1/" % BUCKET, env=c.admin_env())
        check(p.returncode == 3 and "no run under" in out(p), out(p))
        p = mayfly("cancel", env=c.admin_env())
        check(p.returncode == 2, out(p))
    finally:
        c.__exit__(None, None, None)


def test_status_right_after_launch_before_any_status():
    """launch.json makes a run visible before its first instance reports: `status` says launched, by whom, the
    group and its pending instances (exit 0), rather than `no run`."""
    c = start_cloud(boot_delay=600)
    try:
        j = job("early", [{"name": "a", "command": ["./counter.sh", "4", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--recover")
        c.wait_instances(lambda l: len(l) == 1, 60, what="a pending instance")
        uri = "s3://%s/results/early/%s/" % (BUCKET, run_id)
        p = mayfly("status", uri, env=c.admin_env())
        text = out(p)
        check(p.returncode == 0 and "launched, waiting for its first status" in text, text)
        check("group:    mayfly-%s" % run_id in text and re.search(r"instance: i-\S+ (pending|running)", text), text)
        check(caller(c) in text, "launched by whom: " + text)
        launched = json.loads(the_run(c, "early", run_id).get("launch.json"))
        check(launched["run_id"] == run_id and launched["group"] == "mayfly-" + run_id and
              launched["instance_types"] == ["g5.xlarge"], json.dumps(launched))
        p = cancel(c, run_id, "early")
        check(p.returncode == 0, out(p))
    finally:
        c.__exit__(None, None, None)
