# SPDX-License-Identifier: Apache-2.0
"""Shared test harness: starts the fake cloud (moto + IMDS fake), runs the real mayfly binary."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("MAYFLY_BUILD", os.path.join(ROOT, "build"))
MAYFLY = os.path.join(BUILD, "mayfly")

CLEAN_ENV_DROP = ("AWS_", "MAYFLY_")

# What a test may use without meeting another worker's (tests/run.py runs tests in parallel, docs/testing.md):
# WORKER, this process's number (1..N; 0 outside the runner); RUN_USER, the unprivileged user experiments run as
# (one per worker, made by the runner: mayfly-t<N>; nobody outside it); worker_loopback() and worker_ports() for
# anything that must bind a fixed address or port (the fake cloud and its IMDS take ports the kernel chooses).
WORKER = int(os.environ.get("MAYFLY_TEST_WORKER", "0") or 0)
RUN_USER = os.environ.get("MAYFLY_TEST_RUN_USER") or "nobody"


def _users_locked(argv):
    """useradd/userdel under one lock for every worker (they lock /etc/passwd and give up when another holds it)."""
    import fcntl
    with open("/run/mayfly-test-users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def user_add(name, *args):
    """useradd NAME with args; AssertionError if it fails."""
    p = _users_locked(["useradd", *args, name])
    if p.returncode != 0:
        raise AssertionError("useradd %s failed: %s" % (name, p.stderr.strip()))


def user_del(name):
    """userdel -r NAME, if it exists."""
    _users_locked(["userdel", "-r", name])


def worker_loopback(i=0):
    """The i-th (0..255) loopback address of this worker: 127.<10 + WORKER>.0.<1 + i> (the whole 127/8 is loopback
    on Linux), so that two workers' fixed addresses never meet."""
    if not 0 <= i < 255:
        raise ValueError("worker_loopback: i must be 0..254")
    return "127.%d.0.%d" % (10 + WORKER, 1 + i)


def worker_ports(n=100):
    """A range of n (<= 100) TCP ports of this worker's own, for servers that need a fixed port (a rendezvous
    port): 20000 + 100 x WORKER onwards, below the kernel's ephemeral range (32768 up), where no chosen port lands."""
    if not 0 < n <= 100:
        raise ValueError("worker_ports: at most 100 ports a worker")
    base = 20000 + 100 * WORKER
    return range(base, base + n)


class Cloud:
    """One fake cloud process; `with Cloud(...) as c:` starts and stops it.

    simulate=True turns on the instance simulator (tests/fakes/instances.py): every instance moto starts boots the
    mayfly binary `mayfly` (default: the build's) with the job its user-data writes; extra_env goes to every agent;
    grace (s) is the time from an instance's shutdown to the SIGKILL of its processes, boot_delay (s) how long an
    instance stays pending. Then instances(), instance(iid), wait_instances(), spot(), rebalance(), kill(),
    poweroff(), boot_env() and imds(iid, path) drive and read the simulated instances."""

    def __init__(self, auth=True, cred_ttl=None, deny_terminate=False, buckets=("mayfly-test",), extra=(),
                 simulate=False, mayfly=None, extra_env=None, grace=None, boot_delay=None, restart_sec=None):
        self.dir = tempfile.mkdtemp(prefix="mayfly-cloud-")
        args = [sys.executable, os.path.join(ROOT, "tests", "fakes", "cloud.py"), "--state-dir", self.dir]
        if not auth:
            args.append("--no-auth")
        if cred_ttl:
            args += ["--cred-ttl", str(cred_ttl)]
        if deny_terminate:
            args.append("--role-deny-terminate")
        for b in buckets:
            args += ["--bucket", b]
        if simulate:
            args += ["--simulate-instances", "--mayfly", mayfly or MAYFLY]
            for k, v in (extra_env or {}).items():
                args += ["--agent-env", "%s=%s" % (k, v)]
            # each instance's private IPv4 on this worker's own loopback /24 (worker_loopback keeps to 127.X.0.x)
            args += ["--sim-private-net", "127.%d.1" % (10 + WORKER)]
            for opt, v in (("--sim-grace", grace), ("--sim-boot-delay", boot_delay), ("--sim-restart-sec", restart_sec)):
                if v is not None:
                    args += [opt, str(v)]
        args += list(extra)
        self.args = args
        self.proc = None
        self.info = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        path = os.path.join(self.dir, "cloud.json")
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    self.info = json.load(f)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("fake cloud failed: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
            time.sleep(0.05)
        raise RuntimeError("fake cloud did not start in 60 s")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if os.environ.get("MAYFLY_KEEP_CLOUD"):  # debugging: the cloud's log, state and instance roots stay
            sys.stderr.write("fake cloud kept in %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    @property
    def endpoint(self):
        return self.info["endpoint"]

    def control(self, method, path, body=None):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.info["control"] + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            out = r.read()
        try:
            return json.loads(out)
        except ValueError:
            return out

    def stats(self):
        return self.control("GET", "/stats")

    def faults(self, rules):
        """Adds fault rules between mayfly and moto (a list of rules: tests/fakes/README.md)."""
        self.control("POST", "/faults", list(rules))

    def faults_done(self, at_least=1):
        """Clears the fault rules, then checks that each fired at least at_least times: a fault-injection test whose
        fault never fired proves nothing. Returns how often each fired, in the order they were set."""
        rules = self.control("GET", "/faults")["rules"]
        self.control("DELETE", "/faults")
        idle = [r for r in rules if r["fired"] < at_least]
        check(not idle, "fault rules that fired less than %d times: %s" % (at_least, json.dumps(
            [{k: v for k, v in r.items() if k not in ("message",)} for r in idle])[:1500]))
        return [r["fired"] for r in rules]

    # ---- the instance simulator (Cloud(simulate=True)) ----
    def instances(self):
        """Every simulated instance, oldest first: instance_id, state (pending, running, stopping, stopped,
        shutting-down, terminated), ec2_state (moto's), root, imds_endpoint, lifecycle, group, tags, boots,
        agent_pid, agent_running, agent_exit_code, agent_signal, ended_by, ... (tests/fakes/README.md)."""
        return self.control("GET", "/instances")["instances"]

    def instance(self, iid):
        return self.control("GET", "/instances/" + iid)

    def wait_instances(self, pred, timeout=60, interval=0.3, what="instances"):
        """Polls instances() until pred(list) is truthy; returns that list (AssertionError with the last list
        after timeout)."""
        deadline = time.time() + timeout
        while True:
            got = self.instances()
            if pred(got):
                return got
            if time.time() >= deadline:
                raise AssertionError("%s: not reached in %ds: %s" % (what, timeout, json.dumps(
                    [{k: i.get(k) for k in ("instance_id", "state", "ec2_state", "agent_running", "agent_exit_code",
                                            "agent_signal", "boot_error", "ended_by")} for i in got])))
            time.sleep(interval)

    def wait_instance(self, iid, pred, timeout=60, what=None):
        """Polls instance(iid) until pred(dict) is truthy; returns it."""
        got = self.wait_instances(lambda l: any(i["instance_id"] == iid and pred(i) for i in l), timeout,
                                  what=what or iid)
        return next(i for i in got if i["instance_id"] == iid)

    def spot(self, iid, in_s=120, action="terminate", enforce=True):
        """A spot interruption notice on one instance, for now + in_s; at that time the simulator interrupts it
        (terminates, or stops for stop/hibernate) unless enforce=False."""
        return self.control("POST", "/instances/%s/spot" % iid, {"in": in_s, "action": action, "enforce": enforce})

    def rebalance(self, iid, in_s=0):
        return self.control("POST", "/instances/%s/rebalance" % iid, {"in": in_s})

    def kill(self, iid):
        """Hardware loss: SIGKILL to every process of the instance at once, then the instance terminated in moto."""
        return self.control("POST", "/instances/%s/kill" % iid, {})

    def poweroff(self, iid):
        """An OS-initiated power-off (what the agent's MAYFLY_POWEROFF_COMMAND does)."""
        return self.control("POST", "/instances/%s/poweroff" % iid, {})

    def boot_env(self, *envs):
        """Environment for the next instances to boot, one dict each, in boot order (e.g. FAKETIME per instance)."""
        return self.control("POST", "/sim/boot-env", {"envs": list(envs)})

    def imds(self, iid, path):
        """GET latest/<path> from one simulated instance's IMDS (IMDSv2): (status, body bytes)."""
        import urllib.error
        ep = self.instance(iid)["imds_endpoint"]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        tok = opener.open(urllib.request.Request(ep + "/latest/api/token", method="PUT", headers={
            "X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=10).read().decode()
        try:
            with opener.open(urllib.request.Request(ep + "/latest/" + path, headers={
                    "X-aws-ec2-metadata-token": tok}), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def userdata(self, job, *args):
        """The user-data `mayfly userdata JOB ARGS...` renders (bytes); job: a dict or a path."""
        path = job
        if isinstance(job, dict):
            fd, path = tempfile.mkstemp(prefix="mayfly-job-", suffix=".json", dir=self.dir)
            with os.fdopen(fd, "w") as f:
                json.dump(job, f)
        p = subprocess.run([MAYFLY, "userdata", path, *args], capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("mayfly userdata failed: " + p.stderr.decode(errors="replace"))
        return p.stdout

    def base_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_ENV_DROP)}
        env.update({
            "AWS_REGION": self.info["region"],
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.info["imds_endpoint"],
        })
        return env

    def role_env(self):
        """As on an instance: no keys in the environment, the role comes from IMDS."""
        return self.base_env()

    def admin_env(self):
        env = self.base_env()
        env["AWS_ACCESS_KEY_ID"] = self.info["admin_access_key"]
        env["AWS_SECRET_ACCESS_KEY"] = self.info["admin_secret_key"]
        return env

    def aws(self, *args, check=True, env=None, timeout=300):
        e = env or self.admin_env()
        e.setdefault("AWS_DEFAULT_REGION", self.info["region"])
        p = subprocess.run(["aws", "--endpoint-url", self.endpoint, *args], env=e, capture_output=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("aws %s failed: %s" % (" ".join(args), p.stderr.decode(errors="replace")[-1000:]))
        return p

    def boto(self, service, env=None):
        import boto3
        e = env or self.admin_env()
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.info["region"],
                            aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"])


def mayfly(*args, env=None, timeout=300, input=None):
    return subprocess.run([MAYFLY, *args], env=env, capture_output=True, timeout=timeout, input=input)


def check(cond, msg=""):
    if not cond:
        raise AssertionError(msg)


def file_sha256(path):
    """The SHA-256 of a file, in hex (read in 1 MiB pieces)."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def random_file(directory, name, size):
    """A file of size random bytes at directory/name (written 8 MiB at a time); its path."""
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    return path


def script_entries(scripts):
    """Extra archive entries (TarInfo, bytes) for a job's source: each {name: text} as an executable file."""
    import tarfile
    entries = []
    for name, body in scripts.items():
        ti = tarfile.TarInfo(name)
        ti.size = len(body.encode())
        ti.mode = 0o755
        entries.append((ti, body.encode()))
    return entries


def out(p):
    return (p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")).strip()


class Skip(Exception):
    pass


class ResultsView:
    """What a run left in the fake cloud, for a class with .cloud (a Cloud): objects in the test bucket, the run's
    status.json, the instance's state in moto."""
    BUCKET = "mayfly-test"

    def keys(self, prefix="results/"):
        r = self.cloud.boto("s3").list_objects_v2(Bucket=self.BUCKET, Prefix=prefix)
        return [o["Key"] for o in r.get("Contents", [])]

    def get(self, key):
        return self.cloud.boto("s3").get_object(Bucket=self.BUCKET, Key=key)["Body"].read()

    def status(self):
        ks = [k for k in self.keys() if k.endswith("/status.json")]
        return json.loads(self.get(ks[0])) if ks else None

    def instance_state(self):
        r = self.cloud.boto("ec2").describe_instances(InstanceIds=[self.cloud.info["instance_id"]])
        return r["Reservations"][0]["Instances"][0]["State"]["Name"]


class RunResults:
    """What one run left under its prefix in S3 (s3://bucket/<prefix>, prefix ending in '/'): keys, objects and
    status.json. RunResults.find(cloud, ...) picks runs by their status."""

    def __init__(self, cloud, prefix, bucket=ResultsView.BUCKET):
        self.cloud, self.prefix, self.bucket = cloud, prefix, bucket

    def __repr__(self):
        return "RunResults(s3://%s/%s)" % (self.bucket, self.prefix)

    def keys(self, sub=""):
        """Keys under the prefix (relative to it), every page."""
        s3, out, token = self.cloud.boto("s3"), [], None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": self.prefix + sub}
            if token:
                kw["ContinuationToken"] = token
            r = s3.list_objects_v2(**kw)
            out += [o["Key"][len(self.prefix):] for o in r.get("Contents", [])]
            token = r.get("NextContinuationToken")
            if not token:
                return out

    def get(self, rel):
        return self.cloud.boto("s3").get_object(Bucket=self.bucket, Key=self.prefix + rel)["Body"].read()

    def exists(self, rel):
        return rel in self.keys(rel)

    def status(self):
        """status.json of the run, or None."""
        return json.loads(self.get("status.json")) if self.exists("status.json") else None

    @classmethod
    def find(cls, cloud, results="results/", bucket=ResultsView.BUCKET, instance_id=None):
        """Every run under the results prefix that has a status.json ([RunResults]); with instance_id, only the
        runs whose status names that instance."""
        s3, runs, token = cloud.boto("s3"), [], None
        while True:
            kw = {"Bucket": bucket, "Prefix": results}
            if token:
                kw["ContinuationToken"] = token
            r = s3.list_objects_v2(**kw)
            runs += [o["Key"][:-len("status.json")] for o in r.get("Contents", []) if o["Key"].endswith("/status.json")]
            token = r.get("NextContinuationToken")
            if not token:
                break
        out = [cls(cloud, p, bucket) for p in sorted(runs)]
        if instance_id:
            out = [r for r in out if ((r.status() or {}).get("instance") or {}).get("id") == instance_id]
        return out


def load_tests(path):
    """The module at path and its test_* functions, in the order they are written."""
    import importlib.util
    import inspect
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tests = [(n, f) for n, f in inspect.getmembers(mod, inspect.isfunction)
             if n.startswith("test_") and f.__module__ == mod.__name__]
    tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
    return mod, tests


def run_test_quietly(call):
    """Runs one test: ("PASS" | "SKIP" | "FAIL", seconds, why, traceback text or "")."""
    import traceback
    t0 = time.time()
    try:
        call()
        return "PASS", time.time() - t0, "", ""
    except Skip as e:
        return "SKIP", time.time() - t0, str(e), ""
    except Exception as e:  # noqa: BLE001
        return "FAIL", time.time() - t0, str(e), traceback.format_exc(limit=3)


def run_test(label, call, counts):
    """Runs one test; prints PASS (with its time), SKIP or FAIL (with a short traceback); counts it in counts
    (a dict with passed, failed, skipped)."""
    import traceback
    t0 = time.time()
    try:
        call()
        counts["passed"] += 1
        print("PASS %s (%.1fs)" % (label, time.time() - t0), flush=True)
    except Skip as e:
        counts["skipped"] += 1
        print("SKIP %s: %s" % (label, e), flush=True)
    except Exception as e:  # noqa: BLE001
        counts["failed"] += 1
        print("FAIL %s (%.1fs): %s" % (label, time.time() - t0, e), flush=True)
        traceback.print_exc(limit=3)
