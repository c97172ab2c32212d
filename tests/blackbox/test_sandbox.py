# SPDX-License-Identifier: Apache-2.0
"""The sandbox's edges, attacked by an experiment run as a real unprivileged user the test creates: a link planted
above the workdir, a process that leaves the experiment's session (setsid + double fork), a checkpoint file swapped
for a FIFO while the sync runs, a live upload that hangs when SHIP begins, an experiment that fills the disk with
its stdout (root's reserved blocks), and log_max's released head. Each ends with nothing outside the workdir read,
written or chowned."""
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time

from harness import WORKER, Skip, check, user_add, user_del, script_entries
from test_hostile import Secret, error_of
from test_run import Run

USER = "mfsbx%d" % WORKER    # each worker its own user (tests/run.py)
HOME = "/var/tmp/mayfly-home-" + USER
SCRIPTS = {
    # a checkpoint that goes on being written, its files swapped for FIFOs and back again and again (fast: a sync
    # that found a regular file opens a FIFO in its place)
    "fifo_ckpt.py": """#!/usr/bin/python3
import os, sys, time
ck = os.environ["MAYFLY_CHECKPOINT_DIR"]
os.makedirs(ck, exist_ok=True)
with open(os.path.join(ck, "stable.pt"), "w") as f:
    f.write("stable\\n")
end, i = time.time() + float(sys.argv[1]), 0
while time.time() < end:
    for k in range(20):
        p = os.path.join(ck, "m%d.pt" % k)
        if i % 2 == 0:
            with open(p + ".tmp", "w") as f:
                f.write("real %d\\n" % i)
        else:
            os.mkfifo(p + ".tmp")
        os.rename(p + ".tmp", p)
    i += 1
    time.sleep(0.01)
with open("outputs.txt", "w") as f:
    f.write("done %d\\n" % i)
""",
    # leaves the experiment's session and process group (setsid between two forks) and sleeps on
    "escape.py": """#!/usr/bin/python3
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("escapee.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("escapee.tmp", "escapee.pid")
        time.sleep(300)
    os._exit(0)
while not os.path.exists("escapee.pid"):
    time.sleep(0.05)
print("escaped", open("escapee.pid").read(), flush=True)
""",
    # the next experiment: is the escapee there? (a zombie nobody reaped is gone)
    "seen.py": """#!/usr/bin/python3
def state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
s = state(int(open("escapee.pid").read()))
open("seen.txt", "w").write("gone" if s in ("gone", "Z", "X") else "alive " + s)
""",
    # bytes to stdout, as fast as the agent takes them
    "flood.sh": """#!/bin/sh
yes "a line of an experiment that prints without end, padded out to be long enough" | head -c "$1"
echo finished > done.txt
""",
    "chatty.sh": """#!/bin/sh
i=0
while [ $i -lt "${1:-100}" ]; do i=$((i+1)); echo "line $i"; sleep 0.2; done
""",
}


def _entries():
    return script_entries(SCRIPTS)


def setup():
    if os.geteuid() != 0:
        return None
    user_del(USER)
    user_add(USER, "--system", "--create-home", "--home-dir", HOME, "--shell", "/bin/bash")
    return True


def teardown(ctx):
    if ctx:
        user_del(USER)


def sandboxed(job, body, **kw):
    if os.geteuid() != 0:
        raise Skip("needs root (a real run user)")
    secret = Secret()
    base = {"user": USER, "environment": {"SECRET_DIR": secret.dir}}
    base.update(job)
    r = Run(base, archive_extra=_entries(), **kw)
    try:
        body(r, secret)
        secret.check_untouched(r)
    finally:
        r.close()
        secret.close()




def test_link_planted_above_the_workdir_is_refused():
    """The workdir is ~/runs/w: the experiment (the home's owner) replaced runs with a link to a root-only
    directory. Root must neither create through it nor chown what it lands on; the error names the parent."""
    def body(r, secret):
        runs = os.path.join(HOME, "runs")
        shutil.rmtree(runs, ignore_errors=True)
        if os.path.islink(runs):
            os.unlink(runs)
        os.symlink(secret.dir, runs)
        pw = pwd.getpwnam(USER)
        os.lchown(runs, pw.pw_uid, pw.pw_gid)
        try:
            rc = r.run(timeout=120)
            check(rc != 0, "exit 0: " + r.stderr)
            st = error_of(r, "the workdir's parent %s is owned by the run user: refused" % HOME)
            check("\n" not in st["error"], "more than one line: %r" % st["error"])
            check(not os.path.exists(os.path.join(secret.dir, "w")), "created through the link")
            check(os.stat(secret.dir).st_uid == 0, "the root-only directory changed owner")
        finally:
            os.unlink(runs)
        # a link on a path only root can change is refused too, named
        top = tempfile.mkdtemp(prefix="mayfly-sbx-")
        try:
            os.chmod(top, 0o755)
            os.symlink(secret.dir, os.path.join(top, "link"))
            r2 = Run({"user": USER, "workdir": os.path.join(top, "link", "w"),
                      "experiments": [{"name": "a", "command": ["./ok.sh"]}]})
            try:
                rc = r2.run(timeout=120)
                check(rc != 0, r2.stderr)
                error_of(r2, "%s/link is a symbolic link" % top)
                check(not os.path.exists(os.path.join(secret.dir, "w")), "created through the link")
            finally:
                r2.close()
        finally:
            shutil.rmtree(top, ignore_errors=True)
    sandboxed({"workdir": os.path.join(HOME, "runs", "w"), "experiments": [{"name": "a", "command": ["./ok.sh"]}]},
              body)


def test_checkpoint_file_swapped_for_a_fifo_while_the_sync_runs():
    """A sync that opened the FIFO would wait forever for a writer; the agent must refuse it, ship the rest and end
    within its timeouts."""
    def body(r, secret):
        t0 = time.time()
        rc = r.run(timeout=180)
        took = time.time() - t0
        check(took < 120, "the run took %.0fs" % took)
        st = r.status()
        check(st, "no status.json: " + r.stderr)
        if st["outcome"] == "error":
            check("checkpoint" in st["error"] and "not a regular file" in st["error"], st["error"])
        else:
            check(st["outcome"] == "succeeded" and rc == 0, json.dumps(st))
        keys = r.keys()
        pre = "results/t/%s/" % st["run_id"]
        check(pre + "checkpoint/a/stable.pt" in keys, "the rest of the checkpoint was not shipped: %r" % keys)
        check(pre + "logs/a/stdout.log" in keys and pre + "status.json" in keys, "logs not shipped: %r" % keys)
        check(os.path.exists(os.path.join(r.work, "outputs.txt")), "the experiment did not finish")
    sandboxed({"experiments": [{"name": "a", "command": ["./fifo_ckpt.py", "12"]}],
               "checkpoint": {"path": "ckpt", "interval": 10}}, body)


def test_a_live_upload_that_hangs_does_not_hold_ship():
    """The live shipper is stuck in an upload S3 never answers when SHIP begins: SHIP gives up on it within
    ship_timeout and the run ends (the instance kept: not everything reached S3)."""
    def body(r, secret):
        r.cloud.faults([{"method": "PUT", "path_contains": "/live/", "delay": 200, "count": -1}])
        t0 = time.time()
        rc = r.run(timeout=240)
        took = time.time() - t0
        r.cloud.faults_done()
        check("the live log shipper did not stop within 6s" in r.stderr, r.stderr)
        check(took < 60, "the run ended after %.0fs" % took)
        check(rc == 6, "exit %d: %s" % (rc, r.stderr))
    sandboxed({"experiments": [{"name": "a", "command": ["./chatty.sh", "8"]}], "ship_timeout": 12,
               "log_interval": 1}, body)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_a_process_that_left_the_session_is_killed_before_the_next_experiment():
    """setsid + double fork leaves the process group the agent kills; the marker in its environment does not leave
    it. A process of the same user that is not the experiment's (no marker) lives on."""
    def body(r, secret):
        pw = pwd.getpwnam(USER)
        def drop():
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        bystander = subprocess.Popen(["sleep", "300"], preexec_fn=drop, cwd="/")
        try:
            rc = r.run(timeout=120)
            check(rc == 0, r.stderr)
            pid = int(open(os.path.join(r.work, "escapee.pid")).read())
            seen = open(os.path.join(r.work, "seen.txt")).read()
            check(seen == "gone", "the next experiment saw the escapee %d: %s" % (pid, seen))
            check(not _alive(pid), "the escapee %d outlived the run" % pid)
            check("1 process it left running killed" in r.stderr, r.stderr)
            check(bystander.poll() is None, "a process of the same user without the marker was killed")
        finally:
            bystander.kill()
            bystander.wait()
    sandboxed({"experiments": [{"name": "a", "command": ["./escape.py"]}, {"name": "b", "command": ["./seen.py"]}]},
              body)


def _loop_ext4(mnt, mib, reserve_pct):
    """A small ext4 filesystem with root's reserved blocks (tmpfs has none), loop-mounted on mnt."""
    img = mnt + ".img"
    subprocess.run(["truncate", "-s", "%dM" % mib, img], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", str(reserve_pct), img], check=True)
    os.makedirs(mnt, exist_ok=True)
    p = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True, text=True)
    if p.returncode != 0:
        os.unlink(img)
        raise Skip("cannot loop-mount an ext4 image here: " + p.stderr.strip())


def test_an_experiment_filling_the_disk_leaves_roots_reserve():
    """The logs' filesystem fills up with the experiment's stdout: the writes are the run user's (fsuid, no
    CAP_SYS_RESOURCE), so they stop where the user's blocks end and root's reserve is left whole."""
    def body(r, secret):
        logs = os.path.join(r.dir, "logs")
        _loop_ext4(logs, 16, 10)
        try:
            before = os.statvfs(logs)
            reserve = before.f_bfree - before.f_bavail
            check(reserve > 100, "no reserve to keep: %r" % (before,))
            rc = r.run(timeout=180)
            after = os.statvfs(logs)
            check(os.path.exists(os.path.join(r.work, "done.txt")), "the experiment was blocked: " + r.stderr)
            check("cannot write the experiment's log" in r.stderr, "the disk never filled: " + r.stderr)
            check(after.f_bavail * after.f_frsize < 256 << 10, "the user's blocks are not all used: %r" % (after,))
            # root's own lines (agent.log) may take a little of it, the experiment none
            check(after.f_bfree >= reserve * 0.9, "root's reserve went: %d of %d blocks left" % (after.f_bfree, reserve))
            out = os.path.join(logs, "a", "stdout.log")
            check(os.stat(out).st_uid == pwd.getpwnam(USER).pw_uid, "the log is not the run user's")
            check(r.status()["experiments"][0]["exit_code"] == 0, json.dumps(r.status()))
        finally:
            subprocess.run(["umount", logs])
            os.unlink(logs + ".img")
    sandboxed({"experiments": [{"name": "a", "command": ["./flood.sh", "40000000"]}]}, body)


def test_log_max_releases_the_head_and_keeps_offsets():
    """Past log_max the log goes on growing in size, not on the disk: its head is released (reads as zeros), every
    offset stays, and the log in S3 is as long as what the experiment wrote."""
    def body(r, secret):
        rc = r.run(timeout=180)
        check(rc == 0, r.stderr)
        out = os.path.join(r.dir, "logs", "a", "stdout.log")
        st = os.stat(out)
        check(st.st_size == 5 << 20, "size %d" % st.st_size)
        check(st.st_blocks * 512 <= (2 << 20) + (64 << 10), "%d bytes on the disk" % (st.st_blocks * 512))
        with open(out, "rb") as f:
            head = f.read(4096)
            f.seek((5 << 20) - 4096)
            tail = f.read()
        check(head == bytes(4096), "the head was not released")
        line = b"a line of an experiment that prints without end, padded out to be long enough\n"
        want_tail = (line * ((5 << 20) // len(line) + 1))[:5 << 20][-4096:]
        check(tail == want_tail, "the tail moved: %r" % tail[-100:])
        check(r.stderr.count("its stdout passed log_max (1.0 MiB)") == 1, r.stderr)
        stt = r.status()
        body_s3 = r.get("results/t/%s/logs/a/stdout.log" % stt["run_id"])
        check(len(body_s3) == 5 << 20 and body_s3[-4096:] == want_tail, "the log in S3: %d bytes" % len(body_s3))
    sandboxed({"experiments": [{"name": "a", "command": ["./flood.sh", str(5 << 20)]}], "log_max": "1MiB"}, body)
