# SPDX-License-Identifier: Apache-2.0
"""Delivery: the systemd units (systemd-analyze verify and security), `mayfly userdata` checked by cloud-init's
own schema validator, credentials refused, `mayfly launch` against moto, `mayfly status` / `mayfly logs`."""
import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import ROOT, Cloud, check, mayfly, out

CLOUD_INIT = "/var/cache/mayfly-test/cloud-init"
UNITS = ["mayfly.service", "mayfly-failsafe.service", "mayfly-scratch.service", "mayfly-backstop.service",
         "mayfly-backstop.timer"]
SHA = "ab" * 32


def units_dir():
    d = tempfile.mkdtemp(prefix="mayfly-units-")
    mf = os.path.join(os.environ["MAYFLY_BUILD"], "mayfly")
    for u in UNITS:
        with open(os.path.join(ROOT, "units", u)) as f:
            text = f.read().replace("/usr/bin/mayfly", mf)
        with open(os.path.join(d, u), "w") as f:
            f.write(text)
    return d


def test_units_verify_clean():
    d = units_dir()
    # Documentation=man: pages are checked too: point man at the ones the packages install
    env = dict(os.environ, MANPATH=os.path.join(ROOT, "packaging", "man"))
    p = subprocess.run(["systemd-analyze", "verify"] + [os.path.join(d, u) for u in UNITS], capture_output=True,
                       text=True, timeout=60, env=env)
    noise = [l for l in p.stderr.splitlines() if l and "Failed to" not in l and "container" not in l]
    check(p.returncode == 0 and not noise, "verify: rc %d\n%s" % (p.returncode, p.stderr))
    shutil.rmtree(d)


def test_units_security_score():
    d = units_dir()
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", os.path.join(d, "mayfly.service")],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for mayfly.service: ([0-9.]+)", p.stdout + p.stderr)
    check(m, p.stdout[-500:] + p.stderr[-500:])
    score = float(m.group(1))
    print("systemd-analyze security mayfly.service: %.1f" % score)
    check(score <= 4.5, "exposure %.1f above 4.5" % score)
    readme = open(os.path.join(ROOT, "units", "README.md")).read()
    check("**%.1f OK**" % score in readme, "units/README.md does not report the current score %.1f" % score)
    shutil.rmtree(d)


def schema_check(path):
    if not os.path.exists(os.path.join(CLOUD_INIT, "usr", "bin", "cloud-init")):
        raise AssertionError("cloud-init not unpacked at %s (tests/deps.sh test does it)" % CLOUD_INIT)
    env = dict(os.environ, PYTHONPATH=os.path.join(CLOUD_INIT, "usr", "lib", "python3", "dist-packages"))
    p = subprocess.run(["/usr/bin/python3", os.path.join(CLOUD_INIT, "usr", "bin", "cloud-init"), "schema",
                        "--config-file", path], capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout + p.stderr


REALISTIC = {
    "name": "resnet-sweep", "source": "s3://my-bucket/jobs/resnet/experiment.tar.gz", "results": "s3://my-bucket/r/",
    "workdir": "/srv/mayfly/work", "env": {"conda": "pytorch"},
    "environment": {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "8"},
    "experiments": [{"name": "lr-%d" % i, "command": ["python", "train.py", "--lr", "0.%d" % i], "timeout": "6h"}
                    for i in range(1, 9)],
    "continue_on_failure": True, "outputs": ["outputs/*", "model-*.pt"],
    "checkpoint": {"path": "checkpoints", "interval": "10m"},
    "gpu": {"require": True, "min_count": 1, "wait_seconds": 300, "idle_minutes": 30},
    "max_runtime": "14h", "on_exit": "terminate", "on_error": "terminate"}


def write_job(job):
    d = tempfile.mkdtemp(prefix="mayfly-ud-")
    p = os.path.join(d, "job.json")
    with open(p, "w") as f:
        json.dump(job, f, indent=2)
    return d, p


def test_userdata_each_route_passes_cloud_init_schema():
    d, jp = write_job(REALISTIC)
    for route in ("preinstalled", "deb=https://example.com/mayfly_0.1.0_amd64.deb",
                  "rpm=https://example.com/mayfly-0.1.0-1.x86_64.rpm", "binary=https://example.com/mayfly"):
        args = ["userdata", jp, "--install", route, "--env", "AWS_ENDPOINT_URL=https://vpce.example"]
        if route != "preinstalled":
            args += ["--sha256", SHA]
        p = mayfly(*args)
        check(p.returncode == 0, out(p))
        ud = p.stdout
        check(ud.startswith(b"#cloud-config\n") and len(ud) <= 16384, "%s: %d bytes" % (route, len(ud)))
        path = os.path.join(d, "ud.yaml")
        with open(path, "wb") as f:
            f.write(ud)
        rc, msg = schema_check(path)
        check(rc == 0 and "Valid cloud-config" in msg, "%s: %s" % (route, msg))
        import yaml
        doc = yaml.safe_load(ud)
        files = {f["path"]: f for f in doc["write_files"]}
        check(json.loads(files["/etc/mayfly/job.json"]["content"]) == REALISTIC, "job content altered")
        check(files["/etc/mayfly/env"]["content"] == "AWS_ENDPOINT_URL=https://vpce.example\n", "env file")
        check(files["/etc/mayfly/env"]["permissions"] == "0600", "env file mode")
        check("OnBootSec=%ds" % (14 * 3600 + 45 * 60) in
              files["/etc/systemd/system/mayfly-backstop.timer.d/deadline.conf"]["content"], "backstop deadline")
        script = files["/var/lib/mayfly-install.sh"]["content"]
        with open(os.path.join(ROOT, "userdata", "install.sh")) as f:
            check(script == f.read(), "the install script is not userdata/install.sh as it is")
        # the route, its source and sha256 are the script's arguments
        name, _, src = route.partition("=")
        check(doc["runcmd"] == [["/bin/sh", "/var/lib/mayfly-install.sh", name, src, SHA if src else "", ""]],
              repr(doc["runcmd"]))
        check(not any(p.startswith("/etc/systemd/system/mayfly") and p.endswith((".service", ".timer"))
                      for p in files), "units in write_files (the binary route writes them with install-units)")
    # in the script, each route verifies the checksum before anything from the download runs
    for fetched, used in (('"$tmp/mayfly.deb"', 'apt-get install -y "$tmp/mayfly.deb"'),
                          ('"$tmp/mayfly.rpm"', 'dnf install -y "$tmp/mayfly.rpm"'),
                          ('"$tmp/mayfly"\n', 'install -m 0755 "$tmp/mayfly"')):
        check(script.index("verify " + fetched) < script.index(used), "%s used before verify" % used)
    shutil.rmtree(d)


def test_userdata_backstop_margin():
    def deadline(job, *extra):
        d, jp = write_job(job)
        p = mayfly("userdata", jp, *extra)
        shutil.rmtree(d)
        if p.returncode != 0:
            return p.returncode, out(p)
        import yaml
        files = {f["path"]: f for f in yaml.safe_load(p.stdout)["write_files"]}
        warnings.append(p.stderr.decode(errors="replace"))
        return 0, files["/etc/systemd/system/mayfly-backstop.timer.d/deadline.conf"]["content"]
    warnings = []
    # OnBootSec= emptied first (the timer's own default is replaced, not added to)
    check(deadline(REALISTIC, "--backstop-margin", "2h") == (0, "[Timer]\nOnBootSec=\nOnBootSec=%ds\n" % (16 * 3600)),
          repr(deadline(REALISTIC, "--backstop-margin", "2h")))
    check(warnings[-1] == "", "a 2h margin warned: %r" % warnings[-1])
    check(deadline(REALISTIC, "--backstop-margin", "90") == (0, "[Timer]\nOnBootSec=\nOnBootSec=%ds\n" % (14 * 3600 + 90)),
          "a margin in seconds")
    # shorter than stop_grace (30 s) + ship_timeout (600 s) + 300 s for boot and fetch: rendered, with a warning
    check(warnings[-1] == "mayfly: warning: --backstop-margin 90s is less than stop_grace + ship_timeout + 300s for "
          "boot and fetch (930s): the backstop may power off during the final upload\n", repr(warnings[-1]))
    no_max = {k: v for k, v in REALISTIC.items() if k != "max_runtime"}
    check(deadline(no_max, "--backstop-margin", "5m")[1].endswith("OnBootSec=172800s\n"), "48 h without max_runtime")
    check("--backstop-margin is unused: the job has no max_runtime" in warnings[-1], repr(warnings[-1]))
    deadline(REALISTIC)
    check(warnings[-1] == "", "no --backstop-margin, yet a warning: %r" % warnings[-1])
    for bad in ("30s", "8d", "ten", "-5m", "5x", ""):
        rc, msg = deadline(REALISTIC, "--backstop-margin", bad)
        check(rc == 2 and "--backstop-margin must be a duration from 1m to 7d" in msg and "\n" not in msg.strip(),
              "%r: %d %s" % (bad, rc, msg))


def test_userdata_gzip_when_large():
    big = dict(REALISTIC, experiments=[{"name": "e%03d" % i, "command": ["python", "train.py", "--seed", str(i),
                                                                          "--config", "configs/%03d.yaml" % i]}
                                       for i in range(200)])
    d, jp = write_job(big)
    p = mayfly("userdata", jp, "--output", os.path.join(d, "ud.gz"))
    check(p.returncode == 0, out(p))
    raw = open(os.path.join(d, "ud.gz"), "rb").read()
    check(raw[:2] == b"\x1f\x8b" and len(raw) <= 16384, "not gzipped or too big: %d" % len(raw))
    text = gzip.decompress(raw)
    check(len(text) > 16384 and text.startswith(b"#cloud-config"), "gzip for nothing")
    with open(os.path.join(d, "ud.yaml"), "wb") as f:
        f.write(text)
    rc, msg = schema_check(os.path.join(d, "ud.yaml"))
    check(rc == 0, msg)
    shutil.rmtree(d)


def test_userdata_refuses_credentials():
    cases = [dict(REALISTIC, environment={"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}),
             dict(REALISTIC, environment={"KEY": "AKIAIOSFODNN7EXAMPLE"}),
             dict(REALISTIC, experiments=[{"name": "a", "command": "AWS_SESSION_TOKEN=abc python x.py"}])]
    for job in cases:
        d, jp = write_job(job)
        p = mayfly("userdata", jp)
        check(p.returncode == 2 and "instance role" in out(p) and "wJalr" not in out(p), out(p))
        check(p.stdout == b"", "printed user-data anyway")
    d, jp = write_job(REALISTIC)
    p = mayfly("userdata", jp, "--env", "AWS_SECRET_ACCESS_KEY=x")
    check(p.returncode == 2 and "instance role" in out(p), out(p))
    for bad in (["--install", "deb=https://x/y.deb"], ["--install", "binary=ftp://x/y", "--sha256", SHA],
                ["--install", "deb=https://x/y.deb", "--sha256", "abc"], ["--env", "NOEQUALS"]):
        p = mayfly("userdata", jp, *bad)
        check(p.returncode == 2, "%r accepted: %s" % (bad, out(p)))


def setup():
    c = Cloud(auth=True).__enter__()
    return c


def teardown(c):
    c.__exit__(None, None, None)


def launch(c, *extra, job=None):
    d = tempfile.mkdtemp(prefix="mayfly-launch-")
    src = os.path.join(d, "experiment")
    os.makedirs(os.path.join(src, "data"))
    with open(os.path.join(src, "train.py"), "w") as f:
        f.write("print('hi')\n")
    with open(os.path.join(src, "data", "x.bin"), "wb") as f:
        f.write(os.urandom(3000))
    job = job or {"name": "exp1", "source": src, "results": "s3://mayfly-test/results/",
                  "experiments": [{"name": "a", "command": ["python3", "train.py"]}], "max_runtime": "2h"}
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump(job, f)
    d_args = ([] if "--install" in extra else ["--install", "preinstalled"]) + \
        ([] if "--iam-instance-profile" in extra else ["--iam-instance-profile", c.info["role"]])
    return mayfly("launch", jp, "--image-id", c.info["ami_id"], "--instance-type", "p3.2xlarge", *d_args, *extra,
                  env=c.admin_env()), d


def test_launch_creates_instance_as_specified(c):
    iam = c.boto("iam")
    iam.create_instance_profile(InstanceProfileName="mayfly-instance-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="mayfly-instance-profile", RoleName=c.info["role"])
    sg = c.boto("ec2").create_security_group(GroupName="mayfly", Description="mayfly test")["GroupId"]
    p, d = launch(c, "--iam-instance-profile", "mayfly-instance-profile", "--security-group-id", sg)
    check(p.returncode == 0, out(p))
    lines = p.stdout.decode().split()
    ids = [x for x in lines if x.startswith("i-")]
    check(len(ids) == 1 and "s3://mayfly-test/results/exp1/" in p.stdout.decode(), p.stdout.decode())
    ec2 = c.boto("ec2")
    inst = ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    check(tags.get("mayfly:run") == "exp1", repr(tags))
    check(inst.get("MetadataOptions", {}).get("HttpTokens") == "required", repr(inst.get("MetadataOptions")))
    check(inst.get("IamInstanceProfile", {}).get("Arn", "").endswith("/mayfly-instance-profile"),
          repr(inst.get("IamInstanceProfile")))
    check([g["GroupId"] for g in inst.get("SecurityGroups", [])] == [sg], repr(inst.get("SecurityGroups")))
    beh = ec2.describe_instance_attribute(InstanceId=ids[0], Attribute="instanceInitiatedShutdownBehavior")
    check(beh["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate", repr(beh))
    ud = ec2.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")["UserData"]["Value"]
    text = base64.b64decode(ud)
    if text[:2] == b"\x1f\x8b":
        text = gzip.decompress(text)
    check(text.startswith(b"#cloud-config"), text[:100])
    import yaml
    files = {f["path"]: f for f in yaml.safe_load(text)["write_files"]}
    job = json.loads(files["/etc/mayfly/job.json"]["content"])
    check(job["source"].startswith("s3://mayfly-test/results/exp1/sources/") and job["source"].endswith(".tar.gz"),
          job["source"])
    # the packed source is in S3 and holds the directory
    key = job["source"][len("s3://mayfly-test/"):]
    body = c.boto("s3").get_object(Bucket="mayfly-test", Key=key)["Body"].read()
    import io
    import tarfile
    names = tarfile.open(fileobj=io.BytesIO(body), mode="r:gz").getnames()
    check("train.py" in names and "data/x.bin" in names, repr(names))
    shutil.rmtree(d)


def test_launch_packs_by_tree_honours_mayflyignore_and_uploads_once(c):
    """A local source is named by the hash of its tree: the same files launched again are not uploaded again; a
    changed file is; .mayflyignore and .git/ are left out; the folder is taken from the job file's folder."""
    d = tempfile.mkdtemp(prefix="mayfly-pack-")
    src = os.path.join(d, "code")
    os.makedirs(os.path.join(src, ".git"))
    os.makedirs(os.path.join(src, "checkpoints"))
    for rel, text in (("train.py", "print(1)\n"), (".git/HEAD", "ref\n"), ("checkpoints/big.pt", "w" * 1000),
                      (".mayflyignore", "checkpoints/\n*.log\n"), ("run.log", "noise\n")):
        with open(os.path.join(src, rel), "w") as f:
            f.write(text)
    jp = os.path.join(d, "job.json")
    with open(jp, "w") as f:
        json.dump({"name": "packed", "source": "code", "results": "s3://mayfly-test/results/",
                   "experiments": [{"name": "a", "command": "true"}]}, f)
    args = ["--image-id", c.info["ami_id"], "--instance-type", "p3.2xlarge", "--install", "preinstalled",
            "--iam-instance-profile", c.info["role"]]
    p1 = mayfly("launch", jp, *args, env=c.admin_env(), timeout=120)
    check(p1.returncode == 0 and "and uploaded it to" in out(p1), out(p1))
    uri = re.search(r"uploaded it to (s3://\S+)", out(p1)).group(1)
    p2 = mayfly("launch", jp, *args, env=c.admin_env(), timeout=120)
    check(p2.returncode == 0 and "is already at %s" % uri in out(p2), out(p2))
    with open(os.path.join(src, "train.py"), "w") as f:
        f.write("print(2)\n")
    p3 = mayfly("launch", jp, *args, env=c.admin_env(), timeout=120)
    check(p3.returncode == 0 and "and uploaded it to" in out(p3) and uri not in out(p3), out(p3))
    import io
    import tarfile
    body = c.boto("s3").get_object(Bucket="mayfly-test", Key=uri[len("s3://mayfly-test/"):])["Body"].read()
    names = sorted(tarfile.open(fileobj=io.BytesIO(body), mode="r:gz").getnames())
    check(names == [".mayflyignore", "train.py"], repr(names))
    shutil.rmtree(d)


def test_launch_spot_and_count_is_gone(c):
    p, d = launch(c, "--spot")
    check(p.returncode == 0, out(p))
    ids = [x for x in p.stdout.decode().split() if x.startswith("i-")]
    check(len(ids) == 1, p.stdout.decode())
    inst = c.boto("ec2").describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"]
    check(all(i.get("InstanceLifecycle") == "spot" for i in inst), repr([i.get("InstanceLifecycle") for i in inst]))
    # N instances each running the whole job as a run of its own: gone, --instances N shares one run
    p, d = launch(c, "--spot", "--count", "2")
    check(p.returncode == 2 and "--instances N" in out(p), out(p))
    shutil.rmtree(d)


def test_launch_refuses_credentials_and_bad_source(c):
    p, d = launch(c, job={"name": "x", "source": "s3://mayfly-test/x.tar.gz", "results": "s3://mayfly-test/r/",
                          "environment": {"AWS_SECRET_ACCESS_KEY": "abc"},
                          "experiments": [{"name": "a", "command": "true"}]})
    check(p.returncode == 2 and "instance role" in out(p), out(p))
    p, d = launch(c, job={"name": "x", "source": "/no/such/dir", "results": "s3://mayfly-test/r/",
                          "experiments": [{"name": "a", "command": "true"}]})
    check(p.returncode == 2 and "$.source" in out(p), out(p))


def test_status_and_logs_read_a_run(c):
    s3 = c.boto("s3")
    run = "results/job9/i-0abc-20260101T000000Z/"
    old = "results/job9/i-0abc-20251231T000000Z/"
    st = {"name": "job9", "run_id": "i-0abc-20260101T000000Z", "outcome": "succeeded",
          "instance": {"id": "i-0abc", "type": "p3.2xlarge", "availability_zone": "us-east-1a"},
          "experiments": [{"name": "a", "status": "done", "reason": "exit", "exit_code": 0, "signal": None},
                          {"name": "b", "status": "done", "reason": "timeout", "exit_code": None, "signal": 9}]}
    s3.put_object(Bucket="mayfly-test", Key=old + "status.json", Body=json.dumps(dict(st, outcome="failed")))
    s3.put_object(Bucket="mayfly-test", Key=run + "status.json", Body=json.dumps(st))
    s3.put_object(Bucket="mayfly-test", Key=run + "logs/a/stdout.log", Body=b"line 1\nprogress\r100%\nline 3\n")
    env = c.admin_env()
    p = mayfly("status", "s3://mayfly-test/results/job9/", env=env)
    t = p.stdout.decode()
    check(p.returncode == 0 and "outcome:  succeeded" in t and "20260101" in t, t + out(p))
    check("signal 9" in t and "exit 0" in t and "timeout" in t, t)
    p = mayfly("status", "s3://mayfly-test/results/job9/i-0abc-20251231T000000Z/", "--json", env=env)
    check(p.returncode == 6 and json.loads(p.stdout)["outcome"] == "failed", out(p))  # an ended run, not succeeded
    # a run that goes on: the outcome first, an interrupted experiment that will resume says so, the link last
    live = "results/job9b/i-0abc-20260102T000000Z/"
    s3.put_object(Bucket="mayfly-test", Key=live + "status.json", Body=json.dumps(dict(st, outcome="running", experiments=[
        {"name": "a", "status": "done", "reason": "interrupted", "exit_code": 143, "signal": None, "attempts": 1},
        {"name": "b", "status": "running", "reason": "", "exit_code": None, "signal": None, "attempts": 3},
        {"name": "c", "status": "pending", "reason": "", "exit_code": None, "signal": None, "attempts": 0}])))
    p = mayfly("status", "s3://mayfly-test/results/job9b/i-0abc-20260102T000000Z/", env=env)
    t = p.stdout.decode()
    lines = t.splitlines()
    check(p.returncode == 0 and lines[0] == "outcome:  running" and lines[-1].startswith("report:"), t)
    check("a                    interrupted (interrupted), will resume (attempt 2)" in t, t)
    check("b                    running (attempt 3)" in t and "c                    pending" in t, t)
    p = mayfly("status", "s3://mayfly-test/results/job9b/i-0abc-20260102T000000Z/", "--link", env=env)
    check(p.returncode == 0 and "no report.html" in out(p), out(p))
    p = mayfly("logs", "s3://mayfly-test/results/job9/", env=env)  # two experiments: each line names its own
    check(p.returncode == 0 and p.stdout == b"a | line 1\na | progress\ra | 100%\na | line 3\n", repr(p.stdout))
    p = mayfly("logs", "s3://mayfly-test/results/job9/", "--experiment", "a", env=env)
    check(p.returncode == 0 and p.stdout == b"line 1\nprogress\r100%\nline 3\n", repr(p.stdout))
    p = mayfly("status", "s3://mayfly-test/results/nothing-here/", env=env)
    check(p.returncode == 3 and "no run" in out(p), out(p))


def test_logs_from_live_chunks_and_follow(c):
    s3 = c.boto("s3")
    run = "results/job10/i-0def-20260101T000000Z/"
    st = {"name": "job10", "outcome": "running", "experiments": [{"name": "train"}]}
    s3.put_object(Bucket="mayfly-test", Key=run + "status.json", Body=json.dumps(st))
    s3.put_object(Bucket="mayfly-test", Key=run + "live/train/stdout.000000000000", Body=b"one\n")
    s3.put_object(Bucket="mayfly-test", Key=run + "live/train/stdout.000000000004", Body=b"two\n")
    s3.put_object(Bucket="mayfly-test", Key=run + "live/train/stderr.000000000000", Body=b"err\n")
    env = c.admin_env()
    p = mayfly("logs", "s3://mayfly-test/results/job10/", env=env)  # both streams
    check(p.returncode == 0 and sorted(p.stdout.splitlines()) == [b"err", b"one", b"two"], repr(p.stdout))
    check(p.stdout.index(b"one") < p.stdout.index(b"two"), repr(p.stdout))
    p = mayfly("logs", "s3://mayfly-test/results/job10/", "--stdout", env=env)
    check(p.returncode == 0 and p.stdout == b"one\ntwo\n", repr(p.stdout))
    p = mayfly("logs", "s3://mayfly-test/results/job10/", "--stderr", env=env)
    check(p.stdout == b"err\n", repr(p.stdout))
    f = subprocess.Popen([os.path.join(os.environ["MAYFLY_BUILD"], "mayfly"), "logs", "--follow", "--stdout",
                          "s3://mayfly-test/results/job10/"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import time
    time.sleep(2)
    s3.put_object(Bucket="mayfly-test", Key=run + "live/train/stdout.000000000008", Body=b"three\n")
    time.sleep(6)
    s3.put_object(Bucket="mayfly-test", Key=run + "logs/train/stdout.log", Body=b"one\ntwo\nthree\nfour\n")
    s3.put_object(Bucket="mayfly-test", Key=run + "status.json", Body=json.dumps(dict(st, outcome="succeeded")))
    o, e = f.communicate(timeout=30)
    check(f.returncode == 0 and o == b"one\ntwo\nthree\nfour\n", repr(o) + e.decode())


def launched_user_data(c, instance_id):
    ud = c.boto("ec2").describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    text = base64.b64decode(ud)
    return gzip.decompress(text) if text[:2] == b"\x1f\x8b" else text


def test_launch_imds_hop_limit_1_by_default(c):
    ec2 = c.boto("ec2")
    p, d = launch(c)
    check(p.returncode == 0, out(p))
    iid = [x for x in p.stdout.decode().split() if x.startswith("i-")][0]
    mo = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
    check(mo.get("HttpPutResponseHopLimit") == 1 and mo.get("HttpTokens") == "required" and
          mo.get("HttpEndpoint") == "enabled", "moto recorded %r" % mo)
    p, d = launch(c, "--imds-hop-limit", "2")
    check(p.returncode == 0, out(p))
    iid = [x for x in p.stdout.decode().split() if x.startswith("i-")][0]
    mo = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
    check(mo.get("HttpPutResponseHopLimit") == 2, "moto recorded %r" % mo)
    for bad in ("0", "65", "two"):
        p, d = launch(c, "--imds-hop-limit", bad)
        check(p.returncode == 2 and "--imds-hop-limit must be 1..64" in out(p), out(p))


def test_launch_install_static_uploads_and_pins(c):
    import hashlib
    binary = os.path.join(os.environ["MAYFLY_BUILD"], "mayfly")  # any executable stands in for the static build
    with open(binary, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    t0 = __import__("time").time()
    p, d = launch(c, "--install", "static=" + binary)
    check(p.returncode == 0, out(p))
    key = "results/exp1/sources/mayfly-%s-%s" % (re.search(r"mayfly (\S+)", out(mayfly("--version"))).group(1), sha[:16])
    check("s3://mayfly-test/%s" % key in out(p) and sha in out(p), out(p))
    body = c.boto("s3").get_object(Bucket="mayfly-test", Key=key)["Body"].read()
    check(hashlib.sha256(body).hexdigest() == sha, "the uploaded binary differs")
    iid = [x for x in p.stdout.decode().split() if x.startswith("i-")][0]
    import yaml
    doc = yaml.safe_load(launched_user_data(c, iid))
    check(doc["runcmd"] == [["/bin/sh", "/var/lib/mayfly-install.sh", "binary", "s3://mayfly-test/" + key, sha,
                             c.info["region"]]], repr(doc["runcmd"]))
    path = os.path.join(d, "ud.yaml")
    with open(path, "wb") as f:
        f.write(launched_user_data(c, iid))
    rc, msg = schema_check(path)
    check(rc == 0, msg)
    puts = [e for e in c.stats()["moto_log"] if e["ts"] >= t0 and e["method"] == "PUT" and key in e["path"]]
    check(len(puts) == 1, repr(puts))
    # the same binary again: already there under its sha256, not uploaded twice
    t1 = __import__("time").time()
    p, d = launch(c, "--install", "static=" + binary)
    check(p.returncode == 0 and "already in" in out(p), out(p))
    check(not [e for e in c.stats()["moto_log"] if e["ts"] >= t1 and e["method"] == "PUT" and key in e["path"]],
          "uploaded again")
    p, d = launch(c, "--install", "static=" + binary, "--sha256", SHA)
    check(p.returncode == 2 and "drop --sha256" in out(p), out(p))
    p, d = launch(c, "--install", "static=/etc/hostname")
    check(p.returncode == 2 and "not an ELF executable" in out(p), out(p))


def test_launch_install_static_finds_the_static_build(c):
    static = os.path.join(os.environ["MAYFLY_BUILD"], "static", "mayfly")
    p, d = launch(c, "--install", "static")
    if os.path.exists(static):
        check(p.returncode == 0 and "sources/mayfly-" in out(p), out(p))
    else:
        check(p.returncode != 0 and "make static" in out(p), out(p))


def test_install_units_writes_the_built_in_units():
    d = tempfile.mkdtemp(prefix="mayfly-iu-")
    p = mayfly("install-units", d)
    check(p.returncode == 0 and p.stdout.decode().split() == [os.path.join(d, u) for u in UNITS], out(p))
    for u in UNITS:
        with open(os.path.join(ROOT, "units", u)) as f, open(os.path.join(d, u)) as g:
            check(f.read() == g.read(), u)
        check(oct(os.stat(os.path.join(d, u)).st_mode & 0o777) == "0o644", u)
    check(sorted(os.listdir(d)) == sorted(UNITS), "stray files: %r" % os.listdir(d))
    p = mayfly("install-units", os.path.join(d, "missing"))
    check(p.returncode == 2 and "is not a directory" in out(p), out(p))
    p = mayfly("install-units", "--help")
    check(p.returncode == 0 and out(p).startswith("usage: mayfly install-units"), out(p))
    shutil.rmtree(d)
