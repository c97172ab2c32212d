# SPDX-License-Identifier: Apache-2.0
"""The command line itself: version, help, usage errors and their exit codes (no cloud needed)."""
from harness import check, mayfly, out


def test_version():
    p = mayfly("--version")
    check(p.returncode == 0 and out(p).startswith("mayfly "), out(p))


def test_help_lists_commands_and_exit_codes():
    p = mayfly("--help")
    t = out(p)
    check(p.returncode == 0, t)
    for word in ("cp", "presign", "metadata", "terminate", "exit codes"):
        check(word in t, "help lacks " + word)


def test_each_command_has_help():
    for cmd in ("cp", "presign", "metadata", "terminate"):
        p = mayfly(cmd, "--help")
        check(p.returncode == 0 and out(p).startswith("usage: mayfly " + cmd), out(p))


def test_usage_errors_exit_2():
    cases = [(), ("frobnicate",), ("cp", "a"), ("cp", "a", "b"), ("cp", "s3://b1/x", "s3://b2/y"),
             ("cp", "--concurrency", "0", "s3://bkt/x", "y"), ("presign", "s3://bkt/k", "--expires", "604801"),
             ("presign", "s3://bkt/k", "--expires", "0"), ("presign", "notauri"), ("cp", "s3://UPPER/x", "y")]
    for args in cases:
        p = mayfly(*args)
        check(p.returncode == 2, "%r: exit %d: %s" % (args, p.returncode, out(p)))
        check(len(out(p).splitlines()) >= 1, "no message for %r" % (args,))
