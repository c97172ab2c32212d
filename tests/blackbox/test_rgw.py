# SPDX-License-Identifier: Apache-2.0
"""mayfly against a second, real S3: Ceph's RADOS Gateway 16.2 on loopback (rgw.py), which checks every signature
(header-signed, presigned) for real. cp of a multipart-sized object both ways, cross-checked with awscli; awkward
keys both ways and a listing that pages; a presigned URL fetched by curl, and refused once tampered; a wrong secret
key named in one line; a whole `mayfly run` of a shared run (run_id: the S3 ledger, leases renewed with If-Match);
a PUT body changed on the wire is refused by Content-MD5 and sent again. And the gateway itself: it starts in
seconds and leaves no process behind."""
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import unicodedata
import urllib.parse

from harness import check, mayfly, out, file_sha256, random_file
from jobrun import JobRun, upload_source
from rgw import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, FlipProxy, Rgw

# One worker runs these in order (tests/run.py), on one gateway: one cluster's start, not one in each worker that
# takes a test of this module (about 2 s of both CPUs and 220 MiB each).
TOGETHER = True
SECRET_WRONG = "WrongSecretKeyForTheRgwTests/000000000000"


def setup():
    g = Rgw().__enter__()
    g.tmp = os.path.join(g.dir, "files")
    os.mkdir(g.tmp)
    return g


def teardown(g):
    g.__exit__(None, None, None)


def rand_file(g, name, size):
    return random_file(g.tmp, name, size)


sha = file_sha256


def test_multipart_cp_both_ways_with_awscli_crosscheck(g):
    """40 MiB: five 8 MiB parts (mayfly cp's default part size) up, ranged GETs down."""
    src = rand_file(g, "big.bin", 40 << 20)
    p = mayfly("cp", src, "s3://%s/big/by-mayfly.bin" % BUCKET, env=g.env())
    check(p.returncode == 0, out(p))
    etag = g.boto().head_object(Bucket=BUCKET, Key="big/by-mayfly.bin")["ETag"]
    check(etag.endswith('-5"'), "not a multipart upload of five parts: ETag %s" % etag)
    back = os.path.join(g.tmp, "by-aws.bin")
    g.aws("s3", "cp", "s3://%s/big/by-mayfly.bin" % BUCKET, back)
    check(sha(back) == sha(src), "awscli read different bytes than mayfly wrote")
    g.aws("s3", "cp", src, "s3://%s/big/by-aws.bin" % BUCKET)
    mine = os.path.join(g.tmp, "by-mayfly-down.bin")
    p = mayfly("cp", "s3://%s/big/by-aws.bin" % BUCKET, mine, env=g.env())
    check(p.returncode == 0, out(p))
    check(sha(mine) == sha(src), "mayfly read different bytes than awscli wrote")
    for f in (src, back, mine):
        os.unlink(f)


def awkward_keys():
    """Relative key names that SigV4's canonical URI and query, and ListObjectsV2's encoding-type=url, must carry
    intact; the long one is cut in segments of < 255 bytes (each a directory or file name when copied down)."""
    names = ["with space", "plus+equals=comma,", "percent%20literal%", "tilde~question?hash#amp&semi;",
             "sub dir/nested+file", "quotes'and\"parens()!*$@:", unicodedata.normalize("NFC", "café"),
             unicodedata.normalize("NFD", "café"), "中文キー한국어", "emoji-😀🚀"]
    seg = "ü€-" * 40  # 240 bytes
    long_name = "long/" + "/".join("%d-%s" % (i, seg) for i in range(3)) + "/end-" + "x" * 148
    names.append(long_name)
    return names


def test_awkward_keys_both_ways(g):
    names = awkward_keys()
    check(len(("awk-m/" + names[-1]).encode()) == 892, "the long key is %d bytes" % len(names[-1].encode()))
    check(names[6] != names[7], "NFC and NFD are the same string")
    s3 = g.boto()
    body = {n: ("%s\n" % n).encode() * 3 for n in names}
    # up with mayfly, read with boto3: the very key, the very bytes
    for i, n in enumerate(names):
        src = os.path.join(g.tmp, "awk-%d" % i)
        with open(src, "wb") as f:
            f.write(body[n])
        p = mayfly("cp", src, "s3://%s/awk-m/%s" % (BUCKET, n), env=g.env())
        check(p.returncode == 0, "%r: %s" % (n, out(p)))
        got = s3.get_object(Bucket=BUCKET, Key="awk-m/" + n)["Body"].read()
        check(got == body[n], "%r: boto3 read %r" % (n, got[:80]))
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="awk-m/")["Contents"]}
    check(listed == {"awk-m/" + n for n in names}, "keys as stored: %r" % sorted(listed))
    # up with boto3, down with mayfly, one by one
    for i, n in enumerate(names):
        s3.put_object(Bucket=BUCKET, Key="awk-b/" + n, Body=body[n])
        dst = os.path.join(g.tmp, "down-%d" % i)
        p = mayfly("cp", "s3://%s/awk-b/%s" % (BUCKET, n), dst, env=g.env())
        check(p.returncode == 0, "%r: %s" % (n, out(p)))
        with open(dst, "rb") as f:
            check(f.read() == body[n], "%r: mayfly read other bytes" % n)
    # down as a tree (the listing's url-encoded keys, decoded), then up as a tree under another prefix
    tree = os.path.join(g.tmp, "awk-tree")
    p = mayfly("cp", "--recursive", "s3://%s/awk-b/" % BUCKET, tree, env=g.env())
    check(p.returncode == 0, out(p))
    for n in names:
        path = os.path.join(tree, n)
        check(os.path.isfile(path), "%r not copied down: %r" % (n, sorted(os.listdir(tree))))
        with open(path, "rb") as f:
            check(f.read() == body[n], "%r: other bytes in the tree" % n)
    p = mayfly("cp", "--recursive", tree, "s3://%s/awk-t/" % BUCKET, env=g.env())
    check(p.returncode == 0, out(p))
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="awk-t/")["Contents"]}
    check(listed == {"awk-t/" + n for n in names}, "keys of the tree uploaded: %r" % sorted(listed))
    shutil.rmtree(tree)


def test_a_listing_of_1100_keys_pages(g):
    """mayfly asks ListObjectsV2 for 1000 keys a page (no knob): 1100 keys take two pages, the second with the first's
    continuation token; every key comes down."""
    s3 = g.boto(max_pool=16)
    keys = ["many/k%04d" % i for i in range(1100)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode()), keys))
    tree = os.path.join(g.tmp, "many")
    with FlipProxy(("127.0.0.1", g.port), flip=0) as proxy:  # a recording proxy: what mayfly asked
        p = mayfly("cp", "--recursive", "--concurrency", "8", "s3://%s/many/" % BUCKET, tree,
                   env=g.env(endpoint=proxy.endpoint))
        check(p.returncode == 0, out(p))
        lists = [(path, status) for method, path, status, _ in proxy.answers
                 if method == "GET" and "list-type=2" in path]
    check(len(lists) == 2 and all(s == 200 for _, s in lists), "ListObjectsV2 calls: %r" % lists)
    check("continuation-token=" not in lists[0][0] and "continuation-token=" in lists[1][0], repr(lists))
    got = sorted(os.listdir(tree))
    check(got == [k[len("many/"):] for k in keys], "%d files came down" % len(got))
    with open(os.path.join(tree, "k1099"), "rb") as f:
        check(f.read() == b"many/k1099", "k1099's bytes")
    shutil.rmtree(tree)


def curl(url):
    """(HTTP status, body) of a GET with curl, the URL as given (--globoff: [] and {} are no patterns)."""
    p = subprocess.run(["curl", "-sS", "--globoff", "-o", "-", "-w", "\n%{http_code}", url], capture_output=True,
                       timeout=60)
    check(p.returncode == 0, "curl failed: %s" % p.stderr.decode(errors="replace"))
    body, _, code = p.stdout.rpartition(b"\n")
    return int(code), body


def test_presigned_url_fetched_by_curl_and_refused_tampered(g):
    data = os.urandom(300 << 10)
    key = "pre/a b+c~d é.bin"
    g.boto().put_object(Bucket=BUCKET, Key=key, Body=data)
    p = mayfly("presign", "s3://%s/%s" % (BUCKET, key), "--expires", "300", env=g.env())
    check(p.returncode == 0, out(p))
    url = p.stdout.decode().strip()
    check(url.startswith(g.endpoint + "/") and "X-Amz-Signature=" in url, url)
    code, body = curl(url)
    check(code == 200 and body == data, "the URL gave %d, %d bytes" % (code, len(body)))
    sig = url.rsplit("X-Amz-Signature=", 1)[1]
    other_key = url.replace(urllib.parse.quote("a b+c~d"), urllib.parse.quote("a b+c~e"), 1)
    check(other_key != url, "the key is not in the URL as expected: %s" % url)
    tampered = {
        "another key": other_key,
        "a longer expiry": url.replace("X-Amz-Expires=300", "X-Amz-Expires=3000"),
        "one signature digit": url[:-len(sig)] + sig[:-1] + ("0" if sig[-1] != "0" else "1"),
    }
    for what, bad in tampered.items():
        check(bad != url, what)
        code, body = curl(bad)
        check(code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body,
              "%s: %d %s" % (what, code, body[:300].decode(errors="replace")))


def test_a_wrong_secret_key_is_named_in_one_line(g):
    src = rand_file(g, "small.bin", 1000)
    env = g.env(secret_key=SECRET_WRONG)
    for args in (["cp", src, "s3://%s/wrong/small.bin" % BUCKET], ["cp", "s3://%s/wrong/none.bin" % BUCKET,
                                                                   os.path.join(g.tmp, "none.bin")]):
        p = mayfly(*args, env=env)
        text = out(p)
        check(p.returncode == 4, "exit %d: %s" % (p.returncode, text))
        check(p.stdout == b"" and len(text.splitlines()) == 1, "not one line: %r" % text)
        check("SignatureDoesNotMatch" in text and "403" in text, text)
        check(SECRET_WRONG not in text and g.secret_key not in text, "a secret in the output: %s" % text)
    check("wrong/small.bin" not in [o["Key"] for o in g.boto().list_objects_v2(
        Bucket=BUCKET, Prefix="wrong/").get("Contents", [])], "written with a wrong secret")


def test_run_with_run_id(g):
    """A shared run (run_id) keeps its ledger in S3: the lease is created with If-None-Match: * and renewed every
    lease_ttl / 3 with If-Match on the ETag it wrote last, and status.json is written over the ETag it read (If-Match).
    lease_ttl 6 s: a renewal every 2 s of a 9 s experiment."""
    upload_source(g, "src/rgwrun.tar.gz", {"slow.sh": "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9; do echo step $i; "
                                                      "sleep 1; done\n"})
    run_id = "rgw-%d-%d" % (os.getpid(), int(time.time()))
    r = JobRun(g, {"name": "rgwrun", "run_id": run_id, "lease_ttl": 6,
                   "source": "s3://%s/src/rgwrun.tar.gz" % BUCKET, "experiments": [{"name": "a",
                                                                                   "command": ["./slow.sh"]}]})
    pre = "results/rgwrun/%s/" % run_id
    s3 = g.boto()
    leases, statuses = [], []
    agent_log = os.path.join(r.dir, "logs", "agent.log")
    try:
        r.start()
        deadline = time.time() + 90
        while r.proc.poll() is None and time.time() < deadline:
            for key, seen in ((pre + "ledger/lease/a.json", leases), (pre + "status.json", statuses)):
                try:
                    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
                except s3.exceptions.ClientError:
                    continue
                if etag not in seen:
                    seen.append(etag)
            if os.path.exists(agent_log) and "lease-lost" in open(agent_log, errors="replace").read():
                break  # it lost the lease: the agent goes on claiming for minutes; no need to watch that
            time.sleep(0.3)
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
        rc = r.wait(60)
        log = r.stderr
        lost = [l for l in log.splitlines() if "lease" in l or "claim" in l or "412" in l or "status.json" in l]
        check("lease-lost" not in log and "could not be renewed" not in log,
              "the lease was lost (%d lease ETags seen): %s" % (len(leases), " | ".join(lost)))
        check(rc == 0, "exit %d: %s" % (rc, log[-2000:]))
        st = r.status()
        check(st and st["outcome"] == "succeeded" and st["run_id"] == run_id, json.dumps(st)[:1500])
        e = st["experiments"][0]
        check(e["status"] == "done" and e["exit_code"] == 0 and e["reason"] == "exit" and e["attempts"] == 1,
              json.dumps(st["experiments"]))
        check(len(leases) >= 3, "the lease was renewed %d times in a 9 s experiment" % (len(leases) - 1))
        check(len(statuses) >= 2, "status.json was never updated: %d versions seen" % len(statuses))
        s3log = r.get("logs/agent.log").decode(errors="replace")
        check("lease-lost" not in s3log and "succeeded" in s3log, s3log[-1500:])
        # what the agent learnt of RGW 16.2, said once each: If-Match without quotes, DELETE ignoring If-Match
        # (claims given back by a released overwrite), no CRC32 kept (Content-MD5)
        for said in ("compares If-Match without", "ignores If-Match on DELETE", "echoes no CRC32 checksum"):
            check(log.count(said) == 1, "%r said %d times: %s" % (said, log.count(said), log[-2500:]))
        check("refuses conditional writes that AWS accepts" not in log, log[-2000:])
        check(r.get("logs/a/stdout.log").decode().endswith("step 9\n"), r.get("logs/a/stdout.log")[-200:])
        keys = [o["Key"][len(pre):] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=pre)["Contents"]]
        check("ledger/done/a.json" in keys and "ledger/end.json" in keys, repr(keys))
    finally:
        r.close()


def signed_put(endpoint, key, body, content_md5):
    """A PUT as mayfly sends a file's part (SigV4 over UNSIGNED-PAYLOAD), with Content-MD5: (status, body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    url = "%s/%s/%s" % (endpoint, BUCKET, urllib.parse.quote(key))
    req = AWSRequest(method="PUT", url=url, data=body, headers={
        "Content-MD5": content_md5, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
    u = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("PUT", url[len(endpoint):], body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_the_flip_proxy_is_caught_by_content_md5(g):
    """The proxy's flip reaches the store as a body that does not match its Content-MD5, and RGW refuses it (so the
    test below fails only for what the client sent)."""
    body = os.urandom(100 << 10)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    with FlipProxy(("127.0.0.1", g.port), flip=1) as proxy:
        status, text = signed_put(proxy.endpoint, "md5/ctl.bin", body, md5)
        check(proxy.flipped == 1, "the proxy changed %d bodies" % proxy.flipped)
        check(status == 400 and b"<Code>BadDigest</Code>" in text, "%d %s" % (status, text[:300]))
        status, text = signed_put(proxy.endpoint, "md5/ctl.bin", body, md5)
        check(status == 200, "%d %s" % (status, text[:300]))
        check([a[2:] for a in proxy.answers] == [(400, "BadDigest"), (200, "")], repr(proxy.answers))
    check(g.boto().get_object(Bucket=BUCKET, Key="md5/ctl.bin")["Body"].read() == body, "other bytes stored")


def _flipped_upload(g, name, flip):
    """A 20 MiB upload (three parts, one at a time) through a proxy that flips one byte of the flip-th PUT body:
    what went through, and whether the object came back byte-exact."""
    src = rand_file(g, name, 20 << 20)
    with FlipProxy(("127.0.0.1", g.port), flip=flip) as proxy:
        p = mayfly("cp", src, "s3://%s/flip/%s" % (BUCKET, name), "--concurrency", "1",
                   env=g.env(endpoint=proxy.endpoint))
        puts = [(path.split("?", 1)[-1].split("&")[0], "content-md5" in h) for m, path, h in proxy.requests
                if m == "PUT"]
        answers = [a for a in proxy.answers if a[0] == "PUT"]
        flipped = proxy.flipped
    check(flipped == 1, "the proxy changed %d bodies: %r" % (flipped, proxy.answers))
    back = os.path.join(g.tmp, name + ".back")
    stored = None
    if mayfly("cp", "s3://%s/flip/%s" % (BUCKET, name), back, env=g.env()).returncode == 0:
        stored = "byte-exact" if sha(back) == sha(src) else "CORRUPT (sha256 %s, sent %s)" % (sha(back)[:16],
                                                                                            sha(src)[:16])
    why = "exit %d (%s); stored object: %s; PUTs (part, Content-MD5 sent): %r; answers: %r" % (
        p.returncode, out(p)[-500:], stored or "none", puts, [a[2:] for a in answers])
    check(p.returncode == 0 and stored == "byte-exact", "the flipped part was not sent again: %s" % why)
    return puts, answers, out(p), why


def test_corrupt_upload_refused(g):
    """Once mayfly knows the store keeps no CRC32 (part 1's answer echoes none), every part carries Content-MD5: the
    part flipped on the wire gets 400 BadDigest from RGW, is sent again, and the object ends byte-exact."""
    puts, answers, _, why = _flipped_upload(g, "flip.bin", 2)
    refused = [a for a in answers if a[2] == 400 and a[3] == "BadDigest"]
    check(len(refused) == 1, "RGW refused %d PUTs with BadDigest, not 1: %s" % (len(refused), why))
    check([m for _, m in puts] == [False, True, True, True], "Content-MD5 from the second part on: %s" % why)
    check(len(answers) == 4 and [a[2] for a in answers].count(200) == 3, why)


def test_corrupt_first_part_caught_by_its_md5_etag(g):
    """The very first PUT, before mayfly knows what the store keeps, carries no Content-MD5: RGW stores the flipped
    part, but its ETag (the MD5 of what arrived) is not the MD5 of what was sent: mayfly sends it again (with
    Content-MD5 now) and the object ends byte-exact; the store's nature is said once."""
    puts, answers, text, why = _flipped_upload(g, "flip1.bin", 1)
    check(puts[0] == ("partNumber=1", False) and puts[1] == ("partNumber=1", True), why)
    check(len(answers) == 4 and all(a[2] == 200 for a in answers), why)
    check(text.count("echoes no CRC32 checksum") == 1, "the store's nature not said once: %s" % text[-800:])


def test_a_gateway_of_its_own_starts_and_leaves_nothing():
    """A second gateway beside the module's (the next pair of this worker's ports): up within seconds, answering
    signed requests; after it, none of its daemons runs and its directory is gone."""
    t0 = time.time()
    with Rgw(slot=1) as other:
        took = time.time() - t0
        pids, d = other.pids(), other.dir
        check(len(pids) == 3, repr(pids))
        check(other.boto().list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0, "the new bucket is not empty")
        p = subprocess.run(["pgrep", "-f", d], capture_output=True, text=True)
        check(len(p.stdout.split()) == 3, "pgrep -f %s: %r" % (d, p.stdout))
    print("a gateway of its own: up in %.1f s (cluster, user, bucket, warm-up)" % took)
    check(took < 60, "the gateway took %.0f s to start" % took)
    p = subprocess.run(["pgrep", "-f", d], capture_output=True, text=True)
    check(p.returncode == 1 and not p.stdout.strip(), "left running: %r" % p.stdout)
    for pid in pids:
        check(not os.path.exists("/proc/%d" % pid), "pid %d still there" % pid)
    check(not os.path.exists(d), "%s is still there" % d)
