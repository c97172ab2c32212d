# SPDX-License-Identifier: Apache-2.0
"""S3 stores that bend AWS's rules on conditional writes (Ceph RGW 16.2 compares If-Match without quotes; others
refuse conditional writes altogether), played by the fake cloud's fault rules: a store that refuses every
conditional PUT ends a shared run in `error` at once with one clear line and a bounded number of requests (never a
spin, never a false `lease-lost`), its final status and logs still shipped; one that refuses the lease renewals
stops the experiment and ends the run in error; a SIGTERM at any moment is honoured, with no ledger request past a
second after it; a refusal that a read contradicts once is retried in the other If-Match form and the run goes on."""
import json
import os
import signal
import time

from harness import check, mayfly
from test_run import with_run

BENT = "this S3 store refuses conditional writes that AWS accepts"


def _refuse(header, path=None):
    rule = {"method": "PUT", "header": header, "status": 412, "code": "PreconditionFailed",
            "message": "At least one of the pre-conditions you specified did not hold", "count": -1}
    if path:
        rule["path_contains"] = path
    return rule


def _agent_log(r):
    p = os.path.join(r.dir, "logs", "agent.log")
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def _ledger_requests(r):
    """The requests under the run's ledger/ and to its status.json, as the fake cloud logged them (ts, method, path)."""
    log = r.cloud.stats()["moto_log"]
    return [(e["ts"], e["method"], e["path"]) for e in log if "/ledger/" in e["path"] or
            e["path"].endswith("/status.json")]


def _job(name, command, **extra):
    j = {"name": name, "run_id": name + "-1", "lease_ttl": 6, "stop_grace": 2, "ship_timeout": 20,
         "experiments": [{"name": "a", "command": command}]}
    j.update(extra)
    return j


def test_a_store_refusing_every_conditional_write_ends_the_run_in_error_at_once():
    def body(r):
        r.cloud.faults([_refuse("If-Match"), _refuse("If-None-Match")])
        t0 = time.monotonic()
        rc = r.run(timeout=120)
        took = time.monotonic() - t0
        log = _agent_log(r)
        check(rc != 0, "exit 0 on a store that refuses the run's ledger: %s" % r.stderr[-1500:])
        check(took < 60, "the run took %.0f s to give up" % took)
        said = [l for l in r.stderr.splitlines() if BENT in l]
        errors = [l for l in said if l.startswith("mayfly: the results location s3://")]
        # one error; the live status writer's warning (when its write came first) and the run's end may name it too
        check(len(errors) == 1 and len(said) <= 3, "one clear error, not %d lines (%d errors): %r" % (
            len(said), len(errors), r.stderr[-2500:]))
        check("could not be uploaded" not in r.stderr, "refused status writes counted as lost results: %s" %
              r.stderr[-2000:])
        check("lease-lost" not in log and "another instance takes it over" not in log, log[-2000:])
        check("a" not in {l.split()[0] for l in r.runs_txt()}, "the experiment ran: %r" % r.runs_txt())
        st = r.status()  # the final status is written without a condition by the instance that ends the run
        check(st and st["outcome"] == "error" and BENT in st.get("error", ""), json.dumps(st)[:1500])
        reqs = _ledger_requests(r)
        # bounded: each refused write is three tries and three reads (a spin made hundreds a second, for ever)
        check(len(reqs) < 80, "%d ledger/status requests: %r" % (len(reqs), reqs[:60]))
        fired = r.cloud.faults_done(at_least=0)
        check(fired[1] >= 2, "If-None-Match refused %d times: the store's refusal was not met" % fired[1])
    with_run(_job("bent", ["./ok.sh"]), body)


def test_refused_lease_renewals_stop_the_experiment_and_end_the_run_in_error():
    def body(r):
        # claims (If-None-Match) go through; every renewal (If-Match on the lease) is refused while it holds
        r.cloud.faults([_refuse("If-Match", "/ledger/lease/")])
        t0 = time.monotonic()
        rc = r.run(timeout=120)
        took = time.monotonic() - t0
        log = _agent_log(r)
        check(rc != 0, r.stderr[-1500:])
        check(took < 60, "%.0f s" % took)
        check(r.runs_txt() and r.runs_txt()[0].startswith("a "), "the experiment never started: %r" % r.runs_txt())
        check(BENT in log and "lease-lost" not in log, log[-2500:])
        st = r.status()
        check(st and st["outcome"] == "error" and st["experiments"][0]["reason"] == "error", json.dumps(st)[:1500])
        out = r.get("results/renew/%s/logs/a/stdout.log" % st["run_id"]).decode()
        check("finished" not in out, "ran to its end: the stop came too late: %r" % out)
        r.cloud.faults_done()
    with_run(_job("renew", ["./long.sh", "30"]), body)


def test_sigterm_at_any_moment_is_honoured_with_no_ledger_request_a_second_later():
    for delay in (0.3, 1.5):
        def body(r):
            r.cloud.faults([_refuse("If-Match", "/ledger/lease/")])
            r.start()
            time.sleep(delay)
            check(r.proc.poll() is None, "ended before the SIGTERM at %.1f s" % delay)
            r.proc.send_signal(signal.SIGTERM)
            t_term = time.time()
            try:
                r.proc.communicate(timeout=2 + 20 + 10)  # stop_grace + ship_timeout, and room for the exit
            except Exception:  # noqa: BLE001
                r.proc.kill()
                check(False, "still running %.0f s after SIGTERM (sent at %.1f s)" % (time.time() - t_term, delay))
            late = [q for q in _ledger_requests(r) if q[0] > t_term + 1.0 and "/ledger/lease/" in q[2] or
                    q[0] > t_term + 1.0 and "/ledger/exp/" in q[2]]
            check(not late, "claim or lease requests after SIGTERM (at %.1f s): %r" % (delay, late))
            r.cloud.control("DELETE", "/faults")
        with_run(_job("term", ["./long.sh", "30"]), body)


def test_a_refusal_a_read_contradicts_is_retried_in_the_other_form_and_the_run_goes_on():
    def body(r):
        # the first renewal is refused although the lease is still ours: the unquoted form then takes
        r.cloud.faults([dict(_refuse("If-Match", "/ledger/lease/"), count=1)])
        rc = r.run(timeout=120)
        log = _agent_log(r)
        check(rc == 0, r.stderr[-1500:])
        check("compares If-Match without" in log, "the form that took was not said: %s" % log[-2000:])
        check("lease-lost" not in log and BENT not in log, log[-2000:])
        st = r.status()
        check(st and st["outcome"] == "succeeded", json.dumps(st)[:1000])
        r.cloud.faults_done()
    with_run(_job("form", ["./long.sh", "3"]), body)


def test_refused_shared_status_writes_are_counted_and_status_says_stale():
    def body(r):
        # the first status.json (If-None-Match) lands; every later one (If-Match) is refused
        r.cloud.faults([_refuse("If-Match", "/status.json")])
        r.start()
        log = ""
        deadline = time.time() + 60
        while time.time() < deadline and "status.json not updated (" not in log:
            time.sleep(0.5)
            log = _agent_log(r)
        r.proc.send_signal(signal.SIGTERM)
        r.proc.communicate(timeout=60)
        log = _agent_log(r)
        said = [l for l in log.splitlines() if "status.json not updated (" in l]
        check(said and "(1 refused so far)" in said[0], "the refusals were not said: %s" % log[-2000:])
        check(len(said) <= 2, "said at every refusal: %d lines" % len(said))
        check("could not be uploaded" not in log, "refused status writes counted as lost results")
        r.cloud.faults_done()
        # what `mayfly status` makes of a shared status.json that stands still while the heartbeats go on
        s3 = r.cloud.boto("s3")
        pre = "results/stale/stale-1/"
        now = time.time()
        old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120))
        s3.put_object(Bucket="mayfly-test", Key=pre + "status.json", Body=json.dumps(
            {"run_id": "stale-1", "outcome": "running", "updated": old, "experiments": []}).encode())
        s3.delete_object(Bucket="mayfly-test", Key=pre + "ledger/end.json")
        s3.put_object(Bucket="mayfly-test", Key=pre + "ledger/instances/i-0beat.json", Body=json.dumps(
            {"instance": "i-0beat", "time": int(now), "phase": "RUN", "ttl": 6}).encode())
        text = mayfly("status", "s3://mayfly-test/" + pre, env=r.cloud.admin_env()).stdout.decode(errors="replace")
        check("alive:" in text and "stale:" in text and "status.json was last written" in text, text[-1500:])
    with_run(_job("stale", ["./long.sh", "60"], log_interval=1), body)
