#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs every test: the C unit binaries (one PASS/FAIL line per case) and the black-box suites in
tests/blackbox (each test_* function). Last line: 'N passed, N failed, N skipped'."""
import argparse
import glob
import inspect
import os
import re
import subprocess
import sys

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
    n = {"passed": 0, "failed": 0, "skipped": 0}

    for binary in sorted(glob.glob(os.path.join(a.build, "tests", "test_*"))):
        name = os.path.basename(binary)
        if a.k and a.k not in name:
            continue
        p = subprocess.run([binary, os.path.join(os.path.abspath(a.shared), "aws", "vectors")],
                           capture_output=True, text=True, timeout=600)
        for line in p.stdout.splitlines():
            if line.startswith("PASS "):
                n["passed"] += 1
            elif line.startswith("FAIL "):
                n["failed"] += 1
                print("%s: %s" % (name, line), flush=True)
            elif not re.match(r"^\d+ passed", line):
                print("%s: %s" % (name, line), flush=True)
        if p.returncode not in (0, 1) or p.stderr.strip():
            n["failed"] += 1
            print("FAIL %s: exit %d %s" % (name, p.returncode, p.stderr[-2000:]), flush=True)
        print("unit %s: done" % name, flush=True)

    import harness  # noqa: E402  (after MAYFLY_BUILD is set)
    for path in sorted(glob.glob(os.path.join(HERE, "blackbox", "test_*.py"))):
        mod, tests = harness.load_tests(path)
        tests = [(t, f) for t, f in tests if not a.k or a.k in t or a.k in mod.__name__]
        if not tests:
            continue
        ctx = mod.setup() if hasattr(mod, "setup") else None
        try:
            for t, f in tests:
                call = (lambda f=f: f(ctx)) if inspect.signature(f).parameters else f
                harness.run_test("%s.%s" % (mod.__name__, t), call, n)
        finally:
            if hasattr(mod, "teardown"):
                mod.teardown(ctx)
    print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % n)
    return 1 if n["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
