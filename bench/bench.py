#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark `mayfly cp` against `aws s3 cp` and a curl ceiling, on loopback.

    python3 bench/bench.py --build build [--size-mib 1024] [--reps 3] [--tmp DIR]

One random object (--size-mib, default 1 GiB) is moved through two servers:

  moto   the test fake cloud (tests/fakes/cloud.py, started through tests/harness.Cloud,
         by default with --no-auth so the Python server does as little as possible):
         download and upload with mayfly and with awscli.
  nginx  a static file server started here (own prefix/config in a temp dir, current user,
         daemon off) that serves the file at /BUCKET/KEY, ignores the SigV4 headers and
         answers HEAD and Range: a read-only S3 stand-in that is not the bottleneck.
         Download with mayfly (also --concurrency 1/4/8/16), awscli and curl; curl writing
         the file is the loopback ceiling.

Each measurement runs --reps times, clients interleaved; the median run (by wall time) is
reported and every run is listed.  Each client runs under /usr/bin/time -v for its peak RSS
and CPU time.  Every download is checked byte for byte (cmp) and every upload by size and
multipart ETag.  Numbers are printed, nothing is asserted; the goals are reported as MET / NOT
MET.  All temp files and processes are removed at the end, also on failure or Ctrl-C.
"""

import argparse
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

MIB = 1 << 20
MB = 1e6
BUCKET = "mayfly-test"
NGINX = "/usr/sbin/nginx"
GNU_TIME = "/usr/bin/time"
PART = 8 * MIB  # mayfly's default --part-size and awscli's default multipart_chunksize
GOAL_DL_AWS = 3.0
GOAL_UL_AWS = 2.0
GOAL_DL_CEIL = 0.80
SWEEP = (1, 4, 8, 16)


def default_concurrency():
    """mayfly's default --concurrency (transfer.c xfer_default_concurrency): 2 per CPU, 4..16."""
    return min(16, max(4, 2 * (os.cpu_count() or 1)))

LIVE = set()  # Popen objects to kill on the way out


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# prerequisites


def find_aws():
    """The real awscli entry point (a pyenv shim would add a bash + pyenv start to every run)."""
    p = shutil.which("aws")
    if not p:
        return None
    if "/.pyenv/shims/" in p and shutil.which("pyenv"):
        r = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True)
        if r.returncode == 0 and os.path.exists(r.stdout.strip()):
            return r.stdout.strip()
    return p


def check_prereqs(mayfly):
    missing = []
    if not (os.path.isfile(mayfly) and os.access(mayfly, os.X_OK)):
        missing.append("%s (not built: run `make` in %s)" % (mayfly, ROOT))
    if not os.access(GNU_TIME, os.X_OK):
        missing.append("GNU time %s (Debian package: time)" % GNU_TIME)
    if not shutil.which("curl"):
        missing.append("curl (Debian package: curl)")
    if not os.access(NGINX, os.X_OK):
        missing.append("nginx %s (Debian package: nginx-light)" % NGINX)
    if not shutil.which("cmp"):
        missing.append("cmp (Debian package: diffutils)")
    if not find_aws():
        missing.append("aws, awscli v1 (Debian package: awscli, or `pip install awscli`)")
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError as e:
        missing.append("python3 %s (Debian packages: python3-moto python3-boto3)" % e.name)
    if missing:
        log("bench: missing prerequisites:\n  " + "\n  ".join(missing))
        log("bench: `sh tests/deps.sh bench` (as root) installs curl nginx-light time")
        sys.exit(2)


# ----------------------------------------------------------------------------------------------
# helpers


def proc_cpu(pid):
    """utime+stime (s) of a process, all its threads, plus its direct children (nginx workers)."""
    tick = os.sysconf("SC_CLK_TCK")

    def one(p):
        try:
            with open("/proc/%d/stat" % p) as f:
                s = f.read()
        except OSError:
            return 0, None
        fields = s[s.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12]), int(fields[1])

    total, _ = one(pid)
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != pid:
            t, ppid = one(int(d))
            if ppid == pid:
                total += t
    return total / tick


class Run:
    def __init__(self, wall, rss_kb, cpu, srv_cpu, err=None):
        self.wall, self.rss_kb, self.cpu, self.srv_cpu, self.err = wall, rss_kb, cpu, srv_cpu, err


def timed(cmd, env, timeout, server_pid=None, tmpdir="/tmp"):
    """Runs cmd under /usr/bin/time -v; wall time from here, peak RSS and CPU from time(1)."""
    tf = os.path.join(tmpdir, "time.out")
    s0 = proc_cpu(server_pid) if server_pid else None
    t0 = time.monotonic()
    p = subprocess.Popen([GNU_TIME, "-v", "-o", tf, *cmd], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    LIVE.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return Run(time.monotonic() - t0, 0, 0, None, "timed out after %ds" % timeout)
    finally:
        LIVE.discard(p)
    wall = time.monotonic() - t0
    srv = proc_cpu(server_pid) - s0 if server_pid else None
    info = ""
    if os.path.exists(tf):
        with open(tf) as f:
            info = f.read()
        os.unlink(tf)

    def field(name, conv=float):
        m = re.search(re.escape(name) + r":\s*([0-9.]+)", info)
        return conv(m.group(1)) if m else 0

    rss = field("Maximum resident set size (kbytes)", int)
    cpu = field("User time (seconds)") + field("System time (seconds)")
    e = None
    if p.returncode != 0:
        text = (err.decode(errors="replace") + out.decode(errors="replace")).strip()
        text = "\n".join(l for l in text.splitlines() if not l.startswith("\tCommand exited"))
        e = "exit %d: %s" % (p.returncode, text[-300:] or "(no output)")
    return Run(wall, rss, cpu, srv, e)


def same_bytes(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def multipart_etag(path, part):
    h, md5s, n = hashlib.md5(), [], 0
    with open(path, "rb") as f:
        while True:
            b = f.read(part)
            if not b:
                break
            h.update(b)
            md5s.append(hashlib.md5(b).digest())
            n += 1
    single = '"%s"' % h.hexdigest()
    multi = '"%s-%d"' % (hashlib.md5(b"".join(md5s)).hexdigest(), n)
    return {single, multi}


def make_random_file(path, size):
    left = size
    with open(path, "wb") as f:
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, secs=10):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAYFLY_"))}
    env.update(extra)
    return env


def stand_env(work, endpoint, ca=None):
    """A client's environment against a bench stand-in: fixed keys, no config files, no IMDS (bench_up, bench_stage)."""
    e = clean_env({"AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0", "AWS_SECRET_ACCESS_KEY": "bench" * 8,
                   "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"})
    empty = os.path.join(work, "aws-empty-config")
    open(empty, "w").close()
    e.update({"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_PAGER": ""})
    if ca:
        e["AWS_CA_BUNDLE"] = ca
    return e


def version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return "? (%s)" % e


# ----------------------------------------------------------------------------------------------
# nginx


class Nginx:
    """nginx serving ROOT/BUCKET/KEY read-only on a free loopback port, in the foreground."""

    def __init__(self, workdir, docroot):
        self.prefix = os.path.join(workdir, "nginx")
        self.docroot = docroot
        self.proc = None
        self.port = None

    def start(self):
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        conf = os.path.join(self.prefix, "nginx.conf")
        err = os.path.join(self.prefix, "error.log")
        for _ in range(5):
            self.port = free_port()
            user = ""
            if os.geteuid() == 0:  # otherwise the workers would drop to nobody
                import grp
                import pwd
                pw = pwd.getpwuid(os.getuid())
                user = "user %s %s;" % (pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name)
            tmp = os.path.join(self.prefix, "tmp")
            with open(conf, "w") as f:
                f.write("""
daemon off;
%(user)s
worker_processes auto;
pid %(prefix)s/nginx.pid;
error_log %(err)s warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(tmp)s/body;
    proxy_temp_path %(tmp)s/proxy;
    fastcgi_temp_path %(tmp)s/fastcgi;
    uwsgi_temp_path %(tmp)s/uwsgi;
    scgi_temp_path %(tmp)s/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:%(port)d;
        root %(root)s;
        location / { limit_except GET { deny all; } }
    }
}
""" % {"user": user, "prefix": self.prefix, "err": err, "tmp": tmp, "port": self.port, "root": self.docroot})
            self.proc = subprocess.Popen([NGINX, "-p", self.prefix, "-c", conf, "-e", err],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            LIVE.add(self.proc)
            if wait_port(self.port, self.proc):
                return self
            self.stop()
        msg = open(err).read()[-1000:] if os.path.exists(err) else ""
        raise RuntimeError("nginx did not start: " + msg)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        p = self.proc
        if p and p.poll() is None:
            p.send_signal(signal.SIGQUIT)  # graceful: master waits for the workers
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p:
            LIVE.discard(p)
        self.proc = None


# ----------------------------------------------------------------------------------------------
# benchmark cases


class Case:
    def __init__(self, server, op, client, cmd, env, verify=None, after=None, server_pid=None):
        self.server, self.op, self.client = server, op, client
        self.cmd, self.env, self.verify, self.after = cmd, env, verify, after
        self.server_pid = server_pid
        self.runs = []
        self.disabled = None  # reason, once a run failed

    def best(self):
        """The median run by wall time (the lower middle one for an even count)."""
        ok = sorted((r for r in self.runs if not r.err), key=lambda r: r.wall)
        return ok[(len(ok) - 1) // 2] if ok else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.size = args.size_mib * MIB
        self.mayfly = os.path.join(args.build, "mayfly")
        self.aws = None
        self.work = None
        self.src = None
        self.cases = []
        self.notes = []

    # one rep of a group of cases, interleaved
    def run_group(self, cases, reps):
        for rep in range(reps):
            for c in cases:
                if c.disabled:
                    continue
                r = timed(c.cmd, c.env, self.args.timeout, c.server_pid, self.work)
                if not r.err and c.verify:
                    r.err = c.verify()
                if c.after:
                    c.after()
                os.sync()  # write-back of this run's output is not charged to the next run
                c.runs.append(r)
                mbs = self.size / r.wall / MB
                log("  [%d/%d] %-6s %-8s %-28s %8.1f MB/s  %6.2f s%s" % (
                    rep + 1, reps, c.server, c.op, c.client, mbs, r.wall, "  FAILED: " + r.err if r.err else ""))
                if r.err:
                    c.disabled = r.err

    def out_path(self, name):
        return os.path.join(self.work, "out", name)

    def dl_verify(self, path):
        def v():
            if not os.path.exists(path):
                return "no output file"
            return None if same_bytes(self.src, path) else "downloaded bytes differ from the source"
        return v

    def rm(self, path):
        return lambda: os.path.exists(path) and os.unlink(path)

    def bench_moto(self):
        from harness import Cloud
        a = self.args
        label = "moto"
        log("moto: starting the fake cloud (auth=%s)" % a.moto_auth)
        c = Cloud(auth=a.moto_auth)
        try:
            c.__enter__()  # not `with`: a signal during start-up must still stop the server
            s3 = c.boto("s3")
            env = c.admin_env()
            env.update(self.aws_isolation())
            env["AWS_DEFAULT_REGION"] = c.info["region"]
            log("moto: uploading the source object (boto3, untimed)")
            with open(self.src, "rb") as f:
                s3.put_object(Bucket=BUCKET, Key="bench/src", Body=f)
            src_url = "s3://%s/bench/src" % BUCKET
            pid = c.proc.pid
            cases = []
            for client, name in (("mayfly", "mayfly cp"), ("aws", "aws s3 cp")):
                out = self.out_path("moto-" + client)
                cases.append(Case(label, "download", name, self.client_cmd(client, src_url, out, c.endpoint),
                                  env, self.dl_verify(out), self.rm(out), pid))
            for client, name in (("mayfly", "mayfly cp"), ("aws", "aws s3 cp")):
                key = "bench/up-" + client
                cases.append(Case(label, "upload", name,
                                  self.client_cmd(client, self.src, "s3://%s/%s" % (BUCKET, key), c.endpoint),
                                  env, self.ul_verify(s3, key), lambda k=key: s3.delete_object(Bucket=BUCKET, Key=k),
                                  pid))
            self.cases += cases
            log("moto: download, %d run(s) each, interleaved" % self.moto_dl_reps)
            self.run_group(cases[:2], self.moto_dl_reps)
            log("moto: upload, %d run(s) each, interleaved" % a.moto_reps)
            self.run_group(cases[2:], a.moto_reps)
        finally:
            c.__exit__(None, None, None)
            shutil.rmtree(c.dir, ignore_errors=True)  # the harness leaves its state dir behind

    def ul_verify(self, s3, key):
        def v():
            try:
                h = s3.head_object(Bucket=BUCKET, Key=key)
            except Exception as e:  # noqa: BLE001
                return "HEAD after upload failed: %s" % e
            if h["ContentLength"] != self.size:
                return "uploaded size %d, expected %d" % (h["ContentLength"], self.size)
            if h["ETag"] not in self.etags:
                return "uploaded ETag %s, expected one of %s" % (h["ETag"], sorted(self.etags))
            return None
        return v

    def aws_isolation(self):
        """No user awscli config or credentials file: awscli defaults (10 threads, 8 MiB chunks)."""
        empty = os.path.join(self.work, "aws-empty-config")
        open(empty, "w").close()
        return {"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_PAGER": ""}

    def client_cmd(self, client, src, dst, endpoint, concurrency=None):
        if client == "mayfly":
            cmd = [self.mayfly, "cp", src, dst, "--quiet"]
            if concurrency:
                cmd += ["--concurrency", str(concurrency)]
            return cmd
        return [self.aws, "s3", "cp", src, dst, "--endpoint-url", endpoint, "--only-show-errors"]

    def bench_nginx(self):
        a = self.args
        docroot = os.path.join(self.work, "www")
        os.makedirs(os.path.join(docroot, BUCKET, "bench"))
        os.link(self.src, os.path.join(docroot, BUCKET, "bench", "src"))  # same inode: same cached pages
        ng = Nginx(self.work, docroot).start()
        try:
            log("nginx: listening on %s" % ng.endpoint)
            env = clean_env({"AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0", "AWS_SECRET_ACCESS_KEY": "bench" * 8,
                             "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                             "AWS_ENDPOINT_URL": ng.endpoint, "AWS_EC2_METADATA_DISABLED": "true"})
            env.update(self.aws_isolation())
            url = "%s/%s/bench/src" % (ng.endpoint, BUCKET)
            s3url = "s3://%s/bench/src" % BUCKET
            pid = ng.proc.pid
            curl_out = self.out_path("curl")
            mf_out = self.out_path("nginx-mayfly")
            aws_out = self.out_path("nginx-aws")
            curl = Case("nginx", "download", "curl -o FILE (ceiling)",
                        ["curl", "-sS", "--fail", "-o", curl_out, url], env, self.dl_verify(curl_out),
                        self.rm(curl_out), pid)
            curl_null = Case("nginx", "download", "curl -o /dev/null",
                             ["curl", "-sS", "--fail", "-o", "/dev/null", url], env, None, None, pid)
            mf = Case("nginx", "download", "mayfly cp", self.client_cmd("mayfly", s3url, mf_out, ng.endpoint),
                      env, self.dl_verify(mf_out), self.rm(mf_out), pid)
            aws = Case("nginx", "download", "aws s3 cp", self.client_cmd("aws", s3url, aws_out, ng.endpoint),
                       env, self.dl_verify(aws_out), self.rm(aws_out), pid)
            main = [curl, mf, aws, curl_null]
            self.cases += main
            self.nginx_mayfly = mf
            log("nginx: %d runs each, interleaved" % a.reps)
            self.run_group(main, a.reps)
            if not a.no_sweep:
                sweep = []
                for n in SWEEP:
                    if n == default_concurrency():
                        continue
                    out = self.out_path("sweep-%d" % n)
                    sweep.append(Case("nginx", "download", "mayfly cp --concurrency %d" % n,
                                      self.client_cmd("mayfly", s3url, out, ng.endpoint, n), env,
                                      self.dl_verify(out), self.rm(out), pid))
                self.sweep = sweep
                log("nginx: mayfly --concurrency sweep, %d runs each" % a.reps)
                self.run_group(sweep, a.reps)
        finally:
            ng.stop()

    def run(self):
        a = self.args
        self.aws = find_aws()
        self.work = tempfile.mkdtemp(prefix="mayfly-bench-", dir=a.tmp)
        os.makedirs(os.path.join(self.work, "out"))
        self.src = os.path.join(self.work, "src.bin")
        t0 = time.monotonic()
        log("bench: writing %d MiB of random data to %s" % (a.size_mib, self.src))
        make_random_file(self.src, self.size)
        self.etags = multipart_etag(self.src, PART)
        t = time.monotonic()
        version([self.aws, "--version"])
        self.aws_start = time.monotonic() - t
        os.sync()
        self.sweep = []
        self.nginx_mayfly = None
        # moto re-reads the whole object for every ranged GET: ~100 s per 1 GiB download run
        self.moto_dl_reps = a.moto_dl_reps or (a.moto_reps if a.size_mib <= 256 else 1)
        for name, skip, fn in (("nginx", a.skip_nginx, self.bench_nginx), ("moto", a.skip_moto, self.bench_moto)):
            if skip:
                continue
            try:
                fn()
            except Exception as e:  # noqa: BLE001 -- report what was measured; say what broke
                log("bench: the %s part failed: %s" % (name, e))
                self.notes.append("the %s part failed: %s" % (name, str(e)[-500:]))
        self.elapsed = time.monotonic() - t0

    # ------------------------------------------------------------------------------------------
    # report

    def find(self, server, op, client):
        for c in self.cases:
            if c.server == server and c.op == op and c.client == client:
                return c
        return None

    def report(self):
        a = self.args
        fstype = subprocess.run(["stat", "-f", "-c", "%T", self.work], capture_output=True, text=True).stdout.strip()
        P = print
        P()
        P("mayfly cp benchmark: %d MiB random object over loopback, %d CPUs, %s" % (
            a.size_mib, os.cpu_count(), time.strftime("%Y-%m-%d %H:%M")))
        P("  mayfly  %s  (defaults: --concurrency 2 per CPU (4..16), --part-size 8)" % self.mayfly)
        P("  aws     %s  %s  (no config file: 10 threads, 8 MiB chunks)" % (self.aws, version([self.aws, "--version"])))
        P("  curl    %s" % " ".join(version(["curl", "--version"]).split()[:3]))
        P("  nginx   %s  (sendfile, worker_processes auto)" % version([NGINX, "-v"]).replace("nginx version: ", ""))
        P("  files   %s (%s, not tmpfs).  Warm page cache: the source was just written and stays" % (self.work, fstype))
        P("          cached, so reads come from RAM; downloads are written into the page cache (no client")
        P("          fsyncs), `sync` runs between runs (untimed), each output is cmp'd and deleted.")
        P("servers")
        P("  nginx   static file server started here: /BUCKET/KEY from a temp root, SigV4 headers ignored,")
        P("          HEAD + Range + If-Match answered; read-only (uploads: bench_up.py).  curl -o FILE = the ceiling.")
        P("  moto    tests/fakes/cloud.py via tests/harness.Cloud(auth=%s)%s; one Python process" % (
            a.moto_auth, " (no signature checks)" if not a.moto_auth else ""))
        P("          (GIL) that re-reads the whole object for every ranged GET: it, not the client, is the")
        P("          bottleneck there (srv CPU ~ wall).")
        P("columns")
        P("  MB/s and wall s: median run; wall = the whole command incl. process start (aws start-up,")
        P("  `aws --version`: %.2f s).  runs: every run's MB/s (MB = 10^6 bytes).  CPU s: client user+sys in"
          % self.aws_start)
        P("  the median run; srv CPU: server CPU s in that run (nginx: master+workers); RSS: client peak RSS,")
        P("  max over runs (/usr/bin/time -v).")
        P()
        hdr = "%-7s %-8s %-36s %8s %7s %6s %7s %8s  %s" % ("server", "op", "client", "MB/s", "wall s", "CPU s",
                                                          "srv CPU", "RSS MiB", "runs (MB/s)")
        P(hdr)
        P("-" * len(hdr))
        last = None
        for c in self.cases:
            if last is not None and c.server != last:
                P()
            last = c.server
            P(self.row(c))
        if self.sweep and self.nginx_mayfly:
            P()
            P("mayfly --concurrency sweep, nginx download:")
            byn = {default_concurrency(): self.nginx_mayfly}
            for c in self.sweep:
                byn[int(c.client.split()[-1])] = c
            for n in sorted(set(SWEEP) | {default_concurrency()}):
                c = byn[n]
                P(self.row(c, client="mayfly cp --concurrency %d%s" % (n, " (default)" if n == min(16, max(4, 2 * (os.cpu_count() or 1))) else "")))
        P()
        self.goals()
        for n in self.notes:
            P("NOTE: " + n)
        P()
        P("total bench time %.0f s" % self.elapsed)

    def row(self, c, client=None):
        b = c.best()
        runs = " ".join("%.0f" % (self.size / r.wall / MB) if not r.err else "FAIL" for r in c.runs)
        if not b:
            err = c.disabled or "not run"
            return "%-7s %-8s %-36s  FAILED: %s" % (c.server, c.op, client or c.client, err[:200])
        srv = "%7.2f" % b.srv_cpu if b.srv_cpu is not None else "%7s" % "-"
        rss = max(r.rss_kb for r in c.runs if not r.err) / 1024
        return "%-7s %-8s %-36s %8.1f %7.2f %6.2f %s %8.1f  %s" % (
            c.server, c.op, client or c.client, self.size / b.wall / MB, b.wall, b.cpu, srv, rss, runs)

    def goals(self):
        P = print
        P("goals (median runs):")

        def line(goal, server, num, den, label, target, pct=False):
            bn, bd = (num.best() if num else None), (den.best() if den else None)
            if not bn or not bd:
                P("  %-32s %-6s %-34s %s" % (goal, server, "n/a (a run failed or was skipped)", "NOT MEASURED"))
                return
            ratio = bd.wall / bn.wall  # same bytes: speed ratio = inverse time ratio
            val = "%s = %.0f%%" % (label, ratio * 100) if pct else "%s = %.2fx" % (label, ratio)
            P("  %-32s %-6s %-34s %s" % (goal, server, val, "MET" if ratio >= target else "NOT MET"))

        for srv in ("nginx", "moto"):
            line("download >= %gx awscli" % GOAL_DL_AWS, srv, self.find(srv, "download", "mayfly cp"),
                 self.find(srv, "download", "aws s3 cp"), "mayfly/aws", GOAL_DL_AWS)
        line("upload >= %gx awscli" % GOAL_UL_AWS, "moto", self.find("moto", "upload", "mayfly cp"),
             self.find("moto", "upload", "aws s3 cp"), "mayfly/aws", GOAL_UL_AWS)
        line("download >= %d%% of ceiling" % (GOAL_DL_CEIL * 100), "nginx", self.find("nginx", "download", "mayfly cp"),
             self.find("nginx", "download", "curl -o FILE (ceiling)"), "mayfly/curl", GOAL_DL_CEIL, pct=True)
        P("  (uploads against a writable nginx stand-in: bench/bench_up.py; moto's numbers are bounded by the")
        P("  Python server, see srv CPU)")

    def cleanup(self):
        for p in list(LIVE):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.wait(5)
            except Exception:  # noqa: BLE001
                pass
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="build dir holding mayfly (default build)")
    ap.add_argument("--size-mib", type=int, default=1024, help="object size in MiB (default 1024)")
    ap.add_argument("--reps", type=int, default=3, help="runs per nginx measurement (default 3, the median reported)")
    ap.add_argument("--moto-reps", type=int, default=3, help="runs per moto upload measurement (default 3)")
    ap.add_argument("--moto-dl-reps", type=int, default=0,
                    help="runs per moto download measurement (default: --moto-reps up to 256 MiB, else 1)")
    ap.add_argument("--moto-auth", action="store_true", help="start moto with SigV4 checks (default: --no-auth)")
    ap.add_argument("--skip-moto", action="store_true")
    ap.add_argument("--skip-nginx", action="store_true")
    ap.add_argument("--no-sweep", action="store_true", help="no mayfly --concurrency sweep")
    ap.add_argument("--timeout", type=int, default=600, help="per-command limit in seconds (default 600)")
    ap.add_argument("--tmp", default=None, help="parent of the temp dir (default $TMPDIR or /tmp)")
    a = ap.parse_args()
    if a.size_mib < 1:
        ap.error("--size-mib must be >= 1")
    if not os.path.isabs(a.build):
        a.build = os.path.join(os.getcwd(), a.build) if os.path.exists(os.path.join(os.getcwd(), a.build)) \
            else os.path.join(ROOT, a.build)
    b = Bench(a)
    check_prereqs(b.mayfly)

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGHUP, on_term)
    try:
        b.run()
        b.report()
    except KeyboardInterrupt:
        log("bench: interrupted")
        sys.exit(130)
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
