#!/usr/bin/env python3
"""Runs every test: the C unit binaries (one PASS/FAIL line per case) and the black-box suites in
tests/blackbox (each test_* function). Last line: 'N passed, N failed, N skipped'."""
import argparse
import glob
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "blackbox"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(HERE), "..", "shared"))
    ap.add_argument("-k", default="", help="only tests whose name contains this")
    a = ap.parse_args()
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)
    passed = failed = skipped = 0

    for binary in sorted(glob.glob(os.path.join(a.build, "tests", "test_*"))):
        name = os.path.basename(binary)
        if a.k and a.k not in name:
            continue
        p = subprocess.run([binary, os.path.join(os.path.abspath(a.shared), "aws", "vectors")],
                           capture_output=True, text=True, timeout=600)
        for line in p.stdout.splitlines():
            if line.startswith("PASS "):
                passed += 1
            elif line.startswith("FAIL "):
                failed += 1
                print("%s: %s" % (name, line), flush=True)
            elif not re.match(r"^\d+ passed", line):
                print("%s: %s" % (name, line), flush=True)
        if p.returncode not in (0, 1) or p.stderr.strip():
            failed += 1
            print("FAIL %s: exit %d %s" % (name, p.returncode, p.stderr[-2000:]), flush=True)
        print("unit %s: done" % name, flush=True)

    import harness  # noqa: E402  (after MAYFLY_BUILD is set)
    for path in sorted(glob.glob(os.path.join(HERE, "blackbox", "test_*.py"))):
        spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        tests = [(n, f) for n, f in inspect.getmembers(mod, inspect.isfunction)
                 if n.startswith("test_") and f.__module__ == mod.__name__]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        tests = [(n, f) for n, f in tests if not a.k or a.k in n or a.k in mod.__name__]
        if not tests:
            continue
        ctx = mod.setup() if hasattr(mod, "setup") else None
        try:
            for n, f in tests:
                label = "%s.%s" % (mod.__name__, n)
                t0 = time.time()
                try:
                    f(ctx) if inspect.signature(f).parameters else f()
                    passed += 1
                    print("PASS %s (%.1fs)" % (label, time.time() - t0), flush=True)
                except harness.Skip as e:
                    skipped += 1
                    print("SKIP %s: %s" % (label, e), flush=True)
                except Exception as e:  # noqa: BLE001
                    failed += 1
                    print("FAIL %s (%.1fs): %s" % (label, time.time() - t0, e), flush=True)
                    traceback.print_exc(limit=3)
        finally:
            if hasattr(mod, "teardown"):
                mod.teardown(ctx)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
