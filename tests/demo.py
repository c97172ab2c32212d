#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make demo: the main job end to end on the local fake cloud. Starts moto (SigV4 checking on) and the IMDS
fake, uploads examples/experiment as a tar.gz, runs `mayfly run` with examples/job.json as an instance would
(credentials from the instance role via IMDS), then shows where logs and status landed and the instance's
state in moto."""
import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)
    from harness import MAYFLY, Cloud
    work = tempfile.mkdtemp(prefix="mayfly-demo-")
    os.chmod(work, 0o755)
    print("== starting the fake cloud (moto with SigV4 checking + IMDS fake)", flush=True)
    with Cloud(auth=True, buckets=["mayfly-demo"]) as c:
        tgz = os.path.join(work, "experiment.tar.gz")
        with tarfile.open(tgz, "w:gz") as t:
            t.add(os.path.join(ROOT, "examples", "experiment"), arcname=".")
        c.aws("s3", "cp", tgz, "s3://mayfly-demo/jobs/demo/experiment.tar.gz")
        job = json.load(open(os.path.join(ROOT, "examples", "job.json")))
        # As root mayfly would pick ec2-user/ubuntu or create a `mayfly` user; the demo uses `nobody`
        # so it leaves no account behind on the machine.
        if os.geteuid() == 0:
            job["user"] = "nobody"
        jp = os.path.join(work, "job.json")
        with open(jp, "w") as f:
            json.dump(job, f, indent=2)
        env = c.role_env()
        env.update(STATE_DIRECTORY=os.path.join(work, "state"), LOGS_DIRECTORY=os.path.join(work, "logs"),
                   CACHE_DIRECTORY=os.path.join(work, "cache"),
                   MAYFLY_POWEROFF_COMMAND="touch " + os.path.join(work, "poweroff-ran"))
        print("== instance %s (%s), job %s" % (c.info["instance_id"], c.info["region"], jp), flush=True)
        print("== mayfly run --job %s" % jp, flush=True)
        t0 = time.time()
        p = subprocess.run([MAYFLY, "run", "--job", jp], env=env, timeout=600)
        print("== mayfly run exited %d after %.1fs" % (p.returncode, time.time() - t0), flush=True)
        ls = c.aws("s3", "ls", "--recursive", "s3://mayfly-demo/results/").stdout.decode()
        print("== results in S3:\n" + ls, flush=True)
        status_key = [l.split()[-1] for l in ls.splitlines() if l.endswith("status.json")]
        if status_key:
            st = c.aws("s3", "cp", "s3://mayfly-demo/" + status_key[0], "-").stdout.decode()
            s = json.loads(st)
            print("== status.json: outcome %s, %s" % (s["outcome"], ", ".join(
                "%s exit %s" % (e["name"], e["exit_code"]) for e in s["experiments"])), flush=True)
            print("   s3://mayfly-demo/" + status_key[0])
        inst = c.boto("ec2").describe_instances(InstanceIds=[c.info["instance_id"]])
        state = inst["Reservations"][0]["Instances"][0]["State"]["Name"]
        print("== instance %s in moto: %s" % (c.info["instance_id"], state), flush=True)
        ok = p.returncode == 0 and state in ("terminated", "shutting-down")
        print("== demo %s" % ("succeeded" if ok else "FAILED"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
