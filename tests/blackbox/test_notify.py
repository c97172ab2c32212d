# SPDX-License-Identifier: Apache-2.0
"""Notifications (issue 15): the job's `notify` key checked like the rest of the spec; at the end of a run an SNS
Publish (read back from moto through an SQS subscription) and an HTTPS webhook POST (received by a local server whose
self-signed CA the agent trusts through AWS_CA_BUNDLE), sent once; a hanging or failing webhook does not hold up the
exit action; a spot interruption that ends the run is notified."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time

from harness import ROOT, Cloud, check, mayfly, out
from jobrun import BUCKET, JobRun, upload_source

sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
from webhook import HangingWebhook, Webhook, make_ca  # noqa: E402

NOTIFY_DEADLINE_S = 10  # include/run/notify.h

SCRIPTS = {
    "ok.sh": "#!/bin/sh\necho \"hello from $MAYFLY_EXPERIMENT\"\n",
    "spot.sh": """#!/bin/bash
echo "$MAYFLY_EXPERIMENT resume=${MAYFLY_RESUME:-0}" >> runs.txt
trap 'echo "got SIGTERM"; exit 143' TERM
while true; do sleep 0.2; done
""",
}


def setup():
    cloud = Cloud().__enter__()
    upload_source(cloud, "src/notify.tar.gz", scripts=SCRIPTS)
    sns, sqs, iam = cloud.boto("sns"), cloud.boto("sqs"), cloud.boto("iam")
    topic = sns.create_topic(Name="mayfly-runs")["TopicArn"]
    queue = sqs.create_queue(QueueName="mayfly-runs")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    # docs/iam.md: the instance role may publish to the job's topic. moto 5.2.1 checks actions other than S3's
    # against the resource "*" only, so the statement names "*" here where docs/iam.md names the topic's ARN.
    iam.put_role_policy(RoleName=cloud.info["role"], PolicyName="mayfly-notify", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]}))
    d = tempfile.mkdtemp(prefix="mayfly-notify-test-")
    ca, cert, key = make_ca(d)
    return {"cloud": cloud, "topic": topic, "queue": queue, "dir": d, "ca": ca, "cert": cert, "key": key}


def teardown(ctx):
    ctx["cloud"].__exit__(None, None, None)
    shutil.rmtree(ctx["dir"], ignore_errors=True)


def messages(ctx, wait=1):
    """SNS notifications that reached the queue since the last call (the SNS JSON envelope of each)."""
    sqs = ctx["cloud"].boto("sqs")
    got = []
    while True:
        r = sqs.receive_message(QueueUrl=ctx["queue"], MaxNumberOfMessages=10, WaitTimeSeconds=wait)
        if not r.get("Messages"):
            return got
        for m in r["Messages"]:
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=ctx["queue"], ReceiptHandle=m["ReceiptHandle"])
        wait = 0


def job(name, notify, experiments=None, **kw):
    j = {"name": name, "source": "s3://%s/src/notify.tar.gz" % BUCKET, "notify": notify,
         "experiments": experiments or [{"name": "hello", "command": ["./ok.sh"]}]}
    j.update(kw)
    return j


def moto_times(ctx, service=None, action=None):
    log = ctx["cloud"].stats()["moto_log"]
    return [e["ts"] for e in log if (not service or e["service"] == service) and (not action or e["action"] == action)]


def test_sns_and_webhook_when_the_run_ends(ctx):
    cloud = ctx["cloud"]
    with Webhook(ctx["cert"], ctx["key"]) as hook:
        r = JobRun(cloud, job("notes", {"sns_topic": ctx["topic"], "webhook": hook.url}),
                   env={"AWS_CA_BUNDLE": ctx["ca"]})
        try:
            rc = r.run()
            check(rc == 0, r.stderr[-3000:])
            check("notify: SNS topic %s: published (message id " % ctx["topic"] in r.stderr, r.stderr[-2000:])
            check("notify: webhook https://127.0.0.1:%s/…: delivered" % hook.url.split(":")[2].split("/")[0]
                  in r.stderr, r.stderr[-2000:])
            msgs = messages(ctx)
            check(len(msgs) == 1, "want one SNS message, got %r" % msgs)
            m = msgs[0]
            check(m["Subject"] == "mayfly: notes succeeded", m["Subject"])
            text = m["Message"]
            for want in ("mayfly: notes succeeded", "Run: %s-" % cloud.info["instance_id"], "Duration: ",
                         "Experiments (1): hello exit 0", "Cost: ", "/report.html?X-Amz-Algorithm=",
                         "Results: s3://%s/results/notes/" % BUCKET, "Exit action: terminate"):
                check(want in text, "SNS message lacks %r:\n%s" % (want, text))
            check(m["MessageAttributes"]["mayfly.outcome"]["Value"] == "succeeded", repr(m["MessageAttributes"]))
            check(len(hook.requests) == 1, "want one webhook POST, got %d" % len(hook.requests))
            req = hook.requests[0]
            check(req["path"] == "/services/T000/B000/secret-token" and
                  req["headers"].get("Content-Type") == "application/json", repr(req["headers"]))
            body = hook.bodies()[0]
            check(body["text"] == text, "the webhook's text differs from the SNS message")
            s = body["mayfly"]
            check(s["event"] == "finished" and s["outcome"] == "succeeded" and s["name"] == "notes" and
                  s["experiments"][0]["exit_code"] == 0 and "report.html?" in s["report_url"] and
                  s["duration_seconds"] >= 0, json.dumps(s)[:1500])
            # the webhook URL is a secret: nowhere in the logs or the status
            for what, blob in (("stderr", r.stderr.encode()), ("agent.log", r.get("logs/agent.log")),
                               ("status.json", r.get("status.json"))):
                check(b"secret-token" not in blob, "the webhook URL leaked into " + what)
            # an agent started again on the finished run (instance still up) does its exit action, not a second message
            rc = r.run()
            check(rc == 0 and "notify: the finished notification of run" in r.stderr and "was sent before" in r.stderr,
                  r.stderr[-2000:])
            check(not messages(ctx, wait=0) and len(hook.requests) == 1, "notified twice")
        finally:
            r.close()


def test_failing_webhook_does_not_delay_termination(ctx):
    cloud = ctx["cloud"]
    with HangingWebhook() as hang:
        r = JobRun(cloud, job("hangs", {"sns_topic": ctx["topic"], "webhook": hang.url}),
                   env={"AWS_CA_BUNDLE": ctx["ca"]})
        try:
            t0 = time.time()
            rc = r.run()
            took = time.time() - t0
            check(rc == 0, r.stderr[-3000:])
            check("notify: webhook not delivered: https://127.0.0.1:" in r.stderr, r.stderr[-2000:])
            check("notify: SNS topic %s: published" % ctx["topic"] in r.stderr, "SNS waited for the webhook")
            check(len(messages(ctx)) == 1, "the SNS message did not arrive")
            published = max(moto_times(ctx, "sns", "Publish"))
            terminated = max(moto_times(ctx, "ec2", "TerminateInstances"))
            held = terminated - published
            print("a hanging webhook held the exit action %.1fs (bound %ds); the run took %.1fs" %
                  (held, NOTIFY_DEADLINE_S, took))
            check(0 <= held <= NOTIFY_DEADLINE_S + 1, "TerminateInstances came %.1fs after the notification" % held)
        finally:
            r.close()
    with Webhook(ctx["cert"], ctx["key"], status=500) as bad:
        r = JobRun(cloud, job("refused", {"webhook": bad.url}), env={"AWS_CA_BUNDLE": ctx["ca"]})
        try:
            rc = r.run()
            check(rc == 0 and "answered HTTP 500: invalid_payload" in r.stderr and
                  "TerminateInstances" in r.stderr, r.stderr[-2000:])
        finally:
            r.close()
    # no AWS_CA_BUNDLE: the self-signed certificate is refused, the run still ends
    with Webhook(ctx["cert"], ctx["key"]) as hook:
        r = JobRun(cloud, job("untrusted", {"webhook": hook.url}))
        try:
            rc = r.run()
            check(rc == 0 and "notify: webhook not delivered" in r.stderr and not hook.requests, r.stderr[-2000:])
        finally:
            r.close()


def test_spot_interruption_is_notified(ctx):
    cloud = ctx["cloud"]
    with Webhook(ctx["cert"], ctx["key"]) as hook:
        r = JobRun(cloud, job("spotted", {"webhook": hook.url}, [{"name": "spot", "command": ["./spot.sh"]}]),
                   env={"AWS_CA_BUNDLE": ctx["ca"]})
        try:
            r.start()
            deadline = time.time() + 30
            while time.time() < deadline and not r.runs_txt():
                time.sleep(0.2)
            check(r.runs_txt(), "experiment did not start")
            cloud.control("POST", "/spot", {"in": 40})
            deadline = time.time() + 40
            while time.time() < deadline and not hook.requests:
                time.sleep(0.3)
            check(hook.requests, "no notification before the notice's time")
            s = hook.bodies()[0]["mayfly"]
            check(s["event"] == "interrupted" and s["outcome"] == "interrupted" and
                  s["interruption"]["action"] == "terminate", json.dumps(s)[:1000])
            check("was interrupted: spot terminate notice for " in hook.bodies()[0]["text"], hook.bodies()[0]["text"])
            check(r.proc.poll() is None, "the agent did not leave the instance to EC2")
            r.proc.send_signal(signal.SIGTERM)
            r.wait(timeout=30)
        finally:
            cloud.control("DELETE", "/spot")
            r.close()


BASE = {"name": "t", "source": "s3://bkt/src/x.tar.gz", "results": "s3://bkt/r/",
        "experiments": [{"name": "a", "command": ["python", "train.py"]}]}
CASES = [
    ({"sns_topic": "arn:aws:sns:us-east-1:123456789012:mayfly-runs"}, None),
    ({"webhook": "https://hooks.slack.com/services/T0/B0/XYZ", "on_interrupt": True}, None),
    ({"sns_topic": "arn:aws:sns:eu-west-1:123456789012:runs.fifo", "webhook": "https://x.example/hook?a=1"}, None),
    ({}, "$.notify: needs sns_topic or webhook"),
    ({"webhook": "http://hooks.slack.com/services/T0/B0/XYZ"}, "$.notify.webhook"),
    ({"webhook": "https://user:pw@example.com/x"}, "$.notify.webhook"),
    ({"webhook": "https://example.com/a b"}, "$.notify.webhook"),
    ({"sns_topic": "arn:aws:sqs:us-east-1:123456789012:q"}, "$.notify.sns_topic"),
    ({"sns_topic": "mayfly-runs"}, "$.notify.sns_topic"),
    ({"email": "me@example.com"}, "$.notify.email: unknown key"),
    ({"webhook": "https://example.com/x", "on_interrupt": "yes"}, "$.notify.on_interrupt"),
    ("https://example.com/x", "$.notify: must be an object"),
]


def test_notify_in_the_job_spec():
    import jsonschema
    schema = json.load(open(os.path.join(ROOT, "docs", "job-schema.json")))
    v = jsonschema.Draft202012Validator(schema)
    d = tempfile.mkdtemp()
    try:
        for i, (notify, err) in enumerate(CASES):
            j = dict(BASE, notify=notify)
            p = os.path.join(d, "j%d.json" % i)
            with open(p, "w") as f:
                json.dump(j, f)
            r = mayfly("check", p)
            schema_errors = list(v.iter_errors(j))
            if err is None:
                check(r.returncode == 0, "case %d rejected: %s" % (i, out(r)))
                check(not schema_errors, "case %d: the schema rejects it: %s" % (i, schema_errors[:1]))
            else:
                check(r.returncode == 2 and err in out(r) and len(out(r).splitlines()) == 1,
                      "case %d: want %r, got %s" % (i, err, out(r)))
                check(schema_errors, "case %d: the schema accepts what mayfly rejects (%s)" % (i, err))
    finally:
        shutil.rmtree(d, ignore_errors=True)
