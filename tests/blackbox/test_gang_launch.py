# SPDX-License-Identifier: Apache-2.0
"""`mayfly launch` for gangs (an experiment's "nodes": K) against moto, SigV4 checked, no instance booted: a gang
larger than the launch is refused before anything exists; --placement-group cluster and --gang-sg make the run's
placement group and security group, the template names them, and `mayfly cancel` deletes them with the group and the
template, trying again while EC2 says instances still hold them (InvalidPlacementGroup.InUse, DependencyViolation:
injected, as moto's terminations are instant); a launch that fails half-way deletes them; --efa asks for an EFA
interface where the type has one and is refused where it has not. moto 5.2.1 has no placement groups: the fake
cloud's front end answers for them (tests/fakes/placement.py)."""
import json
import os
import re
import tempfile

from harness import Cloud, check, mayfly, out

BUCKET = "mayfly-test"


def job(nodes=2, name="gang"):
    return {"name": name, "source": "s3://%s/jobs/gang.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
            "experiments": [{"name": "prep", "command": "true"}, {"name": "train", "command": "true", "nodes": nodes}]}


def setup():
    c = Cloud(auth=True).__enter__()
    c.boto("s3").put_object(Bucket=BUCKET, Key="jobs/gang.tar.gz", Body=b"")
    return c


def teardown(c):
    c.__exit__(None, None, None)


def launch(c, *args, j=None, itype="g5.xlarge"):
    jp = os.path.join(tempfile.mkdtemp(prefix="mayfly-gang-"), "job.json")
    with open(jp, "w") as f:
        json.dump(j or job(), f)
    return mayfly("launch", jp, "--image-id", c.info["ami_id"], "--instance-type", itype, "--install", "preinstalled",
                  "--iam-instance-profile", c.info["role"], *args, env=c.admin_env())


def printed(p, what):
    m = re.search(r"^%s:\s+(\S+)" % what, p.stdout.decode(), re.M)
    return m.group(1) if m else None


def state(c):
    """What a launch adds: live instances (the cloud's own aside), groups, templates, placement groups, security
    groups (the VPC's default ones aside)."""
    ec2 = c.boto("ec2")
    inst = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["InstanceId"] != c.info["instance_id"] and i["State"]["Name"] != "terminated"]
    groups = [g["AutoScalingGroupName"] for g in c.boto("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]]
    templates = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    pgs = [g["GroupName"] for g in ec2.describe_placement_groups()["PlacementGroups"]]
    sgs = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"]
    return sorted(inst), sorted(groups), sorted(templates), sorted(pgs), sorted(sgs)


def tags(items):
    return {t["Key"]: t["Value"] for t in items or []}


def cancel(c, run):
    return mayfly("cancel", "s3://%s/results/gang/%s/" % (BUCKET, run), env=c.admin_env(), timeout=120)


def test_a_gang_larger_than_the_launch_is_refused_before_anything(c):
    before = state(c)
    for args, have in ((["--instances", "2"], "starts 2 (--instances 2)"),
                       ([], "starts 1 (no --instances: one instance)"),
                       (["--recover"], "starts 1 (no --instances: one instance)")):
        p = launch(c, *args, "--gang-sg", j=job(nodes=4)) if args else launch(c, j=job(nodes=4))
        text = out(p)
        check(p.returncode == 2 and len(text.splitlines()) == 1, text)
        check("experiment train" in text and '("nodes": 4)' in text and have in text and "--instances 4" in text, text)
    check(state(c) == before, "created: %r" % (state(c),))
    # a gang that fits, without --gang-sg: one line on what its security groups must allow (and --dry-run makes none)
    p = launch(c, "--instances", "2", "--dry-run", j=job(nodes=2))
    check(p.returncode == 0 and "preflight: ok" in out(p), out(p))
    note = [l for l in p.stderr.decode().splitlines() if "security groups must allow" in l]
    check(len(note) == 1 and "rendezvous_port 29500" in note[0] and "--gang-sg" in note[0], out(p))
    p = launch(c, "--instances", "2", "--dry-run", "--gang-sg", "--placement-group", "cluster", j=job(nodes=2))
    check(p.returncode == 0 and "security groups must allow" not in out(p), out(p))
    check(state(c) == before, "a dry run created: %r" % (state(c),))
    dry = [e["action"] for e in c.stats()["moto_log"] if e["action"] in ("CreatePlacementGroup", "CreateSecurityGroup")]
    check(dry[-2:] == ["CreatePlacementGroup", "CreateSecurityGroup"], repr(dry))


def test_usage_errors(c):
    for args, want in ((["--instances", "2", "--placement-group", "spread"], "only cluster is supported"),
                       (["--gang-sg"], "are for a gang of instances: add --instances N"),
                       (["--efa", "--recover", "--instances", "2"], "--efa: g5.xlarge has no Elastic Fabric Adapter")):
        p = launch(c, *args, j=job(nodes=1))
        check(p.returncode == 2 and want in out(p) and len(out(p).splitlines()) == 1, out(p))


def test_placement_group_and_gang_sg_are_made_and_cancel_deletes_them(c):
    ec2 = c.boto("ec2")
    before = state(c)
    p = launch(c, "--instances", "2", "--placement-group", "cluster", "--gang-sg", "--spot")
    check(p.returncode == 0, out(p))
    run = printed(p, "run")
    name = "mayfly-" + run
    sg = printed(p, "security group")
    check(printed(p, "placement group") == name and sg and sg.startswith("sg-"), out(p))
    # the placement group: cluster, tagged like the template
    [pg] = ec2.describe_placement_groups(GroupNames=[name])["PlacementGroups"]
    check(pg["Strategy"] == "cluster" and tags(pg["Tags"]).get("mayfly:run-id") == run and
          tags(pg["Tags"]).get("mayfly:run") == "gang" and tags(pg["Tags"]).get("Name") == name, repr(pg))
    # the security group: in the default VPC, every protocol from its own members, tagged
    [g] = ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    check(g["GroupName"] == name and g["VpcId"] == vpc and tags(g["Tags"]).get("mayfly:run-id") == run, repr(g))
    check([(r["IpProtocol"], [x["GroupId"] for x in r["UserIdGroupPairs"]]) for r in g["IpPermissions"]] ==
          [("-1", [sg])], repr(g["IpPermissions"]))
    # the template names both
    d = ec2.describe_launch_template_versions(LaunchTemplateName=name)["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    check(d.get("Placement") == {"GroupName": name} and d.get("SecurityGroupIds") == [sg], repr(d))
    launched = json.loads(c.boto("s3").get_object(Bucket=BUCKET, Key="results/gang/%s/launch.json" % run)["Body"].read())
    check(launched.get("placement_group") == name and launched.get("security_group") == sg, repr(launched))
    # cancel (no instance ever beat: ended from here): EC2 still counts instances in them for a while
    c.faults([{"service": "ec2", "action": "DeletePlacementGroup", "status": 400, "format": "ec2",
               "code": "InvalidPlacementGroup.InUse", "message": "There are running instances in the group"},
              {"service": "ec2", "action": "DeleteSecurityGroup", "status": 400, "format": "ec2", "count": 2,
               "code": "DependencyViolation", "message": "resource sg has a dependent object"}])
    p = cancel(c, run)
    fired = c.faults_done()
    check(p.returncode == 0 and "deleted the Auto Scaling group" in out(p) and "deleted the launch template" in out(p),
          out(p))
    check("deleted the placement group %s" % name in out(p) and "deleted the security group %s" % sg in out(p) and
          "nothing of it is left" in out(p), out(p))
    check(fired == [1, 2], repr(fired))
    check(state(c) == before, "left: %r" % (state(c),))
    # a second cancel: ended already, and what launch.json names is gone already
    p = cancel(c, run)
    check(p.returncode == 0 and "ended already" in out(p) and "placement group %s was gone already" % name in out(p),
          out(p))


def test_the_placement_group_waits_for_the_instances(c):
    """The fake refuses DeletePlacementGroup while an instance launched from a template naming the group lives (as
    EC2 does): cancel terminates the instances first and deletes the placement group after."""
    ec2 = c.boto("ec2")
    p = launch(c, "--instances", "2", "--placement-group", "cluster")
    check(p.returncode == 0, out(p))
    run = printed(p, "run")
    name = "mayfly-" + run
    try:
        ec2.delete_placement_group(GroupName=name)
        check(False, "deleted with an instance in it")
    except ec2.exceptions.ClientError as e:
        check(e.response["Error"]["Code"] == "InvalidPlacementGroup.InUse", repr(e.response))
    p = cancel(c, run)
    check(p.returncode == 0 and "deleted the placement group %s" % name in out(p), out(p))
    check(ec2.describe_placement_groups(GroupNames=[name])["PlacementGroups"] == [], "still there")


def test_a_launch_that_fails_half_way_deletes_them(c):
    before = state(c)
    for rule, want in (
            ({"service": "ec2", "action": "CreateLaunchTemplate", "status": 400, "format": "ec2", "after": 1,
              "code": "InvalidParameterValue", "message": "bad AMI"}, "creating the launch template mayfly-gang-"),
            ({"service": "ec2", "action": "AuthorizeSecurityGroupIngress", "status": 400, "format": "ec2",
              "code": "RulesPerSecurityGroupLimitExceeded", "message": "too many rules"},
             "creating the security group mayfly-gang-")):
        c.faults([rule])
        p = launch(c, "--instances", "2", "--placement-group", "cluster", "--gang-sg")
        c.faults_done()
        check(p.returncode == 1 and want in out(p) and rule["code"] in out(p), out(p))
        check(len(p.stderr.decode().strip().splitlines()) == 1, "more than one line: " + out(p))
        check(state(c) == before, "left after %s: %r %s" % (rule["action"], state(c), out(p)))


def test_efa_interface_where_the_type_has_one(c):
    ec2 = c.boto("ec2")
    before = state(c)
    p = launch(c, "--instances", "2", "--efa", "--gang-sg", itype="p4d.24xlarge")
    check(p.returncode == 0 and "EFA" in out(p), out(p))
    run, sg = printed(p, "run"), printed(p, "security group")
    d = ec2.describe_launch_template_versions(LaunchTemplateName="mayfly-" + run)["LaunchTemplateVersions"][0]
    d = d["LaunchTemplateData"]
    check(d.get("NetworkInterfaces") == [{"DeviceIndex": 0, "InterfaceType": "efa", "Groups": [sg],
                                          "DeleteOnTermination": True}] and "SecurityGroupIds" not in d, repr(d))
    p = cancel(c, run)
    check(p.returncode == 0 and "deleted the security group" in out(p), out(p))
    check(state(c) == before, "left: %r" % (state(c),))
