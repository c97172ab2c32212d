# SPDX-License-Identifier: Apache-2.0
"""Inputs (issue 24): datasets staged from S3 before the experiment, as the run user beneath the workdir, byte-exact
and at $MAYFLY_INPUT_<NAME>; a start on the same disk downloads nothing again (the manifest); a hostile key fails the
run naming it; status.json shows the staging; a replacement instance after a spot interruption stages them again and
the resumed experiment finds them."""
import hashlib
import json
import os
import pwd
import re
import signal
import stat
import time

from harness import RUN_USER, check, file_sha256, script_entries
from test_run import BUCKET, with_run

# writes what it sees of its inputs to seen.txt, then runs for $1 seconds (a restart finds it running)
SEEN = """#!/bin/bash
{
  echo "data=$MAYFLY_INPUT_DATA"
  echo "vocab=$MAYFLY_INPUT_VOCAB"
  echo "files=$(find "$MAYFLY_INPUT_DATA" -type f | wc -l)"
  echo "vocab_text=$(cat "$MAYFLY_INPUT_VOCAB")"
  echo "user=$(id -un)"
} > seen-${MAYFLY_RESUME:-0}.txt
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
sleep "${1:-1}"
"""


def upload_dataset(cloud, small=300, big=2, big_mib=48):
    """small files in nested folders and big objects under data/, one object vocab/v.txt: {key: sha256}."""
    s3 = cloud.boto("s3")
    want = {}
    rnd = hashlib.sha256(b"seed")
    for i in range(small):
        rnd = hashlib.sha256(rnd.digest())
        body = (rnd.digest() * (1 + rnd.digest()[0] * 3))[: 37 * (i % 50) + 1]
        key = "data/d%d/s%d/f%03d.bin" % (i % 7, i % 3, i)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        want[key] = hashlib.sha256(body).hexdigest()
    for i in range(big):
        body = os.urandom(big_mib << 20)
        key = "data/big/b%d.bin" % i
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        want[key] = hashlib.sha256(body).hexdigest()
    s3.put_object(Bucket=BUCKET, Key="vocab/v.txt", Body=b"the vocabulary\n")
    return want


INPUTS = [{"name": "data", "source": "s3://%s/data/" % BUCKET, "path": "datasets/data", "read_only": True},
          {"name": "vocab", "source": "s3://%s/vocab/v.txt" % BUCKET}]


def seen(r, resume=0):
    p = os.path.join(r.work, "seen-%d.txt" % resume)
    return dict(l.split("=", 1) for l in open(p).read().splitlines()) if os.path.exists(p) else {}


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    check(False, "timed out waiting for " + what)


def data_gets(cloud):
    """GETs and HEADs of the inputs' objects in moto's log (not the listings)."""
    log = cloud.stats()["moto_log"]
    return [e for e in log if e["method"] in ("GET", "HEAD") and re.match(r"/%s/(data|vocab)/" % BUCKET, e["path"])]


def test_inputs_are_staged_byte_exact_as_the_run_user_and_a_restart_downloads_nothing_again():
    def body(r):
        want = upload_dataset(r.cloud)
        r.start()
        wait_for(lambda: seen(r), 120, "the experiment to start")
        s = seen(r)
        data = os.path.join(r.work, "datasets", "data")
        check(s["data"] == data and s["vocab"] == os.path.join(r.work, "inputs", "vocab", "v.txt"), repr(s))
        check(s["files"] == "302" and s["vocab_text"] == "the vocabulary" and s["user"] == RUN_USER, repr(s))
        uid = pwd.getpwnam(RUN_USER).pw_uid
        for key, sha in want.items():
            p = os.path.join(data, key[len("data/"):])
            st = os.lstat(p)
            check(stat.S_ISREG(st.st_mode) and st.st_uid == uid, "%s: not a file of the run user's" % p)
            check(stat.S_IMODE(st.st_mode) == 0o444, "%s: read_only, yet mode %o" % (p, stat.S_IMODE(st.st_mode)))
            check(file_sha256(p) == sha, "%s differs from s3://%s/%s" % (p, BUCKET, key))
        for d, _, _ in os.walk(data):
            m = stat.S_IMODE(os.lstat(d).st_mode)
            check(m == 0o555, "%s: read_only, yet mode %o" % (d, m))
        # the agent dies (kill -9: no word to anyone); its next start resumes the experiment and stages nothing again
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        r.cloud.control("POST", "/stats/reset")
        rc = r.run(timeout=180)
        check(rc == 0, r.stderr)
        check("input data: all 302 objects staged already, nothing downloaded" in r.stderr, r.stderr)
        check("input vocab: all 1 object staged already, nothing downloaded" in r.stderr, r.stderr)
        gets = data_gets(r.cloud)
        check([e["method"] for e in gets] == ["HEAD"], "a restart fetched inputs again: %s" % json.dumps(gets)[:800])
        lists = [e for e in r.cloud.stats()["moto_log"] if "list-type=2" in (e.get("query") or "")
                 and "prefix=data" in e["query"]]
        check(len(lists) == 1, "one LIST page for 302 keys: %s" % json.dumps(lists)[:800])
        check(seen(r, 1).get("files") == "302", repr(seen(r, 1)))
        st = r.status()
        check(st["outcome"] == "succeeded", json.dumps(st))
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "20"]}], "inputs": INPUTS}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


def test_a_changed_object_and_a_changed_file_are_downloaded_again_and_a_gone_one_removed():
    def body(r):
        s3 = r.cloud.boto("s3")
        for i in range(5):
            s3.put_object(Bucket=BUCKET, Key="data/f%d.txt" % i, Body=b"v1 %d\n" % i)
        s3.put_object(Bucket=BUCKET, Key="vocab/v.txt", Body=b"v\n")
        r.start()
        wait_for(lambda: seen(r), 60, "the experiment to start")
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        data = os.path.join(r.work, "datasets", "data")
        s3.put_object(Bucket=BUCKET, Key="data/f1.txt", Body=b"v2 changed in S3\n")
        s3.delete_object(Bucket=BUCKET, Key="data/f2.txt")
        with open(os.path.join(data, "f3.txt"), "w") as f:  # the experiment (or anyone) changed a staged file
            f.write("changed here\n")
        os.unlink(os.path.join(data, "f4.txt"))
        r.cloud.control("POST", "/stats/reset")
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        got = {n: open(os.path.join(data, n), "rb").read() for n in sorted(os.listdir(data))}
        check(got == {"f0.txt": b"v1 0\n", "f1.txt": b"v2 changed in S3\n", "f3.txt": b"v1 3\n", "f4.txt": b"v1 4\n"},
              repr(got))
        check("input data: 3 of 4 objects downloaded" in r.stderr and "1 kept, 1 removed" in r.stderr, r.stderr)
        gets = sorted(e["path"] for e in data_gets(r.cloud) if e["method"] == "GET")
        check(gets == ["/%s/data/f%d.txt" % (BUCKET, i) for i in (1, 3, 4)], repr(gets))
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "20"]}],
              "inputs": [dict(INPUTS[0], read_only=False), INPUTS[1]]}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


def test_a_key_that_would_land_outside_the_input_fails_the_run_naming_it():
    def body(r):
        s3 = r.cloud.boto("s3")
        s3.put_object(Bucket=BUCKET, Key="data/ok.txt", Body=b"fine\n")
        s3.put_object(Bucket=BUCKET, Key="data/x/../../../../escaped", Body=b"evil\n")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="data/")["Contents"]]
        check("data/x/../../../../escaped" in keys, "moto did not keep the key as sent: %r" % keys)
        rc = r.run(timeout=120)
        check(rc != 0, "exit 0 with a hostile key")
        check("input data: refusing the key 'data/x/../../../../escaped': it would land outside datasets/data"
              in r.stderr, r.stderr)
        st = r.status()
        check(st["outcome"] == "error" and "refusing the key" in st["error"], json.dumps(st))
        check(not seen(r), "the experiment ran")
        for top in (r.dir, os.path.dirname(r.dir)):
            check(not os.path.exists(os.path.join(top, "escaped")), "wrote outside the workdir")
        check(not os.path.exists(os.path.join(r.work, "datasets", "data", "ok.txt")), "staged part of a refused input")
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh"]}], "inputs": INPUTS[:1]}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


def test_status_json_shows_the_staging_while_it_lasts():
    def body(r):
        s3 = r.cloud.boto("s3")
        for i in range(6):
            s3.put_object(Bucket=BUCKET, Key="data/f%d.bin" % i, Body=os.urandom(4096))
        s3.put_object(Bucket=BUCKET, Key="vocab/v.txt", Body=b"v\n")
        # every object answers 5 s late: the staging lasts long enough for status.json to show it
        r.cloud.faults([{"method": "GET", "path_contains": "/%s/data/f" % BUCKET, "delay": 5, "count": -1}])
        r.start()
        found = []

        def staging():
            st = r.status()
            if st and st.get("staging"):
                found.append(st["staging"])
            return found and found[-1]["objects_total"]
        wait_for(staging, 60, "status.json with \"staging\"")
        check(found[0]["input"] == "data", json.dumps(found[0]))
        g = found[-1]
        check(g["input"] == "data" and g["objects_total"] == 6 and g["bytes_total"] == 6 * 4096 and
              g["inputs"] == 2 and 0 <= g["objects_done"] <= 6 and "bytes_per_second" in g, json.dumps(g))
        r.proc.communicate(timeout=120)
        check(r.proc.returncode == 0, "exit %d" % r.proc.returncode)
        r.cloud.faults_done()
        st = r.status()
        check(st["outcome"] == "succeeded" and "staging" not in st, json.dumps(st))
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "0"]}], "inputs": INPUTS}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))
