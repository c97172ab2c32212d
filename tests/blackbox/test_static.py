# SPDX-License-Identifier: Apache-2.0
"""The static binary (`make static`: build/static/mayfly, musl, curl and libcrypto on OpenSSL 3.0): size, linkage,
an empty chroot (no libc, no /etc but a CA bundle) for --version, cp against moto over HTTP and over HTTPS with each
distribution's CA bundle path, mayfly check, the nvidia-smi fallback (no dlopen in a static binary), and the
sd_notify shim. Builds nothing."""
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from harness import ROOT, Cloud, Skip, check, out

STATIC = os.path.join(os.environ.get("MAYFLY_BUILD", os.path.join(ROOT, "build")), "static", "mayfly")
MAX_SIZE = 4 << 20
BUCKET = "mayfly-test"
DEBIAN_CA = "/etc/ssl/certs/ca-certificates.crt"
AMAZON_CA = "/etc/pki/tls/certs/ca-bundle.crt"


def need_binary():
    if not os.path.exists(STATIC):
        raise Skip("make static not run")


def need_root():
    if os.geteuid() != 0:
        raise Skip("chroot needs root")


def static(*args, env=None, timeout=120):
    return subprocess.run([STATIC, *args], env=env, capture_output=True, timeout=timeout)


def make_chroot(ca_path=DEBIAN_CA, ca_text=None):
    """A directory holding only /mayfly, /data and (unless ca_path is None) one CA bundle."""
    d = tempfile.mkdtemp(prefix="mayfly-chroot-")
    shutil.copy(STATIC, os.path.join(d, "mayfly"))
    os.makedirs(os.path.join(d, "data"))
    if ca_path:
        dst = os.path.join(d, ca_path.lstrip("/"))
        os.makedirs(os.path.dirname(dst))
        with open(DEBIAN_CA) as f:
            text = f.read()
        with open(dst, "w") as f:
            f.write(text + (ca_text or ""))
    return d


def in_chroot(d, *args, env=None, timeout=120):
    return subprocess.run(["chroot", d, "/mayfly", *args], env=env, capture_output=True, timeout=timeout)


def setup():
    if not os.path.exists(STATIC):
        return None
    c = Cloud(auth=True).__enter__()
    c.chroots = []
    return c


def teardown(c):
    if c:
        c.__exit__(None, None, None)
        for d in c.chroots:
            shutil.rmtree(d, ignore_errors=True)


def test_static_size_and_linkage():
    need_binary()
    size = os.path.getsize(STATIC)
    f = subprocess.run(["file", "-b", STATIC], capture_output=True, text=True).stdout.strip()
    print("  %s: %d bytes; file: %s" % (STATIC, size, f))
    check(size <= MAX_SIZE, "%d bytes > %d" % (size, MAX_SIZE))
    check("statically linked" in f and "x86-64" in f and "stripped" in f and "not stripped" not in f, f)


def test_static_version_in_empty_chroot(c):
    need_binary()
    need_root()
    d = make_chroot()
    c.chroots.append(d)
    p = in_chroot(d, "--version")
    print("  chroot --version: " + out(p))
    check(p.returncode == 0 and out(p).startswith("mayfly "), out(p))


def roundtrip(c, d, env, name):
    """cp a small file up and back down inside chroot d; the bytes must come back the same."""
    data = os.urandom(100 * 1024 + 7)
    with open(os.path.join(d, "data", name), "wb") as f:
        f.write(data)
    key = "s3://%s/static/%s" % (BUCKET, name)
    p = in_chroot(d, "cp", "/data/" + name, key, env=env)
    check(p.returncode == 0, "upload: " + out(p))
    p = in_chroot(d, "cp", key, "/data/%s.back" % name, env=env)
    check(p.returncode == 0, "download: " + out(p))
    with open(os.path.join(d, "data", name + ".back"), "rb") as f:
        check(f.read() == data, "%s came back different" % name)


def test_static_cp_roundtrip_in_empty_chroot(c):
    need_binary()
    need_root()
    d = make_chroot()
    c.chroots.append(d)
    roundtrip(c, d, c.admin_env(), "small.bin")
    print("  cp up and down in the chroot against %s: identical" % c.endpoint)


# ---- HTTPS: a TLS relay to moto, with a certificate for localhost from a throwaway CA ----

def make_ca_and_cert(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mayfly static test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    cert_path, key_path = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca.public_bytes(pem).decode(), cert_path, key_path


class TLSRelay:
    """https://localhost:PORT -> the plain HTTP endpoint of moto, byte for byte."""

    def __init__(self, target, cert_path, key_path):
        self.target = target
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert_path, key_path)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
            up = socket.create_connection(self.target)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        threading.Thread(target=self.pump, args=(up, tls), daemon=True).start()
        self.pump(tls, up)

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_static_https_finds_each_ca_bundle_in_chroot(c):
    need_binary()
    need_root()
    tmp = tempfile.mkdtemp(prefix="mayfly-tls-")
    c.chroots.append(tmp)
    ca, cert_path, key_path = make_ca_and_cert(tmp)
    host, port = c.endpoint.split("//")[1].split(":")
    relay = TLSRelay((host, int(port)), cert_path, key_path)
    try:
        env = c.admin_env()
        env["AWS_ENDPOINT_URL"] = "https://localhost:%d" % relay.port
        for where in (DEBIAN_CA, AMAZON_CA, "/etc/ssl/cert.pem"):
            d = make_chroot(where, ca)
            c.chroots.append(d)
            roundtrip(c, d, env, "tls.bin")
            print("  HTTPS cp in a chroot with only %s: identical" % where)
        d = make_chroot(None)
        c.chroots.append(d)
        os.makedirs(os.path.join(d, "custom"))
        with open(os.path.join(d, "custom", "ca.pem"), "w") as f:
            f.write(ca)
        p = in_chroot(d, "cp", "s3://%s/static/tls.bin" % BUCKET, "/data/x", env=env)
        check(p.returncode != 0 and "ca" in out(p).lower(), "no CA bundle, yet: %d %s" % (p.returncode, out(p)))
        print("  no CA bundle: exit %d: %s" % (p.returncode, out(p).splitlines()[-1]))
        env["AWS_CA_BUNDLE"] = "/custom/ca.pem"
        roundtrip(c, d, env, "tls-custom.bin")
        print("  HTTPS cp with AWS_CA_BUNDLE=/custom/ca.pem: identical")
    finally:
        relay.close()


def test_static_check_example_job():
    need_binary()
    p = static("check", os.path.join(ROOT, "examples", "job.json"))
    print("  check examples/job.json: exit %d %s" % (p.returncode, out(p)))
    check(p.returncode == 0, out(p))


def test_static_reads_no_aws_files_and_says_so(c):
    """The static build carries no libinih: ~/.aws is not read; a profile named by AWS_PROFILE is an error that says
    so, while the environment's keys work as everywhere."""
    need_binary()
    home = tempfile.mkdtemp(prefix="mayfly-static-home-")
    os.makedirs(os.path.join(home, ".aws"))
    with open(os.path.join(home, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" %
                (c.info["admin_access_key"], c.info["admin_secret_key"]))
    env = {k: v for k, v in c.base_env().items() if k != "AWS_EC2_METADATA_SERVICE_ENDPOINT"}
    env.update(HOME=home, AWS_EC2_METADATA_DISABLED="true", AWS_PROFILE="default")
    p = static("cp", os.path.join(ROOT, "README.md"), "s3://%s/static/readme" % BUCKET, env=env)
    check(p.returncode == 4 and "static build" in out(p) and "AWS_ACCESS_KEY_ID" in out(p), out(p))
    env.update(AWS_ACCESS_KEY_ID=c.info["admin_access_key"], AWS_SECRET_ACCESS_KEY=c.info["admin_secret_key"])
    p = static("cp", os.path.join(ROOT, "README.md"), "s3://%s/static/readme" % BUCKET, env=env)
    check(p.returncode == 0, out(p))
    shutil.rmtree(home)


def test_static_gpu_falls_back_to_nvidia_smi():
    need_binary()
    d = tempfile.mkdtemp(prefix="mayfly-smi-")
    try:
        os.symlink(os.path.join(ROOT, "tests", "fakes", "nvml", "nvidia-smi"), os.path.join(d, "nvidia-smi"))
        env = {k: v for k, v in os.environ.items() if k != "FAKE_NVML_STATE"}
        env["PATH"] = d + ":" + env.get("PATH", "/usr/bin:/bin")
        fake_nvml = os.path.join(os.path.dirname(STATIC), "..", "fakes", "nvml", "libnvidia-ml.so.1")
        env["MAYFLY_NVML_LIBRARY"] = os.path.abspath(fake_nvml)  # a real library, which a static binary cannot load
        p = static("gpu", env=env)
        print("  gpu: exit %d %s" % (p.returncode, out(p)))
        check(p.returncode == 0, out(p))
        inv = json.loads(p.stdout)
        check(inv["source"] == "nvidia-smi" and inv["count"] == 1 and "V100" in inv["devices"][0]["name"], out(p))
        env["PATH"] = "/nonexistent"
        p = static("gpu", env=env)
        print("  gpu without nvidia-smi: exit %d %s" % (p.returncode, out(p)))
        check(p.returncode not in (0, -11, -6) and "nvidia-smi" in out(p), out(p))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def notify_messages(c, address, bind_to):
    """Runs `mayfly run` (a results bucket that does not exist: it stops early) with NOTIFY_SOCKET=address."""
    d = tempfile.mkdtemp(prefix="mayfly-notify-")
    c.chroots.append(d)
    job = {"name": "t", "source": "s3://%s/src/exp.tar.gz" % BUCKET, "results": "s3://no-such-bucket-x/r/",
           "workdir": os.path.join(d, "work"), "experiments": [{"name": "a", "command": ["true"]}]}
    job_path = os.path.join(d, "job.json")
    with open(job_path, "w") as f:
        json.dump(job, f)
    env = c.role_env()
    env.update(NOTIFY_SOCKET=address, MAYFLY_POWEROFF_COMMAND="true", STATE_DIRECTORY=os.path.join(d, "state"),
               LOGS_DIRECTORY=os.path.join(d, "logs"), CACHE_DIRECTORY=os.path.join(d, "cache"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(bind_to)
    s.settimeout(0.2)
    proc = subprocess.Popen([STATIC, "run", "--job", job_path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    msgs = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                msgs.append(s.recv(4096).decode())
            except socket.timeout:
                if proc.poll() is not None:
                    break
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        s.close()
    return msgs, proc.returncode, err.decode(errors="replace")


def test_static_sd_notify_ready_and_status(c):
    need_binary()
    path = os.path.join(tempfile.mkdtemp(prefix="mayfly-notify-sock-"), "notify.sock")
    c.chroots.append(os.path.dirname(path))
    abstract = "mayfly-static-test-%d" % os.getpid()
    for address, bind_to in ((path, path), ("@" + abstract, "\0" + abstract)):
        msgs, rc, err = notify_messages(c, address, bind_to)
        print("  NOTIFY_SOCKET=%s: exit %d, %r" % (address, rc, msgs))
        text = "\n".join(msgs)
        check(rc != 0 and "no-such-bucket-x" in err, "exit %d: %s" % (rc, err[-2000:]))
        check("READY=1" in msgs, "no READY=1 in %r" % msgs)
        check(any(m.startswith("STATUS=") for m in msgs), "no STATUS= in %r" % msgs)
        check("STOPPING=1" in text, "no STOPPING=1 in %r" % msgs)
