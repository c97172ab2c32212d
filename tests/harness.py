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


class Cloud:
    """One fake cloud process; `with Cloud(...) as c:` starts and stops it."""

    def __init__(self, auth=True, cred_ttl=None, deny_terminate=False, buckets=("mayfly-test",), extra=()):
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
