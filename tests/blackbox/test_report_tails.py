# SPDX-License-Identifier: Apache-2.0
"""report.html and cp (issue 23, parts 4 and 5), through one run of two experiments on a fake cloud: a tqdm-style
experiment (60 lines, then 210 KiB of '\\r' progress on one line, then 5 lines) whose tail shows its last 40 lines in
the agent's page, in `mayfly report`'s while it runs (live chunks) and after (ranged GETs); an experiment that writes
$MAYFLY_METRICS_FILE, whose loss curve is an SVG in both pages (Chromium screenshot); and `cp --recursive` of the
finished run's folder."""
import json
import os
import re
import shutil
import tempfile
import time

from harness import Cloud, check, mayfly, out
from jobrun import BUCKET, JobRun, render_checked, upload_source

TOGETHER = True

TQDM_SH = r"""#!/bin/bash
python3 - <<'EOF'
import sys
for i in range(60):
    print("\x1b[32mepoch %d\x1b[0m loss %.3f" % (i, 1.0 / (i + 1)))
n, i = 0, 0
while n < 210 * 1024:
    s = "\r%3d%%|%-20s| %d/4000 [00:%02d<00:10, 399.99it/s]" % (i * 100 // 4000, "#" * (i * 20 // 4000), i, i % 60)
    sys.stdout.write(s)
    n += len(s)
    i += 1
sys.stdout.write("\r100%|" + "#" * 20 + "| 4000/4000 [00:10<00:00, 399.99it/s]\n")
for i in range(5):
    print("eval %d ok" % i)
sys.stdout.flush()
EOF
for i in $(seq 600); do [ -e go ] && exit 0; sleep 0.1; done
exit 0
"""

TRAIN_SH = r"""#!/bin/bash
python3 - <<'EOF'
import json, math, os
p = os.environ["MAYFLY_METRICS_FILE"]
with open(p, "a") as f:
    f.write("not json\n")
    for s in range(400):
        f.write(json.dumps({"step": 10 * s, "loss": 2.0 * math.exp(-s / 80.0) + 0.1, "lr": 0.001}) + "\n")
    f.write('{"step": 4000, "loss": NaN}\n')
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/sub/model.txt", "w").write("model\n")
open("outputs/final.txt", "w").write("final\n")
d = os.environ["MAYFLY_CHECKPOINT_DIR"]
os.makedirs(d, exist_ok=True)
open(os.path.join(d, "ck.txt"), "w").write("ck\n")
print("metrics written to", p)
EOF
"""


def setup():
    cloud = Cloud(extra=["--instance-type", "g5.xlarge"]).__enter__()
    upload_source(cloud, "src/tails.tar.gz", scripts={"tqdm.sh": TQDM_SH, "train.sh": TRAIN_SH})
    ctx = {"cloud": cloud, "dir": tempfile.mkdtemp(prefix="mayfly-tails-test-")}
    r = JobRun(cloud, {"name": "tails", "source": "s3://%s/src/tails.tar.gz" % BUCKET,
                       "experiments": [{"name": "bar", "command": ["./tqdm.sh"]},
                                       {"name": "train", "command": ["./train.sh"]}],
                       "outputs": ["outputs/*"], "checkpoint": {"path": "ckpt", "interval": 600}})
    ctx["run"] = r
    r.start()
    try:
        ctx["live"] = live_report(ctx, r)
        open(os.path.join(r.work, "go"), "w").close()
        ctx["rc"] = r.wait(timeout=180)
        ctx["status"] = r.status()
        ctx["prefix"] = r.prefix()
        ctx["agent_page"] = r.get("report.html")
    finally:
        r.close()
    return ctx


def teardown(ctx):
    ctx["cloud"].__exit__(None, None, None)
    shutil.rmtree(ctx["dir"], ignore_errors=True)


def live_report(ctx, r):
    """`mayfly report` while the tqdm experiment waits for its go: its tail from the live chunks."""
    deadline = time.time() + 60
    page = b""
    while time.time() < deadline:
        st = r.status()
        if st and st["experiments"][0]["status"] == "running":
            path = os.path.join(ctx["dir"], "live.html")
            p = mayfly("report", "s3://%s/%s" % (BUCKET, r.prefix()), "-o", path, env=ctx["cloud"].admin_env())
            check(p.returncode == 0, out(p))
            page = open(path, "rb").read()
            if b"eval 4 ok" in page:
                break
        time.sleep(1)
    return page


def tail_of(html, tail_id):
    m = re.search(r'<pre class="tail" id="%s">(.*?)</pre>' % re.escape(tail_id), html, re.S)
    check(m, "no tail %s" % tail_id)
    return m.group(1)


def check_bar_tail(html, what):
    """The tqdm log's tail: its last 40 lines as a terminal shows them."""
    text = html.decode() if isinstance(html, bytes) else html
    lines = tail_of(text, "tail-bar-stdout").rstrip("\n").split("\n")
    want = ["epoch %d loss %.3f" % (i, 1.0 / (i + 1)) for i in range(26, 60)]
    want += ["100%|" + "#" * 20 + "| 4000/4000 [00:10&lt;00:00, 399.99it/s]"] + ["eval %d ok" % i for i in range(5)]
    check(lines == want, "%s: the tail is not the last 40 lines:\n%s" % (what, "\n".join(lines[:8])))
    check("(last 40 lines)" in text, what + ": the heading does not say 40 lines")


def test_tqdm_tail_shows_the_last_40_lines(ctx):
    check(ctx["rc"] == 0 and ctx["status"]["outcome"] == "succeeded", json.dumps(ctx["status"])[:1500])
    check(ctx["live"], "no page while the experiment ran")
    check(b'id="outcome">running<' in ctx["live"], "the live page is not a running run's")
    check_bar_tail(ctx["live"], "mayfly report while running (live chunks)")
    check_bar_tail(ctx["agent_page"], "the agent's page")
    path = os.path.join(ctx["dir"], "laptop.html")
    p = mayfly("report", "s3://%s/results/tails/" % BUCKET, "-o", path, env=ctx["cloud"].admin_env())
    check(p.returncode == 0, out(p))
    check_bar_tail(open(path, "rb").read(), "mayfly report after the run")


def check_loss_svg(ctx, html, name):
    dom = render_checked(ctx["dir"], html, name)
    check('<section id="xmetrics">' in dom and "<h3>train</h3>" in dom, name + ": no experiment metrics section")
    m = re.search(r'<svg class="xm-plot" id="xm-0-0" [^>]*data-key="loss"', dom)
    check(m, name + ": no loss plot")
    line = re.search(r'<path class="xm" id="xm-0-0-line" d="M(\d+) (\d+)l([^"]*)"', dom)
    check(line, name + ": the loss line is empty")
    ys = [int(line.group(2))]
    steps = re.findall(r"(\d+) ?(-?\d+)", line.group(3))
    for _, dy in steps:
        ys.append(ys[-1] + int(dy))
    check(len(ys) >= 100 and len(ys) <= 301, "%s: %d points" % (name, len(ys)))
    check(ys[-1] > ys[0] + 50, "%s: the loss does not fall (y %d → %d)" % (name, ys[0], ys[-1]))
    check(re.search(r'data-key="lr"', dom), name + ": no lr plot")
    check("400 points" in dom and "2 lines skipped" in dom, name + ": points or skipped lines not counted")
    check("Content-Security-Policy" in dom and "<script" not in dom.lower(), name + ": a script")
    check("phase</th><td>DONE<" in dom, name + ": a finished run's phase is not DONE")


def test_metrics_file_plotted(ctx):
    st = ctx["status"]
    check(ctx["rc"] == 0 and st["outcome"] == "succeeded", json.dumps(st)[:1500])
    s3 = ctx["cloud"].boto("s3")
    body = s3.get_object(Bucket=BUCKET, Key=ctx["prefix"] + "logs/train/metrics.jsonl")["Body"].read().decode()
    check(body.startswith("not json\n") and body.count("\n") == 402, body[:300])
    check_loss_svg(ctx, ctx["agent_page"], "metrics-agent")
    path = os.path.join(ctx["dir"], "metrics-laptop.html")
    p = mayfly("report", "s3://%s/results/tails/" % BUCKET, "-o", path, env=ctx["cloud"].admin_env())
    check(p.returncode == 0, out(p))
    check_loss_svg(ctx, open(path, "rb").read(), "metrics-laptop")


def files_under(d):
    return sorted(os.path.relpath(os.path.join(a, f), d) for a, _, fs in os.walk(d) for f in fs)


def test_cp_recursive_of_a_run(ctx):
    s3 = ctx["cloud"].boto("s3")
    keys = [o["Key"][len(ctx["prefix"]):] for o in
            s3.list_objects_v2(Bucket=BUCKET, Prefix=ctx["prefix"])["Contents"]]
    check(any(k.startswith("live/") for k in keys) and any(k.startswith("checkpoint/") for k in keys) and
          "outputs/outputs/sub/model.txt" in keys, "the run lacks what the test leaves out: %r" % keys)
    dst = os.path.join(ctx["dir"], "copy")
    p = mayfly("cp", "--recursive", "--quiet", "s3://%s/%s" % (BUCKET, ctx["prefix"]), dst,
               env=ctx["cloud"].admin_env())
    check(p.returncode == 0, out(p))
    got = files_under(dst)
    check(not [f for f in got if f.split("/")[0] in ("ledger", "live", "checkpoint")], "left in: %r" % got)
    for f in ("status.json", "report.html", "logs/bar/stdout.log", "logs/train/metrics.jsonl", "logs/agent.log",
              "outputs/sub/model.txt", "outputs/final.txt") + (("metrics.jsonl",) if "metrics.jsonl" in keys else ()):
        check(f in got, "%s missing from the copy: %r" % (f, got))
    check(open(os.path.join(dst, "outputs/sub/model.txt")).read() == "model\n", "output content")
    check(not os.path.exists(os.path.join(dst, "outputs", "outputs")), "outputs/outputs/ in the copy")
    alld = os.path.join(ctx["dir"], "copy-all")
    p = mayfly("cp", "--recursive", "--all", "--quiet", "s3://%s/%s" % (BUCKET, ctx["prefix"]), alld,
               env=ctx["cloud"].admin_env())
    check(p.returncode == 0, out(p))
    got = files_under(alld)
    check("checkpoint/train/ck.txt" in got and any(f.startswith("live/") for f in got), "--all: %r" % got)
    p = mayfly("cp", "--help")
    check(p.returncode == 0 and "--all" in p.stdout.decode(), out(p))
