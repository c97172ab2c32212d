# SPDX-License-Identifier: Apache-2.0
"""The instance simulator (tests/fakes/instances.py) with today's agent: every instance moto starts boots the real
binary with the job its user-data (`mayfly userdata`) writes, on a root volume of its own, behind an IMDS of its own.
RunInstances runs a job to `succeeded` and the agent's TerminateInstances ends it; an Auto Scaling group's replacement
boots on a fresh root with a new id; a hardware loss SIGKILLs every process at once; a spot notice reaches one
instance alone and is acted on at its time; a stop and start boots the same root again."""
import base64
import json
import os
import socket
import time

import boto3

import fleetlib
import harness
from harness import RUN_USER, RunResults, check

BUCKET = "mayfly-test"
SCRIPTS = {
    "ok.sh": """#!/bin/sh
echo "hello from $MAYFLY_EXPERIMENT"
mkdir -p outputs && echo "result of $MAYFLY_EXPERIMENT" > "outputs/$MAYFLY_EXPERIMENT.txt"
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
""",
    "long.sh": """#!/bin/sh
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
sleep "${1:-60}"
echo finished
""",
    "spot.sh": """#!/bin/bash
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
trap 'echo "got SIGTERM"; exit 143' TERM
while true; do sleep 0.2; done
""",
}


def start_cloud(**kw):
    return fleetlib.start_cloud(scripts=SCRIPTS, key="src/exp.tar.gz", **kw)


def job(name, experiments, **extra):
    j = {"name": name, "source": "s3://%s/src/exp.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
         "user": RUN_USER, "log_interval": 2, "experiments": experiments}
    j.update(extra)
    return j


def run_instances(c, user_data, count=1, **kw):
    args = dict(ImageId=c.info["ami_id"], InstanceType="g5.xlarge", MinCount=count, MaxCount=count,
                UserData=user_data.decode(), IamInstanceProfile={"Name": c.info["role"]},
                InstanceInitiatedShutdownBehavior="terminate", InstanceMarketOptions={"MarketType": "spot"},
                Placement={"AvailabilityZone": c.info["region"] + "a"})
    args.update(kw)
    return [i["InstanceId"] for i in c.boto("ec2").run_instances(**args)["Instances"]]


def ec2_state(c, iid):
    i = c.boto("ec2").describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    return i["State"]["Name"], (i.get("StateReason") or {}).get("Code")


def workdir_lines(inst, name="runs.txt"):
    if not inst["root"]:  # not booted yet
        return []
    p = os.path.join(inst["root"], "state", "work", name)
    return open(p).read().splitlines() if os.path.exists(p) else []


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def procs_under(root):
    """Live processes whose current directory or executable lies under root (the agent runs from /, its
    experiments from the workdir) or whose environment names the root."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or not alive(int(name)):
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % name)
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if cwd.startswith(root + "/") or cwd == root or ("STATE_DIRECTORY=%s/state" % root).encode() in env:
            out.append(int(name))
    return out


def wait_for(what, fn, timeout=30, interval=0.3):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError("%s: not within %ds" % (what, timeout))
        time.sleep(interval)


def test_run_instances_boots_the_user_data_job_and_its_terminate_ends_it():
    c = start_cloud(extra_env={"MAYFLY_SIM_EXTRA": "for-every-agent"})
    try:
        j = job("sima", [{"name": "a", "command": "./ok.sh"}], outputs=["outputs/*"])
        ud = c.userdata(j, "--env", "MAYFLY_SIM_MARK=from-the-env-file")
        [iid] = run_instances(c, ud, TagSpecifications=[{"ResourceType": "instance",
                                                         "Tags": [{"Key": "Name", "Value": "sim-a"}]}])
        inst = c.wait_instance(iid, lambda i: i["state"] == "terminated", timeout=60, what="the job ends the instance")
        check(inst["agent_exit_code"] == 0 and inst["agent_signal"] is None and not inst["agent_running"],
              "agent did not exit 0 by itself: %r" % inst)
        check(inst["ended_by"] == "TerminateInstances" and inst["boots"] == 1, repr(inst))
        check(ec2_state(c, iid)[0] == "terminated", ec2_state(c, iid))
        check(inst["imds_endpoint"] is None, "a terminated instance still has an IMDS: %r" % inst)
        runs = RunResults.find(c, results="results/sima/", instance_id=iid)
        check(len(runs) == 1, "want one run of %s: %r" % (iid, runs))
        st = runs[0].status()
        check(st["outcome"] == "succeeded" and st["run_id"].startswith(iid + "-"), json.dumps(st))
        check(st["instance"]["lifecycle"] == "spot" and st["instance"]["type"] == "g5.xlarge"
              and st["instance"]["availability_zone"] == c.info["region"] + "a", repr(st["instance"]))
        check("outputs/outputs/a.txt" in runs[0].keys() and b"hello from a" in runs[0].get("logs/a/stdout.log"),
              repr(runs[0].keys()))
        # the root volume: what write_files wrote, the agent's state and its default workdir ($STATE_DIRECTORY/work)
        root = inst["root"]
        check(json.load(open(os.path.join(root, "etc/mayfly/job.json"))) == j, "job.json differs")
        check(open(os.path.join(root, "etc/mayfly/env")).read() == "MAYFLY_SIM_MARK=from-the-env-file\n", "env file")
        check(workdir_lines(inst) == ["a resume=0"], repr(workdir_lines(inst)))
        check(os.path.exists(os.path.join(root, "state", "work", "ok.sh")), "source not in $STATE_DIRECTORY/work")
        env = json.load(open(os.path.join(root, "console", "agent-env.json")))
        check(env["STATE_DIRECTORY"] == root + "/state" and env["LOGS_DIRECTORY"] == root + "/logs"
              and env["CACHE_DIRECTORY"] == root + "/cache", repr(env))
        check(env["MAYFLY_SIM_MARK"] == "from-the-env-file" and env["MAYFLY_SIM_EXTRA"] == "for-every-agent"
              and env["AWS_ENDPOINT_URL"] == c.endpoint and env["AWS_REGION"] == c.info["region"], repr(env))
        check(env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] != c.info["imds_endpoint"], "shares the default IMDS")
        check("terminate" in open(os.path.join(root, "console", "agent.stderr")).read(), "no exit action logged")
        check(c.info["instance_id"] not in [i["instance_id"] for i in c.instances()],
              "the fake cloud's own instance is simulated")
    finally:
        c.__exit__(None, None, None)


def test_autoscaling_replacement_boots_a_fresh_root_and_deleting_the_group_ends_all():
    c = start_cloud()
    try:
        ec2, asg = c.boto("ec2"), c.boto("autoscaling")
        ud = c.userdata(job("simb", [{"name": "long", "command": ["./long.sh", "120"]}]))
        ec2.create_launch_template(LaunchTemplateName="sim-lt", LaunchTemplateData={
            "ImageId": c.info["ami_id"], "InstanceType": "g5.xlarge", "UserData": base64.b64encode(ud).decode(),
            "IamInstanceProfile": {"Name": c.info["role"]}, "InstanceInitiatedShutdownBehavior": "terminate",
            "InstanceMarketOptions": {"MarketType": "spot"},
            "MetadataOptions": {"HttpTokens": "required", "InstanceMetadataTags": "enabled"},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "from-template", "Value": "yes"}]}]})
        asg.create_auto_scaling_group(AutoScalingGroupName="sim-group", LaunchTemplate={"LaunchTemplateName": "sim-lt"},
                                      MinSize=0, MaxSize=1, DesiredCapacity=1,
                                      AvailabilityZones=[c.info["region"] + "a"],
                                      Tags=[{"Key": "mayfly:run", "Value": "run-1", "PropagateAtLaunch": True}])
        got = c.wait_instances(lambda l: len(l) == 1 and workdir_lines(l[0]), timeout=60, what="the member runs")
        first = got[0]
        i1 = first["instance_id"]
        check(first["group"] == "sim-group" and first["agent_running"] and first["lifecycle"] == "spot", repr(first))
        # its IMDS: own id, tags (instance-metadata tags enabled in the template), lifecycle, user-data
        check(c.imds(i1, "meta-data/instance-id") == (200, i1.encode()), c.imds(i1, "meta-data/instance-id"))
        check(c.imds(i1, "meta-data/tags/instance/aws:autoscaling:groupName") == (200, b"sim-group"), "group tag")
        check(c.imds(i1, "meta-data/tags/instance/mayfly:run") == (200, b"run-1"), "propagated tag")
        check(c.imds(i1, "meta-data/tags/instance/from-template") == (200, b"yes"), "template tag")
        check(c.imds(i1, "meta-data/instance-life-cycle") == (200, b"spot"), "lifecycle")
        ip1 = c.imds(i1, "meta-data/local-ipv4")[1].decode()
        check(c.imds(i1, "user-data") == (200, ud), "user-data")
        check(c.imds(i1, "meta-data/spot/instance-action")[0] == 404, "a notice nobody sent")
        doc = json.loads(c.imds(i1, "dynamic/instance-identity/document")[1])
        check(doc["instanceId"] == i1 and doc["instanceType"] == "g5.xlarge", repr(doc))
        # its role (the template's instance profile) may see and end its group, as an agent ending a run will
        cr = json.loads(c.imds(i1, "meta-data/iam/security-credentials/" + c.info["role"])[1])
        role_asg = boto3.client("autoscaling", endpoint_url=c.endpoint, region_name=c.info["region"],
                                aws_access_key_id=cr["AccessKeyId"], aws_secret_access_key=cr["SecretAccessKey"],
                                aws_session_token=cr["Token"])
        groups = role_asg.describe_auto_scaling_groups()["AutoScalingGroups"]
        check([(g["AutoScalingGroupName"], [m["InstanceId"] for m in g["Instances"]]) for g in groups] ==
              [("sim-group", [i1])], repr(groups))

        ec2.terminate_instances(InstanceIds=[i1])  # through EC2: the group replaces it
        got = c.wait_instances(lambda l: len(l) == 2 and l[0]["state"] == "terminated" and workdir_lines(l[1]),
                               timeout=60, what="the replacement runs")
        old, new = got
        i2 = new["instance_id"]
        check(i2 != i1 and new["group"] == "sim-group" and new["boots"] == 1 and new["agent_running"], repr(new))
        check(new["root"] != old["root"] and os.path.isdir(old["root"]), "roots: %s %s" % (old["root"], new["root"]))
        check(workdir_lines(new) == ["long resume=0"], "replacement's workdir is not fresh: %r" % workdir_lines(new))
        check(old["agent_signal"] != 9 and not old["agent_running"] and old["ended_by"] == "TerminateInstances",
              "the agent was not stopped with SIGTERM within the grace: %r" % old)
        r1 = RunResults.find(c, results="results/simb/", instance_id=i1)
        check(len(r1) == 1 and r1[0].status()["outcome"] == "interrupted", "i1's run: %r" % [r.status() for r in r1])
        check(c.imds(i2, "meta-data/instance-id") == (200, i2.encode()), "replacement's IMDS")
        # each instance has a private IPv4 of its own on this worker's loopback /24 (issue 25: members really
        # connect), in local-ipv4 and the identity document, and the agent reports it in status.json
        net = "127.%d.1." % (10 + harness.WORKER)
        ip2 = c.imds(i2, "meta-data/local-ipv4")[1].decode()
        check(ip1.startswith(net) and ip2.startswith(net) and ip1 != ip2, "addresses: %s %s" % (ip1, ip2))
        doc2 = json.loads(c.imds(i2, "dynamic/instance-identity/document")[1])
        check(doc2["privateIp"] == ip2, repr(doc2))
        check(r1[0].status()["instance"].get("private_ip") == ip1, repr(r1[0].status()["instance"]))
        srv = socket.socket()
        srv.bind((ip2, 0))
        srv.listen(1)
        cli = socket.create_connection((ip2, srv.getsockname()[1]), timeout=5)
        cli.close()
        srv.close()

        asg.delete_auto_scaling_group(AutoScalingGroupName="sim-group", ForceDelete=True)
        got = c.wait_instances(lambda l: all(i["state"] == "terminated" and not i["agent_running"] for i in l),
                               timeout=30, what="no agent left")
        check(len(got) == 2, "another replacement after the group was deleted: %r" % [i["instance_id"] for i in got])
        check(asg.describe_auto_scaling_groups()["AutoScalingGroups"] == [], "group left")
        live = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
        live = [i["InstanceId"] for r in live["Reservations"] for i in r["Instances"]]
        check(live == [c.info["instance_id"]], "running instances left: %r" % live)
        check(not procs_under(old["root"]) and not procs_under(new["root"]), "processes left")
    finally:
        c.__exit__(None, None, None)


def test_kill_without_notice_sigkills_everything_at_once():
    c = start_cloud()
    try:
        [iid] = run_instances(c, c.userdata(job("simc", [{"name": "long", "command": ["./long.sh", "120"]}])))
        inst = c.wait_instance(iid, lambda i: workdir_lines(i), timeout=60, what="the experiment runs")
        root = inst["root"]
        before = procs_under(root)
        check(inst["agent_pid"] in before and len(before) >= 3, "agent + experiment (sh, sleep): %r" % before)
        t0 = time.time()
        r = c.kill(iid)
        took = time.time() - t0
        check(set(before) <= set(r["killed_pids"]), "not all killed: %r of %r" % (r["killed_pids"], before))
        left = [p for p in before if alive(p)]
        check(not left and not procs_under(root), "alive after the kill: %r" % left)
        check(took < 3, "kill took %.1fs" % took)
        check(ec2_state(c, iid) == ("terminated", "Server.InternalError"), ec2_state(c, iid))
        inst = c.instance(iid)
        check(inst["state"] == "terminated" and inst["agent_signal"] == 9 and "hardware" in inst["ended_by"], repr(inst))
        runs = RunResults.find(c, results="results/simc/", instance_id=iid)
        check(len(runs) == 1 and runs[0].status()["outcome"] == "running",
              "a killed agent shipped a final status: %r" % [x.status() for x in runs])
    finally:
        c.__exit__(None, None, None)


def test_spot_notice_reaches_one_instance_and_is_acted_on_at_its_time():
    c = start_cloud()
    try:
        j = job("simd", [{"name": "spot", "command": ["./spot.sh"]}])
        i1, i2 = run_instances(c, c.userdata(j), count=2)
        c.wait_instances(lambda l: len(l) == 2 and all(workdir_lines(i) for i in l), timeout=60,
                         what="both experiments run")
        notice = c.spot(i1, in_s=20)
        notice_at = time.time() + 20
        check(c.imds(i1, "meta-data/spot/instance-action")[0] == 200, "no notice on i1")
        check(json.loads(c.imds(i1, "meta-data/spot/instance-action")[1]) ==
              {"action": "terminate", "time": notice["time"]}, "notice body")
        check(c.imds(i2, "meta-data/spot/instance-action")[0] == 404, "the notice reached i2")

        def interrupted():
            runs = RunResults.find(c, results="results/simd/", instance_id=i1)
            st = runs[0].status() if runs else None
            return st if st and st["outcome"] == "interrupted" else None
        st = wait_for("i1's interrupted status", interrupted, timeout=18)
        check(time.time() < notice_at and ec2_state(c, i1)[0] == "running", "i1 ended before its notice time")
        check(st["interruption"]["action"] == "terminate" and st["experiments"][0]["reason"] == "interrupted",
              json.dumps(st))
        run1 = RunResults.find(c, results="results/simd/", instance_id=i1)[0]
        check(b"got SIGTERM" in run1.get("logs/spot/stdout.log"), "experiment did not get SIGTERM")
        [run2] = RunResults.find(c, results="results/simd/", instance_id=i2)
        check(run2.status()["outcome"] == "running" and c.instance(i2)["agent_running"], "i2 was disturbed")

        inst = c.wait_instance(i1, lambda i: i["state"] == "terminated", timeout=40, what="EC2 acts on the notice")
        check(time.time() >= notice_at - 1.5, "terminated %.1fs before the notice time" % (notice_at - time.time()))
        check(inst["ended_by"] == "spot interruption (terminate)" and inst["agent_signal"] != 9, repr(inst))
        check(ec2_state(c, i1) == ("terminated", "Server.SpotInstanceTermination"), ec2_state(c, i1))
        check(c.instance(i2)["state"] == "running" and c.instance(i2)["agent_running"], "i2 ended with i1")
        check(run2.status()["outcome"] == "running" and workdir_lines(c.instance(i2)) == ["spot resume=0"],
              "i2's experiment was touched")
    finally:
        c.__exit__(None, None, None)


def test_stop_then_start_boots_the_same_root_again():
    c = start_cloud()
    try:
        j = job("sime", [{"name": "long", "command": ["./long.sh", "4"]}, {"name": "after", "command": "./ok.sh"}],
                on_exit="poweroff")
        [iid] = run_instances(c, c.userdata(j))
        inst = c.wait_instance(iid, lambda i: workdir_lines(i), timeout=60, what="the experiment runs")
        c.boto("ec2").stop_instances(InstanceIds=[iid])
        inst = c.wait_instance(iid, lambda i: i["state"] == "stopped", timeout=30, what="stopped")
        check(not inst["agent_running"] and inst["agent_signal"] != 9 and os.path.isdir(inst["root"]), repr(inst))
        c.boto("ec2").start_instances(InstanceIds=[iid])
        inst = c.wait_instance(iid, lambda i: i["state"] == "terminated", timeout=60, what="resumed and ended")
        check(inst["boots"] == 2 and inst["ended_by"] == "OS power-off", repr(inst))
        check(ec2_state(c, iid) == ("terminated", "Client.InstanceInitiatedShutdown"), ec2_state(c, iid))
        check(workdir_lines(inst) == ["long resume=0", "long resume=1", "after resume=0"], repr(workdir_lines(inst)))
        err = open(os.path.join(inst["root"], "console", "agent.stderr")).read()
        check("resuming run" in err, err[-2000:])
        [run] = RunResults.find(c, results="results/sime/")
        st = run.status()
        check(st["outcome"] == "succeeded" and st["experiments"][0]["attempts"] == 2, json.dumps(st))
    finally:
        c.__exit__(None, None, None)


def _stderr(inst):
    p = os.path.join(inst["root"], "console", "agent.stderr")
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def test_a_crashed_agent_is_restarted_and_a_reboot_boots_the_root_again():
    c = start_cloud(restart_sec=1)
    try:
        [iid] = run_instances(c, c.userdata(job("simf", [{"name": "long", "command": ["./long.sh", "120"]}])))
        # the agent has saved the experiment as running (its "started" line comes after the save), not only
        # started it: a crash before the save restarts it afresh (resume=0), rightly
        inst = c.wait_instance(iid, lambda i: workdir_lines(i) and "experiment long started" in _stderr(i),
                               timeout=60, what="the experiment runs")
        os.kill(inst["agent_pid"], 9)  # the agent crashes: Restart=on-failure, RestartSec (1 s here)
        inst = c.wait_instance(iid, lambda i: len(workdir_lines(i)) == 2, timeout=30, what="restarted")
        check(inst["agent"]["starts"] == 2 and inst["agent_running"] and inst["boots"] == 1, repr(inst))
        check(workdir_lines(inst) == ["long resume=0", "long resume=1"], repr(workdir_lines(inst)))
        c.boto("ec2").reboot_instances(InstanceIds=[iid])
        inst = c.wait_instance(iid, lambda i: len(workdir_lines(i)) == 3, timeout=30, what="rebooted")
        check(inst["boots"] == 2 and inst["state"] == "running" and inst["agent_running"], repr(inst))
        check(workdir_lines(inst)[-1] == "long resume=1", repr(workdir_lines(inst)))
        err = open(os.path.join(inst["root"], "console", "agent.stderr")).read()
        check(err.count("resuming run") == 2, err[-2000:])
        c.boto("ec2").terminate_instances(InstanceIds=[iid])
        c.wait_instance(iid, lambda i: i["state"] == "terminated" and not i["agent_running"], timeout=30)
    finally:
        c.__exit__(None, None, None)
