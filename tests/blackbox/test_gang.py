# SPDX-License-Identifier: Apache-2.0
"""Gangs through the instance simulator: one experiment with "nodes": 2 on `mayfly launch --instances 2 --spot
--recover`. Each simulated instance has its own private address on loopback (127.<10+worker>.1.x), so the members
really meet at MASTER_ADDR:MASTER_PORT (a port of this worker's own, harness.worker_ports()). gang.sh is a member
that says who it is, meets rank 0 over TCP, counts, and fails on one rank when told; the torch job is a real
data-parallel training with torch.distributed over gloo (gangjob.py)."""
import json
import os
import re
import time

import gangjob

from fleetlib import (BUCKET, SCRIPTS, TTL, agent_log, launch, leftovers, lines, running_of, start_cloud, the_run,
                      wait_no_leftovers, wait_over)
from harness import RUN_USER, check, mayfly, worker_ports

GANG_SH = r"""#!/bin/bash
# gang.sh STEPS SLEEP FAIL_RANK EXIT_CODE: says who it is, meets rank 0 at MASTER_ADDR:MASTER_PORT, then rank
# FAIL_RANK exits EXIT_CODE at once and the others count
echo "member rank=$MAYFLY_NODE_RANK nnodes=$MAYFLY_NNODES ips=$MAYFLY_NODE_IPS master=$MASTER_ADDR:$MASTER_PORT node_rank=$NODE_RANK world=$WORLD_SIZE r=$RANK attempt=$MAYFLY_ATTEMPT resume=${MAYFLY_RESUME:-0} at=$(date +%s.%N)" >> runs.txt
if [ "$RANK" = 0 ]; then
  python3 - <<'EOF' || exit 7
import os, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])))
s.listen(8)
s.settimeout(60)
got = []
while len(got) < int(os.environ["WORLD_SIZE"]) - 1:
    c, _ = s.accept()
    got.append(c.recv(64).decode().strip())
    c.close()
open("met.txt", "a").write("attempt %s: %s\n" % (os.environ["MAYFLY_ATTEMPT"], ",".join(sorted(got))))
EOF
else
  for t in $(seq 120); do
    (echo "rank $RANK" > "/dev/tcp/$MASTER_ADDR/$MASTER_PORT") 2>/dev/null && break
    sleep 0.5
  done
fi
if [ "${3:-x}" = "$RANK" ]; then sleep 0.5; echo "rank $RANK fails"; exit "${4:-3}"; fi
for s in $(seq "${1:-4}"); do echo "rank $RANK step $s"; sleep "${2:-0.3}"; done
echo "rank $RANK done"
"""


def gang_job(name, command, port, **extra):
    j = {"name": name, "source": "s3://%s/src/fleet.tar.gz" % BUCKET, "results": "s3://%s/results/" % BUCKET,
         "user": RUN_USER, "log_interval": 2, "stop_grace": 5, "lease_ttl": TTL, "rendezvous_port": port,
         "experiments": [{"name": "g", "command": command, "nodes": 2}], "spot": {"grace_seconds": 5}}
    j.update(extra)
    return j


def members(inst):
    return [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in lines(inst) if l.startswith("member ")]


def test_a_gang_meets_at_rank_0_and_a_failing_member_is_tried_again_within_max_attempts():
    c = start_cloud(scripts={"gang.sh": GANG_SH})
    try:
        port = worker_ports()[0]
        j = gang_job("gangfail", ["./gang.sh", "20", "0.5", "1", "3"], port)
        t0 = time.time()
        run_id, printed = launch(c, j, "--spot", "--recover", "--instances", "2", "--max-attempts", "2")
        r = the_run(c, "gangfail", run_id)
        st = wait_over(c, r, 240)
        check(st and st["outcome"] == "failed", json.dumps(st))
        [g] = st["experiments"]
        check(g["attempts"] == 2 and g["exit_code"] == 3, json.dumps(g))
        # the history has both nodes' parts of each attempt; rank 1's say so (their log offsets are node-1's)
        parts = sorted((h["attempt"], h.get("node", 0)) for h in g.get("history", []))
        check(parts == [(1, 0), (1, 1), (2, 0), (2, 1)], json.dumps(g.get("history")))
        insts = [i for i in c.instances() if i.get("root")]
        seen = [m for i in insts for m in members(i)]
        # each attempt: rank 0 and rank 1, the same addresses in the same order, MASTER_ADDR rank 0's
        for attempt in ("1", "2"):
            a = sorted((m for m in seen if m["attempt"] == attempt), key=lambda m: m["rank"])
            check([m["rank"] for m in a] == ["0", "1"], "attempt %s: %r" % (attempt, a))
            ips = a[0]["ips"].split(",")
            check(len(ips) == 2 and all(re.match(r"^127\.\d+\.1\.\d+$", x) for x in ips) and ips[0] != ips[1], ips)
            for m in a:
                check(m["ips"] == a[0]["ips"] and m["master"] == "%s:%d" % (ips[0], port) and m["nnodes"] == "2" and
                      m["world"] == "2" and m["r"] == m["rank"] == m["node_rank"], json.dumps(m))
            check(a[1]["resume"] == ("1" if attempt == "2" else "0"), json.dumps(a))
        # rank 0 met rank 1 over TCP in both attempts
        met = [l for i in insts for l in lines(i, "met.txt")]
        check(sorted(met) == ["attempt 1: rank 1", "attempt 2: rank 1"], met)
        keys = r.keys()
        for k in ("logs/g/stdout.log", "logs/g/node-1/stdout.log", "ledger/done/g.json"):
            check(k in keys, "missing %s: %r" % (k, keys))
        check(b"rank 1 fails" in r.get("logs/g/node-1/stdout.log"), r.get("logs/g/node-1/stdout.log")[-300:])
        uri = "s3://%s/results/gangfail/%s/" % (BUCKET, run_id)
        p = mayfly("logs", uri, "--experiment", "g", "--node", "1", env=c.admin_env())
        check(p.returncode == 0 and "rank 1 fails" in p.stdout.decode() and "rank 0 step" not in p.stdout.decode(),
              p.stdout.decode()[-600:] + p.stderr.decode()[-300:])
        check(b"rank 0 step 1" in r.get("logs/g/stdout.log") and b"rank 0 done" not in r.get("logs/g/stdout.log"),
              r.get("logs/g/stdout.log")[-300:])
        logs = "".join(agent_log(i) for i in insts)
        check("rank 1 (i-" in logs and "exited with code 3" in logs, logs[-2000:])
        wait_no_leftovers(c, run_id)
        print("gang failed twice and ended in %.1f s" % (time.time() - t0))
    finally:
        c.__exit__(None, None, None)


def test_a_gang_that_cannot_form_ends_in_error_within_gang_timeout():
    c = start_cloud(scripts={"gang.sh": GANG_SH})
    try:
        j = gang_job("gangnone", ["./gang.sh", "2", "0.2"], worker_ports()[1], gang_timeout=15)
        run_id, printed = launch(c, j, "--spot", "--recover", "--instances", "2")
        # the group can hold only one instance from now on (its second one goes at once)
        asg = c.boto("autoscaling")
        [group] = [g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]]
        asg.update_auto_scaling_group(AutoScalingGroupName=group, MinSize=0, MaxSize=1, DesiredCapacity=1)
        t0 = time.time()
        r = the_run(c, "gangnone", run_id)
        st = wait_over(c, r, 120)
        took = time.time() - t0
        check(st and st["outcome"] == "error", json.dumps(st))
        err = st.get("error") or ""
        check("its gang did not form within gang_timeout (15s): 1 of 2 nodes, rank 1 missing" in err and
              "holds at most 1 instance, fewer than its 2 nodes" in err, err)
        check(took < 90, "took %.0f s" % took)
        check(not any(members(i) for i in c.instances() if i.get("root")), "a member ran alone")
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)


def test_rank_0_lost_without_a_word_the_survivor_stays_and_the_replacement_joins():
    c = start_cloud(scripts={"gang.sh": GANG_SH})
    try:
        j = gang_job("ganglost", ["./gang.sh", "16", "0.5"], worker_ports()[3])
        run_id, printed = launch(c, j, "--spot", "--recover", "--instances", "2")

        def with_member(l, attempt, rank):
            return [i for i in l if any(m["attempt"] == attempt and m["rank"] == rank for m in members(i))]

        got = c.wait_instances(lambda l: with_member(l, "1", "0") and with_member(l, "1", "1"), 120, what="attempt 1")
        [rank0], [rank1] = with_member(got, "1", "0"), with_member(got, "1", "1")
        c.kill(rank0["instance_id"])  # no notice, no last word: its lease just stops being renewed
        r = the_run(c, "ganglost", run_id)
        st = wait_over(c, r, 240)
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        [g] = st["experiments"]
        check(g["attempts"] == 2, json.dumps(g))
        got = [i for i in c.instances() if i.get("root")]
        # attempt 2: the survivor and the group's replacement, ranks in the order they claimed
        two = sorted(i["instance_id"] for i in with_member(got, "2", "0") + with_member(got, "2", "1"))
        repl = [x for x in two if x not in (rank0["instance_id"], rank1["instance_id"])]
        check(len(two) == 2 and rank1["instance_id"] in two and len(repl) == 1,
              "attempt 2 is not the survivor and a replacement: %r" % [(i["instance_id"], members(i)) for i in got])
        logs = agent_log(next(i for i in got if i["instance_id"] == rank1["instance_id"]))
        check("rank 0 (%s) is gone" % rank0["instance_id"] in logs, logs[-3000:])
        wait_no_leftovers(c, run_id)
    finally:
        c.__exit__(None, None, None)


def local_log(inst, rel):
    """A file of the instance's agent logs directory (the simulator's root volume), "" when absent."""
    p = os.path.join(inst.get("root") or "/nonexistent", "logs", rel)
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def test_a_two_node_ddp_job_resumes_as_a_gang_after_a_spot_notice_on_rank_1():
    """The issue's must-show: real torch.distributed (gloo) data-parallel training on two instances; a spot notice on
    rank 1's instance at step 12 stops the whole gang (rank 0 saves its checkpoint, which goes to S3), the group's
    replacement joins the survivor, the gang resumes from the checkpoint (not from step 0) and finishes with equal
    weights on both ranks; the run succeeds and nothing of it is left in EC2."""
    check(gangjob.have_torch(), "Debian's python3-torch is missing (tests/deps.sh test installs it)")
    c = start_cloud(scripts=gangjob.TRAIN_ARCHIVE_FILES)
    try:
        venv = gangjob.make_venv(os.path.join(c.dir, "venv"))
        os.chmod(c.dir, 0o755)
        j = gang_job("ddp", ["python", "train.py", "30", "0.5"], worker_ports()[2], env={"venv": venv},
                     checkpoint={"path": "ck", "interval": "10s"}, outputs=["outputs/*"])
        t0 = time.time()
        run_id, printed = launch(c, j, "--spot", "--recover", "--instances", "2", "--placement-group", "cluster",
                                 "--gang-sg")
        ec2 = c.boto("ec2")
        check([g["GroupName"] for g in ec2.describe_placement_groups()["PlacementGroups"]] == ["mayfly-" + run_id],
              "no placement group")
        # rank 1's instance, at step 12
        def rank1(l):
            return [i for i in l if i["state"] == "running" and "step 12" in local_log(i, "g/node-1/stdout.log")]
        [i1] = rank1(c.wait_instances(rank1, 180, what="rank 1 at step 12"))
        c.spot(i1["instance_id"], in_s=12)
        r = the_run(c, "ddp", run_id)
        st = wait_over(c, r, 300)
        check(st and st["outcome"] == "succeeded", json.dumps(st))
        [g] = st["experiments"]
        check(g["attempts"] == 2 and g["exit_code"] == 0, json.dumps(g))
        log0 = r.get("logs/g/stdout.log").decode()
        log1 = r.get("logs/g/node-1/stdout.log").decode()
        m = re.search(r"resumed from step (\d+)", log0)
        check(m and int(m.group(1)) >= 12, "rank 0 did not resume from its checkpoint: %s" % log0[-1500:])
        check("resumed from step %s" % m.group(1) in log1, "rank 1 did not resume from rank 0's checkpoint: %s" %
              log1[-1500:])
        check("done at step 30" in log0 and "done at step 30" in log1, log0[-500:] + log1[-500:])
        # equal weights: rank 0's through its outputs in S3, rank 1's on the replacement's disk
        w0 = r.get("outputs/outputs/weights-rank0.txt").decode().strip()
        insts = [i for i in c.instances() if i.get("root")]
        w1 = [l for i in insts for l in lines(i, "outputs/weights-rank1.txt")]
        check(w1 and w1[-1].strip() == w0 and "step=30" in w0, "weights differ: %r vs %r" % (w0, w1))
        wait_no_leftovers(c, run_id)
        # the instance that ended the run was in its placement group and security group: the laptop's next look
        # at the run deletes them
        p = mayfly("status", "s3://%s/results/ddp/%s/" % (BUCKET, run_id), env=c.admin_env())
        said = p.stdout.decode()
        check("deleted the placement group mayfly-%s" % run_id in said and "deleted the security group" in said, said)
        check(ec2.describe_placement_groups()["PlacementGroups"] == [], "the placement group is left")
        sgs = ec2.describe_security_groups(Filters=[{"Name": "tag:mayfly:run-id", "Values": [run_id]}])
        check(sgs["SecurityGroups"] == [], "the security group is left: %r" % sgs["SecurityGroups"])
        print("2-node DDP with a spot interruption: %.0f s" % (time.time() - t0))
    finally:
        c.__exit__(None, None, None)
