# SPDX-License-Identifier: Apache-2.0
"""Helpers for the report, cost and notification tests: one `mayfly run` of a job on a fake cloud that several runs
share (each with its own state, logs and work directories), and headless Chromium and tidy on a page."""
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from harness import MAYFLY, ROOT, RUN_USER, Skip, check

BUCKET = "mayfly-test"
FAKE_NVML = os.path.join(os.environ.get("MAYFLY_BUILD", os.path.join(ROOT, "build")), "fakes", "nvml",
                         "libnvidia-ml.so.1")


def upload_source(cloud, key, scripts=None, tree=None):
    """A tar.gz of scripts ({name: text}, executable) or of a directory, to s3://mayfly-test/<key>."""
    d = tempfile.mkdtemp(prefix="mayfly-src-")
    tgz = os.path.join(d, "src.tar.gz")
    with tarfile.open(tgz, "w:gz") as t:
        if tree:
            t.add(tree, arcname=".")
        for name, body in (scripts or {}).items():
            data = body.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o755
            t.addfile(ti, io.BytesIO(data))
    from test_run import s3_upload
    s3_upload(cloud, tgz, key, BUCKET)
    shutil.rmtree(d, ignore_errors=True)


class JobRun:
    """`mayfly run` of one job as the instance runs it (role credentials from IMDS)."""

    def __init__(self, cloud, job, env=None, gpus=None):
        self.cloud = cloud
        self.dir = tempfile.mkdtemp(prefix="mayfly-run-")
        os.chmod(self.dir, 0o755)
        self.work = os.path.join(self.dir, "work")
        base = {"results": "s3://%s/results/" % BUCKET, "workdir": self.work, "user": RUN_USER, "log_interval": 2}
        base.update(job)
        self.job = base
        self.job_path = os.path.join(self.dir, "job.json")
        with open(self.job_path, "w") as f:
            json.dump(self.job, f)
        self.env = cloud.role_env()
        self.env.update(STATE_DIRECTORY=os.path.join(self.dir, "state"), LOGS_DIRECTORY=os.path.join(self.dir, "logs"),
                        CACHE_DIRECTORY=os.path.join(self.dir, "cache"),
                        MAYFLY_POWEROFF_COMMAND="touch " + os.path.join(self.dir, "poweroff-ran"),
                        MAYFLY_NVML_LIBRARY=os.path.join(self.dir, "no-such-libnvidia-ml.so.1"))
        self.nvml_state = None
        if gpus is not None:
            self.nvml_state = os.path.join(self.dir, "nvml-state")
            self.set_gpus(gpus)
            self.env.update(MAYFLY_NVML_LIBRARY=FAKE_NVML, FAKE_NVML_STATE=self.nvml_state)
        self.env.update(env or {})
        self.proc = None
        self.stderr = ""

    def set_gpus(self, lines):
        """Rewrites the fake NVML's state (read again on every call): "count=2", "util0=50", ..."""
        with open(self.nvml_state + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(self.nvml_state + ".tmp", self.nvml_state)

    def start(self):
        self.proc = subprocess.Popen([MAYFLY, "run", "--job", self.job_path], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        return self.proc

    def wait(self, timeout=120):
        _, e = self.proc.communicate(timeout=timeout)
        self.stderr = e.decode(errors="replace")
        return self.proc.returncode

    def run(self, timeout=120):
        self.start()
        return self.wait(timeout)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        try:
            self.prefix()
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def runs_txt(self):
        p = os.path.join(self.work, "runs.txt")
        return open(p).read().splitlines() if os.path.exists(p) else []

    def prefix(self):
        """The run's key prefix in S3, from its state file (kept once read: close() removes the file)."""
        if not getattr(self, "_prefix", None):
            st = json.load(open(os.path.join(self.dir, "state", "state.json")))
            self._prefix = "results/%s/%s/" % (self.job["name"], st["run_id"])
        return self._prefix

    def get(self, rel):
        s3 = self.cloud.boto("s3")
        return s3.get_object(Bucket=BUCKET, Key=self.prefix() + rel)["Body"].read()

    def status(self):
        try:
            return json.loads(self.get("status.json"))
        except Exception:  # noqa: BLE001  (not written yet)
            return None


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    raise Skip("Debian's chromium is not installed (tests/deps.sh test installs it)")


def browse(html_path, shot_path):
    """Headless Chromium on the page: a screenshot at shot_path, and the DOM it built (--dump-dom)."""
    exe = chromium()
    url = "file://" + os.path.abspath(html_path)
    out = {}
    for mode in ("screenshot", "dom"):
        profile = tempfile.mkdtemp(prefix="mayfly-chromium-")
        extra = ["--window-size=1280,2000", "--screenshot=" + shot_path] if mode == "screenshot" else ["--dump-dom"]
        p = subprocess.run([exe, *CHROMIUM_FLAGS, "--user-data-dir=" + profile, *extra, url], capture_output=True,
                           timeout=120)
        shutil.rmtree(profile, ignore_errors=True)
        check(p.returncode == 0, "chromium %s failed: %s" % (mode, p.stderr.decode(errors="replace")[-1500:]))
        out[mode] = p.stdout.decode(errors="replace")
    with open(shot_path, "rb") as f:
        png = f.read()
    check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, "no real screenshot (%d bytes)" % len(png))
    return out["dom"]


def tidy_errors(html_path):
    """Debian's tidy on the page: exit 2 means errors (1: warnings only)."""
    exe = shutil.which("tidy")
    if not exe:
        raise Skip("Debian's tidy is not installed (tests/deps.sh test installs it)")
    p = subprocess.run([exe, "-q", "-e", "-utf8", html_path], capture_output=True, timeout=60)
    return p.returncode, p.stderr.decode(errors="replace")


def render_checked(d, html, name):
    """The page written to D/NAME.html, valid for tidy (warnings allowed), rendered by headless Chromium (with a
    screenshot D/NAME.png): the DOM it built."""
    path = os.path.join(d, name + ".html")
    with open(path, "wb") as f:
        f.write(html)
    rc, msg = tidy_errors(path)
    check(rc in (0, 1), "%s: tidy found errors:\n%s" % (name, msg[-2000:]))
    return browse(path, os.path.join(d, name + ".png"))
