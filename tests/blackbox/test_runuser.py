# SPDX-License-Identifier: Apache-2.0
"""Who the experiment runs as: a job that names no user runs as the dedicated `mayfly` user with no supplementary
group (never the AMI's administrator, who has passwordless sudo and docker); a named user runs without the groups
that are a way to root (adm, docker, sudo, ...) and keeps its others; keep_groups keeps one by name."""
import os

from harness import WORKER, check, user_add, user_del, _users_locked
from test_run import SCRIPTS, with_run

SCRIPTS["ids.sh"] = """#!/bin/sh
{ id -un; id -Gn; } > ids.txt
"""


def _ids(r):
    with open(os.path.join(r.work, "ids.txt")) as f:
        name, groups = f.read().splitlines()[:2]
    return name, groups.split()


def test_a_job_without_user_runs_as_mayfly_with_no_supplementary_group():
    def body(r):
        rc = r.run()
        check(rc == 0, r.stderr[-1500:])
        name, groups = _ids(r)
        check(name == "mayfly", "ran as %r" % name)
        check(groups == ["mayfly"], "mayfly's groups: %r" % groups)
    with_run({"user": None, "experiments": [{"name": "a", "command": ["./ids.sh"]}]}, body)


def test_a_named_user_loses_the_administrators_groups_unless_kept():
    user, grp = "mayfly-adm%d" % WORKER, "mayfly-lab%d" % WORKER
    _users_locked(["groupadd", "-f", grp])
    user_del(user)
    user_add(user, "--system", "--no-create-home", "--groups", "adm,disk," + grp)
    try:
        def dropped(r):
            rc = r.run()
            check(rc == 0, r.stderr[-1500:])
            name, groups = _ids(r)
            check(name == user, name)
            check("adm" not in groups and "disk" not in groups, "kept an administrators' group: %r" % groups)
            check(grp in groups, "lost an ordinary group: %r" % groups)
            check("administrators' groups not given" in open(os.path.join(r.dir, "logs", "agent.log")).read(),
                  "not said in the log")
        with_run({"user": user, "experiments": [{"name": "a", "command": ["./ids.sh"]}]}, dropped)

        def kept(r):
            rc = r.run()
            check(rc == 0, r.stderr[-1500:])
            _, groups = _ids(r)
            check("adm" in groups and "disk" not in groups and grp in groups, "keep_groups [adm]: %r" % groups)
        with_run({"user": user, "keep_groups": ["adm"], "experiments": [{"name": "a", "command": ["./ids.sh"]}]},
                 kept)
    finally:
        user_del(user)
        _users_locked(["groupdel", grp])


def test_an_environment_the_run_user_cannot_read_is_named_with_the_user():
    """A venv (or a Conda) found by root in a home the run user cannot enter (~ubuntu/anaconda3 with the home 0700):
    the run fails at PREPARE naming the file and the user; readable, it activates."""
    import shutil
    import tempfile
    home = tempfile.mkdtemp(prefix="mayfly-home-")
    try:
        venv = os.path.join(home, "venv")
        os.makedirs(os.path.join(venv, "bin"))
        with open(os.path.join(venv, "bin", "activate"), "w") as f:
            f.write('export VIRTUAL_ENV="%s"\n' % venv)
        os.chmod(home, 0o700)

        def refused(r):
            rc = r.run()
            check(rc != 0, "ran with an unreadable venv")
            want = "%s/bin/activate: not readable by the run user %s" % (venv, r.job["user"])
            check(want in r.stderr, "no line naming the file and the user: %s" % r.stderr[-1500:])
        with_run({"env": {"venv": venv}, "experiments": [{"name": "a", "command": ["./ids.sh"]}]}, refused)
        os.chmod(home, 0o755)

        def activates(r):
            rc = r.run()
            check(rc == 0, r.stderr[-1500:])
        with_run({"env": {"venv": venv}, "experiments": [{"name": "a", "command": ["./ids.sh"]}]}, activates)
    finally:
        shutil.rmtree(home, ignore_errors=True)
