# SPDX-License-Identifier: Apache-2.0
"""The house drawn from its includes: agent/ has three floors above the ground (cmd/ above run/ above aws/, util, log
and crypto at the ground); a floor includes only its own floor and those below it, and each source's header sits
on the same floor. The run/ floor has rooms by concern, in levels: base/ (the run's vocabulary: the job, the
lifecycle table, the persisted state, the one way to wait) at the bottom; proc/ (the experiment's process and
files), watch/ (spot notices, GPUs, the instance) and fleet/ (the ledger, the group) above it, side by side; view/
(what the user gets back: status.json, report.html, cost, the notification) above those; ship/ (to S3) above that;
drive/ (the driver) on top. A room includes its own room and the levels below it, never a room beside it."""
import glob
import os
import re

from harness import ROOT, check

FLOORS = {"": 0, "aws": 1, "run": 2, "cmd": 3}
ROOMS = {"base": 0, "proc": 1, "watch": 1, "fleet": 1, "view": 2, "ship": 3, "drive": 4}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def floor_of(rel):
    """Floor of a path relative to agent/ or include/: its first directory, or the ground."""
    d = rel.split("/")[0] if "/" in rel else ""
    check(d in FLOORS, "%s is on no floor (folders: %s)" % (rel, ", ".join(f for f in FLOORS if f)))
    check(rel.count("/") == (2 if d == "run" else 1 if d else 0),
          "%s: run/ sources sit in a room (run/ROOM/x), the other floors' directly in the floor" % rel)
    return d


def room_of(rel):
    """Room of a path under run/ (relative to agent/ or include/)."""
    r = rel.split("/")[1]
    check(r in ROOMS, "%s is in no room of run/ (rooms: %s)" % (rel, ", ".join(ROOMS)))
    return r


def sources():
    for base in ("agent", "include"):
        for p in glob.glob(os.path.join(ROOT, base, "**", "*.[ch]"), recursive=True):
            yield base, os.path.relpath(p, os.path.join(ROOT, base)), p


def includes(path):
    with open(path) as f:
        return INCLUDE.findall(f.read())


def test_every_include_names_an_existing_header_by_floor():
    for base, rel, path in sources():
        for inc in includes(path):
            check(os.path.exists(os.path.join(ROOT, "include", inc)),
                  "%s/%s includes \"%s\", which is not include/%s" % (base, rel, inc, inc))


def test_no_floor_reaches_up():
    seen = 0
    for base, rel, path in sources():
        mine = FLOORS[floor_of(rel)]
        for inc in includes(path):
            theirs = FLOORS[floor_of(inc)]
            check(theirs <= mine, "%s/%s (floor %s) includes %s, a floor above it" %
                  (base, rel, floor_of(rel) or "ground", inc))
            seen += 1
    check(seen > 100, "only %d includes seen: is the tree where the test looks?" % seen)


def test_no_room_reaches_up_or_sideways():
    seen = 0
    for base, rel, path in sources():
        if floor_of(rel) != "run":
            continue
        mine = room_of(rel)
        for inc in includes(path):
            if floor_of(inc) != "run":
                continue
            theirs = room_of(inc)
            check(theirs == mine or ROOMS[theirs] < ROOMS[mine], "%s/%s (room %s, level %d) includes %s (room %s, "
                  "level %d): above it or beside it" % (base, rel, mine, ROOMS[mine], inc, theirs, ROOMS[theirs]))
            seen += 1
    check(seen > 50, "only %d includes between rooms seen" % seen)


def test_each_source_has_its_header_on_its_floor():
    for base, rel, path in sources():
        if base != "agent" or not rel.endswith(".c"):
            continue
        h = os.path.join(ROOT, "include", rel[:-2] + ".h")
        stem = os.path.basename(rel)[:-2]
        elsewhere = [p for p in glob.glob(os.path.join(ROOT, "include", "**", stem + ".h"), recursive=True)
                     if p != h]
        check(not elsewhere, "agent/%s has its header on another floor: %s" % (rel, elsewhere))


def module_graph():
    """module -> the modules whose headers its source or header includes (a module: a .c and its .h)."""
    mods = {}
    for base, rel, path in sources():
        if base == "agent" and rel.endswith(".c"):
            mods[rel[:-2]] = set()
    for base, rel, path in sources():
        m = rel[:-2]
        if m not in mods:
            continue
        for inc in includes(path):
            other = inc[:-2]
            if other in mods and other != m:
                mods[m].add(other)
    return mods


def find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                c = visit(d)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def test_no_circle_between_modules():
    g = module_graph()
    check(len(g) > 30 and "run/base/lifecycle" in g, "modules: %r" % sorted(g))
    c = find_cycle(g)
    check(c is None, "modules that include each other: " + " -> ".join(c or []))
    # the lifecycle's pure core reaches nothing with I/O
    check(g["run/base/lifecycle"] <= {"run/base/job"}, "lifecycle.c includes %r" % sorted(g["run/base/lifecycle"]))


SLEEP = re.compile(r"\b(sleep|usleep|nanosleep|clock_nanosleep)\s*\(")


def _code(path):
    """The file's text with comments and string literals blanked (a call named in a comment is no call)."""
    with open(path) as f:
        text = f.read()
    return re.sub(r"""/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])+'""",
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)


def test_the_run_wing_sleeps_only_through_the_seam():
    """agent/run/ waits only through wait.c: the driver through waiter_* (signals read, the watchdog fed), other
    threads through worker_nap."""
    found = []
    for p in sorted(glob.glob(os.path.join(ROOT, "agent", "run", "**", "*.c"), recursive=True)):
        if os.path.basename(p) == "wait.c":
            continue
        for n, line in enumerate(_code(p).splitlines(), 1):
            if SLEEP.search(line):
                found.append("%s:%d: %s" % (os.path.relpath(p, ROOT), n, line.strip()))
    check(not found, "sleeps outside the seam (run/wait.h):\n" + "\n".join(found))


# What the driver may only call through io() (run.c's seam): the network, the exit, the group.
BLOCKING = re.compile(r"\b(ledger_(?:refresh|claim|commit|release|end|renew|heartbeat)|fleet_(?:teardown|leave|detach|"
                      r"last_member)|exit_action_perform|exit_keep_disk|xfer_\w+|s3_(?:get|put|head|list|delete)\w*|"
                      r"shipper_put_\w+|shipper_restore_tail|instance_spot_pending)\s*\(")


def test_the_driver_blocks_only_through_its_seam():
    """In the driver (agent/run/drive/) every network call is made inside a function that runs on a worker thread
    (one handed to io() or waiter_blocking()), or in start() and join_the_fleet(), before the agent says READY, when
    no watchdog runs yet."""
    files = sorted(glob.glob(os.path.join(ROOT, "agent", "run", "drive", "*.c")))
    code = {os.path.basename(p): _code(p) for p in files}
    workers = set()
    for text in code.values():
        workers |= set(re.findall(r"\b(?:io\(R|waiter_blocking\(&R->w),\s*(\w+)\s*,", text))
    check({"do_refresh", "do_teardown", "restore_logs"} <= workers, "io() hands no worker: %r" % sorted(workers))
    bad = []
    for name, text in code.items():
        func = None
        for n, line in enumerate(text.splitlines(), 1):
            m = re.match(r"^(?:static\s+)?[A-Za-z_][\w\s\*]*?\b(\w+)\s*\(", line)
            if m and not line.rstrip().endswith(");"):
                func = m.group(1)
            for call in BLOCKING.finditer(line):
                if func not in workers and not (name == "run.c" and func in ("start", "join_the_fleet")):
                    bad.append("%s:%d in %s(): %s" % (name, n, func, call.group(1)))
    check(not bad, "blocking calls outside the seam:\n" + "\n".join(bad))


def test_no_function_of_the_run_wing_over_80_lines():
    long = []
    for p in sorted(glob.glob(os.path.join(ROOT, "agent", "run", "**", "*.c"), recursive=True)):
        func, start = None, 0
        for n, line in enumerate(_code(p).splitlines(), 1):
            m = re.match(r"^(?:static\s+)?[A-Za-z_][\w\s\*]*?\b(\w+)\s*\(", line)
            if m and not line.rstrip().endswith(";"):
                func, start = m.group(1), n
            if line == "}" and func:
                if n - start + 1 > 80:
                    long.append("%s: %s() %d lines" % (os.path.relpath(p, ROOT), func, n - start + 1))
                func = None
    check(not long, "functions over 80 lines in agent/run/:\n" + "\n".join(long))
