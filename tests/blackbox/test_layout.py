# SPDX-License-Identifier: Apache-2.0
"""The house drawn from its includes: agent/ has three floors above the ground (cmd/ above run/ above aws/, util, log
and crypto at the ground); a floor includes only its own floor and those below it, and each source's header sits
on the same floor."""
import glob
import os
import re

from harness import ROOT, check

FLOORS = {"": 0, "aws": 1, "run": 2, "cmd": 3}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def floor_of(rel):
    """Floor of a path relative to agent/ or include/: its first directory, or the ground."""
    d = os.path.dirname(rel)
    check(d in FLOORS, "%s is on no floor (folders: %s)" % (rel, ", ".join(f for f in FLOORS if f)))
    return d


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
    check(len(g) > 30 and "run/run" in g and "run/lifecycle" in g, "modules: %r" % sorted(g))
    c = find_cycle(g)
    check(c is None, "modules that include each other: " + " -> ".join(c or []))
    # the lifecycle's pure core reaches nothing with I/O
    check(g["run/lifecycle"] <= {"run/job"}, "lifecycle.c includes %r" % sorted(g["run/lifecycle"]))
