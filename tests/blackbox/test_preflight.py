# SPDX-License-Identifier: Apache-2.0
"""`mayfly launch` checks before it spends anything: each refusal is one line that names the thing, a non-zero exit
(2 bad input, 3 not found, 4 permissions), and EC2 unchanged; `launch --dry-run` checks everything and creates
nothing."""
import json
import os
import tempfile

from harness import Cloud, check, mayfly, out

BUCKET = "mayfly-test"
JOB = {"name": "pf", "source": "s3://%s/jobs/pf.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
       "experiments": [{"name": "a", "command": "true"}]}


def setup():
    c = Cloud(auth=True).__enter__()
    c.boto("s3").put_object(Bucket=BUCKET, Key="jobs/pf.tar.gz", Body=b"")
    return c


def teardown(c):
    c.__exit__(None, None, None)


def ec2_state(c):
    """What the account holds that a launch would add: instances (the cloud's own aside), groups, templates."""
    ec2 = c.boto("ec2")
    inst = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["InstanceId"] != c.info["instance_id"] and i["State"]["Name"] != "terminated"]
    groups = [g["AutoScalingGroupName"] for g in c.boto("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]]
    templates = [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]]
    return sorted(inst), sorted(groups), sorted(templates)


def launch(c, *args, job=None, defaults=True):
    d = tempfile.mkdtemp(prefix="mayfly-pf-")
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump(job or JOB, f)
    base = ["--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge", "--install", "preinstalled",
            "--iam-instance-profile", c.info["role"]] if defaults else []
    return mayfly("launch", jp, *base, *args, env=c.admin_env())


def refused(c, p, rc, *want):
    text = out(p)
    check(p.returncode == rc, "exit %d (want %d): %s" % (p.returncode, rc, text))
    check(len(text.splitlines()) == 1, "not one line: " + text)
    for w in want:
        check(w in text, "%r not in: %s" % (w, text))


def test_dry_run_checks_everything_and_creates_nothing(c):
    before = ec2_state(c)
    p = launch(c, "--dry-run", "--recover")
    check(p.returncode == 0 and "preflight: ok" in out(p) and "nothing launched" in out(p), out(p))
    p = launch(c, "--dry-run")
    check(p.returncode == 0, out(p))
    check(ec2_state(c) == before, "a dry run created %r" % (ec2_state(c),))
    probes = [o["Key"] for o in c.boto("s3").list_objects_v2(Bucket=BUCKET, Prefix="results/").get("Contents", [])]
    check(not probes, "the preflight's probe is left: %r" % probes)


def test_missing_results_bucket(c):
    before = ec2_state(c)
    p = launch(c, job=dict(JOB, results="s3://no-such-results-bucket/r/"))
    refused(c, p, 3, "the results bucket no-such-results-bucket does not exist")
    check(ec2_state(c) == before, "EC2 changed")


def test_missing_source(c):
    before = ec2_state(c)
    p = launch(c, "--recover", job=dict(JOB, source="s3://%s/jobs/nope.tar.gz" % BUCKET))
    refused(c, p, 3, "s3://%s/jobs/nope.tar.gz does not exist" % BUCKET)
    check(ec2_state(c) == before, "EC2 changed")


def test_missing_inputs(c):
    """Every input's source is checked: an empty prefix, a missing object, a missing bucket; one that holds data
    passes (one LIST of one page, whatever the prefix holds)."""
    before = ec2_state(c)
    c.boto("s3").put_object(Bucket=BUCKET, Key="data/ok/x.bin", Body=b"x")
    good = {"name": "ok", "source": "s3://%s/data/ok/" % BUCKET}
    for bad, want in (({"name": "e", "source": "s3://%s/data/empty/" % BUCKET}, "data/empty/ holds no objects"),
                      ({"name": "o", "source": "s3://%s/data/nope.bin" % BUCKET}, "data/nope.bin does not exist"),
                      ({"name": "b", "source": "s3://no-such-data-bucket/d/"}, "no-such-data-bucket/d/ does not exist")):
        p = launch(c, "--recover", job=dict(JOB, inputs=[good, bad]))
        refused(c, p, 3, "the input s3://", want)
    p = launch(c, "--dry-run", job=dict(JOB, inputs=[good, {"name": "one", "source": "s3://%s/data/ok/x.bin" % BUCKET}]))
    check(p.returncode == 0 and "inputs" in out(p), out(p))
    check(ec2_state(c) == before, "EC2 changed")


def test_missing_instance_profile(c):
    before = ec2_state(c)
    p = mayfly("launch", write_job(JOB), "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge", "--install",
               "preinstalled", "--iam-instance-profile", "no-such-profile", env=c.admin_env())
    refused(c, p, 3, "the instance profile no-such-profile does not exist")
    p = mayfly("launch", write_job(JOB), "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge", "--install",
               "preinstalled", env=c.admin_env())
    refused(c, p, 2, "no --iam-instance-profile")
    check(ec2_state(c) == before, "EC2 changed")


def write_job(job):
    d = tempfile.mkdtemp(prefix="mayfly-pf-")
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump(job, f)
    return jp


def test_missing_image_and_a_wrong_architecture(c):
    before = ec2_state(c)
    p = mayfly("launch", write_job(JOB), "--image-id", "ami-0123456789abcdef0", "--instance-type", "g5.xlarge",
               "--install", "preinstalled", "--iam-instance-profile", c.info["role"], env=c.admin_env())
    refused(c, p, 3, "the image ami-0123456789abcdef0 does not exist in us-east-1")
    arm = c.boto("ec2").describe_images(Filters=[{"Name": "architecture", "Values": ["arm64"]}])["Images"][0]["ImageId"]
    p = mayfly("launch", write_job(JOB), "--image-id", arm, "--instance-type", "g5.xlarge", "--install",
               "preinstalled", "--iam-instance-profile", c.info["role"], env=c.admin_env())
    refused(c, p, 2, "g5.xlarge runs x86_64", arm, "is arm64")
    check(ec2_state(c) == before, "EC2 changed")


def test_type_not_offered_in_the_subnets_zone(c):
    before = ec2_state(c)
    subs = c.boto("ec2").describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}])["Subnets"]
    check(subs, "no subnet in us-east-1a")
    p = mayfly("launch", write_job(JOB), "--image-id", c.info["ami_id"], "--instance-type", "p3dn.24xlarge",
               "--subnet-id", subs[0]["SubnetId"], "--install", "preinstalled", "--iam-instance-profile",
               c.info["role"], env=c.admin_env())
    refused(c, p, 3, "p3dn.24xlarge is not offered in us-east-1a (%s)" % subs[0]["SubnetId"])
    p = mayfly("launch", write_job(JOB), "--image-id", c.info["ami_id"], "--instance-type", "x9.nonsense",
               "--install", "preinstalled", "--iam-instance-profile", c.info["role"], env=c.admin_env())
    refused(c, p, 2, "x9.nonsense")
    check(ec2_state(c) == before, "EC2 changed")


def test_a_stock_image_without_install_is_refused_with_the_hint(c):
    before = ec2_state(c)
    p = mayfly("launch", write_job(JOB), "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge",
               "--iam-instance-profile", c.info["role"], env=c.admin_env())
    refused(c, p, 2, "--install static", "--install preinstalled")
    check(ec2_state(c) == before, "EC2 changed")


def test_missing_ec2_permissions_exit_4(c):
    """The launcher's own refusal shows in the DryRun (moto's DryRun checks no IAM, so the refusal is injected)."""
    before = ec2_state(c)
    c.faults([{"service": "ec2", "action": "RunInstances", "status": 403, "code": "UnauthorizedOperation",
               "format": "ec2", "message": "You are not authorized to perform this operation."}])
    p = launch(c)
    c.faults_done()
    refused(c, p, 4, "RunInstances would be refused (DryRun)", "UnauthorizedOperation")
    check(ec2_state(c) == before, "EC2 changed")
