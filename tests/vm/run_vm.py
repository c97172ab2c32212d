#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs the scenarios of tests/vm/test_vm.py (each test_* function: one boot of the simulated EC2 instance).
One PASS/FAIL/SKIP line per scenario with its wall time; last line: 'N passed, N failed, N skipped'."""
import argparse
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "build"))
    ap.add_argument("-k", default="", help="only scenarios whose name contains this (comma-separated: any of these)")
    a = ap.parse_args()
    os.environ["MAYFLY_BUILD"] = os.path.abspath(a.build)

    def on_term(signum, _frame):  # a CI timeout: unwind, so each scenario kills its qemu and fake cloud
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_term)
    import harness  # noqa: E402  (after MAYFLY_BUILD is set)
    import vmlib  # noqa: E402

    t_all = time.time()
    t0 = time.time()
    print("vm image: %s (%.0f s)" % (vmlib.image(), time.time() - t0), flush=True)
    _, tests = harness.load_tests(os.path.join(HERE, "test_vm.py"))
    want = [k for k in a.k.split(",") if k]
    tests = [(n, f) for n, f in tests if not want or any(k in n[len("test_"):] for k in want)]
    n = {"passed": 0, "failed": 0, "skipped": 0}
    for t, f in tests:
        print("RUN  test_vm.%s" % t, flush=True)
        harness.run_test("test_vm.%s" % t, f, n)
    print("vm scenarios took %.0f s" % (time.time() - t_all))
    print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % n)
    return 1 if n["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
