#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make bench, part 2: what decides spot-safety (issue 16), each side by side in one run, median of --reps.

    python3 bench/bench_up.py --build build [--size-mib 1024] [--reps 3] [--files 4096] [--file-kib 64]

  upload       --size-mib of random bytes to a writable nginx S3 stand-in (bench/s3nginx.py): mayfly cp,
               aws s3 cp and curl -T (one PUT: the ceiling); every upload checked on the server (size, part
               count, sha256 of the parts joined)
  small files  --files of --file-kib each, `cp --recursive` up and down, mayfly vs awscli (files/s)
  90 s window  the largest checkpoint that reaches S3 in 90 s at the measured upload rate, and per CPU core
               (bytes per client CPU-second x 90)
  TLS          the static binary (make static: musl, its own OpenSSL 3.0) against the dynamic one (the system's
               OpenSSL): --size-mib up and down over HTTPS (nginx with a self-signed certificate trusted through
               AWS_CA_BUNDLE), MB/s and peak RSS
  checkpoint   a real `mayfly run` on the fake cloud (moto, no auth) with a 2 GiB checkpoint directory of 64
               files; between syncs one 64 MiB file is replaced: requests and bytes each sync sends (the
               fake cloud's log), against the goal of that file's bytes + O(1) requests

Nothing is asserted: goals print as MET / NOT MET.  Other work on the machine shows in the load averages
printed first and last."""
import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))

import bench as B  # noqa: E402  (bench/bench.py: timed, find_aws, helpers)
import s3nginx  # noqa: E402

MIB = 1 << 20
MB = 1e6
BUCKET = "mayfly-test"
PART = 8 * MIB
GOAL_UL_AWS, GOAL_UL_CEIL, GOAL_FILES, GOAL_TLS, GOAL_RSS_MB = 2.0, 0.80, 5.0, 0.90, 16
WINDOW_S = 90


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(MIB), b""):
            h.update(b)
    return h.hexdigest()


class Series:
    """One client in one measurement: its runs, reported by the median run (by wall time)."""

    def __init__(self, label, cmd, env, verify=None, after=None, units=None):
        self.label, self.cmd, self.env, self.verify, self.after = label, cmd, env, verify, after
        self.units = units  # bytes or files moved per run
        self.runs, self.failed = [], None

    def median(self):
        ok = sorted((r for r in self.runs if not r.err), key=lambda r: r.wall)
        return ok[(len(ok) - 1) // 2] if ok else None

    def rate(self):
        m = self.median()
        return self.units / m.wall if m else None

    def rss_mb(self):
        ok = [r.rss_kb for r in self.runs if not r.err]
        return max(ok) / 1024 if ok else None


def run_series(series, reps, timeout, work, server_pid=None, unit="MB/s"):
    for rep in range(reps):
        for s in series:
            if s.failed:
                continue
            s.rep = rep
            r = B.timed(s.cmd(rep) if callable(s.cmd) else s.cmd, s.env, timeout, server_pid, work)
            if not r.err and s.verify:
                r.err = s.verify()
            if s.after:
                s.after()
            os.sync()
            s.runs.append(r)
            v = s.units / r.wall / (MB if unit == "MB/s" else 1)
            log("  [%d/%d] %-34s %9.1f %s  %6.2f s%s" % (rep + 1, reps, s.label, v, unit, r.wall,
                                                       "  FAILED: " + r.err if r.err else ""))
            if r.err:
                s.failed = r.err


def row(s, unit="MB/s"):
    m = s.median()
    if not m:
        return "  %-34s FAILED: %s" % (s.label, (s.failed or "not run")[:200])
    div = MB if unit == "MB/s" else 1
    runs = " ".join("%.0f" % (s.units / r.wall / div) if not r.err else "FAIL" for r in s.runs)
    srv = "%7.2f" % m.srv_cpu if m.srv_cpu is not None else "%7s" % "-"
    return "  %-34s %9.1f %7.2f %6.2f %s %8.1f  %s" % (s.label, s.units / m.wall / div, m.wall, m.cpu, srv,
                                                      s.rss_mb(), runs)


def header(unit):
    h = "  %-34s %9s %7s %6s %7s %8s  %s" % ("client", unit, "wall s", "CPU s", "srv CPU", "RSS MiB", "runs")
    return h + "\n  " + "-" * (len(h) - 2)


def ratio(a, b):
    return a.rate() / b.rate() if a and b and a.rate() and b.rate() else None


def goal(name, value, target, fmt="%.2fx"):
    if value is None:
        return "  %-46s %-14s NOT MEASURED" % (name, "n/a")
    return "  %-46s %-14s %s" % (name, fmt % value, "MET" if value >= target else "NOT MET")


class Bench:
    def __init__(self, a):
        self.a = a
        self.size = a.size_mib * MIB
        self.mayfly = os.path.join(a.build, "mayfly")
        self.static = a.static or os.path.join(a.build, "static", "mayfly")
        self.aws = B.find_aws()
        self.work = tempfile.mkdtemp(prefix="mayfly-bench-up-", dir=a.tmp)
        self.out = []
        self.notes = []

    def P(self, line=""):
        self.out.append(line)

    def env_for(self, endpoint, ca=None):
        return B.stand_env(self.work, endpoint, ca)

    def aws_cmd(self, src, dst, endpoint, *extra):
        return [self.aws, "s3", "cp", src, dst, "--endpoint-url", endpoint, "--only-show-errors", *extra]

    # ------------------------------------------------------------------------------------------
    def upload(self, st):
        a = self.a
        env = self.env_for(st.endpoint)
        nparts = (self.size + PART - 1) // PART

        def check(key, parts):
            def v():
                got = st.uploaded(BUCKET, key)
                if not got:
                    return "nothing (or a gap in the parts) arrived for %s" % key
                size, n, sha = got
                if size != self.size or n != parts or sha != self.src_sha:
                    return "arrived %d bytes in %d parts (sha %s…), sent %d in %d" % (size, n, sha[:12], self.size,
                                                                                   parts)
                return None
            return v

        def gone(key):
            return lambda: st.forget(BUCKET, key)

        mf = Series("mayfly cp", [self.mayfly, "cp", self.src, "s3://%s/up/mayfly" % BUCKET, "--quiet"], env,
                    check("up/mayfly", nparts), gone("up/mayfly"), self.size)
        aws = Series("aws s3 cp", self.aws_cmd(self.src, "s3://%s/up/aws" % BUCKET, st.endpoint), env,
                     check("up/aws", nparts), gone("up/aws"), self.size)
        curl = Series("curl -T (one PUT: ceiling)", ["curl", "-sS", "--fail", "-o", "/dev/null", "-T", self.src,
                                                     "%s/%s/up/curl" % (st.endpoint, BUCKET)], env,
                      check("up/curl", 0), gone("up/curl"), self.size)
        log("upload %d MiB to nginx, %d runs each, interleaved" % (a.size_mib, a.reps))
        mark = st.log_mark()
        run_series([curl, mf, aws], a.reps, a.timeout, self.work, st.proc.pid)
        reqs = st.log_since(mark)
        self.up = (mf, aws, curl)
        per = {}
        for m, uri, _cl, _st in reqs:
            kind = "UploadPart" if "partNumber=" in uri else "Create" if "uploads" in uri else \
                "Complete" if m == "POST" else m
            who = uri.split("?")[0].rsplit("/", 1)[-1]
            per.setdefault(who, {}).setdefault(kind, 0)
            per[who][kind] += 1
        self.P("upload %d MiB, nginx writable stand-in (HTTP), median of %d" % (a.size_mib, a.reps))
        self.P(header("MB/s"))
        for s in (mf, aws, curl):
            self.P(row(s))
        self.P("  requests seen by nginx over all runs: " + "; ".join(
            "%s %s" % (w, ", ".join("%s %d" % kv for kv in sorted(k.items()))) for w, k in sorted(per.items())))

    # ------------------------------------------------------------------------------------------
    def small_files(self, st):
        a = self.a
        n, fsize = a.files, a.file_kib * 1024
        srcdir = os.path.join(self.work, "many")
        os.makedirs(srcdir)
        served = os.path.join(st.root, BUCKET, "many")
        os.makedirs(served)
        objs = []
        for i in range(n):
            name = "f%05d" % i
            with open(os.path.join(srcdir, name), "wb") as f:
                f.write(os.urandom(fsize))
            os.symlink(os.path.join(srcdir, name), os.path.join(served, name))
            objs.append(("many/" + name, fsize))
        st.add_listing(BUCKET, "many/", objs)
        st.stop()
        st.start()  # the listing's map entry (new ports)
        env = self.env_for(st.endpoint)

        def up_ok(prefix):
            def v():
                d = os.path.join(st.root, BUCKET, prefix)
                got = os.listdir(d) if os.path.isdir(d) else []
                if len(got) != n or any(os.path.getsize(os.path.join(d, g)) != fsize for g in got):
                    return "%d of %d files arrived whole" % (len(got), n)
                return None
            return v

        def down_ok(base, series):
            def v():
                d = "%s-%d" % (base, series[0].rep)
                got = sorted(os.listdir(d)) if os.path.isdir(d) else []
                if len(got) != n:
                    return "%d of %d files downloaded" % (len(got), n)
                for g in got[:: max(1, n // 64)]:
                    if not B.same_bytes(os.path.join(d, g), os.path.join(srcdir, g)):
                        return "%s differs" % g
                return None
            return v

        def rm(path):
            return lambda: shutil.rmtree(path, ignore_errors=True)

        ups = [Series("mayfly cp --recursive (up)", [self.mayfly, "cp", "--recursive", srcdir,
                                                     "s3://%s/upm/" % BUCKET, "--quiet"], env, up_ok("upm"),
                      rm(os.path.join(st.root, BUCKET, "upm")), n),
               Series("aws s3 cp --recursive (up)", self.aws_cmd(srcdir, "s3://%s/upa/" % BUCKET, st.endpoint,
                                                                 "--recursive"), env, up_ok("upa"),
                      rm(os.path.join(st.root, BUCKET, "upa")), n)]
        # each run into a fresh directory, all removed at the end: deleting 4,096 files between runs would make
        # the next run's creates pay for ext4's scan past recently deleted inodes (recently_deleted() in a profile)
        dm, da = os.path.join(self.work, "down-m"), os.path.join(self.work, "down-a")
        sm, sa = [], []
        downs = [Series("mayfly cp --recursive (down)", lambda rep: [self.mayfly, "cp", "--recursive",
                                                                     "s3://%s/many/" % BUCKET, "%s-%d" % (dm, rep),
                                                                     "--quiet"], env, down_ok(dm, sm), None, n),
                 Series("aws s3 cp --recursive (down)", lambda rep: self.aws_cmd(
                     "s3://%s/many/" % BUCKET, "%s-%d" % (da, rep), st.endpoint, "--recursive"), env,
                     down_ok(da, sa), None, n)]
        sm.append(downs[0])
        sa.append(downs[1])
        log("%d files of %d KiB, up and down, %d runs each" % (n, a.file_kib, a.reps))
        run_series(ups, a.reps, a.timeout, self.work, st.proc.pid, "files/s")
        run_series(downs, a.reps, a.timeout, self.work, st.proc.pid, "files/s")
        self.small = (ups, downs)
        self.P()
        self.P("%d files of %d KiB, cp --recursive, nginx stand-in, median of %d" % (n, a.file_kib, a.reps))
        self.P(header("files/s"))
        for s in ups + downs:
            self.P(row(s, "files/s"))
        shutil.rmtree(srcdir, ignore_errors=True)
        shutil.rmtree(served, ignore_errors=True)
        for rep in range(a.reps):
            shutil.rmtree("%s-%d" % (dm, rep), ignore_errors=True)
            shutil.rmtree("%s-%d" % (da, rep), ignore_errors=True)

    # ------------------------------------------------------------------------------------------
    def tls(self, st):
        a = self.a
        if not os.access(self.static, os.X_OK):
            self.notes.append("no static binary at %s (make static): TLS comparison skipped" % self.static)
            return
        env = self.env_for(st.tls_endpoint, st.cert[1])
        served = os.path.join(st.root, BUCKET, "tls")
        os.makedirs(served, exist_ok=True)
        os.symlink(self.src, os.path.join(served, "src"))
        nparts = (self.size + PART - 1) // PART
        series = []
        for label, binary in (("dynamic (OpenSSL)", self.mayfly), ("static (musl, OpenSSL)", self.static)):
            tag = label.split()[0]
            key = "tls/up-" + tag
            out = os.path.join(self.work, "tls-down-" + tag)

            def up_ok(key=key):
                got = st.uploaded(BUCKET, key)
                return None if got and got[0] == self.size and got[1] == nparts and got[2] == self.src_sha else \
                    "upload arrived as %r" % (got,)

            series.append(Series("upload   " + label, [binary, "cp", self.src, "s3://%s/%s" % (BUCKET, key),
                                                        "--quiet"], env, up_ok,
                                 lambda key=key: st.forget(BUCKET, key), self.size))
            series.append(Series("download " + label, [binary, "cp", "s3://%s/tls/src" % BUCKET, out, "--quiet"],
                                 env, lambda out=out: None if B.same_bytes(out, self.src) else "bytes differ",
                                 lambda out=out: os.path.exists(out) and os.unlink(out), self.size))
        log("TLS: static vs dynamic, %d MiB up and down, %d runs each" % (a.size_mib, a.reps))
        run_series(series, a.reps, a.timeout, self.work, st.proc.pid)
        self.tlsr = series
        self.P()
        self.P("%d MiB over TLS (https://localhost, self-signed, AWS_CA_BUNDLE), median of %d" % (a.size_mib,
                                                                                               a.reps))
        self.P(header("MB/s"))
        for s in series:
            self.P(row(s))
        self.P("  static binary: %s, %d bytes" % (self.static, os.path.getsize(self.static)))

    # ------------------------------------------------------------------------------------------
    def checkpoint(self):
        """A real `mayfly run` with a checkpoint directory; the harness swaps one file between syncs."""
        a = self.a
        os.environ.setdefault("MAYFLY_BUILD", os.path.abspath(a.build))
        import test_run
        test_run.MAYFLY = self.mayfly
        nfiles, big = 64, 64 * MIB
        small = (2048 * MIB - big) // (nfiles - 1)
        test_run.SCRIPTS["ckbench.sh"] = """#!/bin/sh
d="$MAYFLY_CHECKPOINT_DIR"; mkdir -p "$d" tmp
i=1; while [ $i -lt %(n)d ]; do head -c %(small)d /dev/urandom > "$d/shard$i.bin"; i=$((i+1)); done
head -c %(big)d /dev/urandom > "$d/model.bin"
touch ready
r=1; while [ $r -le %(rounds)d ]; do
  while [ ! -e go.$r ]; do sleep 0.1; done
  head -c %(big)d /dev/urandom > tmp/model.bin && mv tmp/model.bin "$d/model.bin"
  touch done.$r; r=$((r+1))
done
while [ ! -e go.end ]; do sleep 0.1; done
""" % {"n": nfiles, "small": small, "big": big, "rounds": a.ckpt_rounds}
        interval = 10
        r = test_run.Run({"experiments": [{"name": "ck", "command": ["./ckbench.sh"]}],
                          "checkpoint": {"path": "ck", "interval": interval}, "log_interval": 60},
                         cloud_args={"auth": False})
        rounds = []
        try:
            t0 = time.time()
            s0 = r.cloud.stats()
            r.start()
            wait_for(lambda: os.path.exists(os.path.join(r.work, "ready")), 300, "the checkpoint to be written")
            quiet = self.until_quiet(r, interval + 3, 600)
            s1 = r.cloud.stats()
            first = {"requests": s1["moto_requests"] - s0["moto_requests"],
                     "bytes": s1["moto_bytes_in"] - s0["moto_bytes_in"], "s": quiet - t0}
            log("checkpoint: first syncs done (%d requests, %.0f MiB)" % (first["requests"],
                                                                         first["bytes"] / MIB))
            for n in range(1, a.ckpt_rounds + 1):
                tgo = time.time()
                open(os.path.join(r.work, "go.%d" % n), "w").close()
                wait_for(lambda: os.path.exists(os.path.join(r.work, "done.%d" % n)), 60, "the file swap")
                wait_for(lambda: [e for e in self.ckpt_log(r) if e["ts"] >= tgo], interval * 3, "a sync")
                self.until_quiet(r, interval + 3, 300)
                got = [e for e in self.ckpt_log(r) if e["ts"] >= tgo]
                kinds = {}
                for e in got:
                    k = "UploadPart" if "partNumber=" in e["query"] else "Create" if "uploads" in e["query"] else \
                        "Complete" if e["method"] == "POST" else e["method"]
                    kinds[k] = kinds.get(k, 0) + 1
                rounds.append({"requests": len(got), "bytes": sum(e["bytes"] for e in got), "kinds": kinds,
                               "keys": sorted({e["path"].rsplit("/", 1)[-1] for e in got})})
                log("checkpoint: round %d: %d requests, %.1f MiB (%s)" % (n, len(got), rounds[-1]["bytes"] / MIB,
                                                                         kinds))
            open(os.path.join(r.work, "go.end"), "w").close()
            r.proc.communicate(timeout=300)
        finally:
            r.close()
            shutil.rmtree(r.dir, ignore_errors=True)
        self.P()
        self.P("checkpoint sync: `mayfly run`, fake cloud (moto, no auth), interval %d s, %d files = %.2f GiB "
               "(%d x %.1f MiB + one %d MiB file replaced between syncs)" % (
                   interval, nfiles, (small * (nfiles - 1) + big) / (1 << 30), nfiles - 1, small / MIB, big // MIB))
        self.P("  start to the first quiet point (%.0f s: fetch, status, the syncs of the new directory): %d "
               "requests, %.1f MiB" % (first["s"], first["requests"], first["bytes"] / MIB))
        for i, x in enumerate(rounds, 1):
            self.P("  sync after change %d: %d requests, %.1f MiB, keys %s, %s" % (
                i, x["requests"], x["bytes"] / MIB, ",".join(x["keys"]), x["kinds"]))
        if rounds:
            med_b = statistics.median(x["bytes"] for x in rounds)
            med_r = statistics.median(x["requests"] for x in rounds)
            self.ckpt = (med_b, med_r, big)
            self.P("  median per sync: %d requests, %.1f MiB (the changed file: %d MiB = %d parts + Create + "
                   "Complete)" % (med_r, med_b / MIB, big // MIB, big // PART))

    @staticmethod
    def ckpt_log(r):
        return [e for e in r.cloud.stats()["moto_log"] if "/checkpoint/" in e["path"]]

    @staticmethod
    def until_quiet(r, quiet_s, limit):
        """Waits until the fake cloud saw no checkpoint request for quiet_s (a sync interval and some)."""
        deadline = time.time() + limit
        while time.time() < deadline:
            got = Bench.ckpt_log(r)
            if got and time.time() - got[-1]["ts"] >= quiet_s:
                return got[-1]["ts"]
            time.sleep(0.5)
        raise RuntimeError("the checkpoint syncs never went quiet")

    # ------------------------------------------------------------------------------------------
    def summary(self):
        P = self.P
        P()
        P("goals (medians)")
        if hasattr(self, "up"):
            mf, aws, curl = self.up
            P(goal("upload >= %gx awscli" % GOAL_UL_AWS, ratio(mf, aws), GOAL_UL_AWS))
            P(goal("upload >= %d%% of the curl ceiling" % (GOAL_UL_CEIL * 100), ratio(mf, curl), GOAL_UL_CEIL,
                   "%.2f"))
            m = mf.median()
            if m:
                rate = mf.rate()
                per_core = self.size / m.cpu if m.cpu else 0
                P("  in a %d s window at mayfly's median rate: %.1f GB reach S3 (%.0f MB/s on %d CPUs); per CPU "
                  "core %.1f GB (%.0f MB per client CPU-second)" % (WINDOW_S, rate * WINDOW_S / 1e9, rate / MB,
                                                                   os.cpu_count(), per_core * WINDOW_S / 1e9,
                                                                   per_core / MB))
                am = aws.median()
                if am:
                    P("  awscli for comparison: %.1f GB in %d s; per core %.1f GB" % (
                        aws.rate() * WINDOW_S / 1e9, WINDOW_S, self.size / am.cpu * WINDOW_S / 1e9 if am.cpu else 0))
        if hasattr(self, "small"):
            (um, ua), (dm, da) = self.small
            P(goal("%d small files up >= %gx awscli (files/s)" % (self.a.files, GOAL_FILES), ratio(um, ua),
                   GOAL_FILES))
            P(goal("%d small files down >= %gx awscli (files/s)" % (self.a.files, GOAL_FILES), ratio(dm, da),
                   GOAL_FILES))
        if hasattr(self, "tlsr"):
            ud, dd, us, ds = self.tlsr
            P(goal("TLS upload: static >= %d%% of dynamic" % (GOAL_TLS * 100), ratio(us, ud), GOAL_TLS, "%.2f"))
            P(goal("TLS download: static >= %d%% of dynamic" % (GOAL_TLS * 100), ratio(ds, dd), GOAL_TLS, "%.2f"))
            for lbl, x in (("dynamic", ud), ("static", us)):
                m = x.median()
                if m and m.cpu:
                    P("  TLS upload, %s: %.1f GB in a %d s window at its median rate; per CPU core %.1f GB (%.0f MB per "
                      "client CPU-second)" % (lbl, x.rate() * WINDOW_S / 1e9, WINDOW_S,
                                              self.size / m.cpu * WINDOW_S / 1e9, self.size / m.cpu / MB))
            rss = max(x for x in (us.rss_mb(), ds.rss_mb()) if x is not None) if us.rss_mb() or ds.rss_mb() else None
            if rss is None:
                P(goal("static peak RSS <= %d MB" % GOAL_RSS_MB, None, 0))
            else:
                P("  %-46s %-14s %s" % ("static peak RSS <= %d MB" % GOAL_RSS_MB, "%.1f MiB" % rss,
                                        "MET" if rss * MIB <= GOAL_RSS_MB * 1e6 else "NOT MET"))
        if hasattr(self, "ckpt"):
            b, r, big = self.ckpt
            ok = b <= big * 1.05 and r <= big // PART + 4
            P("  %-46s %-14s %s" % ("checkpoint sync = changed bytes + O(1) requests",
                                    "%.0f MiB/%d req" % (b / MIB, r), "MET" if ok else "NOT MET"))

    def run(self):
        a = self.a
        la0 = loadavg()
        t0 = time.monotonic()
        self.src = os.path.join(self.work, "src.bin")
        log("bench_up: %d MiB of random data" % a.size_mib)
        B.make_random_file(self.src, self.size)
        self.src_sha = sha256_of(self.src)
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 4 * self.size + \
            (2 << 30) else None
        self.store = tempfile.mkdtemp(prefix="mayfly-bench-store-", dir=shm or self.work)
        st = s3nginx.Stand(os.path.join(self.work, "nginx"), tls=True, store=self.store)
        st.start()
        try:
            for name, skip, fn in (("upload", a.skip_upload, lambda: self.upload(st)),
                                   ("small files", a.skip_files, lambda: self.small_files(st)),
                                   ("tls", a.skip_tls, lambda: self.tls(st))):
                if skip:
                    continue
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 -- report what was measured; say what broke
                    log("bench_up: the %s part failed: %s" % (name, e))
                    self.notes.append("the %s part failed: %s" % (name, str(e)[-400:]))
        finally:
            st.stop()
        if not a.skip_ckpt:
            try:
                self.checkpoint()
            except Exception as e:  # noqa: BLE001
                log("bench_up: the checkpoint part failed: %s" % e)
                self.notes.append("the checkpoint part failed: %s" % str(e)[-400:])
        self.summary()
        la1 = loadavg()
        print()
        print("mayfly bench_up, %s, %d CPUs, %s; load average (1/5/15 min) at start %s, at end %s" % (
            time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(), B.version([self.aws, "--version"]), "/".join(la0),
            "/".join(la1)))
        print("  nginx %s (writable stand-in, bench/s3nginx.py, storing into %s); client files in %s" % (
            B.version([s3nginx.NGINX, "-v"]).replace("nginx version: ", ""), self.store, self.work))
        print("  columns: median run of %d by wall time (MB = 10^6 bytes); CPU s = client user+sys of that run; "
              "srv CPU = nginx CPU s in it; RSS = client peak RSS, max over runs" % a.reps)
        print()
        print("\n".join(self.out))
        for n in self.notes:
            print("NOTE: " + n)
        print("\ntotal bench_up time %.0f s" % (time.monotonic() - t0))

    def cleanup(self):
        for p in list(B.LIVE):
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass
        shutil.rmtree(self.work, ignore_errors=True)
        if getattr(self, "store", None):
            shutil.rmtree(self.store, ignore_errors=True)


def wait_for(fn, secs, what):
    deadline = time.time() + secs
    while time.time() < deadline:
        if fn():
            return
        time.sleep(0.2)
    raise RuntimeError("timed out waiting for " + what)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--static", default=None, help="static binary (default BUILD/static/mayfly)")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--files", type=int, default=4096)
    ap.add_argument("--file-kib", type=int, default=64)
    ap.add_argument("--ckpt-rounds", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--tmp", default=None)
    for s in ("upload", "files", "tls", "ckpt"):
        ap.add_argument("--skip-" + s, action="store_true")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    b = Bench(a)
    B.check_prereqs(b.mayfly)
    try:
        b.run()
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
