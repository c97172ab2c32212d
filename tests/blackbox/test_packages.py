# SPDX-License-Identifier: Apache-2.0
"""Packages: `make deb` / `make rpm`, what they contain, lintian and rpmlint (every remaining tag must be justified
in packaging/README.md), and the .deb installed into a Debian 12 root built by debootstrap: its dependencies come
from the archive, nothing is started or enabled, remove stops the agent, purge removes what it wrote.

Needs root (apt-get, debootstrap, chroot, mount); installs debootstrap, lintian, rpm and rpmlint when missing.
The debootstrap root is built once and cached in /var/cache/mayfly-test/debian12-root-<hash of its inputs>; each
run works on an overlay (or a copy) of it, so the cached root stays pristine. Downloaded .debs and apt lists are
kept in /var/cache/mayfly-test/apt-{archives,lists} between runs."""
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

import harness
from harness import ROOT, Skip, check, out

# One worker runs these in order (tests/run.py): they share one build of the packages and one chroot that the
# install, remove and purge tests walk through.
TOGETHER = True
CACHE = "/var/cache/mayfly-test"
SUITE = "bookworm"
ROOT_RECIPE = 1  # bump when the way the cached root is made changes
UNITS = ("mayfly.service", "mayfly-failsafe.service", "mayfly-scratch.service", "mayfly-backstop.service",
         "mayfly-backstop.timer")
CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
              "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}
SYSTEMCTL_LOG = "/var/log/systemctl-calls.log"
# Any of these in a systemctl call from a maintainer script would start or enable something.
STARTS = re.compile(r"\b(start|restart|reload-or-restart|enable|preset|isolate|reenable)\b")


# ---------------------------------------------------------------------------------------------------- helpers

def run(args, timeout=600, env=None, ok=(0,), input=None):
    p = subprocess.run(args, capture_output=True, timeout=timeout, env=env, input=input)
    if ok is not None and p.returncode not in ok:
        raise AssertionError("%s: exit %d: %s" % (" ".join(args), p.returncode, out(p)[-3000:]))
    return p


def text(p):
    return p.stdout.decode(errors="replace")


def installed(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True)
    return p.returncode == 0 and b"install ok installed" in p.stdout


def ensure_debs(*pkgs):
    """apt-get install what is missing (as root, idempotent, quiet)."""
    missing = [p for p in pkgs if not installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise Skip("needs root to install %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # another worker's apt (or the runner's) may hold dpkg's lock: wait for it rather than fail
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(cmd, capture_output=True, env=env, timeout=900).returncode != 0:
        run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"], env=env, timeout=900)
        run(cmd, env=env, timeout=900)


def version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"^VERSION\s*:?=\s*(\S+)", f.read(), re.M).group(1)


def arch():
    return text(run(["dpkg", "--print-architecture"])).strip()


def needed(binary):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", text(run(["readelf", "-d", binary])))


def owner(path):
    """The package that ships a library (dpkg -S), whichever of /lib and /usr/lib it registered."""
    for c in (path, os.path.realpath(path)):
        for cand in (c, c[4:] if c.startswith("/usr/lib/") else "/usr" + c):
            p = subprocess.run(["dpkg", "-S", cand], capture_output=True)
            if p.returncode == 0:
                return p.stdout.decode().split(":")[0]
    raise AssertionError("no package ships %s" % path)


def justified(tool):
    """The tags packaging/README.md justifies, from the table under '## Remaining <tool> tags'."""
    with open(os.path.join(ROOT, "packaging", "README.md")) as f:
        doc = f.read()
    m = re.search(r"^## Remaining %s tags\n(.*?)(?=^## |\Z)" % tool, doc, re.M | re.S)
    check(m, "packaging/README.md has no '## Remaining %s tags' section" % tool)
    return set(re.findall(r"^\|\s*`([a-z0-9][a-z0-9.+-]*)`", m.group(1), re.M))


def check_tags(tool, tags, report):
    ok = justified(tool)
    check(not tags - ok, "%s tags not justified in packaging/README.md: %s\n%s" % (tool, sorted(tags - ok), report))
    if ok - tags:
        print("NOTE %s no longer reports %s: drop them from packaging/README.md" % (tool, sorted(ok - tags)),
              flush=True)


def gzip_header_clean(path):
    """gzip -n: no file name, no time stamp in the header."""
    with open(path, "rb") as f:
        h = f.read(10)
    return h[:2] == b"\x1f\x8b" and not (h[3] & 0x08) and h[4:8] == b"\0\0\0\0"


# ------------------------------------------------------------------------------------------ the packages

def setup():
    return {"mounts": [], "work": None}


def teardown(ctx):
    umount_all(ctx)
    work = ctx.get("work")
    if work and os.path.isdir(work):
        with open("/proc/mounts") as f:
            busy = [ln.split()[1] for ln in f if ln.split()[1].startswith(work)]
        if busy:
            print("test_packages: left %s in place, still mounted: %s" % (work, busy), flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def packages(ctx):
    """Builds (or reuses: make knows) the packages once per run; returns (deb, rpm)."""
    if "deb" in ctx:
        return ctx["deb"], ctx["rpm"]
    if os.geteuid() != 0:
        raise Skip("the package tests need root (apt-get, chroot, mount)")
    binary = harness.MAYFLY
    if os.path.exists(binary) and any(re.match(r"lib(asan|ubsan|tsan)", n) for n in needed(binary)):
        raise Skip("packages are made from the normal build, not a sanitizer build")
    ensure_debs("dpkg-dev", "rpm")
    build = os.path.dirname(binary)
    v = version()
    deb = os.path.join(build, "packages", "mayfly_%s_%s.deb" % (v, arch()))
    rpm = os.path.join(build, "packages", "mayfly-%s-1.%s.rpm" % (v, os.uname().machine))
    run(["make", "-C", ROOT, "--no-print-directory", "BUILD=" + build, "deb", "rpm"], timeout=900)
    check(os.path.isfile(deb) and os.path.isfile(rpm), "make deb rpm made no %s / %s" % (deb, rpm))
    ctx.update(deb=deb, rpm=rpm, version=v, binary=binary)
    return deb, rpm


def test_deb_control(ctx):
    deb, _ = packages(ctx)
    fields = {}
    for line in text(run(["dpkg-deb", "-f", deb])).splitlines():
        if line and not line[0].isspace():
            k, _, val = line.partition(":")
            fields[k] = val.strip()
    v = ctx["version"]
    for k, want in (("Package", "mayfly"), ("Version", v + "-1"), ("Architecture", arch()), ("Section", "admin"),
                    ("Priority", "optional")):
        check(fields.get(k) == want, "%s: %r, want %r" % (k, fields.get(k), want))
    check(re.match(r".+ <[^@ ]+@[^> ]+>$", fields.get("Maintainer", "")), "Maintainer: %r" % fields.get("Maintainer"))
    check(fields.get("Description") and fields.get("Installed-Size", "").isdigit(), "Description/Installed-Size")
    # Depends: exactly the packages that ship the binary's libraries, each with a version from their shlibs.
    depends = {}
    for d in fields.get("Depends", "").split(","):
        m = re.fullmatch(r"\s*([a-z0-9][a-z0-9+.-]+)(?: \(>= ([^)]+)\))?\s*", d)
        check(m, "Depends entry %r" % d)
        depends[m.group(1)] = m.group(2)
    libs = dict(re.findall(r"^\s+(\S+) \(libc6,x86-64[^)]*\) => (\S+)$", text(run(["ldconfig", "-p"])), re.M))
    want = {owner(libs.get(so, "/nonexistent/" + so)) for so in needed(ctx["binary"])}
    check(set(depends) == want, "Depends %s, the binary's libraries come from %s" % (sorted(depends), sorted(want)))
    check(depends.get("libc6"), "libc6 without a minimum version")


def test_deb_contents(ctx):
    deb, _ = packages(ctx)
    listing = {}
    for line in text(run(["dpkg-deb", "-c", deb])).splitlines():
        perm, own, _size, _d, _t, path = line.split(None, 5)
        listing[path.split(" -> ")[0].lstrip(".")] = (perm, own)
    files = {p for p, (perm, _) in listing.items() if perm[0] == "-"}
    want = {"/usr/bin/mayfly", "/usr/share/man/man1/mayfly.1.gz", "/usr/share/man/man5/mayfly-job.5.gz",
            "/usr/share/doc/mayfly/copyright", "/usr/share/doc/mayfly/changelog.Debian.gz",
            "/usr/share/doc/mayfly/examples/job.json"}
    # dh_compress: documents over 4 KiB are gzipped.
    for src in ("README.md", "docs/job-spec.md", "docs/job-schema.json"):
        size = os.path.getsize(os.path.join(ROOT, src))
        want.add("/usr/share/doc/mayfly/" + os.path.basename(src) + (".gz" if size > 4096 else ""))
    want |= {"/lib/systemd/system/" + u for u in UNITS}
    check(files == want, "files: extra %s, missing %s" % (sorted(files - want), sorted(want - files)))
    check("/etc/mayfly/" in listing, "no /etc/mayfly/ directory")
    check(all(o == "root/root" for _, o in listing.values()), "files not owned by root/root")
    check(listing["/usr/bin/mayfly"][0] == "-rwxr-xr-x", "/usr/bin/mayfly mode %s" % listing["/usr/bin/mayfly"][0])
    check(all(listing[f][0] == "-rw-r--r--" for f in files - {"/usr/bin/mayfly"}), "a data file is not 0644")
    check(not any(p.startswith(("/usr/lib/systemd", "/etc/systemd")) for p in listing), "units outside /lib")

    with tempfile.TemporaryDirectory(prefix="mayfly-deb-") as d:
        run(["dpkg-deb", "-R", deb, d])
        sections = text(run(["readelf", "-S", "-W", os.path.join(d, "usr/bin/mayfly")]))
        check(".symtab" not in sections and ".debug_info" not in sections, "/usr/bin/mayfly is not stripped")
        check(".note.gnu.build-id" in sections, "the build-id note was stripped")
        for f in files:
            if f.endswith(".gz"):
                check(gzip_header_clean(d + f), "%s is not gzip -n" % f)
        with open(d + "/usr/share/doc/mayfly/copyright") as f:
            check(f.readline().strip() == "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
                  "copyright is not machine-readable (DEP-5)")
            rest = f.read()
        check("\nFiles: *\nCopyright: " in rest and "\nLicense: Apache-2.0\n" in rest and
              "/usr/share/common-licenses/Apache-2.0" in rest, "copyright does not declare Apache-2.0")
        with gzip.open(d + "/usr/share/doc/mayfly/changelog.Debian.gz", "rt") as f:
            top = f.readline()
        check(top.startswith("mayfly (%s-1) " % ctx["version"]), "changelog.Debian starts %r" % top)
        for s in ("postinst", "prerm", "postrm"):
            p = os.path.join(d, "DEBIAN", s)
            check(os.stat(p).st_mode & 0o777 == 0o755, "%s not 0755" % s)
            run(["sh", "-n", p])
        md5 = open(os.path.join(d, "DEBIAN", "md5sums")).read()
        check(all(f.lstrip("/") in md5 for f in files), "md5sums incomplete")


# ------------------------------------------------------------------------------- the Debian 12 root (cached)

def mirror():
    """The machine's Debian mirror (deb822 sources: the stanza that has the suite), and the sources text."""
    path = "/etc/apt/sources.list.d/debian.sources"
    with open(path) as f:
        sources = f.read()
    for stanza in re.split(r"\n\s*\n", sources):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if SUITE in fields.get("Suites", "").split() and "deb" in fields.get("Types", "").split():
            return fields["URIs"].split()[0], sources
    raise AssertionError("no %s stanza in %s" % (SUITE, path))


def cached_root():
    """A pristine minbase Debian 12 root: built once into a temporary directory, then renamed into place."""
    ensure_debs("debootstrap")
    url, sources = mirror()
    dbs = text(run(["dpkg-query", "-W", "-f=${Version}", "debootstrap"]))
    inputs = json.dumps([ROOT_RECIPE, SUITE, "minbase", arch(), url, sources, dbs], sort_keys=True)
    key = hashlib.sha256(inputs.encode()).hexdigest()[:16]
    path = os.path.join(CACHE, "debian12-root-" + key)
    if os.path.isdir(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "debian12-root.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it
        if os.path.isdir(path):
            return path
        tmp = tempfile.mkdtemp(prefix=".debian12-root-", dir=CACHE)
        try:
            run(["debootstrap", "--variant=minbase", "--arch=" + arch(), SUITE, tmp, url], timeout=1200)
            # apt in the root uses the machine's sources (updates and security included), as the host does.
            with open(os.path.join(tmp, "etc/apt/sources.list.d/debian.sources"), "w") as f:
                f.write(sources)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(tmp, "etc/apt/sources.list"))
            with open(os.path.join(tmp, "etc/mayfly-test-root.json"), "w") as f:
                f.write(inputs + "\n")
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in os.listdir(CACHE):  # roots of earlier inputs, and half-built ones of killed runs
            if (old.startswith("debian12-root-") and old != os.path.basename(path)) or \
                    old.startswith(".debian12-root-") and old != os.path.basename(tmp):
                shutil.rmtree(os.path.join(CACHE, old), ignore_errors=True)
    return path


def mount(ctx, *args):
    run(["mount", *args])
    ctx["mounts"].append(args[-1])


def umount_all(ctx):
    for m in reversed(ctx.get("mounts", [])):
        if subprocess.run(["umount", m], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", m], capture_output=True)
    ctx["mounts"] = []


def chroot(ctx, *args, ok=(0,), timeout=900):
    return run(["chroot", ctx["root"], *args], env=CHROOT_ENV, ok=ok, timeout=timeout)


def systemctl_calls(ctx, clear=False):
    p = os.path.join(ctx["root"], SYSTEMCTL_LOG.lstrip("/"))
    calls = open(p).read().splitlines() if os.path.exists(p) else []
    if clear and os.path.exists(p):
        os.unlink(p)
    return calls


def is_enabled(ctx, unit):
    return text(run(["systemctl", "--root=" + ctx["root"], "is-enabled", unit], ok=None)).strip()


def in_root(ctx, path):
    return os.path.join(ctx["root"], path.lstrip("/"))


def test_deb_install_debian12(ctx):
    deb, _ = packages(ctx)
    if not shutil.which("systemctl"):
        ensure_debs("systemd")
    base = cached_root()
    work = ctx["work"] = tempfile.mkdtemp(prefix="mayfly-pkgtest-")
    root = ctx["root"] = os.path.join(work, "root")
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(work, d))
    try:
        mount(ctx, "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (base, work, work),
              root)
    except AssertionError:
        ctx["mounts"].clear()
        os.rmdir(root)
        run(["cp", "-a", base, root])
    mount(ctx, "-t", "proc", "proc", in_root(ctx, "/proc"))
    for sub, target in (("apt-archives", "/var/cache/apt/archives"), ("apt-lists", "/var/lib/apt/lists")):
        src = os.path.join(CACHE, sub)
        os.makedirs(os.path.join(src, "partial"), exist_ok=True)
        mount(ctx, "--bind", src, in_root(ctx, target))
    shutil.copy("/etc/resolv.conf", in_root(ctx, "/etc/resolv.conf"))
    shutil.copy(deb, in_root(ctx, "/tmp/mayfly.deb"))
    # Pretend systemd runs: the maintainer scripts take their systemd branch and every systemctl call is logged.
    os.makedirs(in_root(ctx, "/run/systemd/system"), exist_ok=True)
    stub = in_root(ctx, "/usr/bin/systemctl")
    check(not os.path.exists(stub), "the minbase root has a systemctl")
    with open(stub, "w") as f:
        f.write('#!/bin/sh\necho "$*" >>%s\ncase "$*" in *is-active*|*is-enabled*) exit 3;; esac\nexit 0\n'
                % SYSTEMCTL_LOG)
    os.chmod(stub, 0o755)
    check(not chroot(ctx, "getent", "passwd", "ec2-user", ok=None).returncode == 0, "the root has ec2-user")

    with open(os.path.join(CACHE, "apt.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the apt caches are shared with any concurrent run
        chroot(ctx, "apt-get", "update", "-qq")
        p = chroot(ctx, "apt-get", "install", "-y", "/tmp/mayfly.deb")
    log = text(p)
    check("Setting up mayfly (%s-1)" % ctx["version"] in log, "apt-get did not set up mayfly: " + log[-2000:])
    status = text(chroot(ctx, "dpkg-query", "-W", "-f=${Status} ${Version}", "mayfly"))
    check(status == "install ok installed %s-1" % ctx["version"], "dpkg status: " + status)

    v = chroot(ctx, "mayfly", "--version")
    check(ctx["version"] in text(v), "mayfly --version: " + out(v))
    c = chroot(ctx, "mayfly", "check", "/usr/share/doc/mayfly/examples/job.json")
    check("ok" in out(c), "mayfly check: " + out(c))
    bad = in_root(ctx, "/tmp/bad.json")
    with open(bad, "w") as f:
        f.write('{"name": "x"}')
    check(chroot(ctx, "mayfly", "check", "/tmp/bad.json", ok=None).returncode == 2, "a bad job passes mayfly check")

    for f in ["/usr/bin/mayfly", "/usr/share/man/man1/mayfly.1.gz", "/usr/share/man/man5/mayfly-job.5.gz",
              "/usr/share/doc/mayfly/copyright"] + ["/lib/systemd/system/" + u for u in UNITS]:
        check(os.path.isfile(in_root(ctx, f)), "%s not installed" % f)
    check(os.path.isdir(in_root(ctx, "/etc/mayfly")), "/etc/mayfly missing")
    check(os.stat(in_root(ctx, "/usr/bin/mayfly")).st_mode & 0o777 == 0o755, "/usr/bin/mayfly not 0755")

    # The user experiments run as (the root has neither ec2-user nor ubuntu).
    pw = text(chroot(ctx, "getent", "passwd", "mayfly")).strip().split(":")
    check(pw[5] == "/var/lib/mayfly-home" and pw[6] == "/bin/bash", "mayfly user: %s" % pw)
    check(int(pw[2]) < 1000, "mayfly is not a system user: uid %s" % pw[2])
    check(os.path.isdir(in_root(ctx, "/var/lib/mayfly-home")), "no /var/lib/mayfly-home")

    # Nothing started or enabled; systemd was reloaded.
    calls = systemctl_calls(ctx, clear=True)
    check(any("daemon-reload" in c for c in calls), "no daemon-reload: %s" % calls)
    # (the packages mayfly recommends, mdadm with its MTA and cron, preset their own units: not mayfly's doing)
    own = [c for c in calls if "mayfly" in c or not re.search(r"\.(service|timer|socket|path|target)\b", c)]
    check(not [c for c in own if STARTS.search(c.replace("daemon-reload", ""))], "starts something: %s" % own)
    for u, want in (("mayfly.service", "disabled"), ("mayfly-backstop.timer", "disabled"),
                    ("mayfly-failsafe.service", "static"), ("mayfly-backstop.service", "static"),
                    ("mayfly-scratch.service", "static")):
        got = is_enabled(ctx, u)
        check(got == want, "systemctl --root is-enabled %s: %r, want %r" % (u, got, want))
    links = [os.path.join(d, n) for d, _, ns in os.walk(in_root(ctx, "/etc/systemd/system")) for n in ns if "mayfly" in n]
    check(not links, "enable symlinks after install: %s" % links)
    ctx["installed"] = True


def test_deb_upgrade_remove_purge(ctx):
    if not ctx.get("installed"):
        raise Skip("needs test_deb_install_debian12")
    # What user-data does once a job exists: the job, the deadline drop-in, the units enabled (offline here).
    os.makedirs(in_root(ctx, "/etc/systemd/system/mayfly-backstop.timer.d"))
    with open(in_root(ctx, "/etc/systemd/system/mayfly-backstop.timer.d/deadline.conf"), "w") as f:
        f.write("[Timer]\nOnBootSec=2h\n")
    shutil.copy(in_root(ctx, "/usr/share/doc/mayfly/examples/job.json"), in_root(ctx, "/etc/mayfly/job.json"))
    run(["systemctl", "--root=" + ctx["root"], "enable", "mayfly.service", "mayfly-backstop.timer"])
    for d in ("/var/lib/mayfly", "/var/log/mayfly", "/var/cache/mayfly"):
        os.makedirs(in_root(ctx, d))
        open(in_root(ctx, d + "/left-by-the-agent"), "w").close()

    # Upgrade (the same package again): a running agent is try-restarted, nothing is started.
    chroot(ctx, "dpkg", "-i", "/tmp/mayfly.deb")
    calls = systemctl_calls(ctx, clear=True)
    check("try-restart mayfly.service" in calls, "upgrade did not try-restart: %s" % calls)
    check(not [c for c in calls if STARTS.search(c.replace("try-restart", "").replace("daemon-reload", ""))],
          "upgrade starts something: %s" % calls)
    check(is_enabled(ctx, "mayfly.service") == "enabled", "upgrade changed the enabled state")

    # Remove: the agent and the deadline are stopped; what the agent wrote stays.
    chroot(ctx, "apt-get", "remove", "-y", "mayfly")
    calls = systemctl_calls(ctx, clear=True)
    check("stop mayfly.service mayfly-backstop.timer" in calls, "remove did not stop the units: %s" % calls)
    check(any("daemon-reload" in c for c in calls), "no daemon-reload on remove: %s" % calls)
    check(not os.path.exists(in_root(ctx, "/usr/bin/mayfly")), "/usr/bin/mayfly left after remove")
    check(os.path.exists(in_root(ctx, "/var/lib/mayfly/left-by-the-agent")), "remove deleted the agent's state")
    status = text(chroot(ctx, "dpkg-query", "-W", "-f=${Status}", "mayfly"))
    check(status == "deinstall ok config-files", "status after remove: " + status)

    # Purge: state, logs, cache, the job and the enable symlinks go; the user stays.
    chroot(ctx, "apt-get", "purge", "-y", "mayfly")
    for d in ("/var/lib/mayfly", "/var/log/mayfly", "/var/cache/mayfly", "/etc/mayfly",
              "/etc/systemd/system/mayfly-backstop.timer.d", "/etc/systemd/system/multi-user.target.wants/mayfly.service",
              "/etc/systemd/system/timers.target.wants/mayfly-backstop.timer"):
        check(not os.path.lexists(in_root(ctx, d)), "%s left after purge" % d)
    check(chroot(ctx, "dpkg-query", "-W", "-f=${Status}", "mayfly", ok=None).returncode != 0 or
          "not-installed" in text(chroot(ctx, "dpkg-query", "-W", "-f=${Status}", "mayfly", ok=None)), "not purged")
    check(chroot(ctx, "getent", "passwd", "mayfly", ok=None).returncode == 0, "purge removed the mayfly user")

    # On an image with an ubuntu (or ec2-user) account no mayfly user is made.
    chroot(ctx, "userdel", "mayfly")
    chroot(ctx, "useradd", "--create-home", "ubuntu")
    chroot(ctx, "dpkg", "-i", "/tmp/mayfly.deb")
    check(chroot(ctx, "getent", "passwd", "mayfly", ok=None).returncode != 0, "mayfly user made next to ubuntu")


def test_lintian(ctx):
    deb, _ = packages(ctx)
    ensure_debs("lintian")
    p = run(["lintian", "-E", "-I", "--pedantic", "--tag-display-limit", "0", deb], ok=None, timeout=900)
    tags = set(re.findall(r"^[EWIPXCO]: mayfly(?: \w+)?: ([a-z0-9][a-z0-9.+-]*)", out(p), re.M))
    check(p.returncode in (0, 1, 2) and (tags or p.returncode == 0), "lintian failed: " + out(p)[-2000:])
    check_tags("lintian", tags, out(p))


# ------------------------------------------------------------------------------------------------- the rpm

def rpmq(rpm, *args):
    return text(run(["rpm", "-qp", *args, rpm]))


def test_rpm_requires_and_scripts(ctx):
    _, rpm = packages(ctx)
    v = ctx["version"]
    nvra = rpmq(rpm, "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}")
    check(nvra == "mayfly %s 1 %s" % (v, os.uname().machine), "rpm is %r" % nvra)
    check(rpmq(rpm, "--qf", "%{LICENSE}") == "Apache-2.0", "rpm License: %r" % rpmq(rpm, "--qf", "%{LICENSE}"))
    files = set(rpmq(rpm, "-l").split())
    want = {"/usr/bin/mayfly", "/etc/mayfly", "/usr/share/man/man1/mayfly.1.gz", "/usr/share/man/man5/mayfly-job.5.gz",
            "/usr/share/doc/mayfly", "/usr/share/doc/mayfly/README.md", "/usr/share/doc/mayfly/job-spec.md",
            "/usr/share/doc/mayfly/job-schema.json", "/usr/share/doc/mayfly/examples",
            "/usr/share/doc/mayfly/examples/job.json", "/usr/share/licenses/mayfly",
            "/usr/share/licenses/mayfly/LICENSE"} | {"/usr/lib/systemd/system/" + u for u in UNITS}
    check(files == want, "rpm files: extra %s, missing %s" % (sorted(files - want), sorted(want - files)))

    # Requires: the binary's sonames and symbol versions (as rpm's ELF generator records them), less libcurl's
    # Debian-only CURL_OPENSSL_4, plus the scriptlets' shell and shadow-utils (useradd in %pre).
    want = {"/bin/sh", "shadow-utils", "rtld(GNU_HASH)"}
    want |= {so + "()(64bit)" for so in needed(ctx["binary"])}
    lib = None
    for line in text(run(["readelf", "-V", "-W", ctx["binary"]])).splitlines():
        m = re.search(r"File: (\S+)\s+Cnt:", line)
        if m:
            lib = m.group(1)
        m = re.search(r"Name: (\S+)\s+Flags", line)
        if m and lib and not (lib == "libcurl.so.4" and m.group(1) == "CURL_OPENSSL_4"):
            want.add("%s(%s)(64bit)" % (lib, m.group(1)))
    got = {r.strip() for r in rpmq(rpm, "-R").splitlines() if r.strip() and not r.startswith("rpmlib(")}
    check(got == want, "Requires: extra %s, missing %s" % (sorted(got - want), sorted(want - got)))

    # Scriptlets: the systemd macros expanded as Fedora's do; nothing enables or starts on install.
    scripts = rpmq(rpm, "--scripts")
    check("%systemd" not in scripts and "%{" not in scripts, "unexpanded macros in the scriptlets:\n" + scripts)
    parts = dict(re.findall(r"^(\w+) scriptlet \(using /bin/sh\):\n(.*?)(?=^\w+ scriptlet|\Z)", scripts, re.M | re.S))
    helper = "/usr/lib/systemd/systemd-update-helper"
    check("%s install-system-units mayfly.service mayfly-backstop.timer" % helper in parts.get("postinstall", "")
          and "$1 -eq 1" in parts["postinstall"], "%post: " + parts.get("postinstall", ""))
    check("%s remove-system-units mayfly.service mayfly-backstop.timer" % helper in parts.get("preuninstall", "")
          and "$1 -eq 0" in parts["preuninstall"], "%preun: " + parts.get("preuninstall", ""))
    check("%s mark-restart-system-units mayfly.service" % helper in parts.get("postuninstall", "")
          and "$1 -ge 1" in parts["postuninstall"], "%postun: " + parts.get("postuninstall", ""))
    pre = parts.get("preinstall", "")
    check("useradd --system" in pre and "ec2-user" in pre and "ubuntu" in pre, "%pre: " + pre)
    check(not re.search(r"systemctl\s+(start|enable|restart)", scripts), "a scriptlet starts or enables a unit")
    for name, body in parts.items():
        run(["sh", "-n"], input=body.encode())


def test_rpmlint(ctx):
    _, rpm = packages(ctx)
    ensure_debs("rpmlint")
    cfg = os.path.join(ROOT, "packaging", "rpm", "rpmlint.toml")
    tags, report = set(), ""
    for target in (rpm, os.path.join(ROOT, "packaging", "rpm", "mayfly.spec")):
        p = run(["rpmlint", "-c", cfg, target], ok=None, timeout=600)
        check("packages" in out(p) and "checked" in out(p), "rpmlint failed: " + out(p)[-2000:])
        tags |= set(re.findall(r"^mayfly(?:\.\w+)?(?:\.spec)?: [EW]: ([a-z0-9][a-z0-9.+-]*)", out(p), re.M))
        report += out(p) + "\n"
    check_tags("rpmlint", tags, report)
