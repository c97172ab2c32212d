# SPDX-License-Identifier: Apache-2.0
"""EC2 Auto Scaling against moto (SigV4 checked): `mayfly launch --recover / --instances` (the launch template, the
group, the job's run_id and fleet, clean-up after a failure, usage errors), and the calls the agent makes
(aws/autoscaling.h through tests/blackbox/asgctl.c): describe, terminate in the group with and without decrement,
detach, idempotent deletes, a create whose answer was lost, the endpoint variables."""
import base64
import gzip
import json
import os
import re
import subprocess
import tempfile

import yaml

from harness import Cloud, check, mayfly, out

RUN_ID = re.compile(r"^exp1-\d{8}T\d{6}Z-[0-9a-f]{6}$")
JOB = {"name": "exp1", "source": "s3://mayfly-test/jobs/exp1.tar.gz", "results": "s3://mayfly-test/results/",
       "experiments": [{"name": "a", "command": "true"}, {"name": "b", "command": "true"}], "max_runtime": "2h"}


def setup():
    c = Cloud(auth=True).__enter__()
    c.boto("s3").put_object(Bucket="mayfly-test", Key="jobs/exp1.tar.gz", Body=b"")  # the job's source (preflight)
    return c


def teardown(c):
    c.__exit__(None, None, None)


def asgctl(c, *args, env=None):
    return subprocess.run([os.path.join(os.environ["MAYFLY_BUILD"], "tests", "asgctl"), *args],
                          env=env or c.role_env(), capture_output=True, timeout=120)


def launch(c, *extra, job=None, env=None):
    d = tempfile.mkdtemp(prefix="mayfly-asg-")
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump(job or JOB, f)
    return mayfly("launch", jp, "--image-id", c.info["ami_id"], *defaults(c, extra), *extra,
                  env=env or c.admin_env())


def defaults(c, extra):
    """What every launch needs and a test does not vary: the install route and the instance profile."""
    d = [] if "--install" in extra else ["--install", "preinstalled"]
    return d + ([] if "--iam-instance-profile" in extra else ["--iam-instance-profile", c.info["role"]])


def printed(p, what):
    m = re.search(r"^%s:\s+(\S+)" % what, p.stdout.decode(), re.M)
    return m.group(1) if m else None


def group(c, name):
    gs = c.boto("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return gs[0] if gs else None


def template_data(c, name):
    v = c.boto("ec2").describe_launch_template_versions(LaunchTemplateName=name)["LaunchTemplateVersions"]
    return v[0]["LaunchTemplateData"]


def template_names(c):
    return {t["LaunchTemplateName"] for t in c.boto("ec2").describe_launch_templates()["LaunchTemplates"]}


def group_names(c):
    return {g["AutoScalingGroupName"] for g in c.boto("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]}


def job_in(user_data_b64):
    text = base64.b64decode(user_data_b64)
    if text[:2] == b"\x1f\x8b":
        text = gzip.decompress(text)
    files = {f["path"]: f for f in yaml.safe_load(text)["write_files"]}
    return json.loads(files["/etc/mayfly/job.json"]["content"])


def tags(items):
    return {t["Key"]: t["Value"] for t in items or []}


def members(c, name):
    return [i["InstanceId"] for i in group(c, name)["Instances"]]


def delete_all(c, name):
    asg, ec2 = c.boto("autoscaling"), c.boto("ec2")
    if group(c, name):
        asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    if name in template_names(c):
        ec2.delete_launch_template(LaunchTemplateName=name)


def test_launch_recover_makes_a_template_and_a_group_of_one(c):
    iam = c.boto("iam")
    iam.create_instance_profile(InstanceProfileName="asg-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="asg-profile", RoleName=c.info["role"])
    sg = c.boto("ec2").create_security_group(GroupName="asg", Description="asg test")["GroupId"]
    t0 = __import__("time").time()
    p = launch(c, "--instance-type", "p3.2xlarge", "--spot", "--recover", "--max-attempts", "3",
               "--iam-instance-profile", "asg-profile", "--security-group-id", sg, "--key-name", "k1")
    t1 = __import__("time").time()
    check(p.returncode == 0, out(p))
    run = printed(p, "run")
    check(run and RUN_ID.match(run), out(p))
    name = "mayfly-" + run
    check(printed(p, "results") == "s3://mayfly-test/results/exp1/%s/" % run, out(p))
    check(printed(p, "group") == name and "launch template lt-" in out(p), out(p))
    g = group(c, name)
    check(g and g["MinSize"] == 0 and g["MaxSize"] == 1 and g["DesiredCapacity"] == 1, repr(g))
    check(g["LaunchTemplate"]["LaunchTemplateName"] == name and "MixedInstancesPolicy" not in g, repr(g))
    check(g["AvailabilityZones"] == [c.info["region"] + "a"], repr(g["AvailabilityZones"]))
    check([s["ProcessName"] for s in g["SuspendedProcesses"]] == ["AZRebalance"], repr(g["SuspendedProcesses"]))
    tag = [t for t in g["Tags"] if t["Key"] == "mayfly:run-id"]
    check(len(tag) == 1 and tag[0]["Value"] == run and tag[0]["PropagateAtLaunch"], repr(g["Tags"]))
    # the group started its one instance from the template, tagged with the run
    check(len(g["Instances"]) == 1, repr(g["Instances"]))
    inst = c.boto("ec2").describe_instances(InstanceIds=members(c, name))["Reservations"][0]["Instances"][0]
    it = tags(inst["Tags"])
    check(it.get("mayfly:run-id") == run and it.get("aws:autoscaling:groupName") == name and
          it.get("mayfly:run") == "exp1", repr(it))
    # the template as asked for
    d = template_data(c, name)
    check(d["ImageId"] == c.info["ami_id"] and d["InstanceType"] == "p3.2xlarge", repr(d))
    check(d["InstanceInitiatedShutdownBehavior"] == "terminate", repr(d))
    check(d["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1,
                                   "InstanceMetadataTags": "enabled"}, repr(d["MetadataOptions"]))
    check(d["InstanceMarketOptions"]["MarketType"] == "spot" and
          d["InstanceMarketOptions"]["SpotOptions"]["SpotInstanceType"] == "one-time", repr(d))
    check(d.get("IamInstanceProfile") == {"Name": "asg-profile"} and d.get("KeyName") == "k1", repr(d))
    check(d.get("SecurityGroupIds") == [sg], repr(d))
    specs = {s["ResourceType"]: tags(s["Tags"]) for s in d["TagSpecifications"]}
    check(specs["instance"].get("mayfly:run-id") == run, repr(specs))
    lt = [t for t in c.boto("ec2").describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]]
    check(tags(lt[0]["Tags"]).get("mayfly:run-id") == run, repr(lt))
    # the job in its user-data names the run and the group, and mayfly check takes it
    job = job_in(d["UserData"])
    check(job["run_id"] == run and job["fleet"] == {"group": name, "launch_template": name, "size": 1,
                                                    "max_attempts": 3}, repr(job))
    jp = os.path.join(tempfile.mkdtemp(prefix="mayfly-asg-"), "job.json")
    with open(jp, "w") as f:
        json.dump(job, f)
    p = mayfly("check", jp)
    check(p.returncode == 0, out(p))
    # every call signed for autoscaling in the region
    calls = [e for e in c.stats()["moto_log"] if t0 <= e["ts"] <= t1 and e["service"] == "autoscaling"]
    check([e["action"] for e in calls] == ["CreateAutoScalingGroup", "SuspendProcesses"] and
          all(e["region"] == c.info["region"] and e["status"] == 200 for e in calls), repr(calls))
    delete_all(c, name)


def test_launch_instances_mixed_types_and_subnets(c):
    ec2 = c.boto("ec2")
    subs = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    subs = sorted(subs, key=lambda s: s["AvailabilityZone"])[:2]
    check(len(subs) == 2, "moto has %d default subnets" % len(subs))
    p = launch(c, "--instances", "3", "--spot", "--instance-type", "g5.xlarge", "--instance-type", "g4dn.xlarge",
               "--subnet-id", subs[0]["SubnetId"], "--subnet-id", subs[1]["SubnetId"])
    check(p.returncode == 0, out(p))
    run = printed(p, "run")
    name = "mayfly-" + run
    g = group(c, name)
    check(g["MinSize"] == 0 and g["MaxSize"] == 3 and g["DesiredCapacity"] == 3 and len(g["Instances"]) == 3, repr(g))
    mip = g["MixedInstancesPolicy"]
    check([o["InstanceType"] for o in mip["LaunchTemplate"]["Overrides"]] == ["g5.xlarge", "g4dn.xlarge"], repr(mip))
    check(mip["LaunchTemplate"]["LaunchTemplateSpecification"]["LaunchTemplateName"] == name, repr(mip))
    check(mip["InstancesDistribution"] == {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0,
                                           "SpotAllocationStrategy": "price-capacity-optimized"}, repr(mip))
    check(g["VPCZoneIdentifier"] == "%s,%s" % (subs[0]["SubnetId"], subs[1]["SubnetId"]), repr(g["VPCZoneIdentifier"]))
    check(sorted(g["AvailabilityZones"]) == sorted(s["AvailabilityZone"] for s in subs), repr(g["AvailabilityZones"]))
    d = template_data(c, name)
    # spot comes from the policy's distribution: AWS refuses a template that asks for spot in a mixed policy
    check("InstanceMarketOptions" not in d and d["InstanceType"] == "g5.xlarge", repr(d))
    job = job_in(d["UserData"])
    check(job["fleet"] == {"group": name, "launch_template": name, "size": 3, "max_attempts": 0}, repr(job))
    delete_all(c, name)


def test_launch_instances_without_recover_is_a_group_on_demand(c):
    p = launch(c, "--instances", "2", "--instance-type", "p3.2xlarge", "--availability-zone", c.info["region"] + "b")
    check(p.returncode == 0, out(p))
    name = "mayfly-" + printed(p, "run")
    g = group(c, name)
    check(g and g["DesiredCapacity"] == 2 and "MixedInstancesPolicy" not in g and
          g["AvailabilityZones"] == [c.info["region"] + "b"], repr(g))
    check("InstanceMarketOptions" not in template_data(c, name), repr(template_data(c, name)))
    delete_all(c, name)


def test_launch_without_a_group_sets_the_run_id(c):
    before = (group_names(c), template_names(c))
    job = dict(JOB, fleet={"group": "stale", "launch_template": "stale"})
    p = launch(c, "--instance-type", "p3.2xlarge", "--spot", job=job)
    check(p.returncode == 0 and "dropped the job's fleet" in out(p), out(p))
    run = printed(p, "run")
    ids = [x for x in p.stdout.decode().split() if x.startswith("i-")]
    check(len(ids) == 1 and RUN_ID.match(run), out(p))
    check(printed(p, "results") == "s3://mayfly-test/results/exp1/%s/" % run, out(p))
    ec2 = c.boto("ec2")
    inst = ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"][0]
    check(tags(inst["Tags"]).get("mayfly:run-id") == run and inst.get("InstanceLifecycle") == "spot", repr(inst))
    ud = ec2.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")["UserData"]["Value"]
    job = job_in(ud)
    check(job["run_id"] == run and "fleet" not in job, repr(job))
    check((group_names(c), template_names(c)) == before, "a plain launch made a group or a template")


def test_launch_continues_the_jobs_run_id(c):
    p = launch(c, "--instance-type", "p3.2xlarge", "--recover", job=dict(JOB, run_id="exp1-lost-run"))
    check(p.returncode == 0 and "continuing run exp1-lost-run" in out(p), out(p))
    check(printed(p, "run") == "exp1-lost-run" and group(c, "mayfly-exp1-lost-run"), out(p))
    delete_all(c, "mayfly-exp1-lost-run")
    p = launch(c, "--instance-type", "p3.2xlarge", "--recover", job=dict(JOB, run_id="r" * 122))
    check(p.returncode == 2 and "$.run_id" in out(p) and "too long" in out(p), out(p))
    before = (group_names(c), template_names(c))
    p = launch(c, "--instance-type", "p3.2xlarge", "--recover", job=dict(JOB, run_id="not a run id"))
    check(p.returncode == 2 and "$.run_id" in out(p) and len(out(p).splitlines()) == 1, out(p))
    check((group_names(c), template_names(c)) == before, "a refused launch left something")


def test_launch_usage_errors(c):
    before = (group_names(c), template_names(c))
    nine = []
    for i in range(9):
        nine += ["--instance-type", "t%d.large" % i]
    cases = [
        (["--instance-type", "p3.2xlarge", "--count", "2"], "--instances N"),
        (["--instance-type", "p3.2xlarge", "--instances", "0"], "--instances must be 1..64"),
        (["--instance-type", "p3.2xlarge", "--instances", "65"], "--instances must be 1..64"),
        (["--instance-type", "p3.2xlarge", "--max-attempts", "2"], "add --recover or --instances"),
        (["--instance-type", "p3.2xlarge", "--recover", "--max-attempts", "0"], "--max-attempts must be 1..1000"),
        (["--instance-type", "p3.2xlarge", "--instance-type", "g5.xlarge"], "need an Auto Scaling group"),
        (["--recover"] + nine, "at most 8 --instance-type"),
        (["--instance-type", "p3.2xlarge", "--recover", "--subnet-id", "subnet-1", "--availability-zone",
          "us-east-1a"], "the subnets decide the zones"),
        (["--recover"], "usage: mayfly launch"),
    ]
    for args, want in cases:
        p = launch(c, *args)
        check(p.returncode == 2 and want in out(p), "%r: %s" % (args, out(p)))
        check(len(out(p).splitlines()) == 1 or want.startswith("usage"), "%r: more than one line: %s" % (args, out(p)))
    check((group_names(c), template_names(c)) == before, "a refused launch left something")


def test_launch_failures_delete_what_was_made(c):
    before = (group_names(c), template_names(c))
    faults = [
        ({"service": "ec2", "action": "CreateLaunchTemplate", "status": 400, "code": "InvalidParameterValue",
          "format": "ec2", "message": "bad AMI", "after": 1}, 1, "creating the launch template mayfly-exp1-"),
        ({"service": "autoscaling", "action": "CreateAutoScalingGroup", "status": 400, "code": "ValidationError",
          "format": "query", "message": "no capacity here"}, 1, "creating the Auto Scaling group mayfly-exp1-"),
        ({"service": "autoscaling", "action": "SuspendProcesses", "status": 403, "code": "AccessDenied",
          "format": "query", "message": "not authorized to perform: autoscaling:SuspendProcesses"}, 4,
         "suspending AZRebalance on the group mayfly-exp1-"),
    ]
    for rule, rc, want in faults:
        c.faults([rule])
        p = launch(c, "--instance-type", "p3.2xlarge", "--recover", "--spot")
        c.faults_done()
        check(p.returncode == rc and want in out(p) and rule["code"] in out(p), out(p))
        check(len(p.stderr.decode().strip().splitlines()) == 1, "more than one line: " + out(p))
        check((group_names(c), template_names(c)) == before, "left behind after %s: %s" % (rule["action"], out(p)))
    # the clean-up itself refused: what is left is named with the command that deletes it
    c.faults([
        {"service": "autoscaling", "action": "SuspendProcesses", "status": 403, "code": "AccessDenied",
         "format": "query"},
        {"service": "autoscaling", "action": "DeleteAutoScalingGroup", "status": 403, "code": "AccessDenied",
         "format": "query"}])
    p = launch(c, "--instance-type", "p3.2xlarge", "--recover")
    c.faults_done()
    m = re.search(r"the Auto Scaling group (mayfly-exp1-\S+) is left", out(p))
    check(p.returncode == 4 and m and "aws autoscaling delete-auto-scaling-group --force-delete "
          "--auto-scaling-group-name " + m.group(1) in out(p), out(p))
    check(m.group(1) not in template_names(c), "the template was not deleted")
    delete_all(c, m.group(1))
    check((group_names(c), template_names(c)) == before, "left behind")


def test_group_calls_the_agent_makes(c):
    p = launch(c, "--instance-type", "p3.2xlarge", "--instances", "2")
    check(p.returncode == 0, out(p))
    run = printed(p, "run")
    name = "mayfly-" + run
    q = asgctl(c, "describe", name)
    check(q.returncode == 0, out(q))
    info = json.loads(q.stdout)
    check(info["exists"] and not info["deleting"] and info["run_id"] == run and info["desired"] == 2 and
          info["min"] == 0 and info["max"] == 2 and len(info["members"]) == 2 and
          info["lifecycle"] == ["InService", "InService"], repr(info))
    first, second = info["members"]
    # a plain EC2 terminate of a member: the group replaces it (the relaunch loop a tear-down must avoid)
    c.boto("ec2").terminate_instances(InstanceIds=[first])
    now = json.loads(asgctl(c, "describe", name).stdout)
    check(first not in now["members"] and len(now["members"]) == 2 and now["desired"] == 2, repr(now))
    third = [m for m in now["members"] if m != second][0]
    # terminate in the group without decrement: replaced too
    q = asgctl(c, "terminate", third)
    now = json.loads(asgctl(c, "describe", name).stdout)
    check(q.returncode == 0 and third not in now["members"] and len(now["members"]) == 2, out(q) + repr(now))
    fourth = [m for m in now["members"] if m != second][0]
    # with decrement: gone, the group one smaller, no replacement
    q = asgctl(c, "terminate", fourth, "decrement")
    now = json.loads(asgctl(c, "describe", name).stdout)
    check(q.returncode == 0 and now["members"] == [second] and now["desired"] == 1, out(q) + repr(now))
    st = c.boto("ec2").describe_instances(InstanceIds=[fourth])["Reservations"][0]["Instances"][0]["State"]["Name"]
    check(st in ("shutting-down", "terminated"), st)
    # detach with decrement: the instance keeps running outside the group, nothing replaces it
    q = asgctl(c, "detach", name, second, "decrement")
    now = json.loads(asgctl(c, "describe", name).stdout)
    check(q.returncode == 0 and now["members"] == [] and now["desired"] == 0, out(q) + repr(now))
    inst = c.boto("ec2").describe_instances(InstanceIds=[second])["Reservations"][0]["Instances"][0]
    check(inst["State"]["Name"] == "running" and "aws:autoscaling:groupName" not in tags(inst["Tags"]), repr(inst))
    # AWS says a non-member with a ValidationError (moto 5.2.1 raises inside instead): not found, exit 3
    c.faults([{"service": "autoscaling", "action": "TerminateInstanceInAutoScalingGroup",
               "status": 400, "code": "ValidationError", "format": "query",
               "message": "Instance Id not found - No managed instance found for instance ID: " + second}])
    q = asgctl(c, "terminate", second, "decrement")
    c.faults_done()
    check(q.returncode == 3, out(q))
    # tear-down with the instance role, twice: the second finds nothing and is fine
    for _ in range(2):
        q = asgctl(c, "delete", name)
        check(q.returncode == 0, out(q))
        check(not json.loads(asgctl(c, "describe", name).stdout)["exists"], "the group is still there")
    q = asgctl(c, "lt-exists", name)
    check(q.returncode == 0 and q.stdout.strip() == b"1", out(q))
    for _ in range(2):
        q = asgctl(c, "lt-delete", name)
        check(q.returncode == 0, out(q))
        q = asgctl(c, "lt-exists", name)
        check(q.returncode == 0 and q.stdout.strip() == b"0", out(q))
    check(name not in template_names(c) and name not in group_names(c), "left behind")


def test_delete_already_under_way_and_create_answer_lost(c):
    # a delete that finds a delete in progress (another instance's) and then no group: done
    c.faults([{"service": "autoscaling", "action": "DeleteAutoScalingGroup", "status": 400,
               "code": "ScalingActivityInProgress", "format": "query"}])
    q = asgctl(c, "delete", "mayfly-gone")
    c.faults_done()
    check(q.returncode == 0, out(q))
    # a create whose first answer was lost: AlreadyExists on a group with this run's tag is success, another's is not
    lt = "mayfly-lost-answer"
    c.boto("ec2").create_launch_template(LaunchTemplateName=lt, LaunchTemplateData={"ImageId": c.info["ami_id"],
                                                                                   "InstanceType": "p3.2xlarge"})
    c.boto("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=lt, MinSize=0, MaxSize=1, DesiredCapacity=0, AvailabilityZones=[c.info["region"] + "a"],
        LaunchTemplate={"LaunchTemplateName": lt},
        Tags=[{"Key": "mayfly:run-id", "Value": "lost-answer", "PropagateAtLaunch": True}])
    exists = {"service": "autoscaling", "action": "CreateAutoScalingGroup", "status": 400, "code": "AlreadyExists",
              "format": "query", "message": "AutoScalingGroup by this name already exists"}
    c.faults([exists])
    q = asgctl(c, "create", lt, lt, "lost-answer", "1")
    c.faults_done()
    check(q.returncode == 0, out(q))
    c.faults([exists])
    q = asgctl(c, "create", lt, lt, "another-run", "1")
    c.faults_done()
    check(q.returncode == 1 and "AlreadyExists" in out(q), out(q))
    delete_all(c, lt)


def test_endpoint_variables(c):
    dead = "http://127.0.0.1:9"
    env = dict(c.role_env(), AWS_ENDPOINT_URL_AUTO_SCALING=dead, AWS_MAX_ATTEMPTS="1")
    q = asgctl(c, "describe", "x", env=env)
    check(q.returncode == 1 and "DescribeAutoScalingGroups" in out(q), out(q))
    env = dict(c.role_env(), AWS_ENDPOINT_URL=dead, AWS_ENDPOINT_URL_AUTO_SCALING=c.endpoint, AWS_MAX_ATTEMPTS="1")
    q = asgctl(c, "describe", "x", env=env)
    check(q.returncode == 0 and not json.loads(q.stdout)["exists"], out(q))


def test_status_finds_the_newest_launched_run(c):
    s3 = c.boto("s3")
    runs = ["job11-20260102T000000Z-000000", "job11-20260101T000000Z-ffffff", "i-0fff-20260101T120000Z"]
    for r in runs:
        s3.put_object(Bucket="mayfly-test", Key="results/job11/%s/status.json" % r,
                      Body=json.dumps({"name": "job11", "run_id": r, "outcome": "succeeded"}))
    p = mayfly("status", "s3://mayfly-test/results/job11/", "--json", env=c.admin_env())
    check(p.returncode == 0 and json.loads(p.stdout)["run_id"] == runs[0], out(p))
