# SPDX-License-Identifier: Apache-2.0
"""The AWS wire against moto with signature checking on: cp both ways and cross-checked with awscli,
retries on injected faults, credential errors, IMDS behaviour, terminate."""
import json
import os
import re
import shutil
import socket
import tempfile
import time

from harness import Cloud, check, mayfly, out, file_sha256, random_file

BUCKET = "mayfly-test"


def setup():
    c = Cloud(auth=True).__enter__()
    c.tmp = tempfile.mkdtemp(prefix="mayfly-wire-")
    return c


def teardown(c):
    c.__exit__(None, None, None)


def rand_file(c, name, size):
    return random_file(c.tmp, name, size)


sha = file_sha256


def test_roundtrip_200mib_with_awscli_crosscheck(c):
    src = rand_file(c, "big.bin", 200 << 20)
    p = mayfly("cp", src, "s3://%s/big/by-mayfly.bin" % BUCKET, env=c.role_env())
    check(p.returncode == 0, out(p))
    back = os.path.join(c.tmp, "by-aws.bin")
    c.aws("s3", "cp", "s3://%s/big/by-mayfly.bin" % BUCKET, back)
    check(sha(back) == sha(src), "awscli read different bytes than mayfly wrote")
    c.aws("s3", "cp", src, "s3://%s/big/by-aws.bin" % BUCKET)
    mine = os.path.join(c.tmp, "by-mayfly-down.bin")
    p = mayfly("cp", "s3://%s/big/by-aws.bin" % BUCKET, mine, env=c.role_env())
    check(p.returncode == 0, out(p))
    check(sha(mine) == sha(src), "mayfly read different bytes than awscli wrote")
    for f in (back, mine):
        os.unlink(f)
    check(not [n for n in os.listdir(c.tmp) if ".mayfly-" in n], "temporary files left behind")


def test_small_and_empty_files(c):
    for size in (0, 1, 5 << 20, (8 << 20) + 1):
        src = rand_file(c, "s%d" % size, size)
        key = "small/s%d" % size
        p = mayfly("cp", src, "s3://%s/%s" % (BUCKET, key), env=c.admin_env())
        check(p.returncode == 0, out(p))
        dst = src + ".back"
        p = mayfly("cp", "s3://%s/%s" % (BUCKET, key), dst, env=c.admin_env())
        check(p.returncode == 0, out(p))
        check(sha(dst) == sha(src), "size %d differs" % size)


def _cp_on_tty(env, *args):
    """`mayfly cp` with stderr on a pseudo-terminal (the progress line shows only there); returns (rc, stderr)."""
    import pty
    import re
    import subprocess
    from harness import MAYFLY
    mfd, sfd = pty.openpty()
    p = subprocess.Popen([MAYFLY, "cp", *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=sfd)
    os.close(sfd)
    buf = b""
    while True:
        try:
            b = os.read(mfd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not b:
            break
        buf += b
    os.close(mfd)
    rc = p.wait(timeout=120)
    return rc, re.findall(r"([0-9.]+) MiB / ([0-9.]+) MiB", buf.decode(errors="replace"))


def test_progress_line_totals_on_a_tty(c):
    src = rand_file(c, "prog.bin", 3 << 20)
    rc, lines = _cp_on_tty(c.admin_env(), src, "s3://%s/prog/one.bin" % BUCKET)
    check(rc == 0 and lines and lines[-1] == ("3.0", "3.0"), "upload progress: rc %d %r" % (rc, lines))
    rc, lines = _cp_on_tty(c.admin_env(), "s3://%s/prog/one.bin" % BUCKET, src + ".back")
    # a single-object download learns its size from HEAD: the total is the object's, not 0
    check(rc == 0 and lines and lines[-1] == ("3.0", "3.0"), "download progress: rc %d %r" % (rc, lines))
    check(sha(src + ".back") == sha(src), "downloaded bytes differ")


def test_keys_with_spaces_and_tilde_signed(c):
    # moto's checker is sound for these characters (PROTOCOL.md §7)
    src = rand_file(c, "sp.bin", 1000)
    key = "dir with space/~tilde name.txt"
    p = mayfly("cp", src, "s3://%s/%s" % (BUCKET, key), env=c.admin_env())
    check(p.returncode == 0, out(p))
    p2 = c.aws("s3api", "head-object", "--bucket", BUCKET, "--key", key)
    check(p2.returncode == 0, "awscli cannot see the exact key")


def test_recursive_both_ways(c):
    d = os.path.join(c.tmp, "tree")
    os.makedirs(os.path.join(d, "a", "b"))
    files = {"top.txt": 10, "a/one.bin": 100000, "a/b/two.bin": (9 << 20), "a/b/empty": 0}
    for rel, size in files.items():
        with open(os.path.join(d, rel), "wb") as f:
            f.write(os.urandom(size))
    p = mayfly("cp", "--recursive", d, "s3://%s/tree" % BUCKET, env=c.admin_env())
    check(p.returncode == 0, out(p))
    ls = c.aws("s3", "ls", "--recursive", "s3://%s/tree/" % BUCKET).stdout.decode()
    for rel in files:
        check(("tree/" + rel) in ls, "missing " + rel + " in " + ls)
    d2 = os.path.join(c.tmp, "tree2")
    p = mayfly("cp", "--recursive", "s3://%s/tree/" % BUCKET, d2, env=c.admin_env())
    check(p.returncode == 0, out(p))
    for rel in files:
        check(sha(os.path.join(d, rel)) == sha(os.path.join(d2, rel)), "differs: " + rel)


def test_missing_object_exit_3(c):
    dst = os.path.join(c.tmp, "never")
    p = mayfly("cp", "s3://%s/does/not/exist" % BUCKET, dst, env=c.admin_env())
    check(p.returncode == 3, out(p))
    check("does not exist" in out(p) and len(out(p).splitlines()) == 1, out(p))
    check(not os.path.exists(dst), "a file was created for a missing object")


def test_wrong_secret_fails_fast_with_server_message(c):
    env = c.admin_env()
    env["AWS_SECRET_ACCESS_KEY"] = "wrong" + env["AWS_SECRET_ACCESS_KEY"][5:]
    src = rand_file(c, "ws.bin", 100)
    t0 = time.time()
    p = mayfly("cp", src, "s3://%s/ws.bin" % BUCKET, env=env, timeout=60)
    took = time.time() - t0
    check(p.returncode != 0, "wrong key accepted")
    check("SignatureDoesNotMatch" in out(p), out(p))
    check(took < 10, "took %.1fs (retried a non-retryable error?)" % took)
    check(env["AWS_SECRET_ACCESS_KEY"] not in out(p), "secret in the error message")


def test_unknown_key_id_exit_4(c):
    env = c.admin_env()
    env["AWS_ACCESS_KEY_ID"] = "AKIAUNKNOWNUNKNOWN00"
    p = mayfly("cp", "s3://%s/small/s1" % BUCKET, os.path.join(c.tmp, "x"), env=env, timeout=60)
    check(p.returncode == 4, "exit %d: %s" % (p.returncode, out(p)))


def _fetch(c, key, env, **kw):
    return mayfly("cp", "s3://%s/%s" % (BUCKET, key), os.path.join(c.tmp, "got-" + key.replace("/", "_")), env=env,
                  timeout=60, **kw)


def _names(p, code, op="HeadObject"):
    """One line that names the code, the operation, a request id and a hint."""
    t = out(p)
    check(len(t.splitlines()) == 1, "more than one line: %s" % t)
    check(op in t and code in t and ". Hint: " in t, "does not name %s: %s" % (code, t))
    m = re.search(r"request id ([^;) ]+)", t)
    check(m and m.group(1) != "none", "no request id: %s" % t)


def test_head_403_names_the_error_code_from_a_ranged_get(c):
    c.boto("s3").put_object(Bucket=BUCKET, Key="err/obj", Body=b"x" * 1000)
    env = c.admin_env()
    env["AWS_SECRET_ACCESS_KEY"] = "wrong" + env["AWS_SECRET_ACCESS_KEY"][5:]
    t0 = before = time.time()
    p = _fetch(c, "err/obj", env)
    check(p.returncode == 4 and time.time() - t0 < 10, "exit %d after %.1fs: %s" % (p.returncode, time.time() - t0,
                                                                                   out(p)))
    _names(p, "SignatureDoesNotMatch")
    check(env["AWS_SECRET_ACCESS_KEY"] not in out(p), "secret in the message")
    # the HEAD, then exactly one GET of the first byte to learn why
    seen = [(e["method"], e["status"]) for e in c.stats()["moto_log"] if e["ts"] >= before and "err/obj" in e["path"]]
    check(seen == [("HEAD", 403), ("GET", 403)], repr(seen))
    env = c.admin_env()
    env["AWS_ACCESS_KEY_ID"] = "AKIAUNKNOWNUNKNOWN00"
    p = _fetch(c, "err/obj", env)
    check(p.returncode == 4, out(p))
    _names(p, "InvalidAccessKeyId")


def test_bucket_policy_denial_named_access_denied(c):
    s3 = c.boto("s3")
    s3.put_object(Bucket=BUCKET, Key="err/denied/obj", Body=b"secret stuff")
    s3.put_object(Bucket=BUCKET, Key="err/open/obj", Body=b"fine")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::%s/err/denied/*" % BUCKET}]}
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
    try:
        p = _fetch(c, "err/denied/obj", c.admin_env())
        check(p.returncode == 4, out(p))
        _names(p, "AccessDenied")
        check("s3:ListBucket" in out(p), "the hint does not mention the missing-key case: " + out(p))
        # the fake denies the way S3 does: awscli sees a bare 403 on HEAD, AccessDenied on GET
        h = c.aws("s3api", "head-object", "--bucket", BUCKET, "--key", "err/denied/obj", check=False)
        check(h.returncode != 0 and b"403" in h.stderr, h.stderr)
        g = c.aws("s3api", "get-object", "--bucket", BUCKET, "--key", "err/denied/obj", os.path.join(c.tmp, "g"),
                  check=False)
        check(g.returncode != 0 and b"AccessDenied" in g.stderr, g.stderr)
        p = _fetch(c, "err/open/obj", c.admin_env())
        check(p.returncode == 0, "a key the policy does not name was refused: " + out(p))
    finally:
        s3.delete_bucket_policy(Bucket=BUCKET)


def test_expired_session_token_named(c):
    import urllib.request
    c.boto("s3").put_object(Bucket=BUCKET, Key="err/obj", Body=b"x" * 1000)
    imds = c.info["imds_endpoint"]
    tok = urllib.request.urlopen(urllib.request.Request(imds + "/latest/api/token", method="PUT", headers={
        "X-aws-ec2-metadata-token-ttl-seconds": "60"})).read().decode()
    get = lambda path: urllib.request.urlopen(urllib.request.Request(imds + "/latest/meta-data/" + path, headers={
        "X-aws-ec2-metadata-token": tok})).read().decode()
    cr = json.loads(get("iam/security-credentials/" + get("iam/security-credentials/").strip()))
    c.control("POST", "/creds/expire")
    env = c.base_env()
    env.update(AWS_ACCESS_KEY_ID=cr["AccessKeyId"], AWS_SECRET_ACCESS_KEY=cr["SecretAccessKey"],
               AWS_SESSION_TOKEN=cr["Token"])
    p = _fetch(c, "err/obj", env)
    check(p.returncode == 4, "exit %d: %s" % (p.returncode, out(p)))
    _names(p, "ExpiredToken")


def test_skewed_clock_on_head_corrected_or_named(c):
    import shutil
    import subprocess
    if os.environ.get("MAYFLY_SANITIZED"):
        from harness import Skip
        raise Skip("libfaketime's LD_PRELOAD cannot come before the ASan runtime (make test covers it)")
    if not shutil.which("faketime"):
        raise AssertionError("faketime not installed (tests/deps.sh test installs it)")
    c.boto("s3").put_object(Bucket=BUCKET, Key="err/skew", Body=b"y" * 5000)
    env = c.admin_env()
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    dst = os.path.join(c.tmp, "skew-down")
    # the HEAD's bare 403 -> the ranged GET meets RequestTimeTooSkewed, corrects the clock from Date -> HEAD again
    p = subprocess.run(["faketime", "-f", "+20m", MAYFLY_BIN(), "cp", "s3://%s/err/skew" % BUCKET, dst], env=env,
                       capture_output=True, timeout=60)
    check(p.returncode == 0 and open(dst, "rb").read() == b"y" * 5000, out(p))
    # without retries nothing corrects it: the message says so
    env["AWS_MAX_ATTEMPTS"] = "1"
    p = subprocess.run(["faketime", "-f", "+20m", MAYFLY_BIN(), "cp", "s3://%s/err/skew" % BUCKET, dst + "2"],
                       env=env, capture_output=True, timeout=60)
    check(p.returncode != 0, out(p))
    _names(p, "RequestTimeTooSkewed")
    check("clock" in out(p), out(p))


def test_connection_refused_bounded(c):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = c.admin_env()
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:%d" % port
    t0 = time.time()
    p = mayfly("cp", "s3://%s/x" % BUCKET, os.path.join(c.tmp, "x"), env=env, timeout=60)
    took = time.time() - t0
    check(p.returncode == 1, "exit %d" % p.returncode)
    check("cannot reach" in out(p) and len(out(p).splitlines()) == 1, out(p))
    check(took < 15, "took %.1fs" % took)
    env["AWS_MAX_ATTEMPTS"] = "1"
    t0 = time.time()
    mayfly("cp", "s3://%s/x" % BUCKET, os.path.join(c.tmp, "x"), env=env, timeout=60)
    check(time.time() - t0 < 2, "AWS_MAX_ATTEMPTS=1 still retried")


def test_slowdown_and_500_on_one_part_then_intact(c):
    src = rand_file(c, "retry.bin", 40 << 20)
    c.faults([
        {"method": "PUT", "query_contains": "partNumber=2", "status": 503, "code": "SlowDown",
         "message": "Please reduce your request rate.", "count": 1},
        {"method": "PUT", "query_contains": "partNumber=4", "status": 500, "code": "InternalError",
         "message": "We encountered an internal error.", "count": 1},
    ])
    before = c.stats()["faults_fired"]
    p = mayfly("cp", src, "s3://%s/retry.bin" % BUCKET, env=c.role_env())
    check(p.returncode == 0, out(p))
    check(c.stats()["faults_fired"] - before == 2, "faults did not fire")
    check(c.faults_done() == [1, 1], "each part's fault once")
    back = src + ".aws"
    c.aws("s3", "cp", "s3://%s/retry.bin" % BUCKET, back)
    check(sha(back) == sha(src), "object not intact after retries")


def test_multipart_aborted_when_parts_keep_failing(c):
    src = rand_file(c, "abort.bin", 20 << 20)
    c.faults([{"method": "PUT", "query_contains": "partNumber=2", "status": 500,
               "code": "InternalError", "message": "boom", "count": 10}])
    p = mayfly("cp", src, "s3://%s/abort.bin" % BUCKET, env=c.admin_env())
    c.faults_done(at_least=2)  # the part was tried again before the upload was given up
    check(p.returncode == 1 and "InternalError" in out(p), out(p))
    ups = c.boto("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    check(not [u for u in ups if u["Key"] == "abort.bin"], "multipart upload left open: %r" % ups)


def test_truncated_get_retried_never_short_file(c):
    src = rand_file(c, "trunc.bin", 3 << 20)
    c.aws("s3", "cp", src, "s3://%s/trunc.bin" % BUCKET)
    dst = os.path.join(c.tmp, "trunc.out")
    c.faults([{"method": "GET", "path_contains": "trunc.bin", "truncate": 1000, "count": 1}])
    p = mayfly("cp", "s3://%s/trunc.bin" % BUCKET, dst, env=c.admin_env())
    c.faults_done()
    check(p.returncode == 0, out(p))
    check(sha(dst) == sha(src), "bytes differ after a truncated attempt")
    os.unlink(dst)
    c.faults([{"method": "GET", "path_contains": "trunc.bin", "truncate": 1000, "count": 10}])
    p = mayfly("cp", "s3://%s/trunc.bin" % BUCKET, dst, env=c.admin_env())
    c.faults_done(at_least=2)  # truncated on every attempt, not only the first
    check(p.returncode != 0, "a body truncated on every attempt was accepted")
    check(not os.path.exists(dst), "short file under the final name")
    check(not [n for n in os.listdir(c.tmp) if n.startswith(".trunc.out.mayfly-")], "temp file left")


def _crc32_b64(data):
    from botocore.httpchecksum import Crc32Checksum
    h = Crc32Checksum()
    h.update(data)
    return h.b64digest()


def _composite(path, part):
    import base64
    import zlib
    crcs = []
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(part), b""):
            crcs.append(zlib.crc32(b).to_bytes(4, "big"))
    return "%s-%d" % (base64.b64encode(zlib.crc32(b"".join(crcs)).to_bytes(4, "big")).decode(), len(crcs))


def test_uploads_carry_crc32_that_s3_keeps(c):
    """PutObject and every UploadPart carry x-amz-checksum-crc32 (the fake verifies each against the body with
    botocore's Crc32Checksum, and the Complete XML part by part): what S3 then holds is botocore's CRC32 of the
    object, or the composite of 8 MiB parts."""
    s3 = c.boto("s3")
    for name, size in (("crc-small.bin", 3 << 20), ("crc-multi.bin", (20 << 20) + 7)):
        src = rand_file(c, name, size)
        p = mayfly("cp", src, "s3://%s/%s" % (BUCKET, name), env=c.role_env())
        check(p.returncode == 0, out(p))
        h = s3.head_object(Bucket=BUCKET, Key=name, ChecksumMode="ENABLED")
        if size <= 8 << 20:
            want = _crc32_b64(open(src, "rb").read())
        else:
            want = _composite(src, 8 << 20)
        got = h.get("ChecksumCRC32", "")
        # moto's HEAD drops the composite's "-N"; its GET keeps it
        if "-" in want and "-" not in got:
            got = s3.get_object(Bucket=BUCKET, Key=name, ChecksumMode="ENABLED")["ChecksumCRC32"]
        check(got == want, "%s: S3 holds CRC32 %r, expected %r" % (name, got, want))
    log = c.stats()["moto_log"]
    puts = [e for e in log if e["method"] == "PUT" and "crc-" in e["path"]]
    check(len(puts) == 1 + 3 and all(e["status"] == 200 for e in puts), puts)


def test_a_wrong_crc32_is_refused_by_the_fake(c):
    """The fake's check works (so the upload test above means something): a wrong x-amz-checksum-crc32 gets
    BadDigest, and awscli's own checksums pass it."""
    import botocore
    s3 = c.boto("s3")
    try:
        s3.put_object(Bucket=BUCKET, Key="crc-wrong", Body=b"hello", ChecksumCRC32=_crc32_b64(b"hellO"))
        check(False, "a wrong CRC32 was accepted")
    except botocore.exceptions.ClientError as e:
        check(e.response["Error"]["Code"] == "BadDigest", str(e))
    src = rand_file(c, "crc-aws.bin", 9 << 20)
    c.aws("s3", "cp", src, "s3://%s/crc-aws.bin" % BUCKET)


def _corrupt_get(c, name, size, by_aws=False):
    src = rand_file(c, name, size)
    if by_aws:
        c.aws("s3", "cp", src, "s3://%s/%s" % (BUCKET, name))
    else:
        check(mayfly("cp", src, "s3://%s/%s" % (BUCKET, name), env=c.admin_env()).returncode == 0, "upload")
    return src


def test_corrupt_get_body_detected_and_fetched_again(c):
    """A bit flipped in a GET body (headers intact, so no size check can see it) fails the CRC32 S3 holds: the
    download is fetched again; corrupt on every attempt, it fails naming the object and leaves no file. Whole-
    object checksums (PutObject) and composites (multipart, by mayfly and by awscli) alike."""
    for name, size, by_aws in (("corrupt-small.bin", 1 << 20, False), ("corrupt-multi.bin", 20 << 20, False),
                               ("corrupt-aws.bin", 20 << 20, True)):
        src = _corrupt_get(c, name, size, by_aws)
        dst = os.path.join(c.tmp, name + ".out")
        before = c.stats()["faults_fired"]
        c.faults([{"method": "GET", "path_contains": name, "corrupt": 12345, "count": 1}])
        p = mayfly("cp", "s3://%s/%s" % (BUCKET, name), dst, env=c.admin_env())
        check(p.returncode == 0, "%s: %s" % (name, out(p)))
        check(c.stats()["faults_fired"] - before == 1, "%s: the corruption did not fire" % name)
        c.faults_done()
        check(sha(dst) == sha(src), "%s: corrupt bytes kept" % name)
        os.unlink(dst)
        c.faults([{"method": "GET", "path_contains": name, "corrupt": 5, "count": -1}])
        p = mayfly("cp", "s3://%s/%s" % (BUCKET, name), dst, env=c.admin_env())
        c.faults_done(at_least=2)  # corrupt on the retry too
        check(p.returncode == 1, "%s: corrupt on every attempt, yet exit %d: %s" % (name, p.returncode, out(p)))
        check("s3://%s/%s" % (BUCKET, name) in out(p) and "CRC32" in out(p), out(p))
        check(not os.path.exists(dst), "%s: corrupt file under the final name" % name)
        check(not [n for n in os.listdir(c.tmp) if n.startswith("." + name)], "temp file left")


def test_recursive_download_checks_each_file_in_one_get(c):
    """A prefix download takes each small object's size from the listing: one GET, no HEAD, checked against the
    checksum that GET answers with (whole-object, or a composite read back from the file); a corrupt body is
    fetched again, and corrupt every time it fails naming the object."""
    d = os.path.join(c.tmp, "rec-src")
    os.makedirs(d, exist_ok=True)
    for name, size in (("a.bin", 300 << 10), ("b.bin", 0), ("c.bin", 1 << 20)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(os.urandom(size))
    check(mayfly("cp", "--recursive", d, "s3://%s/rec/" % BUCKET, env=c.admin_env()).returncode == 0, "upload")
    big = rand_file(c, "rec-mp.bin", 7 << 20)  # two 5 MiB parts: a composite under one download part
    p = mayfly("cp", big, "s3://%s/rec/mp.bin" % BUCKET, "--part-size", "5", env=c.admin_env())
    check(p.returncode == 0, out(p))
    dst = os.path.join(c.tmp, "rec-dst")
    c.control("POST", "/stats/reset")
    c.faults([{"method": "GET", "path_contains": "rec/c.bin", "corrupt": 777, "count": 1},
              {"method": "GET", "path_contains": "rec/mp.bin", "corrupt": 6 << 20, "count": 1}])
    p = mayfly("cp", "--recursive", "s3://%s/rec/" % BUCKET, dst, env=c.admin_env())
    check(p.returncode == 0, out(p))
    log = c.stats()["moto_log"]
    check(c.stats()["faults_fired"] == 2, "the corruptions did not fire")
    c.faults_done()
    heads = [e for e in log if e["method"] == "HEAD"]
    check([e["query"] for e in heads] == ["partNumber=1"], "HEADs beyond the composite's part 1: %r" % heads)
    for name in ("a.bin", "b.bin", "c.bin"):
        check(sha(os.path.join(dst, name)) == sha(os.path.join(d, name)), name + " differs")
    check(sha(os.path.join(dst, "mp.bin")) == sha(big), "mp.bin differs")
    shutil.rmtree(dst)
    c.faults([{"method": "GET", "path_contains": "rec/mp.bin", "corrupt": 1, "count": -1}])
    p = mayfly("cp", "--recursive", "s3://%s/rec/" % BUCKET, dst, env=c.admin_env())
    c.faults_done(at_least=2)
    check(p.returncode == 1 and "s3://%s/rec/mp.bin" % BUCKET in out(p) and "CRC32" in out(p), out(p))
    check(not os.path.exists(os.path.join(dst, "mp.bin")), "corrupt file kept")


def test_checksum_header_mismatch_detected(c):
    """The other side of the same check: S3's checksum (the HEAD's) disagreeing with intact bytes is refused too."""
    name = "crc-hdr.bin"
    _corrupt_get(c, name, 4096)
    dst = os.path.join(c.tmp, name + ".out")
    c.faults([{"method": "HEAD", "path_contains": name, "checksum": "AAAAAA==", "count": 1}])
    p = mayfly("cp", "s3://%s/%s" % (BUCKET, name), dst, env=c.admin_env())
    c.faults_done()
    check(p.returncode == 1 and "CRC32" in out(p) and name in out(p), out(p))
    check(not os.path.exists(dst), "file kept")


def test_connection_reset_retried(c):
    src = rand_file(c, "reset.bin", 1 << 20)
    c.faults([{"method": "PUT", "path_contains": "reset.bin", "reset": True, "count": 1}])
    p = mayfly("cp", src, "s3://%s/reset.bin" % BUCKET, env=c.admin_env())
    c.faults_done()  # the reset did happen, and the copy still succeeded: it was retried
    check(p.returncode == 0, out(p))
    back = src + ".aws"
    c.aws("s3", "cp", "s3://%s/reset.bin" % BUCKET, back)
    check(sha(back) == sha(src), "object not intact after the reset")


def test_metadata_paths_and_404(c):
    env = c.role_env()
    p = mayfly("metadata", "meta-data/instance-id", env=env)
    check(p.returncode == 0 and p.stdout.decode().strip() == c.info["instance_id"], out(p))
    p = mayfly("metadata", env=env)
    check(p.returncode == 0 and "instance-id" in p.stdout.decode(), out(p))
    p = mayfly("metadata", "meta-data/no-such-thing", env=env)
    check(p.returncode == 3 and "404" in out(p), out(p))


def test_imds_expired_token_gets_new_one(c):
    env = c.role_env()
    before = c.stats()
    c.control("POST", "/imds/expire-tokens")
    p = mayfly("metadata", "meta-data/instance-id", env=env)
    check(p.returncode == 0, out(p))
    after = c.stats()
    check(after["imds_token_puts"] > before["imds_token_puts"], "no new token fetched")


def test_imds_429_backoff(c):
    c.control("POST", "/imds/fail", {"status": 429, "count": 2})
    before = c.stats()["imds_429"]
    p = mayfly("metadata", "meta-data/instance-id", env=c.role_env())
    check(p.returncode == 0, out(p))
    check(c.stats()["imds_429"] - before == 2, "429s not served")


def test_imds_disabled_clear_error(c):
    c.control("POST", "/imds/disable")
    try:
        p = mayfly("metadata", "meta-data/instance-id", env=c.role_env())
        check(p.returncode != 0 and "403" in out(p), out(p))
        p = mayfly("cp", "s3://%s/small/s1" % BUCKET, os.path.join(c.tmp, "z"), env=c.role_env())
        check(p.returncode != 0 and "IMDS" in out(p), out(p))
    finally:
        c.control("POST", "/imds/enable")
    env = c.role_env()
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    p = mayfly("cp", "s3://%s/small/s1" % BUCKET, os.path.join(c.tmp, "z"), env=env)
    check(p.returncode == 4 and "disabled" in out(p), out(p))


def test_terminate_dry_run_then_real(c):
    p = mayfly("terminate", "--dry-run", env=c.role_env())
    check(p.returncode == 0 and "dry-run-ok" in out(p), out(p))
    st = c.boto("ec2").describe_instances(InstanceIds=[c.info["instance_id"]])
    check(st["Reservations"][0]["Instances"][0]["State"]["Name"] == "running", "dry run terminated it")
    p = mayfly("terminate", env=c.role_env())
    check(p.returncode == 0 and c.info["instance_id"] in out(p), out(p))
    st = c.boto("ec2").describe_instances(InstanceIds=[c.info["instance_id"]])
    check(st["Reservations"][0]["Instances"][0]["State"]["Name"] in ("shutting-down", "terminated"), repr(st))


def test_clock_skewed_20_minutes_corrected_from_server_date(c):
    import shutil
    import subprocess
    if os.environ.get("MAYFLY_SANITIZED"):
        from harness import Skip
        raise Skip("libfaketime's LD_PRELOAD cannot come before the ASan runtime (make test covers it)")
    if not shutil.which("faketime"):
        raise AssertionError("faketime not installed (tests/deps.sh test installs it)")
    src = rand_file(c, "skew.bin", 10000)
    before = c.stats().get("skew_rejections", 0)
    env = c.role_env()
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    for shift in ("+20m", "-20m"):
        p = subprocess.run(["faketime", "-f", shift, MAYFLY_BIN(), "cp", src, "s3://%s/skew%s.bin" % (BUCKET, shift)],
                           env=env, capture_output=True, timeout=60)
        check(p.returncode == 0, "%s: %s" % (shift, out(p)))
    check(c.stats().get("skew_rejections", 0) - before >= 2, "the fake never saw a skewed request")
    back = src + ".back"
    c.aws("s3", "cp", "s3://%s/skew+20m.bin" % BUCKET, back)
    check(sha(back) == sha(src), "skewed upload corrupted")


def MAYFLY_BIN():
    from harness import MAYFLY
    return MAYFLY
