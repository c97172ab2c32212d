# SPDX-License-Identifier: Apache-2.0
"""A second, real S3 on loopback: Ceph's RADOS Gateway 16.2 (Debian 12's radosgw), for tests that need an S3 that
checks signatures for real (moto's checker is unsound for many keys, s3rver checks nothing) and that behaves as the
S3-compatible stores do where they differ from AWS.

`with Rgw() as g:` starts a one-mon, one-osd cluster (objects in RAM: memstore, capped), without a mgr, with cephx
off, and radosgw (beast) on 127.0.0.1; makes an S3 user with known keys and a bucket, and warms it up (the first
upload on a fresh cluster creates RGW's data pools). Everything lives in one tempfile.mkdtemp directory, with its own
fsid; the mon's and the gateway's ports are this worker's own (harness.worker_ports()), so parallel workers never
meet. On exit every daemon is killed and the directory goes.

FlipProxy sits between mayfly and the gateway and flips one byte of the body of the Nth PUT, and keeps what each
request got back (Content-MD5 tests: RGW answers a body that does not match it with 400 BadDigest).

Facts (measured on Debian 12, Ceph 16.2.15, 2 CPUs, 2026-12-07; the project's platform notes on Ceph):
- Packages: radosgw ceph-mon ceph-osd with --no-install-recommends (60 packages; tests/deps.sh test).
- Cluster + gateway + user take 4-10 s once tuned (17-24 s with Ceph's defaults). What makes it fast: pool size 1,
  min size 1, one PG a pool (pg num = pgp num = 1, autoscale off), crush chooseleaf type 0 (one host), mon allow pool
  size one, paxos propose interval 0.05 s. No mgr: neither I/O nor RGW needs one.
- With cephx off, radosgw's built-in `ms_mon_client_mode = secure` fails with `get_initial_auth_request returned
  -13` every 3 s: `ms mon client mode = crc secure` under [client] fixes it.
- How RGW 16.2 differs from AWS: a quoted `If-Match` on PUT gets 412 even when current (it compares the stored ETag
  without quotes; GET honours the quoted form; fixed upstream in 2025); `If-None-Match: *` on PUT is right and
  atomic; `If-Match` on DELETE is ignored; flexible checksums (x-amz-checksum-*) are ignored, none is echoed; a wrong
  Content-MD5 gets 400 BadDigest; a wrong secret 403 SignatureDoesNotMatch, a tampered presigned URL 403."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from harness import CLEAN_ENV_DROP, check, worker_ports

BUCKET = "mayfly-test"
REGION = "us-east-1"
ACCESS_KEY = "AKIAMAYFLYRGWTEST001"
SECRET_KEY = "rgw+Test/Secret0fTheMayflyRgwPeer0000001"
START_TIMEOUT = 60

CONF = """[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = {dir}/run
admin socket = {dir}/run/$name.asok
pid file = {dir}/run/$name.pid
log file = {dir}/log/$name.log
crash dir = {dir}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
paxos propose interval = 0.05
[mon]
mon data = {dir}/mon/$id
[osd]
osd data = {dir}/osd/$id
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
[client]
# cephx is off: radosgw's built-in "secure" would fail with get_initial_auth_request returned -13 every 3 s
ms mon client mode = crc secure
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {dir}/rgw
"""


class Rgw:
    """One Ceph cluster and its RADOS Gateway on loopback (module doc). endpoint, access_key, secret_key, bucket,
    env() (for mayfly and awscli), aws(), boto(), pids() (the daemons'), log_tail(), started_in (seconds).
    slot: which pair of this worker's ports (0: the last two, 1: the two before them, ...), for a second gateway
    beside a module's."""

    def __init__(self, bucket=BUCKET, memstore_mib=1024, slot=0):
        self.bucket = bucket
        self.memstore_bytes = memstore_mib << 20
        self.access_key, self.secret_key = ACCESS_KEY, SECRET_KEY
        # from the end of this worker's range: tests that take fixed ports take them from its start
        ports = worker_ports()
        self.mon_port, self.port = ports[-2 - 2 * slot], ports[-1 - 2 * slot]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.dir = None
        self.procs = {}

    # ---- start and stop ----

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="mayfly-rgw-")
        self.conf = os.path.join(self.dir, "ceph.conf")
        for d in ("run", "log", "crash", "mon/a", "osd/0", "rgw"):
            os.makedirs(os.path.join(self.dir, d))
        with open(self.conf, "w") as f:
            f.write(CONF.format(fsid=uuid.uuid4(), dir=self.dir, mon_port=self.mon_port, rgw_port=self.port,
                                memstore_bytes=self.memstore_bytes))
        try:
            self._start()
        except BaseException as e:
            tail = self.log_tail()
            self.__exit__(None, None, None)
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            raise RuntimeError("RGW did not start: %s\n%s" % (e, tail)) from None
        return self

    def _start(self):
        t0 = time.time()
        for port in (self.mon_port, self.port):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemons bind: TIME-WAIT is no owner
            try:
                s.bind(("127.0.0.1", port))
            except OSError as e:
                raise RuntimeError("port %d is taken (%s): another runner with the same worker numbers? "
                                   "(MAYFLY_TEST_WORKER_BASE)" % (port, e))
            finally:
                s.close()
        monmap = os.path.join(self.dir, "monmap")
        self._tool("monmaptool", "--create", "--fsid", self._fsid(), "--addv", "a",
                   "[v2:127.0.0.1:%d]" % self.mon_port, monmap)
        self._tool("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap)
        self._daemon("mon", "ceph-mon", "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self._tool("ceph", "-c", self.conf, "--connect-timeout", "20", "osd", "new", osd_uuid).strip()
        check(osd_id == "0", "ceph osd new gave %r, not 0" % osd_id)
        self._tool("ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._daemon("osd", "ceph-osd", "-i", "0")
        self._until(lambda: json.loads(self._tool("ceph", "-c", self.conf, "osd", "dump", "-f", "json"))
                    ["osds"][0]["up"] == 1, "osd.0 up")
        # the user first (radosgw-admin makes the zone and its pools), then the gateway: never both at once
        self._tool("radosgw-admin", "-c", self.conf, "user", "create", "--uid=mayfly", "--display-name=mayfly tests",
                   "--access-key=" + self.access_key, "--secret-key=" + self.secret_key)
        self._daemon("rgw", "radosgw", "-n", "client.rgw.a")
        self._until(self._answers, "radosgw answering on %s" % self.endpoint)
        s3 = self.boto()
        s3.create_bucket(Bucket=self.bucket)
        s3.put_object(Bucket=self.bucket, Key="warm-up", Body=b"warm")  # RGW's data pools come with the first
        s3.delete_object(Bucket=self.bucket, Key="warm-up")
        self.started_in = time.time() - t0

    def _fsid(self):
        with open(self.conf) as f:
            return next(l.split("=", 1)[1].strip() for l in f if l.startswith("fsid"))

    def _tool(self, *argv, timeout=30):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s" % (" ".join(argv[:4]), p.returncode,
                                                             (p.stdout + p.stderr)[-1500:]))
        return p.stdout

    def _daemon(self, name, *argv):
        """A daemon in the foreground (-f: no fork, so its pid is ours to kill), in a session of its own."""
        log = open(os.path.join(self.dir, "log", name + ".out"), "wb")
        try:
            self.procs[name] = subprocess.Popen([argv[0], "-f", "-c", self.conf, *argv[1:]], stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def _until(self, cond, what, timeout=START_TIMEOUT):
        deadline = time.time() + timeout
        while True:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("%s exited (%d) while waiting for %s" % (name, p.returncode, what))
            try:
                if cond():
                    return
            except (OSError, ValueError, KeyError, IndexError, RuntimeError, subprocess.SubprocessError):
                pass
            if time.time() > deadline:
                raise RuntimeError("no %s in %d s" % (what, timeout))
            time.sleep(0.1)

    def _answers(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 ")

    def pids(self):
        return [p.pid for p in self.procs.values()]

    def __exit__(self, *exc):
        # memstore keeps nothing worth a clean shutdown (and an osd without its mon may not stop on SIGTERM)
        for name in ("rgw", "osd", "mon"):
            p = self.procs.get(name)
            if p and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                pass
        if self.dir:
            if os.environ.get("MAYFLY_KEEP_CLOUD"):
                sys.stderr.write("RGW's directory kept in %s\n" % self.dir)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def log_tail(self, n=1500):
        """The end of each daemon's log (for a failure)."""
        out = []
        for name in ("mon.a.log", "osd.0.log", "client.rgw.a.log", "mon.out", "osd.out", "rgw.out"):
            path = os.path.join(self.dir or "", "log", name)
            try:
                with open(path, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - n))
                    text = f.read().decode(errors="replace").strip()
            except OSError:
                continue
            if text:
                out.append("--- %s\n%s" % (name, text))
        return "\n".join(out)

    # ---- clients ----

    def env(self, secret_key=None, endpoint=None):
        """The environment for mayfly and awscli: keys, endpoint and region here, no IMDS, no profile files."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_ENV_DROP)}
        none = os.path.join(self.dir, "no-aws-config")
        env.update({
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": none,
            "AWS_SHARED_CREDENTIALS_FILE": none,
        })
        return env

    def role_env(self):
        """What JobRun (jobrun.py) asks a cloud for: here env(), the keys in the environment (no IMDS)."""
        return self.env()

    def aws(self, *args, check=True, timeout=300):
        """awscli (1.x) against the gateway."""
        p = subprocess.run(["aws", "--endpoint-url", self.endpoint, *args], env=self.env(), capture_output=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("aws %s failed: %s" % (" ".join(args), p.stderr.decode(errors="replace")[-1000:]))
        return p

    def boto(self, service="s3", max_pool=10):
        import boto3
        from botocore.config import Config
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=Config(max_pool_connections=max_pool, s3={"addressing_style": "path"}))


# ---- a proxy that corrupts one upload ----

class FlipProxy:
    """An HTTP/1.1 proxy on 127.0.0.1 (a port the kernel chooses) in front of upstream (host, port): every request
    goes through unchanged but for the flip-th PUT with a body (1-based), one of whose bytes (the middle one) is
    flipped after the headers (flip=0: none; with a recording proxy). requests: (method, path, {header: value},
    lowercase) of each request; answers: (method, path, status, error code or "") of each, in order; flipped: how
    many bodies it changed. The signature stays valid: SigV4 over UNSIGNED-PAYLOAD does not cover the body; only
    Content-MD5 (or a signed payload hash) lets the store see the change."""

    def __init__(self, upstream, flip=1):
        self.upstream, self.flip = upstream, flip
        self.puts = 0
        self.flipped = 0
        self.requests = []
        self.answers = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.upstream, timeout=30)
            except OSError:
                c.close()
                continue
            sent = []  # methods and paths sent upstream, not yet answered
            threading.Thread(target=self._requests, args=(c, u, sent), daemon=True).start()
            threading.Thread(target=self._responses, args=(u, c, sent), daemon=True).start()

    def _requests(self, src, dst, sent):
        r = _Reader(src)
        try:
            while True:
                head = r.head()
                if head is None:
                    break
                method, path = head.split(b" ", 2)[:2]
                headers = _headers(head)
                with self.lock:
                    sent.append((method.decode(), path.decode(errors="replace")))
                    self.requests.append((method.decode(), path.decode(errors="replace"),
                                          {k.decode(): v.decode(errors="replace") for k, v in headers.items()}))
                dst.sendall(head)
                n = int(headers.get(b"content-length", b"0"))
                if b"chunked" in headers.get(b"transfer-encoding", b""):
                    dst.sendall(r.chunked())
                    continue
                body = r.exact(n)
                if method == b"PUT" and n:
                    with self.lock:
                        self.puts += 1
                        if self.puts == self.flip:
                            body = bytearray(body)
                            body[n // 2] ^= 0xFF
                            body = bytes(body)
                            self.flipped += 1
                dst.sendall(body)
        except OSError:
            pass
        finally:
            _shut(dst)

    def _responses(self, src, dst, sent):
        r = _Reader(src)
        try:
            while True:
                head = r.head()
                if head is None:
                    break
                status = int(head.split(b" ", 2)[1])
                if 100 <= status < 200:
                    dst.sendall(head)
                    continue
                with self.lock:
                    method, path = sent.pop(0) if sent else ("?", "?")
                headers = _headers(head)
                if method == "HEAD" or status in (204, 304):
                    body = b""
                elif b"chunked" in headers.get(b"transfer-encoding", b""):
                    body = r.chunked()
                else:
                    body = r.exact(int(headers.get(b"content-length", b"0")))
                code = ""
                if status >= 300 and b"<Code>" in body:
                    code = body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode(errors="replace")
                with self.lock:  # noted before the client sees it: what it does next finds it here
                    self.answers.append((method, path, status, code))
                dst.sendall(head + body)
        except OSError:
            pass
        finally:
            _shut(dst)


class _Reader:
    """Buffered reads of one socket: an HTTP head, a body of n bytes, a chunked body (raw, as sent)."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def _more(self):
        data = self.s.recv(1 << 16)
        if not data:
            raise OSError("closed")
        self.buf += data

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            try:
                self._more()
            except OSError:
                return None
        i = self.buf.index(b"\r\n\r\n") + 4
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def exact(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def chunked(self):
        out = b""
        while True:
            size = self.line()
            out += size
            n = int(size.split(b";")[0].strip(), 16)
            if n == 0:
                while True:  # trailers, then the empty line
                    t = self.line()
                    out += t
                    if t == b"\r\n":
                        return out
            out += self.exact(n + 2)


def _headers(head):
    h = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            h[k.strip().lower()] = v.strip().lower()
    return h


def _shut(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
