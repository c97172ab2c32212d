#!/usr/bin/env python3
"""Runs the scenarios of tests/vm/test_vm.py (each test_* function: one boot of the simulated EC2 instance).
One PASS/FAIL/SKIP line per scenario with its wall time; last line: 'N passed, N failed, N skipped'."""
import argparse
import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback

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
    spec = importlib.util.spec_from_file_location("test_vm", os.path.join(HERE, "test_vm.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tests = [(n, f) for n, f in inspect.getmembers(mod, inspect.isfunction)
             if n.startswith("test_") and f.__module__ == mod.__name__]
    tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
    want = [k for k in a.k.split(",") if k]
    tests = [(n, f) for n, f in tests if not want or any(k in n[len("test_"):] for k in want)]
    passed = failed = skipped = 0
    for n, f in tests:
        label = "test_vm.%s" % n
        print("RUN  %s" % label, flush=True)
        t0 = time.time()
        try:
            f()
            passed += 1
            print("PASS %s (%.1fs)" % (label, time.time() - t0), flush=True)
        except harness.Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (label, e), flush=True)
        except Exception as e:  # noqa: BLE001
            failed += 1
            print("FAIL %s (%.1fs): %s" % (label, time.time() - t0, e), flush=True)
            traceback.print_exc(limit=3)
    print("vm scenarios took %.0f s" % (time.time() - t_all))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
