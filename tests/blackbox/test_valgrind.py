# SPDX-License-Identifier: Apache-2.0
"""The happy path of `mayfly run` (and a `mayfly cp` round trip) under valgrind: no memory errors, no
definite leaks."""
import os
import shutil
import subprocess

from harness import MAYFLY, Skip, check

import test_run


def valgrind_cmd(log):
    if os.environ.get("MAYFLY_SANITIZED"):
        raise Skip("an ASan build cannot run under valgrind (make test covers it)")
    if not shutil.which("valgrind"):
        raise Skip("valgrind not installed")
    return ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--child-silent-after-fork=yes", "--log-file=" + log, MAYFLY]


def test_run_happy_path_under_valgrind():
    r = test_run.Run({"experiments": [{"name": "a", "command": ["./ok.sh"]}, {"name": "b", "command": "./ok.sh"}],
                      "outputs": ["outputs/*"], "checkpoint": {"path": "ckpt", "interval": 60}})
    try:
        log = os.path.join(r.dir, "valgrind.log")
        p = subprocess.run(valgrind_cmd(log) + ["run", "--job", r.job_path], env=r.env, capture_output=True,
                           timeout=600)
        report = open(log).read()
        check(p.returncode == 0, "exit %d\n%s" % (p.returncode, report[-3000:]))
        check("ERROR SUMMARY: 0 errors" in report, report[-3000:])
        check(r.status()["outcome"] == "succeeded", "run did not succeed under valgrind")
    finally:
        r.close()
