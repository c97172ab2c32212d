# SPDX-License-Identifier: Apache-2.0
"""Credentials the way the AWS CLI finds them, on a "laptop" with nothing but ~/.aws/credentials and ~/.aws/config
(no keys in the environment, IMDS disabled): [default], AWS_PROFILE with its region, credential_process, role_arn +
source_profile through STS AssumeRole against moto (signature checking on), AWS_CONFIG_FILE and
AWS_SHARED_CREDENTIALS_FILE. Each case is run by `aws` (awscli) with the same files too, and what moto saw is
compared: the access key, the signing region, the AssumeRole call."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from harness import Cloud, check, mayfly, out

BUCKET = "mayfly-test"
ROLE = "arn:aws:iam::123456789012:role/mayfly-laptop-role"  # made by setup(): a person's role that may launch


def make_laptop_role(c):
    """A role the admin user may assume, with what `mayfly launch` and `cp` need (the instance role has only what
    docs/iam.md gives an instance: no RunInstances)."""
    iam = c.boto("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
        "AWS": ["arn:aws:iam::123456789012:user/admin", "arn:aws:iam::123456789012:root"]}}]}
    iam.create_role(RoleName="mayfly-laptop-role", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="mayfly-laptop-role", PolicyName="launch", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "s3:*", "ec2:*", "autoscaling:*", "iam:PassRole", "iam:GetInstanceProfile"], "Resource": "*"}]}))


def setup():
    c = Cloud(auth=True).__enter__()
    make_laptop_role(c)
    c.home = tempfile.mkdtemp(prefix="mayfly-home-")
    os.makedirs(os.path.join(c.home, ".aws"))
    key, secret = c.info["admin_access_key"], c.info["admin_secret_key"]
    proc = os.path.join(c.home, "creds-proc.py")
    with open(proc, "w") as f:
        f.write("import json, sys\nopen(sys.argv[1], 'a').write('ran\\n')\n"
                "print(json.dumps({'Version': 1, 'AccessKeyId': %r, 'SecretAccessKey': %r}))\n" % (key, secret))
    c.proc_marker = os.path.join(c.home, "proc-ran")
    with open(os.path.join(c.home, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n"
                "[west]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n"
                "[badsecret]\naws_access_key_id = %s\naws_secret_access_key = wrong%s\n" %
                (key, secret, key, secret, key, secret[5:]))
    with open(os.path.join(c.home, ".aws", "config"), "w") as f:
        f.write("[default]\nregion = us-east-1\n\n"
                "[profile west]\nregion = eu-west-1\n\n"
                "[profile badsecret]\nregion = us-east-1\n\n"
                "[profile proc]\nregion = us-east-1\ncredential_process = %s %s '%s'\n\n"
                "[profile failing]\nregion = us-east-1\ncredential_process = %s -c 'import sys; sys.exit(3)'\n\n"
                "[profile assumed]\nregion = us-east-1\nrole_arn = %s\nsource_profile = default\n"
                "role_session_name = laptop\n" % (sys.executable, proc, c.proc_marker, sys.executable, ROLE))
    c.tmp = tempfile.mkdtemp(prefix="mayfly-prof-")
    c.src = os.path.join(c.tmp, "payload.bin")
    with open(c.src, "wb") as f:
        f.write(os.urandom(4000))
    return c


def teardown(c):
    c.__exit__(None, None, None)
    shutil.rmtree(c.home, ignore_errors=True)
    shutil.rmtree(c.tmp, ignore_errors=True)


def laptop_env(c, **extra):
    """No keys, no region, no IMDS: only HOME's ~/.aws files (and the fake cloud's endpoint)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAYFLY_"))}
    env.update(HOME=c.home, AWS_ENDPOINT_URL=c.endpoint, AWS_EC2_METADATA_DISABLED="true")
    env.update(extra)
    return env


def aws(env, *args):
    """awscli as the user runs it: no --endpoint-url (AWS_ENDPOINT_URL), no region but the files'."""
    return subprocess.run(["aws", *args], env=env, capture_output=True, timeout=120)


def seen_since(c, t0, pred=lambda e: True):
    return [e for e in c.stats()["moto_log"] if e["ts"] >= t0 and pred(e)]


def both(c, key, **extra):
    """`mayfly cp` and `aws s3 cp` of the payload with the same files; what moto saw of each PUT."""
    env = laptop_env(c, **extra)
    t0 = time.time()
    p = mayfly("cp", c.src, "s3://%s/%s-mayfly" % (BUCKET, key), env=env, timeout=120)
    check(p.returncode == 0, "mayfly: " + out(p))
    m = seen_since(c, t0, lambda e: e["method"] == "PUT" and e["path"].endswith(key + "-mayfly"))
    t1 = time.time()
    a = aws(env, "s3", "cp", c.src, "s3://%s/%s-aws" % (BUCKET, key))
    check(a.returncode == 0, "aws with the same files: " + a.stderr.decode(errors="replace")[-500:])
    w = seen_since(c, t1, lambda e: e["method"] == "PUT" and e["path"].endswith(key + "-aws"))
    check(len(m) == 1 and len(w) == 1, "PUTs seen: %r %r" % (m, w))
    return m[0], w[0], seen_since(c, t0)


def test_default_profile_from_home(c):
    m, w, _ = both(c, "prof/default")
    check(m["access_key_id"] == c.info["admin_access_key"] == w["access_key_id"], repr((m, w)))
    check(m["region"] == "us-east-1" == w["region"], "region %s / aws %s" % (m["region"], w["region"]))


def test_aws_profile_and_its_region(c):
    m, w, _ = both(c, "prof/west", AWS_PROFILE="west")
    check(m["region"] == "eu-west-1" == w["region"], "signed for %s (aws: %s), the profile says eu-west-1" %
          (m["region"], w["region"]))
    # the environment's region still wins over the profile's, as for the CLI (awscli 1 reads AWS_DEFAULT_REGION only;
    # mayfly reads AWS_REGION before it, as the SDKs and CLI v2 do)
    m, w, _ = both(c, "prof/west-env", AWS_PROFILE="west", AWS_DEFAULT_REGION="us-east-1")
    check(m["region"] == "us-east-1" == w["region"], repr((m["region"], w["region"])))


def test_credential_process(c):
    if os.path.exists(c.proc_marker):
        os.unlink(c.proc_marker)
    m, w, _ = both(c, "prof/proc", AWS_PROFILE="proc")
    check(m["access_key_id"] == c.info["admin_access_key"] == w["access_key_id"], repr((m, w)))
    with open(c.proc_marker) as f:
        check(f.read() == "ran\nran\n", "the process did not run once for each")
    p = mayfly("cp", c.src, "s3://%s/prof/failing" % BUCKET, env=laptop_env(c, AWS_PROFILE="failing"))
    check(p.returncode == 4 and "credential_process" in out(p) and "exited with status 3" in out(p), out(p))
    check(len(out(p).splitlines()) == 1, out(p))


def test_role_arn_with_source_profile_assumes_the_role(c):
    m, w, log = both(c, "prof/assumed", AWS_PROFILE="assumed")
    for who, e in (("mayfly", m), ("aws", w)):
        check(e["access_key_id"].startswith("ASIA") and e["access_key_id"] != c.info["admin_access_key"],
              "%s signed with %s, not the role's temporary key" % (who, e["access_key_id"]))
    calls = [e for e in log if e.get("action") == "AssumeRole"]
    check(len(calls) == 2 and all(e["service"] == "sts" and e["access_key_id"] == c.info["admin_access_key"]
                                  and e["status"] == 200 for e in calls), repr(calls))


def test_launch_with_an_assumed_role_profile(c):
    d = tempfile.mkdtemp(prefix="mayfly-prof-launch-")
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump({"name": "fromlaptop", "source": "s3://%s/src/x.tar.gz" % BUCKET,
                   "results": "s3://%s/results/" % BUCKET, "experiments": [{"name": "a", "command": "true"}]}, f)
    c.boto("s3").put_object(Bucket=BUCKET, Key="src/x.tar.gz", Body=b"")
    t0 = time.time()
    p = mayfly("launch", jp, "--image-id", c.info["ami_id"], "--instance-type", "p3.2xlarge", "--install",
               "preinstalled", "--iam-instance-profile", c.info["role"], env=laptop_env(c, AWS_PROFILE="assumed"))
    check(p.returncode == 0, out(p))
    ids = [x for x in p.stdout.decode().split() if x.startswith("i-")]
    check(len(ids) == 1, p.stdout.decode())
    # the preflight's DryRun, then the launch itself: both with the assumed role's keys
    run = [e for e in seen_since(c, t0) if e.get("action") == "RunInstances"]
    check(len(run) == 2 and all(e["access_key_id"].startswith("ASIA") and e["region"] == "us-east-1" for e in run),
          repr(run))
    inst = c.boto("ec2").describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"][0]
    check(inst["State"]["Name"] in ("pending", "running"), repr(inst["State"]))
    shutil.rmtree(d)


def test_env_keys_win_and_other_file_paths(c):
    if os.path.exists(c.proc_marker):
        os.unlink(c.proc_marker)
    env = laptop_env(c, AWS_PROFILE="proc", AWS_ACCESS_KEY_ID=c.info["admin_access_key"],
                     AWS_SECRET_ACCESS_KEY=c.info["admin_secret_key"], AWS_REGION="us-east-1")
    p = mayfly("cp", c.src, "s3://%s/prof/envwins" % BUCKET, env=env)
    check(p.returncode == 0 and not os.path.exists(c.proc_marker), "env keys did not win: " + out(p))
    # the files elsewhere, named by AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE, with HOME empty
    alt = tempfile.mkdtemp(prefix="mayfly-alt-")
    shutil.copy(os.path.join(c.home, ".aws", "config"), os.path.join(alt, "cfg"))
    shutil.copy(os.path.join(c.home, ".aws", "credentials"), os.path.join(alt, "creds"))
    empty = tempfile.mkdtemp(prefix="mayfly-empty-home-")
    env = laptop_env(c, HOME=empty, AWS_CONFIG_FILE=os.path.join(alt, "cfg"),
                     AWS_SHARED_CREDENTIALS_FILE=os.path.join(alt, "creds"), AWS_PROFILE="west")
    t0 = time.time()
    p = mayfly("cp", c.src, "s3://%s/prof/altpaths" % BUCKET, env=env)
    check(p.returncode == 0, out(p))
    check([e["region"] for e in seen_since(c, t0, lambda e: e["method"] == "PUT")] == ["eu-west-1"], "region")
    shutil.rmtree(alt)
    shutil.rmtree(empty)


def test_profile_errors_say_what_is_wrong(c):
    p = mayfly("cp", c.src, "s3://%s/prof/x" % BUCKET, env=laptop_env(c, AWS_PROFILE="nosuch"))
    check(p.returncode == 4 and "AWS_PROFILE names profile nosuch" in out(p) and ".aws/config" in out(p), out(p))
    a = aws(laptop_env(c, AWS_PROFILE="nosuch"), "s3", "cp", c.src, "s3://%s/prof/x" % BUCKET)
    check(a.returncode != 0 and b"nosuch" in a.stderr, "aws accepted a missing profile?")
    p = mayfly("cp", c.src, "s3://%s/prof/x" % BUCKET, env=laptop_env(c, AWS_PROFILE="badsecret"))
    check(p.returncode == 4 and "SignatureDoesNotMatch" in out(p) and "aws_secret_access_key" in out(p), out(p))
    broken = tempfile.mkdtemp(prefix="mayfly-broken-")
    with open(os.path.join(broken, "config"), "w") as f:
        f.write("[default]\nregion = us-east-1\nthis is not a setting\n")
    p = mayfly("cp", c.src, "s3://%s/prof/x" % BUCKET,
               env=laptop_env(c, AWS_CONFIG_FILE=os.path.join(broken, "config")))
    check(p.returncode == 4 and "config: line 3" in out(p) and len(out(p).splitlines()) == 1, out(p))
    # no profile at all and no IMDS: one line that lists where it looked
    empty = tempfile.mkdtemp(prefix="mayfly-empty-home-")
    p = mayfly("cp", c.src, "s3://%s/prof/x" % BUCKET, env=laptop_env(c, HOME=empty, AWS_REGION="us-east-1"))
    check(p.returncode == 4 and "no credentials" in out(p) and "~/.aws/credentials" in out(p), out(p))
    shutil.rmtree(broken)
    shutil.rmtree(empty)
