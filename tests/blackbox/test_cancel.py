# SPDX-License-Identifier: Apache-2.0
"""`mayfly cancel` through the instance simulator: a sweep cancelled mid-training (SIGTERM reaches every running
experiment, their checkpoints ship, nothing more starts, no replacement, every instance ends, the group and the
template go, outcome `cancelled` and by whom); a second cancel; a cancel while a replacement boots; a run that never
booted and a LOST run, ended from the laptop."""
import json
import re
import time

from fleetlib import (BUCKET, TTL, job, launch, leftovers, lines, running_of, start_cloud, step_of, the_run,
                      wait_no_leftovers, wait_over)
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
        report = r.get("report.html").decode()
        check("<th>cancelled by</th><td>%s</td>" % caller(c) in report, "report.html does not say who cancelled")
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
    c = start_cloud(boot_delay=5)
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
    ttl = 5  # the least lease_ttl: LOST after 15 s without a heartbeat
    c = start_cloud()
    try:
        j = job("cxl", [{"name": "a", "command": ["./counter.sh", "400", "0.5"]}], lease_ttl=ttl)
        run_id, _ = launch(c, j)  # RunInstances: nothing replaces it
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1 and
                                                           step_of(running_of(l)[0]) >= 2, 120, what="a trains")]
        c.kill(i1)
        deadline = time.time() + ttl * 3 + 2  # no heartbeat for ttl x 3: LOST (by then at the latest)
        while True:
            p = mayfly("status", "s3://%s/results/cxl/%s/" % (BUCKET, run_id), env=c.admin_env())
            if "LOST" in out(p) or time.time() > deadline:
                break
            time.sleep(1)
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


def test_a_lost_run_relaunched_with_its_run_id_goes_on():
    """A run whose only instance was lost (no group to replace it) is launched again with --run-id: the finished
    experiment is not run again, the interrupted one resumes from its checkpoint, the run succeeds; a run that has
    ended cannot be continued."""
    c = start_cloud()
    try:
        j = job("relaunch", [{"name": "a", "command": ["./counter.sh", "2", "0.2"]},
                             {"name": "b", "command": ["./counter.sh", "30", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j)
        [i1] = [i["instance_id"] for i in c.wait_instances(
            lambda l: len(running_of(l)) == 1 and any(x.startswith("b attempt=1") for x in lines(running_of(l)[0]))
            and step_of(running_of(l)[0]) >= 3, 120, what="a done, b training")]
        r = the_run(c, "relaunch", run_id)
        deadline = time.time() + 60
        while time.time() < deadline and not r.exists("checkpoint/b/step"):  # synced every 10 s
            time.sleep(0.5)
        check(r.exists("checkpoint/b/step"), "b's checkpoint never reached S3")
        c.kill(i1)
        c.wait_instance(i1, lambda i: i["state"] == "terminated", 60, "the instance is gone")
        run2, _ = launch(c, j, "--run-id", run_id)
        check(run2 == run_id, "launched %s, not %s" % (run2, run_id))
        st = wait_over(c, r, 180)
        check(st and st["outcome"] == "succeeded", json.dumps(st)[:1500])
        i2 = [i for i in c.instances() if i["instance_id"] != i1 and i["instance_id"] != c.info["instance_id"]]
        check(len(i2) == 1, "instances: %r" % [i["instance_id"] for i in c.instances()])
        l2 = lines(i2[0])
        check(not any(x.startswith("a attempt=") for x in l2), "a ran again: %r" % l2)
        b2 = [x for x in l2 if x.startswith("b attempt=")]
        check(b2 and b2[0].startswith("b attempt=2 resume=1") and "from=0" not in b2[0], "b did not resume: %r" % l2)
        # ended: a continuation is refused, and nothing is launched
        before = len(c.instances())
        d = c.dir + "/relaunch-job.json"
        with open(d, "w") as f:
            json.dump(j, f)
        p = mayfly("launch", d, "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge",
                   "--iam-instance-profile", c.info["role"], "--install", "preinstalled", "--run-id", run_id,
                   env=c.admin_env())
        check(p.returncode == 2 and "has ended (succeeded)" in out(p), out(p))
        check(len(c.instances()) == before, "an instance was launched for an ended run")
    finally:
        c.__exit__(None, None, None)


def test_relaunch_replaces_the_runs_leftover_group():
    c = start_cloud()
    try:
        j = job("leftover", [{"name": "a", "command": ["./counter.sh", "6", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--recover")
        c.wait_instances(lambda l: len(running_of(l)) == 1, 60, what="the first instance")
        d = c.dir + "/leftover-job.json"
        with open(d, "w") as f:
            json.dump(j, f)
        p = mayfly("launch", d, "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge", "--recover",
                   "--iam-instance-profile", c.info["role"], "--install", "preinstalled", "--run-id", run_id,
                   env=c.admin_env())
        check(p.returncode == 0 and "replaced the run's leftover Auto Scaling group mayfly-" + run_id in out(p) and
              "replaced the run's leftover launch template" in out(p), out(p))
        st = wait_over(c, the_run(c, "leftover", run_id), 180)
        check(st and st["outcome"] == "succeeded", json.dumps(st)[:1500])
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)


def test_status_shows_why_an_instance_ended_without_a_status():
    """An instance that cannot reach its role's credentials (IMDS out of its reach, as with a missing instance
    profile) ends without ever writing a status: `status` shows it ended, and the last lines of its console, where
    the agent said why."""
    c = start_cloud()
    try:
        c.boot_env({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"})
        j = job("noimds", [{"name": "a", "command": ["./counter.sh", "4", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j)
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: l and all(i["state"] == "terminated" for i in l),
                                                           120, what="the instance ends")]
        p = mayfly("status", "s3://%s/results/noimds/%s/" % (BUCKET, run_id), env=c.admin_env())
        text = out(p)
        check(p.returncode == 0 and "instance: %s terminated" % i1 in text, text)
        check("it ended without a status; from its console:" in text, text)
        check(re.search(r"\| .*(no instance role|IMDS http://127.0.0.1:9 unreachable)", text), text)
    finally:
        c.__exit__(None, None, None)


def test_status_shows_a_group_that_cannot_launch_and_the_run_starts_once_it_can():
    """EC2 has no capacity of the run's type: the group's launch fails (no instance), `status` says so with EC2's own
    words from the group's scaling activities; once there is capacity again the group's next try launches the
    instance and the run goes through."""
    c = start_cloud()
    try:
        c.control("PUT", "/sim/capacity", {"none": ["g5.xlarge"]})
        j = job("nocap", [{"name": "a", "command": ["./counter.sh", "4", "0.2"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--recover")
        uri = "s3://%s/results/nocap/%s/" % (BUCKET, run_id)
        deadline, text = time.time() + 60, ""
        while time.time() < deadline and not re.search(r"Failed: We currently .* \(\d+ times", text):
            time.sleep(1)
            p = mayfly("status", uri, env=c.admin_env())
            text = out(p)
        check(p.returncode == 0 and "group:    mayfly-" in text and "instances: none yet" in text, text)
        check(re.search(r"^activity: \S+ Failed: We currently do not have sufficient g5\.xlarge capacity in the "
                        r"Availability Zone you requested.* \((\d+) times( or more)?\)$", text, re.M), text)
        check(text.count("activity:") == 1, "the same failure is said once: " + text)
        check(c.boto("ec2").describe_instances(Filters=[{"Name": "tag:mayfly:run-id", "Values": [run_id]}])
              ["Reservations"] == [], "a launch that failed left an instance")
        c.control("PUT", "/sim/capacity", {"none": []})
        st = wait_over(c, the_run(c, "nocap", run_id), 180)
        check(st["outcome"] == "succeeded", json.dumps(st)[:1500])
        acts = c.boto("autoscaling").describe_scaling_activities(AutoScalingGroupName="mayfly-" + run_id)["Activities"]
        check(any(a["StatusCode"] == "Successful" and a["Description"].startswith("Launching a new EC2 instance: i-")
                  for a in acts), repr(acts))
    finally:
        c.__exit__(None, None, None)
