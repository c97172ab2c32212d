# SPDX-License-Identifier: Apache-2.0
"""report.html (issue 15): the page the agent writes next to status.json and the one `mayfly report` renders from S3,
for a demo-like run on two (fake) GPUs and for a spot-interrupted run, rendered by headless Chromium (a screenshot,
and the DOM checked for the plot paths, the timeline and the log tails) and validated by tidy; a 12-hour run sampled
every 5 s on 8 GPUs stays under 300 KB. One fake cloud (g5.xlarge, spot, SigV4 checking on) for the whole file."""
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time

from harness import ROOT, Cloud, check, mayfly, out
from jobrun import BUCKET, JobRun, render_checked, upload_source

SPOT_SH = """#!/bin/bash
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
echo "training <b>&amp; step 1"
trap 'echo "got SIGTERM, checkpointing"; mkdir -p "$MAYFLY_CHECKPOINT_DIR"; echo saved > "$MAYFLY_CHECKPOINT_DIR/ckpt.txt"; exit 143' TERM
while true; do sleep 0.2; done
"""


def setup():
    cloud = Cloud(extra=["--instance-type", "g5.xlarge"]).__enter__()
    upload_source(cloud, "src/demo.tar.gz", tree=os.path.join(ROOT, "examples", "experiment"))
    upload_source(cloud, "src/spot.tar.gz", scripts={"spot.sh": SPOT_SH})
    return {"cloud": cloud, "dir": tempfile.mkdtemp(prefix="mayfly-report-test-")}


def teardown(ctx):
    ctx["cloud"].__exit__(None, None, None)
    shutil.rmtree(ctx["dir"], ignore_errors=True)


def dom_checks(dom, what, want_plots, experiments, tails):
    """The DOM Chromium built: plot paths drawn (want_plots None: not checked), timeline bars, log tails, nothing
    executable."""
    for g in range(want_plots or 0):
        m = re.search(r'<path class="util" id="gpu-%d-util" d="([^"]*)"' % g, dom)
        check(m and len(re.findall(r"-?\d+", m.group(1))) >= 4, "%s: GPU %d utilisation path missing or empty" % (what, g))
        check(re.search(r'<path class="mem" id="gpu-%d-mem" d="M' % g, dom), "%s: GPU %d memory path" % (what, g))
    check(want_plots is None or dom.count('class="gpu-plot"') == want_plots,
          "%s: %d plots, want %s" % (what, dom.count('class="gpu-plot"'), want_plots))
    check('<svg id="timeline"' in dom, what + ": no timeline")
    for e in experiments:
        check(re.search(r'<rect class="bar st-[a-z]+" [^>]*data-experiment="%s"' % re.escape(e), dom),
              "%s: no timeline bar for %s" % (what, e))
    for tail_id, text in tails.items():
        m = re.search(r'<pre class="tail" id="%s">(.*?)</pre>' % re.escape(tail_id), dom, re.S)
        check(m and text in m.group(1), "%s: tail %s lacks %r: %r" % (what, tail_id, text, m and m.group(1)[-300:]))
    check("<script" not in dom.lower(), what + ": a script element in the page")


def check_page(ctx, html, name, plots, experiments, tails):
    dom = render_checked(ctx["dir"], html, name)
    dom_checks(dom, name, plots, experiments, tails)
    return dom


def running_report(ctx, r):
    """While the second experiment runs, mayfly report renders the run from its live log and metrics chunks."""
    deadline = time.time() + 60
    st = None
    while time.time() < deadline:
        st = r.status()
        if st and st["experiments"][1]["status"] == "running" and st["experiments"][1]["start"]:
            break
        time.sleep(0.5)
    check(st and st["experiments"][1]["status"] == "running", "the second experiment never ran")
    time.sleep(3)  # a live chunk of it (log_interval 5 s in the example job is 2 s here)
    path = os.path.join(ctx["dir"], "demo-running.html")
    p = mayfly("report", "s3://%s/%s" % (BUCKET, r.prefix()), "-o", path, env=ctx["cloud"].admin_env())
    check(p.returncode == 0, out(p))
    page = open(path, "rb").read()
    check(b'id="outcome">running<' in page, "not a running run's page")
    dom = check_page(ctx, page, "demo-running", None, ["baseline", "wider"],
                     {"tail-baseline-stdout": "done: outputs/baseline-model.txt", "tail-wider-stdout": "step "})
    check('<rect class="bar st-running" ' in dom, "the running experiment is not drawn as running")


def test_demo_run_report_in_chromium(ctx):
    cloud = ctx["cloud"]
    job = json.load(open(os.path.join(ROOT, "examples", "job.json")))
    job.update(source="s3://%s/src/demo.tar.gz" % BUCKET, results="s3://%s/results/" % BUCKET,
               log_interval=2, experiments=[{"name": "baseline", "command": ["python3", "train.py", "30"]},
                            {"name": "wider", "command": "python3 train.py 30 && echo wider finished"}])
    r = JobRun(cloud, job, gpus=["count=2", "util0=35", "util1=80", "mem_used0=4000000000", "mem_used1=9000000000"])
    stop = threading.Event()

    def vary():  # the GPUs get busier as the run goes on
        i = 0
        while not stop.wait(1):
            i += 1
            r.set_gpus(["count=2", "util0=%d" % (30 + 7 * i % 70), "util1=%d" % (95 - 5 * i % 40),
                        "mem_used0=%d" % (4000000000 + 250000000 * i), "mem_used1=9000000000"])
    threading.Thread(target=vary, daemon=True).start()
    try:
        r.start()
        running_report(ctx, r)
        rc = r.wait(timeout=180)
    finally:
        stop.set()
        r.close()
    check(rc == 0, "run failed: %s" % r.stderr[-3000:])
    st = r.status()
    check(st["outcome"] == "succeeded", json.dumps(st)[:2000])
    inst = st["cost"]["instances"][0]
    check(inst["price_source"] == "ec2:DescribeSpotPriceHistory" and inst["lifecycle"] == "spot" and
          "total" in st["cost"] and inst["seconds"] > 0, json.dumps(st["cost"]))
    tails = {"tail-baseline-stdout": "done: outputs/baseline-model.txt", "tail-wider-stdout": "wider finished"}
    agent_page = r.get("report.html")
    check(b"Written by the agent on " + cloud.info["instance_id"].encode() in agent_page, "not the agent's page")
    dom = check_page(ctx, agent_page, "demo-agent", 2, ["baseline", "wider"], tails)
    check('href="logs/baseline/stdout.log"' in dom and 'href="outputs/outputs/wider-model.txt"' in dom,
          "the agent's page lacks relative links to the logs and outputs")
    # the same page from a laptop: admin keys, rendered from S3, links presigned
    html_path = os.path.join(ctx["dir"], "demo-laptop.html")
    p = mayfly("report", "s3://%s/results/demo/" % BUCKET, "-o", html_path, env=cloud.admin_env())
    check(p.returncode == 0 and os.stat(html_path).st_mode & 0o777 == 0o600, out(p))
    dom = check_page(ctx, open(html_path, "rb").read(), "demo-laptop", 2, ["baseline", "wider"], tails)
    check(re.search(r'href="http://127\.0\.0\.1:\d+/mayfly-test/results/demo/[^"]+/outputs/outputs/baseline-model\.txt'
                    r'\?X-Amz-Algorithm=AWS4-HMAC-SHA256&amp;[^"]*X-Amz-Signature=', dom),
          "mayfly report's links are not presigned")
    # mayfly status points at it
    p = mayfly("status", "s3://%s/results/demo/" % BUCKET, env=cloud.admin_env())
    check(p.returncode == 0 and re.search(r"report:   http://\S+/report\.html\?X-Amz-Algorithm=\S+X-Amz-Signature=",
                                          out(p)), out(p))
    check("cost:     $" in out(p), out(p))


def test_spot_interrupted_run_report_in_chromium(ctx):
    cloud = ctx["cloud"]
    r = JobRun(cloud, {"name": "spotty", "source": "s3://%s/src/spot.tar.gz" % BUCKET,
                       "experiments": [{"name": "spot", "command": ["./spot.sh"]}],
                       "checkpoint": {"path": "ckpt", "interval": 600}})
    r.start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline and "spot resume=0" not in r.runs_txt():
            time.sleep(0.2)
        check(r.runs_txt(), "experiment did not start")
        cloud.control("POST", "/spot", {"in": 40})
        deadline = time.time() + 40
        page = b""
        while time.time() < deadline:
            st = r.status()
            if st and st["outcome"] == "interrupted":
                page = r.get("report.html")
                if b'id="outcome">interrupted<' in page:
                    break
            time.sleep(0.5)
        check(b'id="outcome">interrupted<' in page, "no interrupted report.html before the notice's time")
        check(r.proc.poll() is None, "the agent did not leave the instance to EC2")
        r.proc.send_signal(signal.SIGTERM)
        r.wait(timeout=30)
    finally:
        cloud.control("DELETE", "/spot")
        r.close()
    dom = check_page(ctx, page, "spot-agent", 0, ["spot"], {"tail-spot-stdout": "got SIGTERM, checkpointing"})
    check('<g class="interrupt" id="interruption">' in dom, "the timeline does not mark the interruption")
    check(re.search(r'<rect class="bar st-interrupted" [^>]*data-experiment="spot"', dom), "the bar is not 'interrupted'")
    check("training &lt;b&gt;&amp;amp; step 1" in dom, "the log tail is not shown escaped")
    check("No GPU samples" in dom, "a run without GPUs should say so")


def _twelve_hours(gpus=8):
    t0 = 1767225600  # 2026-01-01T00:00:00Z
    lines = []
    for i in range(12 * 3600 // 5):
        t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 5 * i))
        devs = [{"name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-%08d" % g, "memory_total_mib": 40960,
                 "memory_used_mib": 20000 + (i * 7 + g * 13) % 15000, "util": min(100, 60 + (i * 31 + g * 17) % 41)}
                for g in range(gpus)]
        lines.append(json.dumps({"time": t, "gpu": {"count": gpus, "driver": "550.54.15", "source": "nvml",
                                                    "devices": devs}}, separators=(",", ":")))
    status = {"name": "long", "run_id": "i-0123456789abcdef0-20260101T000000Z", "outcome": "succeeded", "phase": "SHIP",
              "results": "s3://%s/results/long/i-0123456789abcdef0-20260101T000000Z/" % BUCKET,
              "started": "2026-01-01T00:00:00Z", "updated": "2026-01-01T12:00:05Z",
              "instance": {"id": "i-0123456789abcdef0", "type": "p4d.24xlarge", "region": "us-east-1",
                           "availability_zone": "us-east-1a", "ami_id": "ami-1", "lifecycle": "on-demand"},
              "experiments": [{"name": "pretrain", "command": ["python", "train.py"], "status": "done",
                               "start": "2026-01-01T00:01:00Z", "end": "2026-01-01T11:59:00Z", "exit_code": 0,
                               "signal": None, "reason": "exit", "attempts": 1}],
              "cost": {"currency": "USD", "total": 393.2, "covers": "EC2 instance time only",
                       "instances": [{"id": "i-0123456789abcdef0", "type": "p4d.24xlarge", "lifecycle": "on-demand",
                                      "since": "2026-01-01T00:00:00Z", "until": "2026-01-01T12:00:05Z",
                                      "seconds": 43205, "hourly_price": 32.7726, "price_source": "pricing:GetProducts",
                                      "price_as_of": "2026-01-01T12:00:05Z", "cost": 393.3}]},
              "exit_action": "terminate", "mayfly_version": "0.1.0"}
    return status, "\n".join(lines) + "\n"


def test_twelve_hour_run_report_under_300_kb(ctx):
    cloud = ctx["cloud"]
    status, metrics = _twelve_hours()
    s3 = cloud.boto("s3")
    pre = "results/long/%s/" % status["run_id"]
    s3.put_object(Bucket=BUCKET, Key=pre + "status.json", Body=json.dumps(status).encode())
    s3.put_object(Bucket=BUCKET, Key=pre + "metrics.jsonl", Body=metrics.encode())
    s3.put_object(Bucket=BUCKET, Key=pre + "logs/pretrain/stdout.log",
                  Body=b"".join(b"step %d loss %.4f\n" % (i, 1.0 / (i + 1)) for i in range(100000)))
    path = os.path.join(ctx["dir"], "long.html")
    p = mayfly("report", "s3://%s/results/long/" % BUCKET, "-o", path, env=cloud.admin_env())
    check(p.returncode == 0, out(p))
    size = os.path.getsize(path)
    print("12-hour run, 8 GPUs, %d samples: report.html is %d bytes" % (metrics.count("\n"), size))
    check(size < 300 * 1024, "report.html is %d bytes" % size)
    dom = check_page(ctx, open(path, "rb").read(), "long", 8, ["pretrain"], {"tail-pretrain-stdout": "step 99999 loss"})
    check('id="cost-total">$393.20 USD' in dom, "cost total not shown")
