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
import shutil
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
} > seen.tmp && mv seen.tmp seen-${MAYFLY_RESUME:-0}.txt
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


def put_objects(cloud, objects):
    """{key: body} into the test bucket, and vocab/v.txt (INPUTS' second input); the S3 client."""
    s3 = cloud.boto("s3")
    for key, body in dict(objects, **{"vocab/v.txt": b"v\n"}).items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return s3


INPUTS = [{"name": "data", "source": "s3://%s/data/" % BUCKET, "path": "datasets/data", "read_only": True},
          {"name": "vocab", "source": "s3://%s/vocab/v.txt" % BUCKET, "sync": False}]


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
        check('input vocab: staged before, not checked ("sync": false)' in r.stderr, r.stderr)
        gets = data_gets(r.cloud)
        check(not gets, "a restart fetched or asked about inputs again: %s" % json.dumps(gets)[:800])
        lists = [e for e in r.cloud.stats()["moto_log"] if "list-type=2" in (e.get("query") or "")
                 and "prefix=data" in e["query"]]
        check(len(lists) == 1, "one LIST page for 302 keys: %s" % json.dumps(lists)[:800])
        check(seen(r, 1).get("files") == "302", repr(seen(r, 1)))
        st = r.status()
        check(st["outcome"] == "succeeded", json.dumps(st))
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "8"]}], "inputs": INPUTS}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


def test_a_changed_object_and_a_changed_file_are_downloaded_again_and_a_gone_one_removed():
    def body(r):
        s3 = put_objects(r.cloud, {"data/f%d.txt" % i: b"v1 %d\n" % i for i in range(5)})
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
        s3.delete_object(Bucket=BUCKET, Key="data/f0.txt")  # an object that becomes a folder: f0.txt/inner.txt
        s3.put_object(Bucket=BUCKET, Key="data/f0.txt/inner.txt", Body=b"inner\n")
        shutil.rmtree(os.path.join(r.work, "inputs", "vocab"))  # "sync": false, but no longer there
        r.cloud.control("POST", "/stats/reset")
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        got = {os.path.relpath(os.path.join(d, n), data): open(os.path.join(d, n), "rb").read()
               for d, _, files in os.walk(data) for n in files}
        check(got == {"f0.txt/inner.txt": b"inner\n", "f1.txt": b"v2 changed in S3\n", "f3.txt": b"v1 3\n",
                      "f4.txt": b"v1 4\n"}, repr(got))
        check("input data: 4 of 4 objects downloaded" in r.stderr and "0 kept, 2 removed" in r.stderr, r.stderr)
        check("input vocab: 1 of 1 object downloaded" in r.stderr, r.stderr)
        check(open(os.path.join(r.work, "inputs", "vocab", "v.txt"), "rb").read() == b"v\n", "vocab not staged again")
        gets = sorted(e["path"] for e in data_gets(r.cloud) if e["method"] == "GET" and "/data/" in e["path"])
        check(gets == ["/%s/data/f0.txt/inner.txt" % BUCKET] + ["/%s/data/f%d.txt" % (BUCKET, i) for i in (1, 3, 4)],
              repr(gets))
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "8"]}],
              "inputs": [dict(INPUTS[0], read_only=False), INPUTS[1]]}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


def test_a_key_that_would_land_outside_the_input_fails_the_run_naming_it():
    for bad in ("data/x/../../../../escaped", "data//ok.txt"):
        with_run({"experiments": [{"name": "a", "command": ["./seen.sh"]}], "inputs": INPUTS[:1]},
                 lambda r: _hostile_key(r, bad), archive_extra=script_entries({"seen.sh": SEEN}))


def _hostile_key(r, bad):
    if True:
        s3 = r.cloud.boto("s3")
        s3.put_object(Bucket=BUCKET, Key="data/ok.txt", Body=b"fine\n")
        s3.put_object(Bucket=BUCKET, Key=bad, Body=b"evil\n")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="data/")["Contents"]]
        check(bad in keys, "moto did not keep the key as sent: %r" % keys)
        rc = r.run(timeout=120)
        check(rc != 0, "exit 0 with a hostile key")
        check("input data: refusing the key '%s': it would land outside datasets/data" % bad in r.stderr, r.stderr)
        st = r.status()
        check(st["outcome"] == "error" and "refusing the key" in st["error"], json.dumps(st))
        check(not seen(r), "the experiment ran")
        for top in (r.dir, os.path.dirname(r.dir)):
            check(not os.path.exists(os.path.join(top, "escaped")), "wrote outside the workdir")
        check(not os.path.exists(os.path.join(r.work, "datasets", "data", "ok.txt")), "staged part of a refused input")


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
        from harness import mayfly, out
        p = mayfly("status", "s3://%s/results/t/" % BUCKET, env=r.cloud.admin_env())
        check(re.search(r"^staging:  input data \(1 of 2\): \d of 6 objects, [0-9.]+ \S+ of 24.0 KiB, ", out(p), re.M),
              out(p))
        _, e = r.proc.communicate(timeout=120)
        check(r.proc.returncode == 0, "exit %d: %s" % (r.proc.returncode, e.decode(errors="replace")[-6000:]))
        r.cloud.faults_done()
        st = r.status()
        check(st["outcome"] == "succeeded" and "staging" not in st, json.dumps(st))
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "0"]}], "inputs": INPUTS}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


# counts steps into its checkpoint like fleetlib's counter.sh, and says what it found of its input when it starts
FLEET_COUNTER = """#!/bin/bash
name=$MAYFLY_EXPERIMENT
ck="$MAYFLY_CHECKPOINT_DIR/step"
step=0
if [ "${MAYFLY_RESUME:-0}" = 1 ] && [ -f "$ck" ]; then step=$(cat "$ck"); fi
sum=$(cd "$MAYFLY_INPUT_DATA" && find . -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
echo "$name attempt=${MAYFLY_ATTEMPT:-?} resume=${MAYFLY_RESUME:-0} from=$step data=$sum" >> runs.txt
save() { echo "$step" > "$ck.tmp" && mv -f "$ck.tmp" "$ck"; }
trap 'save; exit 143' TERM
while [ "$step" -lt "${1:-20}" ]; do step=$((step + 1)); save; echo "step $step"; sleep 0.5 & wait $!; done
echo "$name done" >> runs.txt
"""


def test_a_replacement_after_a_spot_interruption_stages_the_inputs_again():
    from fleetlib import TTL, job, launch, lines, running_of, start_cloud, step_of, the_run, wait_instance_line
    from fleetlib import agent_log, wait_no_leftovers, wait_over
    c = start_cloud({"count.sh": FLEET_COUNTER})
    try:
        s3 = c.boto("s3")
        blobs = []
        for i in range(40):
            body = os.urandom(1000 + 97 * i)
            s3.put_object(Bucket=BUCKET, Key="data/part-%02d/x.bin" % i, Body=body)
            blobs.append(body)
        want = hashlib.sha256(b"".join(blobs)).hexdigest()[:16]
        j = job("inputs", [{"name": "a", "command": ["./count.sh", "30"]}], lease_ttl=TTL,
                inputs=[{"name": "data", "source": "s3://%s/data/" % BUCKET, "read_only": True}])
        run_id, _ = launch(c, j, "--spot", "--recover")
        [i1] = [i["instance_id"] for i in c.wait_instances(lambda l: len(running_of(l)) == 1, 90, what="instance 1")]
        inst = wait_instance_line(c, i1, r"^a attempt=1 resume=0 from=0 data=", 90, "a starts on instance 1")
        check("a attempt=1 resume=0 from=0 data=" + want in lines(inst), repr(lines(inst)))
        check("input data: 40 of 40 objects downloaded" in agent_log(inst), agent_log(inst)[-2000:])
        c.wait_instance(i1, lambda i: step_of(i) >= 4, 60, "a counts on instance 1")
        c.spot(i1, in_s=12)
        got = c.wait_instances(lambda l: len(l) >= 2, 120, what="a replacement")
        i2 = [i["instance_id"] for i in got if i["instance_id"] != i1][0]
        inst2 = wait_instance_line(c, i2, r"^a attempt=2 resume=1 from=[1-9][0-9]* data=", 120, "a resumes on 2")
        first = [l for l in lines(inst2) if l.startswith("a attempt=2")][0]
        check(first.endswith(" data=" + want), "the resumed experiment found other data: %s" % first)
        check("input data: 40 of 40 objects downloaded" in agent_log(inst2), agent_log(inst2)[-2000:])
        st = wait_over(c, the_run(c, "inputs", run_id), 120)
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)


def test_mayfly_stage_mirrors_a_prefix_and_a_second_run_downloads_only_what_changed():
    """The laptop's side of the same code: `mayfly stage` into a local directory, then again."""
    import tempfile
    from harness import Cloud, mayfly, out
    with Cloud() as c:
        s3 = c.boto("s3")
        for i in range(30):
            s3.put_object(Bucket=BUCKET, Key="ds/p%d/f%02d.txt" % (i % 4, i), Body=b"row %d\n" % i)
        d = os.path.join(tempfile.mkdtemp(prefix="mayfly-stage-"), "mirror")
        p = mayfly("stage", "s3://%s/ds/" % BUCKET, d, env=c.admin_env())
        check(p.returncode == 0 and "30 of 30 objects downloaded" in out(p), out(p))
        check(open(os.path.join(d, "p3", "f07.txt"), "rb").read() == b"row 7\n", "p3/f07.txt")
        check(os.path.exists(d + ".mayfly-manifest.jsonl"), "no manifest next to the directory")
        s3.put_object(Bucket=BUCKET, Key="ds/p0/f00.txt", Body=b"row 0, again\n")
        c.control("POST", "/stats/reset")
        p = mayfly("stage", "s3://%s/ds/" % BUCKET, d, env=c.admin_env())
        check(p.returncode == 0 and "1 of 30 objects downloaded" in out(p) and "29 kept" in out(p), out(p))
        gets = [e["path"] for e in data_gets_of(c, "ds") if e["method"] == "GET"]
        check(gets == ["/%s/ds/p0/f00.txt" % BUCKET], repr(gets))
        p = mayfly("stage", "s3://%s/ds/p1/f01.txt" % BUCKET, d + "-one", env=c.admin_env())
        check(p.returncode == 0 and open(os.path.join(d + "-one", "f01.txt"), "rb").read() == b"row 1\n", out(p))
        p = mayfly("stage", "s3://%s/nothing-here/" % BUCKET, d + "-none", env=c.admin_env())
        check(p.returncode == 3 and "s3://%s/nothing-here/ holds no objects" % BUCKET in out(p)
              and len(out(p).strip().splitlines()) == 1, out(p))


def data_gets_of(cloud, top):
    return [e for e in cloud.stats()["moto_log"] if e["method"] in ("GET", "HEAD") and
            e["path"].startswith("/%s/%s/" % (BUCKET, top))]


def test_a_stop_while_staging_ends_it_at_the_next_object_and_the_run_ships():
    def body(r):
        put_objects(r.cloud, {"data/f%03d.bin" % i: b"%d\n" % i for i in range(200)})
        # every object answers 3 s late: 200 of them, 16 at a time, would take 40 s
        r.cloud.faults([{"method": "GET", "path_contains": "/%s/data/f" % BUCKET, "delay": 3, "count": -1}])
        r.start()
        wait_for(lambda: (r.status() or {}).get("staging", {}).get("objects_total"), 60, "the staging to begin")
        t0 = time.time()
        r.proc.send_signal(signal.SIGTERM)
        _, e = r.proc.communicate(timeout=60)
        took = time.time() - t0
        r.cloud.faults_done()
        err = e.decode(errors="replace")
        check(took < 15, "the stop took %.1f s while staging" % took)
        check(not seen(r), "the experiment started")
        st = r.status()
        check(st and st["outcome"] != "running" and "staging" not in st, json.dumps(st))
        check("Traceback" not in err and "could not be uploaded" not in err, err)
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "0"]}], "inputs": INPUTS}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


def test_a_staging_killed_midway_leaves_no_temporary_file_behind_the_next_start():
    def body(r):
        s3 = r.cloud.boto("s3")
        big = os.urandom(40 << 20)
        s3.put_object(Bucket=BUCKET, Key="data/big.bin", Body=big)
        s3.put_object(Bucket=BUCKET, Key="vocab/v.txt", Body=b"v\n")
        # the big object's ranges answer 30 s late: the agent is killed while it downloads them
        r.cloud.faults([{"method": "GET", "path_contains": "/%s/data/big.bin" % BUCKET, "delay": 30, "count": -1}])
        r.start()
        data = os.path.join(r.work, "datasets", "data")

        def temps():
            return [n for n in (os.listdir(data) if os.path.isdir(data) else []) if ".mayfly-" in n]
        wait_for(temps, 60, "the download's temporary file")
        left = temps()
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        r.cloud.control("DELETE", "/faults")
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        check(not temps(), "left behind: %r (was %r)" % (temps(), left))
        check(hashlib.sha256(open(os.path.join(data, "big.bin"), "rb").read()).digest() == hashlib.sha256(big).digest(),
              "big.bin differs")
    with_run({"experiments": [{"name": "a", "command": ["./seen.sh", "0"]}], "inputs": INPUTS}, body,
             archive_extra=script_entries({"seen.sh": SEEN}))


def test_an_input_and_the_checkpoint_in_the_scratch_directory():
    """prefer-instance-store on an instance without one: the scratch directory on the state disk holds the input
    (scratch:data) and the checkpoint (scratch:ck), which is synced to S3 as any checkpoint."""
    script = """#!/bin/bash
case "$MAYFLY_INPUT_DATA" in "$MAYFLY_SCRATCH"/data) ;; *) echo "input not in scratch: $MAYFLY_INPUT_DATA"; exit 3;; esac
case "$MAYFLY_CHECKPOINT_DIR" in "$MAYFLY_SCRATCH"/ck/*) ;; *) echo "checkpoint not in scratch"; exit 4;; esac
cat "$MAYFLY_INPUT_DATA/x.txt" > "$MAYFLY_CHECKPOINT_DIR/from-input.txt"
echo ok >> runs.txt
"""

    def body(r):
        s3 = r.cloud.boto("s3")
        s3.put_object(Bucket=BUCKET, Key="data/x.txt", Body=b"from the input\n")
        rc = r.run(timeout=120)
        check(rc == 0, r.stderr)
        check(r.runs_txt() == ["ok"], r.stderr)
        st = r.status()
        check(st["outcome"] == "succeeded", json.dumps(st))
        got = r.get("results/t/%s/checkpoint/a/from-input.txt" % st["run_id"])
        check(got == b"from the input\n", repr(got))
        scratch = os.path.join(r.dir, "state", "scratch", RUN_USER)
        check(os.path.isfile(os.path.join(scratch, "data", "x.txt")), "the input is not in %s" % scratch)
    with_run({"experiments": [{"name": "a", "command": ["./sc.sh"]}], "scratch": "prefer-instance-store",
              "checkpoint": {"path": "scratch:ck", "interval": 60},
              "inputs": [{"name": "data", "source": "s3://%s/data/" % BUCKET, "path": "scratch:data"}]}, body,
             archive_extra=script_entries({"sc.sh": script}))
