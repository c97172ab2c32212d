# SPDX-License-Identifier: Apache-2.0
"""An experiment that attacks the agent, run as a real unprivileged user the test creates: links planted where the
agent reads, writes or creates (checkpoint directory, outputs, a file swapped while the checkpoint syncs), hostile
archives; and what a hung NVML must not stop. Each ends with nothing outside the workdir read, written or chowned,
and the run's outcome and error saying what happened. Also the experiment's exact environment."""
import io
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from harness import ROOT, WORKER, Skip, check, user_add, user_del, script_entries
from test_run import FAKE_NVML, Run, s3_upload, with_run

USER = "mfhostile%d" % WORKER    # each worker its own users (tests/run.py)
LONG_USER = "mayflyenvuser%02d" % WORKER   # 15 characters: the length that once cut HOME to /home/ub
SCRIPTS = {
    # replaces the checkpoint directory (all experiments' own ones) with a link to the root-only directory
    "plant_ckpt.sh": """#!/bin/sh
base=$(dirname "$MAYFLY_CHECKPOINT_DIR")
rm -rf "$base"
ln -s "$SECRET_DIR" "$base"
echo "planted $MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
[ "${MAYFLY_RESUME:-0}" = 1 ] || [ -z "$1" ] || sleep "$1"
""",
    "outputs_to_etc.sh": """#!/bin/sh
rm -rf outputs
ln -s /etc outputs
""",
    "outputs_links.sh": """#!/bin/sh
mkdir -p outputs
echo fine > outputs/ok.txt
ln -s /root outputs/x
ln -s "$SECRET_DIR/secret.txt" outputs/secretlink
ln -s ok.txt outputs/inside
""",
    # swaps its checkpoint file for links to /etc/shadow and the secret, again and again, while syncs run
    "swap_ckpt.sh": """#!/bin/bash
CK="$MAYFLY_CHECKPOINT_DIR"
mkdir -p "$CK"
end=$((SECONDS + ${1:-25}))
i=0
while [ $SECONDS -lt $end ]; do
  echo "stable $i" > "$CK/stable.tmp" && mv -f "$CK/stable.tmp" "$CK/stable.pt"
  echo "real $i" > "$CK/model.tmp" && mv -f "$CK/model.tmp" "$CK/model.pt"
  ln -sf "$SECRET_DIR/secret.txt" "$CK/l1.tmp" && mv -Tf "$CK/l1.tmp" "$CK/model.pt"
  ln -sf /etc/shadow "$CK/l2.tmp" && mv -Tf "$CK/l2.tmp" "$CK/model.pt"
  i=$((i+1))
done
rm -f "$CK/model.pt"
echo "real final" > "$CK/model.pt"
""",
    "dump_env.sh": """#!/bin/sh
mkdir -p envdump
env -0 > "envdump/$MAYFLY_EXPERIMENT.env"
""",
    "trap_spot.sh": """#!/bin/bash
trap 'date +%s.%N > sigterm_at; mkdir -p "$MAYFLY_CHECKPOINT_DIR"; echo saved > "$MAYFLY_CHECKPOINT_DIR/ckpt.txt"; exit 143' TERM
echo started > started
while true; do sleep 0.1; done
""",
}


def _entries():
    return script_entries(SCRIPTS)


def setup():
    if os.geteuid() != 0:
        return None
    for name in (USER, LONG_USER):
        user_del(name)
        user_add(name, "--system", "--create-home", "--home-dir", "/var/tmp/mayfly-home-" + name, "--shell", "/bin/bash")
    return True


def teardown(ctx):
    if ctx:
        for name in (USER, LONG_USER):
            user_del(name)


class Secret:
    """A root-only directory with a secret file, outside every workdir; its state before, to compare after."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mayfly-secret-", dir="/var/tmp")
        os.chmod(self.dir, 0o700)
        self.marker = ("TOPSECRET-%d" % time.time_ns()).encode()
        self.file = os.path.join(self.dir, "secret.txt")
        with open(self.file, "wb") as f:
            f.write(self.marker + b"\n")
        os.chmod(self.file, 0o600)
        self.before = self.snapshot()
        try:
            with open("/etc/shadow", "rb") as f:
                self.shadow = f.read()
        except OSError:
            self.shadow = b""

    def snapshot(self):
        def st(p):
            s = os.lstat(p)
            return (s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode))
        return (st(self.dir), st(self.file), sorted(os.listdir(self.dir)), st("/etc/shadow"), st("/root"),
                st("/etc"))

    def check_untouched(self, run):
        check(self.snapshot() == self.before, "outside the workdir changed: %r -> %r" % (self.before, self.snapshot()))
        s3 = run.cloud.boto("s3")
        vs = s3.list_object_versions(Bucket=run.BUCKET).get("Versions", [])
        for v in vs:
            body = s3.get_object(Bucket=run.BUCKET, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
            check(self.marker not in body, "the secret reached S3 in %s" % v["Key"])
            check(not self.shadow or self.shadow[:40] not in body, "/etc/shadow reached S3 in %s" % v["Key"])
        return vs

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def hostile(job, body, user=USER, versioning=False, **kw):
    if os.geteuid() != 0:
        raise Skip("needs root (a real run user)")
    secret = Secret()
    base = {"user": user, "environment": {"SECRET_DIR": secret.dir}}
    base.update(job)

    def wrapped(r):
        if versioning:
            r.cloud.boto("s3").put_bucket_versioning(Bucket=r.BUCKET, VersioningConfiguration={"Status": "Enabled"})
        body(r, secret)
        secret.check_untouched(r)
    try:
        with_run(base, wrapped, archive_extra=_entries(), **kw)
    finally:
        secret.close()


def error_of(r, *words):
    st = r.status()
    check(st and st["outcome"] == "error", "outcome %s" % json.dumps(st))
    for w in words:
        check(w in st["error"], "error %r lacks %r" % (st["error"], w))
    return st


def test_checkpoint_dir_replaced_by_a_link_before_the_next_experiment():
    def body(r, secret):
        rc = r.run()
        check(rc != 0, "exit 0: " + r.stderr)
        error_of(r, "checkpoint", "link out of the workdir")
        check(os.path.islink(os.path.join(r.work, "ckpt")), "the planted link is gone?")
        check("experiment b started" not in r.stderr, "b started on the planted link: " + r.stderr)
    hostile({"experiments": [{"name": "a", "command": ["./plant_ckpt.sh"]}, {"name": "b", "command": ["./ok.sh"]}],
             "checkpoint": {"path": "ckpt", "interval": 600}}, body)


def test_checkpoint_dir_replaced_by_a_link_before_a_resume_with_a_checkpoint_in_s3():
    def body(r, secret):
        r.start()
        deadline = time.time() + 30
        while time.time() < deadline and not any(l.startswith("planted a") for l in r.runs_txt()):
            time.sleep(0.2)
        check(r.runs_txt(), "experiment did not start")
        st = r.status()
        # what a restore would write: objects the experiment (which has the role) could have put there
        r.cloud.boto("s3").put_object(Bucket=r.BUCKET, Key="results/t/%s/checkpoint/a/crontab" % st["run_id"],
                                      Body=b"* * * * * root touch /tmp/pwned\n")
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        rc = r.run()
        check(rc != 0, r.stderr)
        check("resuming run" in r.stderr, r.stderr)
        error_of(r, "checkpoint directory", "link out of the workdir")
        check(not os.path.exists(os.path.join(secret.dir, "crontab")), "restored into the root-only directory")
    hostile({"experiments": [{"name": "a", "command": ["./plant_ckpt.sh", "60"]}],
             "checkpoint": {"path": "ckpt", "interval": 600}}, body)


def test_outputs_replaced_by_a_link_to_etc():
    def body(r, secret):
        rc = r.run()
        check(rc != 0, r.stderr)
        error_of(r, "outputs", "link out of the workdir")
        outs = [k for k in r.keys() if "/outputs/" in k]
        check(not outs, "uploaded through the link: %r" % outs)
    hostile({"experiments": [{"name": "a", "command": ["./outputs_to_etc.sh"]}], "outputs": ["outputs/*"]}, body)


def test_links_planted_among_outputs():
    def body(r, secret):
        rc = r.run()
        check(rc != 0, r.stderr)
        st = error_of(r, "outputs", "link out of the workdir")
        pre = "results/t/%s/outputs/outputs/" % st["run_id"]
        keys = r.keys()
        check(pre + "ok.txt" in keys and r.get(pre + "ok.txt") == b"fine\n", "the real output is missing: %r" % keys)
        check(pre + "inside" in keys and r.get(pre + "inside") == b"fine\n", "a link inside the workdir: %r" % keys)
        check(pre + "x" not in keys and not [k for k in keys if k.startswith(pre + "x/")], "/root uploaded")
        check(pre + "secretlink" not in keys, "the secret uploaded")
    hostile({"experiments": [{"name": "a", "command": ["./outputs_links.sh"]}], "outputs": ["outputs/*"]}, body)


def test_checkpoint_file_swapped_for_links_while_the_sync_runs():
    def body(r, secret):
        rc = r.run(timeout=240)
        vs = secret.check_untouched(r)
        stable = [v for v in vs if v["Key"].endswith("checkpoint/a/stable.pt")]
        check(len(stable) >= 2, "the checkpoint was not synced while its file was swapped: %r" % stable)
        st = r.status()
        if st["outcome"] == "error":
            check("checkpoint" in st["error"] and "link" in st["error"], st["error"])
        else:
            check(st["outcome"] == "succeeded" and rc == 0, json.dumps(st))
        latest = r.get("results/t/%s/checkpoint/a/model.pt" % st["run_id"])
        check(latest == b"real final\n", "the final checkpoint: %r" % latest)
    hostile({"experiments": [{"name": "a", "command": ["./swap_ckpt.sh", "22"]}],
             "checkpoint": {"path": "ckpt", "interval": 10}}, body, versioning=True)


def _env_of(path):
    with open(path, "rb") as f:
        raw = f.read()
    entries = [e for e in raw.split(b"\0") if e]
    bad = [e for e in entries if b"=" not in e or e.startswith(b"=")]
    check(not bad, "entries that are not NAME=VALUE: %r" % bad)
    env = {}
    for e in entries:
        k, v = e.split(b"=", 1)
        check(k not in env, "%r twice" % k)
        env[k.decode()] = v.decode()
    return env


def _check_login_env(env, name):
    pw = pwd.getpwnam(name)
    for k, want in (("HOME", pw.pw_dir), ("USER", pw.pw_name), ("LOGNAME", pw.pw_name), ("SHELL", pw.pw_shell)):
        check(env.get(k) == want, "%s=%r, the passwd entry says %r" % (k, env.get(k), want))
    check(env.get("PYTHONUNBUFFERED") == "1", "PYTHONUNBUFFERED: %r" % env.get("PYTHONUNBUFFERED"))
    check(not [k for k in env if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")],
          "credentials in the experiment's environment")


def test_environment_of_an_unprivileged_user_with_a_15_character_name():
    def body(r, secret):
        rc = r.run()
        check(rc == 0, r.stderr)
        path = os.path.join(r.work, "envdump", "e.env")
        env = _env_of(path)
        _check_login_env(env, LONG_USER)
        check(os.stat(path).st_uid == pwd.getpwnam(LONG_USER).pw_uid, "not written by the run user")
        check(env["MAYFLY_EXPERIMENT"] == "e" and env["SECRET_DIR"] == secret.dir, repr(env))
    hostile({"experiments": [{"name": "e", "command": ["./dump_env.sh"]}]}, body, user=LONG_USER)


def test_environment_as_root():
    def body(r, secret):
        rc = r.run()
        check(rc == 0, r.stderr)
        _check_login_env(_env_of(os.path.join(r.work, "envdump", "e.env")), "root")
    hostile({"experiments": [{"name": "e", "command": ["./dump_env.sh"]}]}, body, user="root")


ARCHIVES = [
    ("archive-refuse-chained-dotdot-links.tar", "'d/y'"),
    ("archive-refuse-dotdot-path.tar", "'x/../../escaped'"),
    ("archive-refuse-hardlink-etc-passwd.tar", "'pw'"),
    ("archive-refuse-device-node.tar", "'null'"),
    ("archive-refuse-setuid.tar", "'suid'"),
    ("archive-refuse-absolute-path.zip", "'/tmp/mayfly-escaped-by-zip'"),
]


def test_hostile_archives_refused():
    if os.geteuid() != 0:
        raise Skip("needs root (a real run user)")
    passwd = os.stat("/etc/passwd")
    for name, entry in ARCHIVES:
        secret = Secret()
        r = Run({"user": USER, "experiments": [{"name": "a", "command": ["./ok.sh"]}]}, upload=False)
        try:
            s3_upload(r.cloud, os.path.join(ROOT, "tests", "fuzz", "regressions", name), "src/exp.tar.gz", r.BUCKET)
            rc = r.run(timeout=120)
            check(rc != 0, "%s: exit 0" % name)
            lines = [l for l in r.stderr.splitlines() if "refusing archive entry " + entry in l]
            check(len(lines) == 1, "%s: no one-line error naming %s in:\n%s" % (name, entry, r.stderr))
            error_of(r, "refusing archive entry " + entry)
            check(not os.path.exists("/tmp/mayfly-escaped-by-zip") and not os.path.exists(os.path.join(r.dir, "escaped")),
                  "%s: wrote outside the workdir" % name)
            secret.check_untouched(r)
            # no link to /etc/passwd anywhere in the workdir, none made at all (its contents may change meanwhile:
            # other workers add and remove their run users)
            pw = os.stat("/etc/passwd")
            check(pw.st_nlink == passwd.st_nlink, "%s: /etc/passwd has %d links" % (name, pw.st_nlink))
            for root, dirs, files in os.walk(r.work):
                for f in dirs + files:
                    st = os.lstat(os.path.join(root, f))
                    check((st.st_dev, st.st_ino) != (pw.st_dev, pw.st_ino), "%s: %s is /etc/passwd" % (name, f))
        finally:
            r.close()
            secret.close()


def test_hung_nvml_does_not_stop_spot_handling():
    if not os.path.exists(FAKE_NVML):
        raise AssertionError("fake NVML not built: " + FAKE_NVML)

    def body(r, secret):
        state = os.path.join(r.dir, "nvml.state")
        with open(state, "w") as f:
            f.write("count=1\nutil0=50\n")
        r.env.update(MAYFLY_NVML_LIBRARY=FAKE_NVML, FAKE_NVML_STATE=state)
        r.start()
        deadline = time.time() + 30
        while time.time() < deadline and not os.path.exists(os.path.join(r.work, "started")):
            time.sleep(0.2)
        check(os.path.exists(os.path.join(r.work, "started")), "experiment did not start")
        time.sleep(6)  # a few samples while NVML answers
        with open(state, "a") as f:
            f.write("call_delay_ms=120000\n")  # from now on every NVML call hangs for two minutes
        deadline = time.time() + 60
        while time.time() < deadline and not (r.status() or {}).get("gpu_health"):
            time.sleep(1)
        st = r.status()
        check(st.get("gpu_health", {}).get("hung") is True, "status.json does not say NVML hung: %s" % json.dumps(st))
        sent = time.time()
        r.cloud.control("POST", "/spot", {"in": 60})
        notice_time = sent + 60
        at = os.path.join(r.work, "sigterm_at")
        # (the trap creates the file, then writes the time into it: an empty file is a write under way)
        while time.time() < sent + 15 and not (os.path.exists(at) and os.path.getsize(at) > 0):
            time.sleep(0.1)
        check(os.path.exists(at) and os.path.getsize(at) > 0, "no SIGTERM 15 s after the notice while NVML hangs")
        got = float(open(at).read())
        check(got - sent <= 5 + 2, "SIGTERM %.1f s after the notice (poll every 5 s)" % (got - sent))
        while time.time() < notice_time and (r.status() or {}).get("outcome") != "interrupted":
            time.sleep(0.5)
        st = r.status()
        check(st["outcome"] == "interrupted" and time.time() < notice_time, "results not shipped before the notice")
        keys = r.keys()
        check("results/t/%s/checkpoint/a/ckpt.txt" % st["run_id"] in keys, "checkpoint not shipped: %r" % keys)
        check(r.get("results/t/%s/checkpoint/a/ckpt.txt" % st["run_id"]) == b"saved\n", "wrong checkpoint")
        log = r.get("results/t/%s/logs/agent.log" % st["run_id"]).decode()
        check("hung" in log, "the agent log does not say NVML hung:\n" + log[-2000:])
        r.proc.send_signal(signal.SIGTERM)  # EC2 takes the instance
        t0 = time.time()
        r.proc.communicate(timeout=30)
        check(time.time() - t0 < 20, "the agent waited on the hung NVML thread to exit")
    hostile({"experiments": [{"name": "a", "command": ["./trap_spot.sh"]}],
             "checkpoint": {"path": "ck", "interval": 600}, "spot": {"grace_seconds": 5}}, body)
