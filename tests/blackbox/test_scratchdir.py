# SPDX-License-Identifier: Apache-2.0
""""scratch" (issue 24) on a machine without an instance store (the instance-store model set to one that cannot
exist, so that a test host with a real instance store is never touched): "instance-store" fails the run at PREPARE
naming the instance type and the way out; "prefer-instance-store" gives the experiment a directory of its own on the
state directory's disk as MAYFLY_SCRATCH, again on a restart. The instance store itself: tests/vm (test_scratch) and
tests/unit/test_scratch.c."""
import json
import os
import pwd
import stat

from harness import RUN_USER, check, script_entries
from test_run import with_run

NO_STORE = {"MAYFLY_INSTANCE_STORE_MODEL": "mayfly test: no such NVMe model"}

LOOK = """#!/bin/sh
{ echo "scratch=$MAYFLY_SCRATCH"; echo "user=$(id -un)"; touch "$MAYFLY_SCRATCH/mine" && echo "wrote=yes"; } \\
  >> look.txt
"""


def test_instance_store_required_but_missing_fails_at_prepare_naming_the_type():
    def body(r):
        rc = r.run()
        st = r.status()
        check(st and st["outcome"] == "error", json.dumps(st))
        err = st.get("error", "")
        check("no NVMe instance store on this instance (%s" % st["instance"]["type"] in err, err)
        check("prefer-instance-store" in err and "g5" in err, err)
        check(not os.path.exists(os.path.join(r.work, "look.txt")), "the experiment ran")
        check(rc != 0 or st["outcome"] == "error", r.stderr)
    with_run({"experiments": [{"name": "a", "command": ["./look.sh"]}], "scratch": "instance-store"}, body,
             archive_extra=script_entries({"look.sh": LOOK}), env=NO_STORE)


def test_prefer_instance_store_falls_back_to_the_state_directory_and_a_restart_keeps_it():
    def body(r):
        # as systemd makes it (StateDirectoryMode=0711, UMask=0027): the run user must still get through
        # <state>/scratch
        os.makedirs(os.path.join(r.dir, "state"))
        os.chmod(os.path.join(r.dir, "state"), 0o711)
        old = os.umask(0o027)
        try:
            rc = r.run()
        finally:
            os.umask(old)
        check(rc == 0, r.stderr)
        want = os.path.join(r.dir, "state", "scratch", RUN_USER)
        got = open(os.path.join(r.work, "look.txt")).read().splitlines()
        check(got == ["scratch=" + want, "user=" + RUN_USER, "wrote=yes"], repr(got))
        st = os.lstat(want)
        check(stat.S_ISDIR(st.st_mode) and st.st_uid == pwd.getpwnam(RUN_USER).pw_uid and
              stat.S_IMODE(st.st_mode) == 0o700, "%s: uid %d mode %o" % (want, st.st_uid, st.st_mode))
        check("prefer-instance-store: MAYFLY_SCRATCH=%s" % want in r.stderr, r.stderr)
        # a second run on the same state directory (a reboot of the same disk) finds the directory and its file
        os.remove(os.path.join(r.dir, "state", "state.json"))
        rc = r.run()
        check(rc == 0, r.stderr)
        check(os.path.exists(os.path.join(want, "mine")), "the file written before is gone")
    with_run({"experiments": [{"name": "a", "command": ["./look.sh"]}], "scratch": "prefer-instance-store"}, body,
             archive_extra=script_entries({"look.sh": LOOK}), env=NO_STORE)
