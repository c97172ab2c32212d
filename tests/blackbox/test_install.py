# SPDX-License-Identifier: Apache-2.0
"""`make install DESTDIR=… PREFIX=…` lays out what the packages ship (binary, units, man pages, docs), the installed
units pass `systemd-analyze verify --root=DESTDIR` (ExecStart= found in the root, man pages found in it), and
`make uninstall` takes every file away again."""
import glob
import os
import shutil
import subprocess
import tempfile

from harness import ROOT, check, out

UNITS = ("mayfly.service", "mayfly-failsafe.service", "mayfly-scratch.service", "mayfly-backstop.service",
         "mayfly-backstop.timer")


def make(*args):
    p = subprocess.run(["make", "-C", ROOT, "--no-print-directory", "BUILD=" + os.environ["MAYFLY_BUILD"], *args],
                       capture_output=True, timeout=600)
    check(p.returncode == 0, "make %s: %s" % (" ".join(args), out(p)[-2000:]))
    return p


def files_under(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def verify_in_root(root, prefix):
    """systemd-analyze verify as it runs on an image built from this root: systemd's own targets (the units order
    themselves against sysinit.target, network-online.target, …) are the host's, everything mayfly's is the root's."""
    for t in glob.glob("/lib/systemd/system/*.target"):
        dst = os.path.join(root, "usr/lib/systemd/system", os.path.basename(t))
        if not os.path.exists(dst):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(t, dst)
    env = dict(os.environ, MANPATH=os.path.join(root, prefix.lstrip("/"), "share", "man"))
    p = subprocess.run(["systemd-analyze", "verify", "--root=" + root, *UNITS], capture_output=True, text=True,
                       timeout=60, env=env)
    check(p.returncode == 0 and not p.stderr.strip(), "verify --root=%s: rc %d\n%s" % (root, p.returncode, p.stderr))


def test_install_usr_then_verify_then_uninstall():
    root = tempfile.mkdtemp(prefix="mayfly-install-")
    make("install", "DESTDIR=" + root, "PREFIX=/usr")
    want = ["usr/bin/mayfly"] + ["usr/lib/systemd/system/" + u for u in UNITS] + [
        "usr/share/man/man1/mayfly.1", "usr/share/man/man5/mayfly-job.5",
        "usr/share/doc/mayfly/LICENSE", "usr/share/doc/mayfly/README.md", "usr/share/doc/mayfly/iam.md",
        "usr/share/doc/mayfly/job-spec.md", "usr/share/doc/mayfly/job-schema.json",
        "usr/share/doc/mayfly/examples/job.json"]
    check(files_under(root) == sorted(want), "installed: %r" % files_under(root))
    check(os.path.isdir(os.path.join(root, "etc/mayfly")), "no /etc/mayfly for the job")
    check(os.access(os.path.join(root, "usr/bin/mayfly"), os.X_OK), "binary not executable")
    for u in UNITS:
        with open(os.path.join(ROOT, "units", u)) as f, open(os.path.join(root, "usr/lib/systemd/system", u)) as g:
            check(f.read() == g.read(), "%s differs from units/%s with PREFIX=/usr" % (u, u))
    verify_in_root(root, "/usr")
    make("uninstall", "DESTDIR=" + root, "PREFIX=/usr")
    left = [f for f in files_under(root) if not f.endswith(".target")]
    check(left == [], "left after uninstall: %r" % left)
    check(not os.path.exists(os.path.join(root, "usr/share/doc/mayfly")), "doc directory left")
    shutil.rmtree(root)


def test_install_usr_local_points_units_at_its_binary():
    root = tempfile.mkdtemp(prefix="mayfly-install-")
    make("install", "DESTDIR=" + root, "PREFIX=/usr/local")
    unit = os.path.join(root, "usr/local/lib/systemd/system/mayfly.service")
    with open(unit) as f:
        text = f.read()
    check("ExecStart=/usr/local/bin/mayfly run\n" in text and "/usr/bin/mayfly" not in text, text)
    check(os.path.exists(os.path.join(root, "usr/local/share/man/man1/mayfly.1")), files_under(root))
    verify_in_root(root, "/usr/local")
    # a unit pointing at a binary the root lacks fails the same check: the check is not vacuous
    os.unlink(os.path.join(root, "usr/local/bin/mayfly"))
    p = subprocess.run(["systemd-analyze", "verify", "--root=" + root, "mayfly.service"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, MANPATH=os.path.join(root, "usr/local/share/man")))
    check(p.returncode != 0 and "/usr/local/bin/mayfly" in p.stderr, p.stderr)
    make("uninstall", "DESTDIR=" + root, "PREFIX=/usr/local")
    check([f for f in files_under(root) if not f.endswith(".target")] == [], files_under(root))
    shutil.rmtree(root)


def test_every_source_file_declares_the_license():
    """Apache-2.0: LICENSE at the top, and an SPDX line at the head of every tracked C, header, Python, shell and
    make file (after a #! line), so a file copied out of the tree still says under what terms."""
    with open(os.path.join(ROOT, "LICENSE")) as f:
        check("Apache License" in f.read(300), "LICENSE is not the Apache License")
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "*.c", "*.h", "*.py", "*.sh", "*.mk", "Makefile"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    check(len(files) > 100, "git ls-files found %d files" % len(files))
    missing = []
    for name in files:
        with open(os.path.join(ROOT, name), errors="replace") as f:
            head = [f.readline() for _ in range(2)]
        if not any("SPDX-License-Identifier: Apache-2.0" in line for line in head):
            missing.append(name)
    check(not missing, "%d files without an SPDX line: %s" % (len(missing), " ".join(missing[:20])))
