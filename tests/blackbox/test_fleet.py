# SPDX-License-Identifier: Apache-2.0
"""Runs that outlive their instance, through the instance simulator (every instance moto starts boots the agent from
its user-data): `mayfly launch --spot --recover` makes a group of one; spot notices take its instances and the group's
replacements go on with the run from the ledger in S3 and each experiment's checkpoint; the instance that ends the
run deletes the group and its template; an instance booting into a finished run does nothing; two instances on one
run never run an experiment at once; --max-attempts; 409 and 412 on lease writes; a run lost without a word."""
import base64
import calendar
import json
import re
import time

from fleetlib import (BUCKET, TTL, agent_log, faults, fired, job, launch, leftovers, lines, running_of, start_cloud,
                      step_of, the_run, wait_instance_line as wait_line, wait_no_leftovers, wait_over)
from harness import check, mayfly, out


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
        c.spot(i1, in_s=12)
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
        c.spot(i2, in_s=12)
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


def test_an_instance_booting_into_a_finished_run_does_nothing_and_tears_down():
    c = start_cloud()
    try:
        j = job("over", [{"name": "a", "command": ["./counter.sh", "4", "0.3"]}], lease_ttl=TTL)
        # the instance that ends the run can neither leave nor delete the group (one refusal each): it ends itself,
        # and the group replaces it, as it would after a crash between the end record and the teardown
        faults(c, {"service": "autoscaling", "action": "DetachInstances", "status": 400, "code": "ValidationError",
                   "message": "injected", "count": 1},
               {"service": "autoscaling", "action": "DeleteAutoScalingGroup", "status": 400,
                "code": "ValidationError", "message": "injected", "count": 1})
        run_id, _ = launch(c, j, "--recover")
        r = the_run(c, "over", run_id)
        st = wait_over(c, r, 120)
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        got = c.wait_instances(lambda l: len(l) >= 2 and all(i["state"] == "terminated" for i in l), 150,
                               what="the replacement ends")
        check(len(got) == 2, "more than one replacement: %s" % [i["instance_id"] for i in got])
        check([f[2] for f in fired(c)] == [1, 1], "the leave's and the teardown's refusals: %r" % fired(c))
        i1, i2 = got
        check(any(l.startswith("a done") for l in lines(i1)), "instance 1 did not run a: %r" % lines(i1))
        check(lines(i2) == [], "the replacement ran work in a finished run: %r" % lines(i2))
        check(i2["boots"] == 1 and i2["state"] == "terminated", json.dumps(i2))
        check("is over" in agent_log(i2), agent_log(i2)[-1500:])
        check([f for f in fired(c) if f[2] != 1] == [], "the faults did not fire: %r" % fired(c))
        wait_no_leftovers(c, run_id)
        check(r.status()["outcome"] == "succeeded", "the replacement rewrote the run's status: %r" % r.status())
    finally:
        c.__exit__(None, None, None)


def test_two_instances_on_one_run_never_run_an_experiment_at_once():
    c = start_cloud()
    try:
        exps = [{"name": n, "command": ["./counter.sh", "6", "0.3"]} for n in ("a", "b", "c", "d")]
        run_id, _ = launch(c, job("twice", exps, lease_ttl=TTL), "--recover")
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1, 90, what="instance 1")]
        wait_line(c, i1, r"^a attempt=1", 90, "a starts on instance 1")
        # a second instance on the same run, out of the group (a racing replacement): the group's own user-data
        ec2 = c.boto("ec2")
        lt = ec2.describe_launch_templates()["LaunchTemplates"][0]
        data = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])[
            "LaunchTemplateVersions"][0]["LaunchTemplateData"]
        ec2.run_instances(ImageId=c.info["ami_id"], InstanceType="g5.xlarge", MinCount=1, MaxCount=1,
                          UserData=base64.b64decode(data["UserData"]).decode(), IamInstanceProfile={"Name": c.info["role"]})
        r = the_run(c, "twice", run_id)
        st = wait_over(c, r, 180)
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        got = c.wait_instances(lambda l: len(l) >= 2 and not running_of(l), 120, what="both instances end")
        check(len(got) == 2, [i["instance_id"] for i in got])
        spans = {}
        for inst in got:
            open_at = {}
            for l in lines(inst):
                m = re.match(r"^(\w) (?:attempt=\d+ .*|done) at=([\d.]+)$", l)
                if not m:
                    continue
                name, t = m.group(1), float(m.group(2))
                if " attempt=" in l:
                    open_at[name] = t
                else:
                    spans.setdefault(name, []).append((open_at.pop(name), t, inst["instance_id"]))
        check(sorted(spans) == ["a", "b", "c", "d"] and all(len(v) == 1 for v in spans.values()),
              "each experiment ran once in all: %r" % spans)
        starts = sum(1 for inst in got for l in lines(inst) if " attempt=" in l)
        check(starts == 4, "an experiment started twice: %r" % [lines(i) for i in got])
        check("held by another instance" in agent_log(got[0]) + agent_log(got[1]), "nobody waited")
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)


def test_max_attempts_spent_ends_the_run_interrupted_and_the_group_goes():
    c = start_cloud()
    try:
        j = job("tries", [{"name": "a", "command": ["./counter.sh", "200", "0.3"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--spot", "--recover", "--max-attempts", "2")
        seen = []
        for n in (1, 2):
            got = c.wait_instances(lambda l: len(l) >= n and any(i["instance_id"] not in seen for i in l), 120,
                                   what="instance %d" % n)
            iid = [i["instance_id"] for i in got if i["instance_id"] not in seen][0]
            seen.append(iid)
            wait_line(c, iid, r"^a attempt=%d resume=%d" % (n, n > 1), 120, "a attempt %d" % n)
            c.spot(iid, in_s=12)
        r = the_run(c, "tries", run_id)
        st = wait_over(c, r, 180)
        check(st and st["outcome"] == "interrupted", json.dumps(st))
        check(st["experiments"][0]["attempts"] == 2, json.dumps(st["experiments"]))
        got = c.wait_instances(lambda l: len(l) >= 3 and not running_of(l), 120, what="instance 3 ends")
        check(len(got) == 3, [i["instance_id"] for i in got])
        check(lines(got[2]) == [], "a third attempt ran: %r" % lines(got[2]))
        check("max_attempts" in agent_log(got[2]), agent_log(got[2])[-1500:])
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)


def test_409_and_412_on_lease_writes_are_never_ownership():
    c = start_cloud()
    try:
        faults(c, {"method": "PUT", "path_contains": "/ledger/lease/", "status": 409,
                   "code": "ConditionalRequestConflict", "message": "injected", "count": 1},
               {"method": "PUT", "path_contains": "/ledger/lease/", "status": 412, "code": "PreconditionFailed",
                "message": "injected", "count": 1})
        j = job("cas", [{"name": "a", "command": ["./counter.sh", "16", "0.5"]}], lease_ttl=TTL)
        run_id, _ = launch(c, j, "--recover")
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1, 90, what="instance 1")]
        c.wait_instance(i1, lambda i: step_of(i) >= 3, 90, "a counts")
        check([f[2] for f in fired(c)] == [1, 1], "the claim's faults: %r" % fired(c))
        # and on renewals while it runs: a 409 (retried) then a 412 whose write did not happen (read back: ours)
        faults(c, {"method": "PUT", "path_contains": "/ledger/lease/", "status": 409,
                   "code": "ConditionalRequestConflict", "message": "injected", "count": 1},
               {"method": "PUT", "path_contains": "/ledger/lease/", "status": 412, "code": "PreconditionFailed",
                "message": "injected", "count": 1})
        r = the_run(c, "cas", run_id)
        st = wait_over(c, r, 120)
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        check([f[2] for f in fired(c)] == [1, 1, 1, 1], "the renewals' faults: %r" % fired(c))
        inst = c.instance(i1)
        starts = [l for l in lines(inst) if " attempt=" in l]
        check(len(starts) == 1 and starts[0].startswith("a attempt=1 "), "started before owning it: %r" % starts)
        check(st["experiments"][0]["attempts"] == 1, json.dumps(st["experiments"]))
        check(r.get("outputs/outputs/a.txt") == b"a finished at step 16\n", r.get("outputs/outputs/a.txt"))
        check(len(c.instances()) == 1, "a replacement came: %r" % [i["instance_id"] for i in c.instances()])
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)


def test_an_instance_lost_without_a_word_shows_as_lost():
    ttl = 5  # the least lease_ttl: LOST after 15 s without a heartbeat
    c = start_cloud()
    try:
        j = job("lost", [{"name": "a", "command": ["./counter.sh", "400", "0.5"]}], lease_ttl=ttl)
        run_id, _ = launch(c, j)  # RunInstances: no group to replace it
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1, 90, what="instance 1")]
        c.wait_instance(i1, lambda i: step_of(i) >= 2, 90, "a counts")
        uri = "s3://%s/results/lost/%s/" % (BUCKET, run_id)
        deadline = time.time() + 30
        while True:
            p = mayfly("status", uri, env=c.admin_env())
            if p.returncode == 0 and "alive:" in p.stdout.decode() or time.time() > deadline:
                break
            time.sleep(1)
        check(p.returncode == 0 and re.search(r"^alive:\s+last heartbeat \d+s ago .*%s" % i1, p.stdout.decode(), re.M),
              out(p))
        c.kill(i1)
        killed = time.time()
        c.wait_instance(i1, lambda i: i["state"] == "terminated", 60, "the instance is gone")
        deadline = killed + ttl * 3 + 30
        while True:
            p = mayfly("status", uri, env=c.admin_env())
            if "LOST:" in p.stdout.decode() or time.time() > deadline:
                break
            time.sleep(1)
        text = p.stdout.decode()
        m = re.search(r"^LOST:\s+no instance has beaten the run's heartbeat since (\S+) \((\d+) instances? seen\)",
                      text, re.M)
        check(p.returncode == 0 and m, out(p))
        beat = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ"))
        check(killed - ttl - 5 <= beat <= killed + 1, "the last heartbeat %s is not the instance's last (killed at %s)"
              % (m.group(1), time.strftime("%H:%M:%S", time.gmtime(killed))))
        check(time.time() - beat >= ttl * 3 - 1, "called lost before ttl x 3: %.1f s" % (time.time() - beat))
        check(m.group(2) == "1" and "running" in text, text)
    finally:
        c.__exit__(None, None, None)


def test_holders_ec2_reports_gone_are_taken_over_at_once():
    """A sweep of three instances loses two without a word (kill -9 of everything, then terminated in EC2) in the
    middle of their experiments. The lease's TTL alone would keep those two waiting ttl x 3 (90 s here) after their
    last renewals; EC2 says their holders are terminated, so they are taken over at once, and the run ends within
    30 s of the surviving experiment's commit plus the orphans' own run time."""
    ttl, steps, dt = 30, 16, 0.5
    run_s = steps * dt
    c = start_cloud()
    try:
        names = ("a", "b", "c")
        j = job("gone", [{"name": n, "command": ["./counter.sh", str(steps), str(dt)]} for n in names], lease_ttl=ttl)
        run_id, _ = launch(c, j, "--recover", "--instances", "3")
        r = the_run(c, "gone", run_id)
        insts = c.wait_instances(lambda l: len(running_of(l)) == 3 and all(step_of(i) >= 3 for i in running_of(l)),
                                 120, what="the three experiments count")
        victims, survivor = insts[:2], insts[2]
        orphans = [[l.split()[0] for l in lines(v) if " attempt=1 " in l][0] for v in victims]
        mine = [l.split()[0] for l in lines(survivor) if " attempt=1 " in l][0]
        for v in victims:
            c.kill(v["instance_id"])
        killed = time.time()
        st = wait_over(c, r, 240)
        ended = time.time()
        check(st and st["outcome"] == "succeeded", json.dumps(st)[:2000])
        done = [l for l in lines(c.instance(survivor["instance_id"])) if l.startswith(mine + " done at=")]
        check(done, "the survivor's own experiment has no end: %r" % lines(c.instance(survivor["instance_id"])))
        committed = float(done[0].split("at=")[1])
        bound = 30 + len(orphans) * run_s
        check(ended - committed <= bound, "the run ended %.0f s after the survivor's commit (bound %.0f s: 30 s plus "
              "the orphans' own %.0f s each); killed %.0f s before that commit" % (
                  ended - committed, bound, run_s, committed - killed))
        for o in orphans:
            check(any(l.startswith(o + " attempt=2 ") for i in c.instances() for l in lines(i)), "%s never resumed" % o)
        logs = "".join(agent_log(i) for i in c.instances())
        check("is terminated: its experiment is taken over now" in logs or
              "is shutting-down: its experiment is taken over now" in logs, "no takeover line in the agents' logs")
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)
