#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make bench, inputs: staging a dataset (issue 24) against `aws s3 sync` and the curl ceiling, nginx as S3.

    python3 bench/bench_stage.py --build build [--big-mib 256] [--small 8192] [--reps 3]

Two prefixes on the nginx stand-in (bench/s3nginx.py, files on /dev/shm, listings served 1,000 keys a page):

  (a) big    4 objects of --big-mib MiB (1 GiB at the default)
  (b) small  --small objects of 32 KiB (8,192 at the default)

Each is staged into an empty directory by `mayfly stage` (the agent's own staging code: inputs.c, the parallel
transfer engine), by `aws s3 sync`, and by curl (--parallel, 16 at once: the loopback ceiling). Then a restart:
`mayfly stage` again with nothing changed, its requests counted in nginx's access log (the goal: one LIST page per
1,000 keys, zero GETs). Each measurement runs --reps times, clients interleaved, the median reported; every copy is
checked (sizes and a sample of contents). Numbers are printed, nothing is asserted."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (it puts tests/ on the path)
from harness import file_sha256  # noqa: E402
import s3nginx  # noqa: E402

BUCKET = "mayfly-bench"
GOAL_AWS, GOAL_CEIL = 3.0, 0.80
MIB = 1 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, a):
        self.a = a
        self.mayfly = os.path.join(os.path.abspath(a.build), "mayfly")
        self.aws = B.find_aws()
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.work = tempfile.mkdtemp(prefix="mayfly-bench-stage-", dir=a.tmp)
        self.store = tempfile.mkdtemp(prefix="mayfly-bench-stage-store-", dir=shm)
        self.out = []

    def populate(self, st):
        a = self.a
        self.sets = {}
        big = [("stage/big/part-%d.bin" % i, a.big_mib * MIB) for i in range(4)]
        small = [("stage/small/d%02d/f%05d.bin" % (i % 64, i), 32 << 10) for i in range(a.small)]
        for name, objs in (("big", big), ("small", small)):
            for key, size in objs:
                p = st.object_path(BUCKET, key)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    left = size
                    while left:
                        n = min(left, 8 * MIB)
                        f.write(os.urandom(n))
                        left -= n
            st.add_listing(BUCKET, "stage/%s/" % name, [(k, n, st.etag_of(BUCKET, k)) for k, n in objs])
            self.sets[name] = objs
        log("populated: 4 x %d MiB, %d x 32 KiB" % (a.big_mib, a.small))

    def verify(self, st, name, dest, strip):
        objs = self.sets[name]
        for i, (key, size) in enumerate(objs):
            p = os.path.join(dest, key[len(strip):])
            if not os.path.exists(p) or os.path.getsize(p) != size:
                return "missing or wrong size: %s" % p
            if i % max(1, len(objs) // 16) == 0 and file_sha256(p) != file_sha256(st.object_path(BUCKET, key)):
                return "differs: %s" % p
        return None

    def curl_cmd(self, st, name, dest):
        cfg = os.path.join(self.work, "curl-%s.cfg" % name)
        with open(cfg, "w") as f:
            for key, _ in self.sets[name]:
                f.write('url = "%s/%s/%s"\noutput = "%s"\n' % (st.endpoint, BUCKET, key,
                                                               os.path.join(dest, key[len("stage/%s/" % name):])))
        return ["curl", "-sS", "--fail", "--create-dirs", "--parallel", "--parallel-max", "16", "-K", cfg]

    def measure(self, st):
        a = self.a
        env = B.stand_env(self.work, st.endpoint)
        res = {}
        for name in ("big", "small"):
            prefix = "stage/%s/" % name
            total = sum(s for _, s in self.sets[name])
            clients = {
                "mayfly stage": lambda d: [self.mayfly, "stage", "s3://%s/%s" % (BUCKET, prefix), d, "--quiet"],
                "aws s3 sync": lambda d: [self.aws, "s3", "sync", "s3://%s/%s" % (BUCKET, prefix), d,
                                          "--endpoint-url", st.endpoint, "--only-show-errors"],
                "curl (ceiling)": lambda d: self.curl_cmd(st, name, d),
            }
            runs = {c: [] for c in clients}
            for rep in range(a.reps):
                for c, cmd in clients.items():
                    d = os.path.join(self.work, "dest-%s" % name)
                    shutil.rmtree(d, ignore_errors=True)
                    for m in (d + ".mayfly-manifest.jsonl",):
                        if os.path.exists(m):
                            os.unlink(m)
                    os.makedirs(d)
                    subprocess.run(["sync"])
                    r = B.timed(cmd(d), env, a.timeout, server_pid=st.proc.pid, tmpdir=self.work)
                    bad = r.err or self.verify(st, name, d, prefix)
                    if bad:
                        log("%s %s rep %d: %s" % (name, c, rep + 1, bad))
                        r.wall = float("nan")
                    runs[c].append(r)
                    log("%-6s %-15s rep %d: %.2f s" % (name, c, rep + 1, r.wall))
            res[name] = (total, runs)
        # a restart with nothing changed: mayfly stage again over what it staged
        d = os.path.join(self.work, "dest-small")
        shutil.rmtree(d, ignore_errors=True)
        m = d + ".mayfly-manifest.jsonl"
        if os.path.exists(m):
            os.unlink(m)
        cmd = [self.mayfly, "stage", "s3://%s/stage/small/" % BUCKET, d, "--quiet"]
        subprocess.run(cmd, env=env, check=True)
        again = []
        for rep in range(a.reps):
            mark = st.log_mark()
            r = B.timed(cmd, env, a.timeout, server_pid=st.proc.pid, tmpdir=self.work)
            reqs = st.log_since(mark)
            again.append((r.wall, sum(1 for q in reqs if "list-type=2" in q[1]),
                          sum(1 for q in reqs if q[0] == "GET" and "list-type=2" not in q[1]),
                          sum(1 for q in reqs if q[0] == "HEAD")))
        return res, again

    def report(self, res, again):
        P = self.out.append
        P("## Staging inputs (bench/bench_stage.py): nginx as S3 on loopback, median of %d runs" % self.a.reps)
        P("")
        for name, label in (("big", "(a) 4 x %d MiB" % self.a.big_mib), ("small", "(b) %d x 32 KiB" % self.a.small)):
            total, runs = res[name]
            P("%s, %.0f MiB in all" % (label, total / MIB))
            P("  %-16s %9s %10s %9s %10s" % ("client", "seconds", "MiB/s", "RSS MiB", "CPU s"))
            med = {}
            for c, rs in runs.items():
                walls = [r.wall for r in rs if r.wall == r.wall]
                if not walls:
                    P("  %-16s failed" % c)
                    continue
                w = statistics.median(walls)
                r = min(rs, key=lambda x: abs(x.wall - w) if x.wall == x.wall else 1e9)
                med[c] = w
                P("  %-16s %9.2f %10.1f %9.1f %10.2f" % (c, w, total / MIB / w, r.rss_kb / 1024, r.cpu))
            if "mayfly stage" in med and "aws s3 sync" in med:
                x = med["aws s3 sync"] / med["mayfly stage"]
                P("  goal: >= %.0fx aws s3 sync: %.2fx  %s" % (GOAL_AWS, x, "MET" if x >= GOAL_AWS else "NOT MET"))
            if name == "big" and "mayfly stage" in med and "curl (ceiling)" in med:
                x = med["curl (ceiling)"] / med["mayfly stage"]
                P("  goal: >= %d%% of the curl ceiling: %.0f%%  %s" % (GOAL_CEIL * 100, x * 100,
                                                                      "MET" if x >= GOAL_CEIL else "NOT MET"))
            P("")
        w = statistics.median(x[0] for x in again)
        lists, gets, heads = again[len(again) // 2][1:]
        want = (self.a.small + 999) // 1000
        P("Restart, nothing changed, (b)'s %d objects: %.2f s, %d LIST pages (goal %d), %d GETs, %d HEADs (goal 0)  %s"
          % (self.a.small, w, lists, want, gets, heads, "MET" if lists == want and not gets and not heads
             else "NOT MET"))
        print("\n".join(self.out))

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.store, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--tmp", default=None)
    a = ap.parse_args()
    B.check_prereqs(os.path.join(os.path.abspath(a.build), "mayfly"))
    b = Bench(a)
    st = s3nginx.Stand(os.path.join(b.work, "nginx"), store=b.store)
    try:
        b.populate(st)
        st.start()
        res, again = b.measure(st)
        b.report(res, again)
    finally:
        st.stop()
        b.close()


if __name__ == "__main__":
    main()
