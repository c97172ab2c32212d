# SPDX-License-Identifier: Apache-2.0
"""Cases moto's signature checker cannot judge (PROTOCOL.md §7): keys with + = , % and UTF-8, prefixes
with '/', presigned URLs. Bytes go through a moto without signature checking; signatures are compared with
botocore's for the same request, credentials and time."""
import datetime
import hashlib
import http.server
import os
import re
import subprocess
import tempfile
import threading
import urllib.parse
from unittest import mock

from harness import Cloud, check, mayfly, out

BUCKET = "mayfly-test"
ODD_KEYS = ["odd/a b+c=d,e%f~g.txt", "odd/ünïcödé/日本語.bin", "odd/100%/x=y,z+w", "odd/plain"]


def setup():
    c = Cloud(auth=False).__enter__()
    c.tmp = tempfile.mkdtemp(prefix="mayfly-noauth-")
    return c


def teardown(c):
    c.__exit__(None, None, None)


def test_odd_keys_roundtrip_exact_names(c):
    env = c.admin_env()
    for i, key in enumerate(ODD_KEYS):
        src = os.path.join(c.tmp, "in%d" % i)
        with open(src, "wb") as f:
            f.write(os.urandom(1000 + i))
        p = mayfly("cp", src, "s3://%s/%s" % (BUCKET, key), env=env)
        check(p.returncode == 0, key + ": " + out(p))
    got = sorted(o["Key"] for o in c.boto("s3").list_objects_v2(Bucket=BUCKET, Prefix="odd/")["Contents"])
    check(got == sorted(ODD_KEYS), "names changed: %r" % got)
    for i, key in enumerate(ODD_KEYS):
        via_aws = os.path.join(c.tmp, "aws%d" % i)
        c.aws("s3api", "get-object", "--bucket", BUCKET, "--key", key, via_aws)
        check(open(via_aws, "rb").read() == open(os.path.join(c.tmp, "in%d" % i), "rb").read(), key)
    # and back down through a prefix listing (ListObjectsV2 with a '/' in the prefix)
    d = os.path.join(c.tmp, "down")
    p = mayfly("cp", "--recursive", "s3://%s/odd/" % BUCKET, d, env=env)
    check(p.returncode == 0, out(p))
    for i, key in enumerate(ODD_KEYS):
        check(open(os.path.join(d, key[4:]), "rb").read() == open(os.path.join(c.tmp, "in%d" % i), "rb").read(), key)


def test_archive_key_escape_refused(c):
    c.boto("s3").put_object(Bucket=BUCKET, Key="esc/../../evil", Body=b"x")
    d = os.path.join(c.tmp, "escdir")
    p = mayfly("cp", "--recursive", "s3://%s/esc/" % BUCKET, d, env=c.admin_env())
    check(p.returncode != 0 and "outside" in out(p), out(p))
    check(not os.path.exists(os.path.join(c.tmp, "evil")), "wrote outside the target directory")


class Recorder(http.server.BaseHTTPRequestHandler):
    seen = []

    def log_message(self, *a):
        pass

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        Recorder.seen.append((self.command, self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("ETag", '"%s"' % hashlib.md5(body).hexdigest())
        self.send_header("Content-Length", "0")
        self.end_headers()


def botocore_header_signature(method, url, headers, body, creds, amzdate, region="us-east-1"):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
    auth = re.search(r"SignedHeaders=([^,]+), Signature=([0-9a-f]+)", headers["Authorization"])
    signed = auth.group(1).split(";")
    hdrs = {k: v for k, v in headers.items() if k.lower() in signed and k.lower() not in
            ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token")}
    req = AWSRequest(method=method, url=url, headers=hdrs, data=body)
    unsigned = headers.get("X-Amz-Content-Sha256", headers.get("x-amz-content-sha256")) == "UNSIGNED-PAYLOAD"
    req.context["client_config"] = Config(s3={"payload_signing_enabled": not unsigned})
    when = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(Credentials(*creds), "s3", region).add_auth(req)
    want = re.search(r"Signature=([0-9a-f]+)", req.headers["Authorization"]).group(1)
    return auth.group(2), want


def test_header_signatures_equal_botocore_for_odd_keys(c):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ep = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        for token in (None, "FQoGZXIvYXdzEXAMPLETOKEN/+=="):
            env = c.base_env()
            env.update(AWS_ENDPOINT_URL=ep, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
                       AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
            if token:
                env["AWS_SESSION_TOKEN"] = token
            for i, key in enumerate(ODD_KEYS):
                src = os.path.join(c.tmp, "sig%d" % i)
                with open(src, "wb") as f:
                    f.write(b"hello %d" % i)
                Recorder.seen.clear()
                p = mayfly("cp", src, "s3://%s/%s" % (BUCKET, key), env=env)
                check(p.returncode == 0, out(p))
                method, path, headers, body = Recorder.seen[-1]
                check(urllib.parse.unquote(path) == "/%s/%s" % (BUCKET, key), "wire path " + path)
                got, want = botocore_header_signature(method, ep + path, headers, body,
                                                      ("AKIDEXAMPLE", env["AWS_SECRET_ACCESS_KEY"], token),
                                                      headers["X-Amz-Date"])
                check(got == want, "%s (token=%s): mayfly %s botocore %s" % (key, bool(token), got, want))
    finally:
        srv.shutdown()


def presign_check(c, key, token):
    env = c.base_env()
    env.update(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    if token:
        env["AWS_SESSION_TOKEN"] = token
    p = mayfly("presign", "s3://%s/%s" % (BUCKET, key), "--expires", "900", env=env)
    check(p.returncode == 0, out(p))
    url = p.stdout.decode().strip()
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    check(q["X-Amz-Expires"] == ["900"], url)
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    base = url.split("?")[0]
    req = AWSRequest(method="GET", url=base)
    when = datetime.datetime.strptime(q["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4QueryAuth(Credentials("AKIDEXAMPLE", env["AWS_SECRET_ACCESS_KEY"], token), "s3", "us-east-1",
                         expires=900).add_auth(req)
    want = urllib.parse.parse_qs(urllib.parse.urlsplit(req.url).query)["X-Amz-Signature"][0]
    check(q["X-Amz-Signature"][0] == want, "presign %s token=%s: mayfly %s botocore %s" %
          (key, bool(token), q["X-Amz-Signature"][0], want))
    return url


def test_presign_equals_botocore_with_and_without_token(c):
    for key in ("presign/plain.txt", ODD_KEYS[0], ODD_KEYS[1]):
        presign_check(c, key, None)
        presign_check(c, key, "FQoGZXIvYXdzEXAMPLETOKEN/+==")


def test_presigned_url_downloads_with_curl(c):
    data = os.urandom(5000)
    c.boto("s3").put_object(Bucket=BUCKET, Key="presign/file.bin", Body=data)
    env = c.admin_env()
    p = mayfly("presign", "s3://%s/presign/file.bin" % BUCKET, env=env)
    check(p.returncode == 0, out(p))
    url = p.stdout.decode().strip()
    dst = os.path.join(c.tmp, "curl.bin")
    r = subprocess.run(["curl", "-sSf", "-o", dst, url], capture_output=True, timeout=30)
    check(r.returncode == 0, r.stderr.decode())
    check(open(dst, "rb").read() == data, "curl got different bytes")


def test_bucket_in_other_region_named(c):
    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_HEAD(self):
            self.send_response(301)
            self.send_header("x-amz-bucket-region", "eu-west-3")
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        env = c.admin_env()
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:%d" % srv.server_address[1]
        p = mayfly("cp", "s3://%s/x" % BUCKET, os.path.join(c.tmp, "r"), env=env)
        check(p.returncode != 0 and "eu-west-3" in out(p), out(p))
    finally:
        srv.shutdown()
