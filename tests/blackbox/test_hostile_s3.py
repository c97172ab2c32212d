# SPDX-License-Identifier: Apache-2.0
"""What comes back from S3 is hostile too (whoever can write under a run's prefix writes it): a 600 MiB status.json,
a 600 MiB live log chunk and ledger records with numbers of 1e308 and -1 get one clear line each from `status`,
`ls`, `logs` and `report`, naming the key and its size, a non-zero exit and a peak RSS under 64 MiB (`ls` lists the
run as unreadable rather than hiding it); a forged status.json with OSC 52, title and cursor escapes reaches the
terminal through none of `status`, `ls`; `logs` keeps a tqdm bar's carriage returns and colours and drops the
rest; an agent resuming an experiment over planted records and a 600 MiB live chunk neither crashes nor brings
the chunk onto its disk."""
import json
import os
import subprocess
import tempfile

from harness import MAYFLY, Cloud, check, out
from jobrun import JobRun, upload_source

BUCKET = "mayfly-test"
BIG = 600 << 20
RSS_MAX_KB = 64 << 10


def setup():
    c = Cloud(auth=True).__enter__()
    try:
        s3 = c.boto("s3")
        # a sparse file: 600 MiB of zeros that take no disk here; uploaded in parts
        fd, path = tempfile.mkstemp(dir=c.dir)
        os.ftruncate(fd, BIG)
        os.close(fd)
        big = "results/huge/r-20260101T000000Z/"
        s3.upload_file(path, BUCKET, big + "status.json")
        chunky = "results/chunky/r-20260102T000000Z/"
        st = {"name": "chunky", "run_id": "r-20260102T000000Z", "outcome": "running",
              "experiments": [{"name": "a", "status": "running", "attempts": 1e308}]}
        s3.put_object(Bucket=BUCKET, Key=chunky + "status.json", Body=json.dumps(st))
        s3.upload_file(path, BUCKET, chunky + "live/a/stdout.000000000000")
        s3.put_object(Bucket=BUCKET, Key=chunky + "ledger/instances/i-0bad.json", Body=json.dumps(
            {"instance": "i-0bad", "time": 1e308, "ttl": -1,
             "attempts": [{"experiment": "a", "attempt": 1e308, "stdout_from": -1}]}))
        os.unlink(path)
    except BaseException:
        c.__exit__(None, None, None)
        raise
    return c


def teardown(c):
    c.__exit__(None, None, None)


def peak_kb(c, *args):
    """mayfly ARGS under GNU time: its exit code, stdout, stderr and peak RSS in KiB. (Not wait4 from here: a child
    forked from this Python process keeps the fork's resident pages in its high-water mark across exec.)"""
    p = subprocess.run(["/usr/bin/time", "-q", "-f", "PEAK %M", MAYFLY, *args], env=c.admin_env(), capture_output=True,
                       timeout=120)
    err = p.stderr.decode(errors="replace").splitlines()
    peak = [int(l.split()[1]) for l in err if l.startswith("PEAK ")]
    check(peak, "GNU time printed no peak: %r" % err)
    rc = p.returncode
    return rc, p.stdout.decode(errors="replace"), "\n".join(l for l in err if not l.startswith("PEAK ")), peak[-1]


def test_oversized_status_json_is_named_with_its_size(c):
    key = "results/huge/r-20260101T000000Z/status.json"
    for args in (["status", "s3://%s/results/huge/" % BUCKET], ["logs", "s3://%s/results/huge/r-20260101T000000Z/" % BUCKET],
                 ["report", "s3://%s/results/huge/r-20260101T000000Z/" % BUCKET, "-o", os.path.join(c.dir, "r.html")]):
        rc, o, e, kb = peak_kb(c, *args)
        check(rc != 0, "%s: exit 0 for a 600 MiB status.json: %s" % (args[0], o + e))
        check(key in e and "600.0 MiB" in e and "more than a status.json may be (4.0 MiB)" in e,
              "%s: the error does not name the key and its size: %s" % (args[0], e))
        check(len(e.strip().splitlines()) == 1, "%s: not one line: %r" % (args[0], e))
        check(kb < RSS_MAX_KB, "%s: peak RSS %d KiB" % (args[0], kb))
    # ls lists the run as unreadable, next to the others, and says why
    rc, o, e, kb = peak_kb(c, "ls", "s3://%s/results/" % BUCKET)
    check(rc != 0 and "huge" in o and "unreadable" in o, "ls hides the run: %s" % (o + e))
    check(key in e and "600.0 MiB" in e, e)
    check(kb < RSS_MAX_KB, "ls: peak RSS %d KiB" % kb)


def test_oversized_live_chunk_and_absurd_numbers(c):
    uri = "s3://%s/results/chunky/r-20260102T000000Z/" % BUCKET
    rc, o, e, kb = peak_kb(c, "logs", uri)
    check(rc != 0 and "live/a/stdout.000000000000 is 600.0 MiB, more than a live log chunk may be (64.0 MiB)" in e,
          "logs: %s" % (o + e))
    check(kb < RSS_MAX_KB, "logs: peak RSS %d KiB" % kb)
    # the status with attempts 1e308 and the record with time 1e308 / ttl -1: read, never a crash
    rc, o, e, kb = peak_kb(c, "status", uri)
    check(rc == 0 and "Traceback" not in e and "outcome:  running" in o, o + e)
    rc, o, e, kb = peak_kb(c, "report", uri, "-o", os.path.join(c.dir, "chunky.html"))
    check(rc in (0, 1) and "Segmentation" not in e and kb < RSS_MAX_KB, "report: rc %d, %s, %d KiB" % (rc, e, kb))


def test_forged_escapes_never_reach_the_terminal(c):
    s3 = c.boto("s3")
    run = "results/forged/r-20260103T000000Z/"
    evil = "failed\x1b[1A\x1b[2Koutcome:  succeeded\x1b]52;c;ZXZpbA==\x07\x1b]0;pwned\x1b\\\x9b6n"
    st = {"name": "forged" + evil, "run_id": "r-20260103T000000Z", "outcome": "running", "error": evil,
          "experiments": [{"name": "a", "status": "running", "reason": evil, "attempts": 1}]}
    s3.put_object(Bucket=BUCKET, Key=run + "status.json", Body=json.dumps(st))
    s3.put_object(Bucket=BUCKET, Key=run + "logs/a/stdout.log",
                  Body=b"\x1b[32m 10%\r\x1b[32m 50%\r100%\x1b[0m\n\x1b]52;c;ZXZpbA==\x07copied\x1b[2J\x1b[Hdone\n")
    for args in (["status", "s3://%s/%s" % (BUCKET, run)], ["ls", "s3://%s/results/forged/" % BUCKET]):
        p = subprocess.run([MAYFLY, *args], env=c.admin_env(), capture_output=True, timeout=60)
        check(b"\x1b" not in p.stdout and b"\xc2\x9b" not in p.stdout and b"\x07" not in p.stdout,
              "%s printed an escape: %r" % (args[0], p.stdout))
        check(b"forged" in p.stdout, out(p))
    p = subprocess.run([MAYFLY, "logs", "s3://%s/%s" % (BUCKET, run)], env=c.admin_env(), capture_output=True,
                       timeout=60)
    check(p.returncode == 0 and p.stdout == b"\x1b[32m 10%\r\x1b[32m 50%\r100%\x1b[0m\ncopieddone\n", repr(p.stdout))
    p = subprocess.run([MAYFLY, "logs", "--raw", "s3://%s/%s" % (BUCKET, run)], env=c.admin_env(),
                       capture_output=True, timeout=60)
    check(b"\x1b]52;" in p.stdout, "--raw did not print the bytes as stored: %r" % p.stdout)


def test_an_agent_resuming_over_hostile_records_stays_within_its_caps(c):
    s3 = c.boto("s3")
    upload_source(c, "src/hres.tar.gz", {"ok.sh": "#!/bin/sh\necho resumed on attempt $MAYFLY_ATTEMPT\n"})
    run_id = "hres-20260104T000000Z"
    pre = "results/hres/%s/" % run_id
    # attempt 1 of a ran elsewhere: this agent resumes it (attempt 2) and brings its logs back
    s3.put_object(Bucket=BUCKET, Key=pre + "ledger/exp/a.json", Body=b'{"attempts": 1, "instances": ["i-0old"]}')
    s3.put_object(Bucket=BUCKET, Key=pre + "ledger/instances/i-0old.json", Body=json.dumps(
        {"instance": "i-0old", "time": 1e308, "ttl": -1, "cost": {"id": "i-0old", "seconds": 1e308, "cost": -1},
         "attempts": [{"experiment": "a", "attempt": 1e308, "stdout_from": -1, "start": 1e308}]}).encode())
    fd, path = tempfile.mkstemp(dir=c.dir)
    os.ftruncate(fd, BIG)
    os.close(fd)
    s3.upload_file(path, BUCKET, pre + "live/a/stdout.000000000000")
    os.unlink(path)
    r = JobRun(c, {"name": "hres", "run_id": run_id, "source": "s3://%s/src/hres.tar.gz" % BUCKET,
                   "experiments": [{"name": "a", "command": ["./ok.sh"]}]})
    try:
        rc = r.run(timeout=240)
        check(rc == 0, "exit %d: %s" % (rc, r.stderr[-3000:]))
        check("more than a live log chunk may be" in r.stderr and "not restored" in r.stderr,
              "the oversized chunk was not refused by name: %s" % r.stderr[-3000:])
        on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(r.dir, "logs"))
                      for f in fs)
        check(on_disk < 64 << 20, "the agent wrote %d bytes of logs" % on_disk)
        st = r.status()
        check(st["outcome"] == "succeeded" and st["experiments"][0]["attempts"] == 2, json.dumps(st)[:2000])
        check(b"resumed on attempt 2" in r.get("logs/a/stdout.log"), r.get("logs/a/stdout.log")[:200])
    finally:
        r.close()
