#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs every test: the C unit binaries (one PASS/FAIL line per case) and the black-box suites in tests/blackbox
(each test_* function), in parallel worker processes. docs/testing.md says how to run one test, one module or the
whole suite, and how to write a test that runs safely beside the others.

    tests/run.py [--build DIR] [-k TEXT] [-j N] [--list]

-j N: N workers (default: MAYFLY_TEST_JOBS, else three times the CPUs, at most 8). Each worker is one process with its
own number (MAYFLY_TEST_WORKER), its own run user (MAYFLY_TEST_RUN_USER, created here when root) and its own block of
loopback addresses and ports (harness.worker_loopback(), harness.worker_ports()); every fake cloud listens on ports
the kernel chooses. A worker takes the longest test left (the estimates: tests/durations.json, then this build's
last run), reuses a module's setup() for the next test of the same module, and tears it down before another
module's. A module with SERIAL = True runs after every other test, alone; one with TOGETHER = True runs in one
worker, in the order its tests are written (for tests that build on each other).

Output: one line per test in a stable order (unit binaries, then the modules by name, each module's tests as
written): PASS name (seconds), SKIP name: why, or FAIL name (seconds): why with its diagnostics (what the test
printed, the traceback). Then the 15 slowest tests, then the last line: 'N passed, N failed, N skipped'. A test
that runs past MAYFLY_TEST_TIMEOUT seconds (default 900) fails, and its worker is replaced."""
import argparse
import ast
import fcntl
import glob
import inspect
import json
import os
import pwd
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VECTORS = os.path.join(HERE, "vectors")
DURATIONS = os.path.join(HERE, "durations.json")
RUN_USER_PREFIX = "mayfly-t"
# a second runner on the same machine (another checkout) numbers its workers from here: workers BASE+1.. own their
# users, loopback addresses and ports, so the two never meet
WORKER_BASE = int(os.environ.get("MAYFLY_TEST_WORKER_BASE", "0") or 0)


# ---- what there is to run ----

class Slot:
    """One line of the output: a unit binary or one black-box test."""

    def __init__(self, index, label, kind, module=None, test=None, path=None):
        self.index, self.label, self.kind, self.module, self.test, self.path = index, label, kind, module, test, path
        self.result = None  # the worker's answer (dict) once done


def scan_module(path):
    """The test_* functions of a module in the order they are written, and its SERIAL/TOGETHER flags, read from its
    source (the parent imports no test module: only workers do)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    tests, flags = [], {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            tests.append(node.name)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("SERIAL", "TOGETHER"):
            flags[node.targets[0].id] = bool(ast.literal_eval(node.value))
    return tests, flags


def discover(build, k):
    """Every slot in output order, and the work units: (slots, serial) where a unit's slots run in one worker."""
    slots, units = [], []
    for binary in sorted(glob.glob(os.path.join(build, "tests", "test_*"))):
        name = os.path.basename(binary)
        if k and k not in name:
            continue
        s = Slot(len(slots), name, "bin", path=binary)
        slots.append(s)
        units.append(([s], False))
    for path in sorted(glob.glob(os.path.join(HERE, "blackbox", "test_*.py"))):
        mod = os.path.basename(path)[:-3]
        tests, flags = scan_module(path)
        mine = []
        for t in tests:
            if k and k not in t and k not in mod:
                continue
            s = Slot(len(slots), "%s.%s" % (mod, t), "test", module=path, test=t)
            slots.append(s)
            mine.append(s)
        if not mine:
            continue
        serial = flags.get("SERIAL", False)
        if flags.get("TOGETHER", False) or serial:
            units.append((mine, serial))
        else:
            units.extend(([s], False) for s in mine)
    return slots, units


def estimates(build):
    """Seconds each slot took last time: the committed table, overlaid with this build's last run."""
    est = {}
    for path in (DURATIONS, os.path.join(build, "test-durations.json")):
        try:
            with open(path) as f:
                est.update(json.load(f))
        except (OSError, ValueError):
            pass
    return est


# ---- run users ----

def ensure_run_users(n):
    """Run users mayfly-t1..mayfly-tN (system users without a home or a login shell), one per worker, so that no two
    workers' experiments share a uid. Returns their names; as non-root, or where useradd fails: 'nobody' each."""
    names = []
    for i in range(WORKER_BASE + 1, WORKER_BASE + n + 1):
        name = "%s%d" % (RUN_USER_PREFIX, i)
        try:
            pwd.getpwnam(name)
        except KeyError:
            if os.geteuid() != 0:
                return ["nobody"] * n
            with open("/run/mayfly-test-users.lock", "w") as lock:  # the lock harness.user_add takes
                fcntl.flock(lock, fcntl.LOCK_EX)
                p = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                                    "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                print("run users: useradd %s failed (%s); every worker runs experiments as nobody"
                      % (name, p.stderr.strip()), flush=True)
                return ["nobody"] * n
        names.append(name)
    return names


# ---- the parent: a pool of workers ----

class Worker:
    def __init__(self, number, build, run_user, logdir):
        self.number = number
        self.log = os.path.join(logdir, "worker-%d.log" % number)
        rfd, wfd = os.pipe()
        env = dict(os.environ, MAYFLY_BUILD=build, MAYFLY_TEST_WORKER=str(number), MAYFLY_TEST_RUN_USER=run_user)
        self.proc = subprocess.Popen([sys.executable, "-u", os.path.abspath(__file__), "--worker", str(wfd),
                                      "--build", build, "--log", self.log], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(wfd,), env=env,
                                     start_new_session=True)
        os.close(wfd)
        self.rfd = rfd
        self.buf = b""
        self.unit = None      # the slots it is running
        self.current = None   # (slot, start time) of the test it runs now
        self.module = None    # the module whose setup() it holds

    def send(self, slots):
        self.unit = list(slots)
        self.current = (self.unit[0], time.time())
        msg = {"slots": [{"index": s.index, "kind": s.kind, "label": s.label, "module": s.module, "test": s.test,
                          "path": s.path} for s in slots]}
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        if slots[0].kind == "test":
            self.module = slots[0].module

    def messages(self):
        try:
            data = os.read(self.rfd, 65536)
        except OSError:
            data = b""
        if not data:
            return None
        self.buf += data
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            out.append(json.loads(line))
        return out

    def stop(self, kill=False):
        if self.proc.poll() is None:
            if kill:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                try:
                    self.proc.stdin.close()  # end of work: the worker tears down its module and exits
                except OSError:
                    pass
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.close(self.rfd)

    def log_tail(self, n=6000):
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class Printer:
    """Prints each slot's lines once every slot before it has printed, and counts."""

    def __init__(self, slots):
        self.slots, self.next = slots, 0
        self.last = time.time()  # when a line was last printed
        self.n = {"passed": 0, "failed": 0, "skipped": 0}

    def done(self, slot, result):
        slot.result = result
        for key in ("passed", "failed", "skipped"):
            self.n[key] += result.get(key, 0)
        while self.next < len(self.slots) and self.slots[self.next].result is not None:
            r = self.slots[self.next].result
            sys.stdout.write(r["text"])
            if r["text"] and not r["text"].endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()
            self.next += 1
            self.last = time.time()


def failed(slot, secs, why, text=""):
    """A result for a slot whose worker could not answer (it died, or the test timed out)."""
    if slot.kind == "bin":
        line = "FAIL %s: %s\n" % (slot.label, why)
    else:
        line = "FAIL %s (%.1fs): %s\n" % (slot.label, secs, why)
    return {"index": slot.index, "failed": 1, "secs": secs, "text": line + text}


def run_pool(slots, units, jobs, build, timeout, logdir):
    est = estimates(build)
    cost = {id(u): sum(est.get(s.label, 10.0) for s in u[0]) for u in units}
    parallel = sorted((u for u in units if not u[1]), key=lambda u: -cost[id(u)])
    serial = [u for u in units if u[1]]
    users = ensure_run_users(jobs)
    printer = Printer(slots)
    by_index = {s.index: s for s in slots}

    def one_phase(pending, width):
        workers = {}
        number = WORKER_BASE

        def spawn(n):
            w = Worker(n, build, users[(n - 1 - WORKER_BASE) % len(users)], logdir)
            workers[w.rfd] = w
            return w

        def give(w):
            if not pending:
                return False
            # the longest unit left; of those within a second of it, one of the module this worker holds
            top = cost[id(pending[0])]
            pick = 0
            for i, u in enumerate(pending):
                if cost[id(u)] < top - 1.0:
                    break
                if u[0][0].module == w.module:
                    pick = i
                    break
            w.send(pending.pop(pick)[0])
            return True

        for _ in range(min(width, len(pending))):
            number += 1
            give(spawn(number))
        while any(w.unit for w in workers.values()):
            busy = [fd for fd, w in workers.items() if w.unit]
            ready, _, _ = select.select(busy, [], [], 1.0)
            for fd in ready:
                w = workers[fd]
                msgs = w.messages()
                if msgs is None:  # the worker died
                    code = w.proc.wait()
                    slot, t0 = w.current
                    printer.done(slot, failed(slot, time.time() - t0, "the test's worker died (exit %s)" % code,
                                              w.log_tail()))
                    rest = [s for s in w.unit if s.result is None]
                    del workers[fd]
                    w.stop()
                    if rest:
                        pending.insert(0, (rest, False))
                        cost[id(pending[0])] = 1e9
                    if pending:
                        give(spawn(w.number))
                    continue
                for m in msgs:
                    if "start" in m:
                        w.current = (by_index[m["start"]], time.time())
                        continue
                    printer.done(by_index[m["index"]], m)
                    if all(s.result is not None for s in w.unit):
                        w.unit, w.current = None, None
                        give(w)
            now = time.time()
            if now - printer.last > 60:  # a sign of life while the lines wait for an earlier, longer test
                running = ", ".join("%s (%.0fs)" % (w.current[0].label, now - w.current[1])
                                    for w in workers.values() if w.unit and w.current)
                sys.stderr.write("... %d of %d done; running: %s\n" % (
                    sum(1 for s in printer.slots if s.result is not None), len(printer.slots), running))
                sys.stderr.flush()
                printer.last = now
            for fd, w in list(workers.items()):
                if w.unit and w.current and now - w.current[1] > timeout:
                    slot, t0 = w.current
                    w.stop(kill=True)
                    printer.done(slot, failed(slot, now - t0, "timed out after %d s (MAYFLY_TEST_TIMEOUT); its worker "
                                              "was killed" % timeout, w.log_tail()))
                    rest = [s for s in w.unit if s.result is None]
                    del workers[fd]
                    if rest:
                        pending.insert(0, (rest, False))
                        cost[id(pending[0])] = 1e9
                    if pending:
                        give(spawn(w.number))
        for w in workers.values():
            w.stop()

    one_phase(parallel, jobs)
    for u in serial:  # each serial module alone, after everything else
        one_phase([u], 1)
    return printer


# ---- a worker: runs what the parent sends, one unit at a time ----

def worker_main(a):
    resfd = int(a.worker)
    log = os.open(a.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    res = os.fdopen(resfd, "w", buffering=1)
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(HERE, "blackbox"))
    import harness  # noqa: E402  (after MAYFLY_BUILD is set)

    def on_term(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)

    held = {"path": None, "mod": None, "ctx": None, "tests": None}
    pos = [0]

    def captured():
        sys.stdout.flush()
        sys.stderr.flush()
        with open(a.log, "rb") as f:
            f.seek(pos[0])
            data = f.read()
        pos[0] += len(data)
        return data.decode(errors="replace")

    def release():
        if held["path"] and hasattr(held["mod"], "teardown"):
            try:
                held["mod"].teardown(held["ctx"])
            except Exception as e:  # noqa: BLE001
                print("teardown of %s failed: %s" % (os.path.basename(held["path"]), e))
        held.update(path=None, mod=None, ctx=None, tests=None)

    def answer(m):
        res.write(json.dumps(m) + "\n")

    def run_bin(s):
        t0 = time.time()
        n = {"passed": 0, "failed": 0}
        lines = []
        try:
            p = subprocess.run([s["path"], VECTORS], capture_output=True, text=True, timeout=600, cwd=ROOT)
        except subprocess.TimeoutExpired:
            answer({"index": s["index"], "failed": 1, "secs": time.time() - t0,
                    "text": "FAIL %s: timed out after 600 s\n" % s["label"]})
            return
        for line in p.stdout.splitlines():
            if line.startswith("PASS "):
                n["passed"] += 1
            elif line.startswith("FAIL "):
                n["failed"] += 1
                lines.append("%s: %s" % (s["label"], line))
            elif not re.match(r"^\d+ passed", line):
                lines.append("%s: %s" % (s["label"], line))
        if p.returncode not in (0, 1) or p.stderr.strip():
            n["failed"] += 1
            lines.append("FAIL %s: exit %d %s" % (s["label"], p.returncode, p.stderr[-2000:]))
        secs = time.time() - t0
        lines.append("unit %s: %d passed, %d failed (%.1fs)" % (s["label"], n["passed"], n["failed"], secs))
        answer(dict(n, index=s["index"], secs=secs, text="\n".join(lines) + "\n"))

    def run_test(s):
        if held["path"] != s["module"]:
            release()
            mod, tests = harness.load_tests(s["module"])
            held.update(path=s["module"], mod=mod, tests=dict(tests))
            if hasattr(mod, "setup"):
                held["ctx"] = mod.setup()
        f = held["tests"][s["test"]]
        call = (lambda: f(held["ctx"])) if inspect.signature(f).parameters else f
        status, secs, why, tb = harness.run_test_quietly(call)
        if status == "PASS":
            line = "PASS %s (%.1fs)" % (s["label"], secs)
        elif status == "SKIP":
            line = "SKIP %s: %s" % (s["label"], why)
        else:
            line = "FAIL %s (%.1fs): %s" % (s["label"], secs, why)
        print(line)
        if tb:
            print(tb, end="")
        key = {"PASS": "passed", "SKIP": "skipped", "FAIL": "failed"}[status]
        answer({"index": s["index"], key: 1, "secs": secs, "text": captured()})

    for msg in sys.stdin:
        unit = json.loads(msg)["slots"]
        for s in unit:
            answer({"start": s["index"]})
            try:
                (run_bin if s["kind"] == "bin" else run_test)(s)
            except Exception as e:  # noqa: BLE001  (a setup() that failed: the test fails with its reason)
                import traceback
                print("FAIL %s (0.0s): setup failed: %s" % (s["label"], e))
                traceback.print_exc(limit=4)
                answer({"index": s["index"], "failed": 1, "secs": 0.0, "text": captured()})
                held.update(path=None, mod=None, ctx=None, tests=None)
    release()
    return 0


# ---- main ----

def default_jobs():
    env = os.environ.get("MAYFLY_TEST_JOBS")
    if env:
        return max(1, int(env))
    return max(1, min(8, 3 * (os.cpu_count() or 1)))  # the suite mostly waits on timers: 6 on 2 CPUs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-k", default="", help="only tests whose name (or module's name) contains this")
    ap.add_argument("-j", type=int, default=None, help="workers (default: MAYFLY_TEST_JOBS, else 3 x CPUs, <= 8)")
    ap.add_argument("--list", action="store_true", help="print the tests that would run, in output order")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker_main(a)
    build = os.path.abspath(a.build)
    slots, units = discover(build, a.k)
    if a.list:
        for s in slots:
            print(s.label)
        return 0
    jobs = a.j or default_jobs()
    timeout = float(os.environ.get("MAYFLY_TEST_TIMEOUT", "900"))
    logdir = tempfile.mkdtemp(prefix="mayfly-test-logs-")
    t0 = time.time()
    print("%d tests in %d units, %d workers; worker logs in %s" % (len(slots), len(units), jobs, logdir), flush=True)
    printer = run_pool(slots, units, jobs, build, timeout, logdir)
    took = time.time() - t0
    done = [s for s in slots if s.result is not None]
    # this build's durations, the estimates of the next run's schedule
    try:
        with open(os.path.join(build, "test-durations.json"), "w") as f:
            json.dump({s.label: round(s.result["secs"], 1) for s in done}, f, indent=0, sort_keys=True)
    except OSError:
        pass
    slow = sorted(done, key=lambda s: -s.result["secs"])[:15]
    print("slowest %d of %d (wall %.0f s, %d workers; %.0f s of tests):" % (
        len(slow), len(done), took, jobs, sum(s.result["secs"] for s in done)))
    for s in slow:
        print("  %7.1fs  %s" % (s.result["secs"], s.label))
    n = printer.n
    if n["failed"] == 0:
        subprocess.run(["rm", "-rf", logdir])
    print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % n)
    return 1 if n["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
