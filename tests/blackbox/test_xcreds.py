# SPDX-License-Identifier: Apache-2.0
"""The experiment never holds the instance role's keys. Its own code (Debian's boto3 under /usr/bin/python3, as the
run user, reading the container credentials provider the agent serves) finds IMDS closed to it while the agent's own
IMDS calls go on and the run succeeds; the credentials it gets are not any the instance role was issued; with an
experiment_role, moto (checking signatures and the role's policy) lets it write under outputs/ and refuses ledger/
and status.json; "none" gives it nothing, "instance-role" gives it today's IMDS."""
import json
import os

from harness import WORKER, check
from test_run import BUCKET, SCRIPTS, with_run

SCRIPTS["whoami.py"] = r"""#!/usr/bin/python3
import json, os, sys, urllib.request
out = {"env": sorted(k for k in os.environ if k.startswith("AWS_CONTAINER") or k == "AWS_EC2_METADATA_DISABLED")}
ep = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")
try:
    req = urllib.request.Request(ep + "/latest/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    urllib.request.urlopen(req, timeout=5).read()
    out["imds"] = "open"
except Exception as e:  # noqa: BLE001
    out["imds"] = "closed: %s" % type(e).__name__
import boto3, botocore
s = boto3.session.Session()
c = s.get_credentials()
out["key"] = c.access_key if c else None
out["method"] = c.method if c else None
if c:
    s3 = s.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ["AWS_ENDPOINT_URL"],
                  region_name=os.environ["AWS_REGION"])
    prefix = os.environ["MAYFLY_RESULTS"].split("/", 3)[3]
    for what, key in (("outputs", prefix + "outputs/mine.txt"), ("ledger", prefix + "ledger/end.json"),
                      ("status", prefix + "status.json")):
        try:
            s3.put_object(Bucket=os.environ["MAYFLY_RESULTS"].split("/")[2], Key=key, Body=b'{"outcome":"forged"}')
            out[what] = "written"
        except botocore.exceptions.ClientError as e:
            out[what] = e.response["Error"]["Code"]
json.dump(out, open("whoami.json", "w"))
"""


def _report(r):
    with open(os.path.join(r.work, "whoami.json")) as f:
        return json.load(f)


def _issued(r):
    return {c["AccessKeyId"] for c in r.cloud.control("GET", "/creds")["creds"]}


def _log(r):
    return open(os.path.join(r.dir, "logs", "agent.log"), errors="replace").read()


def test_the_experiment_gets_its_own_credentials_and_no_imds():
    def body(r):
        rc = r.run()
        check(rc == 0, r.stderr[-2000:])
        w = _report(r)
        check(w["imds"].startswith("closed"), "IMDS answered the run user: %r" % w)
        check("AWS_CONTAINER_CREDENTIALS_FULL_URI" in w["env"] and "AWS_EC2_METADATA_DISABLED" in w["env"],
              "%r\n%s" % (w, _log(r)[-2500:]))
        check(w["method"] == "container-role" and w["key"], "no credentials from the agent: %r\n%s" % (w, _log(r)[-2500:]))
        issued = _issued(r)
        check(issued and w["key"] not in issued, "the experiment holds an instance role key: %r" % w)
        log = _log(r)
        check("narrowed to reading the source and writing outputs/" in log, log[-2000:])
        check(r.status()["outcome"] == "succeeded", "the agent's own IMDS and S3 calls failed")
        # the session policy is what AWS would enforce; moto does not enforce session policies (docs/iam.md), so
        # the writes are not asserted here: the experiment_role test shows a policy refusing them
    with_run({"experiments": [{"name": "a", "command": ["./whoami.py"]}]}, body)


def test_an_experiment_role_writes_outputs_and_is_refused_the_ledger_and_status():
    name = "mayfly-exp-w%d" % WORKER
    # AWS would name the instance role; moto matches a principal to the caller's session ARN literally (cloud.py)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"AWS": "*"}}]}
    outputs = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": "arn:aws:s3:::%s/results/xrole/*/outputs/*" % BUCKET}]}

    def body(r):
        iam = r.cloud.boto("iam")
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName="outputs", PolicyDocument=json.dumps(outputs))
        r.job["experiment_role"] = arn
        with open(r.job_path, "w") as f:
            json.dump(r.job, f)
        rc = r.run()
        check(rc == 0, r.stderr[-2000:])
        w = _report(r)
        check(w["imds"].startswith("closed") and w["key"] and w["key"] not in _issued(r), repr(w))
        check(w["outputs"] == "written", "its own outputs refused: %r" % w)
        check(w["ledger"] == "AccessDenied" and w["status"] == "AccessDenied", "the run's records are open: %r" % w)
        st = r.status()
        check(st["outcome"] == "succeeded", json.dumps(st)[:800])
        check(("role %s," % arn) in _log(r), _log(r)[-1500:])
    with_run({"name": "xrole", "experiments": [{"name": "a", "command": ["./whoami.py"]}]}, body)


def test_none_gives_nothing_and_instance_role_gives_imds():
    def none(r):
        rc = r.run()
        check(rc == 0, r.stderr[-2000:])
        w = _report(r)
        check(w["imds"].startswith("closed") and w["key"] is None and w["env"] == ["AWS_EC2_METADATA_DISABLED"],
              "experiment_credentials none: %r" % w)
    with_run({"experiment_credentials": "none", "experiments": [{"name": "a", "command": ["./whoami.py"]}]}, none)

    def open_role(r):
        rc = r.run()
        check(rc == 0, r.stderr[-2000:])
        w = _report(r)
        check(w["imds"] == "open" and w["env"] == [], "experiment_credentials instance-role: %r" % w)
        check("experiment_credentials is instance-role" in _log(r), "the unsafe choice was not said")
    with_run({"experiment_credentials": "instance-role", "experiments": [{"name": "a", "command": ["./whoami.py"]}]},
             open_role)
