#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""On a GPU machine with moto: a whole `mayfly run` whose experiment is a real CUDA load, then an idle one.
Prints the GPU inventory from status.json, the peak utilisation in metrics.jsonl, and the idle outcome."""
import io
import json
import os
import shutil
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
import test_run  # noqa: E402

burn = os.path.join(ROOT, "build", "device", "burn")
test_run.SCRIPTS["burn.sh"] = "#!/bin/sh\n./burn \"$1\"\n"
orig = test_run.make_archive


def make_archive(path, extra=None):
    data = open(burn, "rb").read()
    ti = tarfile.TarInfo("burn")
    ti.size = len(data)
    ti.mode = 0o755
    orig(path, (extra or []) + [(ti, data)])


test_run.make_archive = make_archive
r = test_run.Run({"experiments": [{"name": "cuda", "command": ["./burn.sh", "20"]},
                                  {"name": "idle", "command": ["./long.sh", "120"]}],
                  "gpu": {"require": True, "min_count": 1, "wait_seconds": 30, "idle_minutes": 0.25},
                  "continue_on_failure": True, "stop_grace": 2, "user": "root"})
try:
    r.env.pop("MAYFLY_NVML_LIBRARY", None)
    r.env["LD_LIBRARY_PATH"] = os.environ.get("LD_LIBRARY_PATH", "")
    rc = r.run(timeout=400)
    st = r.status()
    print("rc", rc, "outcome", st and st["outcome"])
    print("gpu", json.dumps(st and st["gpu"]))
    for e in (st or {}).get("experiments", []):
        print("experiment", e["name"], "exit", e["exit_code"], "signal", e["signal"], "reason", e["reason"])
    m = r.get("results/t/%s/metrics.jsonl" % st["run_id"]).decode().splitlines()
    utils = [max((d.get("util") or 0) for d in json.loads(l)["gpu"]["devices"]) for l in m]
    print("metrics samples", len(m), "peak util", max(utils) if utils else None, "series", utils)
    print(r.get("results/t/%s/logs/cuda/stdout.log" % st["run_id"]).decode())
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "gpu_job_status.json"), "w") as f:
            json.dump(st, f, indent=1)
finally:
    r.close()
