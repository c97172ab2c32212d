# SPDX-License-Identifier: Apache-2.0
"""Instance-role credentials that expire 20 s after issue: one long-running mayfly process keeps
transferring for about a minute and never sends an expired key (the fake cloud rejects expired keys and
counts them); an IMDS token expired mid-way is replaced after the 401."""
import os
import subprocess
import tempfile
import time

from harness import MAYFLY, Cloud, check

BUCKET = "mayfly-test"


def setup():
    c = Cloud(auth=True, cred_ttl=20).__enter__()
    c.tmp = tempfile.mkdtemp(prefix="mayfly-creds-")
    return c


def teardown(c):
    c.__exit__(None, None, None)


def test_rotating_role_credentials_60s_never_expired(c):
    d = os.path.join(c.tmp, "loop")
    os.makedirs(d)
    n = 55
    for i in range(n):
        with open(os.path.join(d, "f%03d" % i), "wb") as f:
            f.write(os.urandom(2000))
    # each PUT is held 1 s by the fake, so one process spans about a minute and several key rotations
    c.faults([{"method": "PUT", "path_contains": "credloop/", "delay": 1.0, "count": n}])
    before = c.stats()
    t0 = time.time()
    p = subprocess.Popen([MAYFLY, "cp", "--recursive", "--concurrency", "1", d, "s3://%s/credloop" % BUCKET],
                         env=c.role_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(25)
    c.control("POST", "/imds/expire-tokens")
    o, e = p.communicate(timeout=240)
    took = time.time() - t0
    check(c.faults_done() == [n], "not every PUT was held")
    after = c.stats()
    check(p.returncode == 0, e.decode())
    check(took >= 50, "the loop ran only %.0fs" % took)
    check(after["expired_rejections"] == before["expired_rejections"],
          "expired keys were sent: %d" % (after["expired_rejections"] - before["expired_rejections"]))
    check(after["creds_issued"] - before["creds_issued"] >= 3, "credentials did not rotate")
    check(after["imds_401"] > before["imds_401"], "the expired IMDS token was never presented (401)")
    check(after["imds_token_puts"] - before["imds_token_puts"] >= 2, "no new token after the 401")
    keys = c.boto("s3").list_objects_v2(Bucket=BUCKET, Prefix="credloop/")["KeyCount"]
    check(keys == n, "only %d of %d objects" % (keys, n))
