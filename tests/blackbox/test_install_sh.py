# SPDX-License-Identifier: Apache-2.0
"""userdata/install.sh run for real, as cloud-init runs it, but in a sandbox: a mount and PID namespace where /usr,
/etc and /var are overlays of the host's (what the script writes lands in upper directories, the host stays as it
is) and systemctl, logger and poweroff are stand-ins that log their arguments. The binary route from S3 reads the
binary with the instance role (IMDS fake, moto with signature checking) through curl --aws-sigv4; the URL route
from a local HTTP server; a wrong checksum, a missing object and a missing mayfly power the "instance" off."""
import hashlib
import http.server
import os
import shutil
import subprocess
import tempfile
import threading

from harness import ROOT, Cloud, Skip, check

SCRIPT = os.path.join(ROOT, "userdata", "install.sh")
BUCKET = "mayfly-test"
FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >>"$MAYFLY_SANDBOX_LOG"
"""


def setup():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return None
    c = Cloud(auth=True).__enter__()
    c.binary = os.path.join(os.environ["MAYFLY_BUILD"], "mayfly")
    with open(c.binary, "rb") as f:
        c.sha = hashlib.sha256(f.read()).hexdigest()
    c.aws("s3", "cp", c.binary, "s3://%s/tools/mayfly" % BUCKET)
    return c


def teardown(c):
    if c:
        c.__exit__(None, None, None)


class Sandbox:
    def __init__(self, env_lines):
        self.dir = tempfile.mkdtemp(prefix="mayfly-installsh-")
        self.fake = os.path.join(self.dir, "fakebin")
        os.makedirs(self.fake)
        for name in ("systemctl", "logger", "poweroff"):
            with open(os.path.join(self.fake, name), "w") as f:
                f.write(FAKE)
            os.chmod(os.path.join(self.fake, name), 0o755)
        self.log = os.path.join(self.dir, "calls.log")
        open(self.log, "w").close()
        with open(os.path.join(self.dir, "env"), "w") as f:
            f.write("".join(line + "\n" for line in env_lines))

    def upper(self, top):
        return os.path.join(self.dir, "upper" + top)

    def run(self, *args):
        mounts = []
        for top in ("/usr", "/etc", "/var"):
            os.makedirs(self.upper(top))
            os.makedirs(os.path.join(self.dir, "work" + top))
            mounts.append("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s" %
                          (top, self.upper(top), os.path.join(self.dir, "work" + top), top))
        inner = " && ".join(mounts + ["mkdir -p /etc/mayfly", "cp %s/env /etc/mayfly/env" % self.dir,
                                      'exec sh %s "$@"' % SCRIPT])
        env = {"PATH": self.fake + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "MAYFLY_SANDBOX_LOG": self.log, "LC_ALL": "C.UTF-8", "HOME": "/root"}
        p = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", inner, "install.sh", *args], env=env,
                           capture_output=True, text=True, timeout=120)
        if "overlay" in p.stderr and "mount" in p.stderr and p.returncode != 0 and not self.calls():
            raise Skip("no overlay mounts here: " + p.stderr.strip()[-200:])
        return p

    def calls(self):
        with open(self.log) as f:
            return f.read().splitlines()

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def need(c):
    if c is None:
        raise Skip("needs root and unshare(1) for the sandbox")


def role_env(c):
    return ["AWS_ENDPOINT_URL=" + c.endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT=" + c.info["imds_endpoint"]]


STARTS = ["systemctl daemon-reload", "systemctl enable --now mayfly-backstop.timer", "systemctl enable mayfly.service",
          "systemctl start --no-block mayfly.service"]


def test_binary_from_s3_with_the_instance_role(c):
    need(c)
    s = Sandbox(role_env(c))
    try:
        import time
        t0 = time.time()
        p = s.run("binary", "s3://%s/tools/mayfly" % BUCKET, c.sha, c.info["region"])
        check(p.returncode == 0, "rc %d: %s" % (p.returncode, p.stderr[-1500:]))
        with open(s.upper("/usr") + "/bin/mayfly", "rb") as f:
            check(hashlib.sha256(f.read()).hexdigest() == c.sha, "installed binary differs")
        for u in ("mayfly.service", "mayfly-failsafe.service", "mayfly-scratch.service", "mayfly-backstop.service",
                  "mayfly-backstop.timer"):
            with open(os.path.join(ROOT, "units", u)) as f, open(s.upper("/etc") + "/systemd/system/" + u) as g:
                check(f.read() == g.read(), "%s not written by install-units" % u)
        check(s.calls() == STARTS, repr(s.calls()))
        gets = [e for e in c.stats()["moto_log"] if e["ts"] >= t0 and e["method"] == "GET" and
                e["path"] == "/%s/tools/mayfly" % BUCKET]
        creds = c.control("GET", "/creds")["creds"]
        check(len(gets) == 1 and gets[0]["status"] == 200 and gets[0]["region"] == c.info["region"] and
              gets[0]["access_key_id"] in [x["AccessKeyId"] for x in creds], "the GET: %r" % gets)
    finally:
        s.close()


def test_binary_over_http_and_a_wrong_checksum_powers_off(c):
    need(c)
    d = tempfile.mkdtemp(prefix="mayfly-serve-")
    shutil.copy(c.binary, os.path.join(d, "mayfly"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=d, **k)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/mayfly" % srv.server_address[1]
    try:
        s = Sandbox([])
        p = s.run("binary", url, c.sha)
        check(p.returncode == 0 and s.calls() == STARTS, "rc %d %r: %s" % (p.returncode, s.calls(), p.stderr[-800:]))
        s.close()
        s = Sandbox([])
        p = s.run("binary", url, "0" * 64)
        check(p.returncode != 0 and "mayfly install: checksum mismatch for " + url in p.stderr, p.stderr[-800:])
        check(s.calls()[-1:] == ["systemctl poweroff"] and "systemctl daemon-reload" not in s.calls(), repr(s.calls()))
        check(not os.path.exists(s.upper("/usr") + "/bin/mayfly"), "installed despite the checksum")
        s.close()
    finally:
        srv.shutdown()
        shutil.rmtree(d)


def test_failures_power_off_with_one_line(c):
    need(c)
    cases = [(("binary", "s3://%s/tools/no-such-object" % BUCKET, "a" * 64), "cannot read s3://"),
             (("preinstalled",), "mayfly is not installed on this image"),
             (("binary", "ftp://example.com/mayfly", "a" * 64), "cannot fetch 'ftp://"),
             (("binary", "s3://%s/tools/mayfly" % BUCKET, "abc"), "SHA256 must be 64 hex digits"),
             (("zip",), "unknown route 'zip'")]
    for args, says in cases:
        s = Sandbox(role_env(c))
        try:
            p = s.run(*args)
            lines = [ln for ln in p.stderr.splitlines() if ln.startswith("mayfly install:")]
            check(p.returncode != 0 and len(lines) == 1 and says in lines[0], "%r: %s" % (args, p.stderr[-800:]))
            check(s.calls()[-2:] == ["logger -t mayfly-install " + lines[0][len("mayfly install: "):],
                                     "systemctl poweroff"], "%r: %r" % (args, s.calls()))
        finally:
            s.close()
