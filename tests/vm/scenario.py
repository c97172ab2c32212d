# SPDX-License-Identifier: Apache-2.0
"""One scenario of `make test-vm`: a fresh fake cloud (moto + IMDS fake), the experiment in S3, user-data rendered by
`mayfly userdata`, one boot of the guest, and EC2's part of the bargain played by the harness:

* TerminateInstances (seen in moto as `shutting-down`/`terminated`) makes the harness press the guest's ACPI
  power button, as EC2 does when it terminates an instance; qemu (-no-reboot) exits when the guest is down. A
  guest still up 60 s later is pulled (killed), as EC2 would, and the scenario reports it.
* A guest that powers itself off (mayfly's power-off fallback, the backstop timer) makes qemu exit by itself.
"""
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: harness

import harness  # noqa: E402
import vmlib  # noqa: E402

BUCKET = harness.ResultsView.BUCKET
POWER_BUTTON_GRACE = 60  # s from the power button to a pulled plug


def log(msg):
    print("    " + msg, flush=True)


def make_archive(path, files):
    with tarfile.open(path, "w:gz") as t:
        for name, body in files.items():
            data = body if isinstance(body, bytes) else body.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o755
            ti.mtime = int(time.time())
            t.addfile(ti, io.BytesIO(data))


class Scenario(harness.ResultsView):
    """`with Scenario(name, job, files, artifact=...) as s: s.boot(); s.wait(...)`"""

    def __init__(self, name, job, files, artifact, route="binary", cloud_args=None, timeout=420, userdata_args=()):
        """route: binary | deb (served from the host over HTTP, `mayfly userdata --install ROUTE=URL`), or
        static: the user-data `mayfly launch --install static=ARTIFACT` gives the instance it launches in moto (the
        artifact uploaded next to the job's sources, fetched by the guest from S3 with the instance role)."""
        self.name = name
        self.userdata_args = list(userdata_args)
        self.artifact = artifact
        self.route = route
        self.files = files
        self.timeout = timeout
        self.dir = tempfile.mkdtemp(prefix="mayfly-vm-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.cloud = harness.Cloud(**(cloud_args or {}))
        base = {"name": name, "source": "s3://%s/src/exp.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
                "log_interval": 3}
        base.update(job)
        self.job = base
        self.guest = None
        self.server = None
        self.events = {}  # what happened, host seconds since qemu start
        self.ended = None  # "powered-off" (the guest) | "terminated" (harness pressed the button) | "pulled" | None
        self.notes = []

    # ---- set-up ----
    def __enter__(self):
        self.cloud.__enter__()
        try:
            self._prepare()
        except BaseException as e:
            self.__exit__(type(e), e, None)
            raise
        return self

    def _prepare(self):
        info = self.cloud.info
        tgz = os.path.join(self.dir, "exp.tar.gz")
        make_archive(tgz, self.files)
        self.cloud.aws("s3", "cp", tgz, "s3://%s/src/exp.tar.gz" % BUCKET)
        job_path = os.path.join(self.dir, "job.json")
        with open(job_path, "w") as f:
            json.dump(self.job, f, indent=2)
        port = info["endpoint"].rsplit(":", 1)[1]
        env_args = ["--env", "AWS_ENDPOINT_URL=http://%s:%s" % (vmlib.HOST, port), "--env", "AWS_REGION=" + info["region"]]
        if self.route == "static":
            self.user_data = self._launch_user_data(job_path, env_args)
        else:
            serve = os.path.join(self.dir, "serve")
            os.makedirs(serve)
            fname = os.path.basename(self.artifact)
            shutil.copy(self.artifact, os.path.join(serve, fname))
            self.server = vmlib.FileServer(serve)
            args = ["userdata", job_path, "--install", "%s=%s" % (self.route, self.server.url(fname)),
                    "--sha256", harness.file_sha256(self.artifact)] + env_args + self.userdata_args
            p = harness.mayfly(*args)
            if p.returncode != 0:
                raise AssertionError("mayfly userdata failed: " + harness.out(p))
            self.user_data = p.stdout
        with open(os.path.join(self.dir, "user-data"), "wb") as f:
            f.write(self.user_data)
        self.cloud.control("PUT", "/user-data", self.user_data)

    def _launch_user_data(self, job_path, env_args):
        """`mayfly launch --install static=ARTIFACT` against moto, from the host; the user-data of the instance it
        launched (the guest plays that instance: IMDS serves it this user-data)."""
        import base64
        import gzip
        p = harness.mayfly("launch", job_path, "--image-id", self.cloud.info["ami_id"], "--instance-type",
                           self.cloud.info["instance_type"], "--install", "static=" + self.artifact,
                           "--iam-instance-profile", self.cloud.info["role"],
                           *env_args, *self.userdata_args, env=self.cloud.admin_env())
        if p.returncode != 0:
            raise AssertionError("mayfly launch failed: " + harness.out(p))
        iid = [w for w in p.stdout.decode().split() if w.startswith("i-")][0]
        ud = self.cloud.boto("ec2").describe_instance_attribute(InstanceId=iid, Attribute="userData")
        raw = base64.b64decode(ud["UserData"]["Value"])
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw

    def __exit__(self, *exc):
        if exc[0] is not None and issubclass(exc[0], Exception):
            print(self.diagnostics(), flush=True)  # while the fake cloud can still be read
        if self.guest:
            self.guest.kill()
        if self.server:
            self.server.close()
        keep = vmlib.KEEP or exc[0] is not None
        if keep and self.guest:
            try:
                shutil.copy(os.path.join(self.cloud.dir, "cloud.log"), self.dir)
                with open(os.path.join(self.dir, "stats.json"), "w") as f:
                    json.dump(self.cloud.stats(), f, indent=1)
            except Exception:  # noqa: BLE001
                pass
        self.cloud.__exit__(None, None, None)
        if keep:
            log("kept %s (console.log, journal.log, user-data, cloud.log, stats.json)" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    # ---- the boot ----
    def boot(self, nvme=()):
        """A boot of a fresh disk (a second call: another instance's first boot, once IMDS speaks for it); nvme:
        (file, serial) NVMe devices that keep their contents from boot to boot (vmlib.Guest)."""
        if self.guest:
            self.guest.kill()
        self.ended = None
        self.events = {}
        self.guest = vmlib.Guest(self.dir, int(self.cloud.info["imds_endpoint"].rsplit(":", 1)[1]),
                                 instance_type=self.cloud.info["instance_type"], nvme=nvme).start()
        return self

    def t(self):
        return time.time() - self.guest.t0

    def mark(self, what):
        if what not in self.events:
            self.events[what] = self.t()

    def poll(self):
        """One look at the world: instance state in moto, the guest, the agent's status.json."""
        st = self.instance_state()
        if st in ("shutting-down", "terminated"):
            self.mark("terminated")
        if not self.guest.running():
            self.mark("qemu-exit")
        return st

    def wait_status(self, pred, timeout, what):
        """Polls status.json (and the EC2 side) until pred(status) holds; returns the status."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll()
            st = self.status()
            if st:
                self.mark("agent-status")
            if st and pred(st):
                return st
            if not self.guest.running():
                raise AssertionError("the guest went down while waiting for %s" % what)
            time.sleep(1)
        raise AssertionError("no %s within %d s" % (what, timeout))

    def finish(self, timeout=None):
        """Plays EC2 until the guest is gone: a terminated instance gets the power button, then the plug pulled."""
        deadline = self.guest.t0 + (timeout or self.timeout)
        pressed = None
        while time.time() < deadline:
            st = self.poll()
            if not self.guest.running():
                if self.ended is None:
                    self.ended = "terminated" if pressed else "powered-off"
                break
            if st in ("shutting-down", "terminated") and pressed is None:
                pressed = time.time()
                self.mark("power-button")
                self.guest.power_button()
            if pressed and time.time() - pressed > POWER_BUTTON_GRACE:
                self.notes.append("the guest ignored the power button for %d s: plug pulled" % POWER_BUTTON_GRACE)
                self.ended = "pulled"
                self.guest.kill()
                self.mark("qemu-exit")
                break
            time.sleep(1)
        else:
            self.guest.kill()
            raise AssertionError("the guest was still up %d s after qemu started (instance %s)"
                                 % (timeout or self.timeout, self.instance_state()))
        self.mark("qemu-exit")
        self.report_times()
        self.check_guest()
        return self.ended

    def check_guest(self):
        """What every boot must show: cloud-init on the Ec2 datasource (as AWS proper, IMDSv2), mayfly's
        user-data valid for the guest's own cloud-init, the install script without errors."""
        j = "\n".join(self.guest.journal_lines())
        harness.check("Datasource DataSourceEc2Local" in j, "cloud-init did not use the Ec2 datasource as on AWS")
        harness.check("Invalid cloud-config" not in j, "the guest's cloud-init found the cloud-config invalid")
        harness.check("mayfly install:" not in j, "the install script failed")
        harness.check("Started mayfly.service" in j, "mayfly.service never started")

    def terminate_as_ec2(self):
        """EC2 reclaiming the instance (spot): TerminateInstances with the admin key, then the power button."""
        self.cloud.boto("ec2").terminate_instances(InstanceIds=[self.cloud.info["instance_id"]])

    def report_times(self):
        g = self.guest
        marks = [("cloud-final", vmlib.since_boot(g, r"running 'modules:final'")),
                 ("agent", vmlib.since_boot(g, r" mayfly\[\d+\]: "))]
        parts = ["%s %.0fs (guest clock)" % (k, v) for k, v in marks if v is not None]
        parts += ["%s %.0fs" % (k, v) for k, v in sorted(self.events.items(), key=lambda kv: kv[1])]
        log("timeline from qemu start: " + ", ".join(parts) + "; ended: %s" % self.ended)

    # ---- S3 / EC2 ----
    def prefix(self):
        st = self.status()
        return "results/%s/%s/" % (self.name, st["run_id"])

    # ---- when it fails ----
    def diagnostics(self):
        out = ["---- %s: diagnostics (work dir %s) ----" % (self.name, self.dir)]
        out += ["notes: " + n for n in self.notes]
        try:
            out.append("instance state in moto: %s" % self.instance_state())
            keys = self.keys("")
            out.append("S3 listing (%d keys):" % len(keys))
            out += ["  " + k for k in keys]
            st = self.status()
            if st:
                out.append("status.json: " + json.dumps(st)[:3000])
                # a run of this instance alone, or one shared by instances (a run id): each its own agent log
                for rel in ("logs/agent.log", "logs/agent-%s.log" % self.cloud.info["instance_id"]):
                    try:
                        agent = self.get(self.prefix() + rel).decode(errors="replace")
                    except Exception:  # noqa: BLE001
                        continue
                    out.append("%s (tail):\n" % rel + "\n".join(agent.splitlines()[-40:]))
                    break
                else:
                    out.append("(no agent log in S3)")
        except Exception as e:  # noqa: BLE001
            out.append("(S3/EC2 not readable: %s)" % e)
        out.append("installer downloads: %r" % self.server.requests[-5:] if self.server else "")
        if self.guest:
            j = self.guest.journal_lines()
            sel = [l for l in j if any(w in l for w in ("mayfly", "cloud-init", "runcmd", "systemd-logind", "Power"))]
            out.append("guest journal, mayfly/cloud-init lines (tail of %d):" % len(sel))
            out += sel[-80:]
            out.append("guest console (tail):")
            out.append(self.guest.console_tail(40))
            out.append("qemu: " + vmlib._tail(os.path.join(self.dir, "qemu.log"), 10))
        return "\n".join(out)
