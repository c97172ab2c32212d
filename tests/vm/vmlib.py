# SPDX-License-Identifier: Apache-2.0
"""A simulated EC2 instance for `make test-vm`: a Debian 12 guest (tests/vm/build_image.sh) booted under qemu (TCG)
whose real cloud-init picks DataSourceEc2 against the IMDS fake of tests/fakes/cloud.py, installs mayfly from a
URL on the host, and lets systemd run the agent against moto. See tests/vm/README.md."""
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("MAYFLY_VM_CACHE", "/var/cache/mayfly-test")
HOST = "169.254.0.2"  # slirp's host address in the guest network: the host's 127.0.0.1
KEEP = os.environ.get("MAYFLY_VM_KEEP") == "1"

_image = None


def image():
    """The cached guest image directory (built on first use, ~3 min)."""
    global _image
    if _image is None:
        p = subprocess.run(["sh", os.path.join(HERE, "build_image.sh"), CACHE], stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError("guest image build failed (see above)")
        _image = p.stdout.strip().splitlines()[-1]
    return _image



class FileServer:
    """Serves one directory over HTTP on 127.0.0.1 (the guest sees it at 169.254.0.2:PORT)."""

    def __init__(self, directory):
        self.requests = requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=directory, **k)

            def log_message(self, fmt, *args):
                requests.append(fmt % args)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def url(self, name):
        return "http://%s:%d/%s" % (HOST, self.port, name)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def _free_uuid():
    # cloud-init treats the platform as AWS proper (IMDSv2 tokens) only when the system UUID starts with "ec2"
    # and equals the DMI serial.
    return "ec2" + str(uuid.uuid4())[3:]


class Guest:
    """One boot of the image: qemu with a throw-away overlay (snapshot=on), the serial console and the guest's
    journal (forwarded to ttyS1) in files, QMP for the power button."""

    def __init__(self, workdir, imds_port, instance_type="p3.2xlarge", memory=1536, smp=2, nvme=()):
        """nvme: (raw image file, serial) pairs, each a qemu NVMe controller with one namespace (model "QEMU NVMe
        Ctrl": qemu 7.2 cannot set it), kept across boots (no snapshot): the instance store, or an EBS volume."""
        img = image()
        self.dir = workdir
        self.console = os.path.join(workdir, "console.log")
        self.journal = os.path.join(workdir, "journal.log")
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        uid = _free_uuid()
        netdev = ("user,id=n0,net=169.254.0.0/16,host=%s,dhcpstart=169.254.0.15,"
                  "guestfwd=tcp:169.254.169.254:80-cmd:nc 127.0.0.1 %d" % (HOST, imds_port))
        self.argv = [
            "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", str(smp), "-m", str(memory),
            "-nodefaults", "-no-reboot", "-display", "none", "-vga", "none",
            "-kernel", os.path.join(img, "vmlinuz"), "-initrd", os.path.join(img, "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 systemd.show_status=1",
            "-drive", "file=%s,format=raw,if=virtio,snapshot=on,cache=unsafe" % os.path.join(img, "disk.img"),
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-serial", "file:" + self.console, "-serial", "file:" + self.journal,
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
            "-uuid", uid,
            "-smbios", "type=1,manufacturer=Amazon EC2,product=%s,serial=%s" % (instance_type, uid),
        ]
        for k, (path, serial) in enumerate(nvme):
            self.argv += ["-drive", "file=%s,format=raw,if=none,id=nvm%d,cache=unsafe" % (path, k),
                          "-device", "nvme,serial=%s,drive=nvm%d" % (serial, k)]
        self.proc = None
        self.t0 = None
        self.exited_at = None

    def start(self):
        env = dict(os.environ, TMPDIR=self.dir)  # the snapshot=on overlay lands here
        self.qemu_log = open(os.path.join(self.dir, "qemu.log"), "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.qemu_log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.t0 = time.time()
        return self

    def running(self):
        if self.proc.poll() is None:
            return True
        if self.exited_at is None:
            self.exited_at = time.time()
        return False

    def qmp(self, *commands):
        """Sends QMP commands (names); returns False when the monitor is gone."""
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(self.qmp_path)
            f = s.makefile("rwb")
            f.readline()  # greeting
            for cmd in ("qmp_capabilities",) + commands:
                f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                f.flush()
                while True:  # skip events until the command's answer
                    line = f.readline()
                    if not line or b'"return"' in line or b'"error"' in line:
                        break
            s.close()
            return True
        except OSError:
            return False

    def power_button(self):
        return self.qmp("system_powerdown")

    def wait(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.running():
                return True
            time.sleep(0.5)
        return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.exited_at is None and self.proc:
            self.exited_at = time.time()
        if getattr(self, "qemu_log", None):
            self.qemu_log.close()

    def console_tail(self, n=60):
        return _tail(self.console, n)

    def journal_lines(self):
        try:
            with open(self.journal, "rb") as f:
                return f.read().decode(errors="replace").replace("\r", "").splitlines()
        except OSError:
            return []


def _tail(path, n):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").replace("\r", "").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no %s)" % path


def since_boot(guest, pattern):
    """Seconds from qemu start to the first journal line matching pattern (None if absent); journal lines carry no
    host time, so this reads the kernel-relative stamp that journald's console forwarding prints: [  12.345678]."""
    rx = re.compile(pattern)
    for line in guest.journal_lines():
        if rx.search(line):
            m = re.match(r"\[\s*(\d+\.\d+)\]", line)
            return float(m.group(1)) if m else None
    return None
