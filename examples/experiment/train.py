#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A tiny CPU-only 'training' job for the demo: resumes from its checkpoint, logs progress, writes an output."""
import json
import os
import sys
import time

exp = os.environ.get("MAYFLY_EXPERIMENT", "local")
ckdir = os.environ.get("MAYFLY_CHECKPOINT_DIR", "checkpoints")
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
os.makedirs(ckdir, exist_ok=True)
ck = os.path.join(ckdir, exp + ".json")
start = 0
if os.environ.get("MAYFLY_RESUME") == "1" and os.path.exists(ck):
    start = json.load(open(ck))["step"]
    print("resuming %s from step %d" % (exp, start), flush=True)
loss = 1.0
for step in range(start, steps):
    loss *= 0.8
    print("\rstep %d/%d loss %.4f" % (step + 1, steps, loss), end="", flush=True)
    with open(ck + ".tmp", "w") as f:
        json.dump({"step": step + 1, "loss": loss}, f)
    os.replace(ck + ".tmp", ck)
    time.sleep(0.2)
print("", flush=True)
os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", exp + "-model.txt"), "w") as f:
    f.write("experiment %s final loss %.6f\n" % (exp, loss))
print("done: outputs/%s-model.txt" % exp, flush=True)
