#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make demo: the README's quick start, on the local fake cloud. moto (SigV4 checking on) plays AWS and its instance
simulator plays EC2: every instance `mayfly launch` starts boots the agent from its user-data, with its own IMDS
and disk. The demo runs what a user runs — check, launch --spot --recover (the local examples/experiment folder
packed and uploaded), status, logs, report — printing each command before its output; on the way EC2 interrupts
the spot instance, and the replacement the group starts resumes the experiment from its checkpoint. KEEP=1 leaves
the fake cloud up and prints the environment to paste into another shell to explore it."""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def say(text):
    print("\n== " + text, flush=True)


def show(cmd, env, check=True, timeout=300):
    """Prints the command as a user would type it (mayfly for the binary's path), runs it, prints its output."""
    from harness import MAYFLY
    shown = " ".join(shlex.quote(a) for a in ["mayfly"] + cmd[1:])
    print("\n$ " + shown, flush=True)
    p = subprocess.run([MAYFLY] + cmd[1:], env=env, capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(p.stdout)
    sys.stdout.write(p.stderr)
    sys.stdout.flush()
    if check and p.returncode != 0:
        raise SystemExit("demo: `%s` exited %d" % (shown, p.returncode))
    return p


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    raise SystemExit("demo: %s did not happen within %d s" % (what, timeout))


def outcome(uri, env):
    """The run's outcome as status.json has it (None before the first status), without printing."""
    from harness import MAYFLY
    p = subprocess.run([MAYFLY, "status", uri, "--json"], env=env, capture_output=True, text=True, timeout=60)
    try:
        return json.loads(p.stdout).get("outcome")
    except ValueError:
        return None


def steps_done(inst):
    p = os.path.join(inst.get("root") or "/nonexistent", "state", "work", "checkpoints", "baseline", "baseline.json")
    try:
        return json.load(open(p))["step"]
    except (OSError, ValueError, KeyError):
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)
    from harness import RUN_USER, Cloud
    keep = os.environ.get("KEEP") not in (None, "", "0")
    work = tempfile.mkdtemp(prefix="mayfly-demo-")
    os.chmod(work, 0o755)
    say("starting the fake cloud: moto with SigV4 checking, the IMDS fake, and EC2's instances simulated")
    with Cloud(auth=True, buckets=["mayfly-demo"], simulate=True, grace=5) as c:
        env = c.admin_env()  # the laptop: an IAM user's keys, the endpoint of the fake cloud
        job = json.load(open(os.path.join(ROOT, "examples", "job.json")))
        job["source"] = os.path.join(ROOT, "examples", "experiment")  # a local folder: launch packs and uploads it
        job["experiments"][0]["command"] = ["python3", "train.py", "80"]  # long enough to be interrupted
        job["checkpoint"]["interval"] = "10s"
        job["user"] = RUN_USER  # the machine's `nobody` plays the run user: no account is left behind
        jp = os.path.join(work, "job.json")
        with open(jp, "w") as f:
            json.dump(job, f, indent=2)
        say("the job: %s (examples/job.json, its source the local folder examples/experiment)" % jp)
        show(["mayfly", "check", jp], env)
        p = show(["mayfly", "launch", jp, "--image-id", c.info["ami_id"], "--instance-type", "g5.xlarge", "--spot",
                  "--recover", "--install", "preinstalled", "--iam-instance-profile", c.info["role"]], env)
        uri = [l.split()[-1] for l in p.stdout.splitlines() if l.startswith("results:")][0]
        show(["mayfly", "status", uri], env)
        say("the instance boots, fetches the source, trains; EC2 then interrupts it (a spot notice, 35 s)")
        first = wait(lambda: [i for i in c.instances() if i["state"] == "running" and steps_done(i) >= 10], 120,
                     "the first instance training")[0]
        c.spot(first["instance_id"], in_s=35)
        show(["mayfly", "status", uri], env)
        say("the agent stops the experiment (SIGTERM), ships its checkpoint and log; the group starts a replacement")
        wait(lambda: any(i["instance_id"] != first["instance_id"] and i["state"] == "running" for i in c.instances()),
             180, "a replacement")
        say("the replacement resumes the experiment from its checkpoint, runs the next one, ships and ends the run")
        wait(lambda: outcome(uri, env) not in (None, "running"), 300, "the run's end")
        show(["mayfly", "status", uri], env)
        show(["mayfly", "logs", uri], env)
        report = os.path.join(os.getcwd(), "demo-report.html")
        show(["mayfly", "report", uri, "-o", report], env)
        from harness import MAYFLY
        final = json.loads(subprocess.run([MAYFLY, "status", uri, "--json"], env=env, capture_output=True, text=True,
                                          timeout=60).stdout)
        ok = final.get("outcome") == "succeeded"
        resumed = [e for e in final.get("experiments", []) if e.get("attempts", 0) > 1]
        say("demo %s: outcome %s, %d instance(s), %s resumed on the replacement; the report is %s" % (
            "succeeded" if ok else "FAILED", final.get("outcome"), len(c.instances()),
            ", ".join(e["name"] for e in resumed) or "nothing", report))
        print("""
What to try next:
  - the same on AWS: README.md, "Quick start on real AWS" (make static; --install static)
  - mayfly cancel RESULTS_URI, mayfly launch --dry-run, mayfly check --expand on a job with a matrix
  - make demo KEEP=1 leaves this fake cloud up to explore with mayfly and the aws CLI""")
        if keep:
            print("\nThe fake cloud stays up (Ctrl-C ends it). In another shell:\n")
            for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                print("  export %s=%s" % (k, env[k]))
            print("  %s status %s" % (os.path.join(os.environ["MAYFLY_BUILD"], "mayfly"), uri), flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
