#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Instance simulator for the fake cloud: every instance moto starts boots an agent, as EC2 would.

Enabled by `tests/fakes/cloud.py --simulate-instances --mayfly PATH` (see tests/fakes/README.md, "Instance
simulator"). Inside the fake cloud's process it watches moto's EC2 instances in the cloud's region (hooks on moto's
Instance.start/stop/terminate and run_instances, plus a reconciliation poll every 0.5 s) and, for each instance
that reaches `running` (RunInstances, an Auto Scaling launch or replacement, StartInstances after a stop):

* gives it a root volume, a fresh directory `<instances-dir>/<instance-id>/` with `state/`, `logs/`, `cache/` and
  `etc/mayfly/`, kept across a stop and start, never shared with another instance;
* gives it its own IMDSv2 endpoint (own port, own tokens, own spot/rebalance notices) serving its instance id,
  type, AZ, region, AMI, lifecycle, tags (when instance-metadata tags are enabled), user-data, identity document
  and the fake's role credentials;
* "boots" it: decodes its user-data (gzip and MIME multipart too), writes the `#cloud-config` write_files into
  the root (cloud-init's write_files; `runcmd`, the install step, is skipped: the binary is given) and starts
  `mayfly run --job <root>/etc/mayfly/job.json` the way mayfly.service would, under a small per-instance init
  (this file, run as `instances.py init ...`) that stands in for systemd: its own session, EnvironmentFile,
  STATE/LOGS/CACHE_DIRECTORY, UMask=0027, Restart=on-failure (RestartSec, StartLimitBurst=5 in 600 s, then
  `mayfly failsafe`), KillMode=mixed on stop (SIGTERM to the agent alone; after the grace SIGKILL to every process
  the instance still has, experiments in their own sessions included: the init is a child subreaper, so the
  instance's processes stay its descendants the way they stay in the unit's cgroup).

Terminating or stopping the instance in moto shuts it down (SIGTERM, grace, SIGKILL); the power-off command the
agent gets (`<root>/sbin/poweroff`) shuts the OS down first and then terminates or stops the instance in moto as
its InstanceInitiatedShutdownBehavior says; a spot notice is acted on at its time; `kill` is a hardware loss.

Only the standard library (plus PyYAML for the cloud-config, and moto in-process) is used.
"""

from __future__ import annotations

import argparse
import base64
import collections
import ctypes
import email
import gzip
import json
import logging
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid

LOG = logging.getLogger("fakecloud.instances")
THIS = os.path.abspath(__file__)
ACCOUNT_ID = "123456789012"
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# mayfly.service: SuccessExitStatus=2 6; Restart=on-failure treats these signals as clean, like exit 0
CLEAN_EXIT_CODES = (0, 2, 6)
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
ASG_TAG = "aws:autoscaling:groupName"
LT_ID_TAG = "aws:ec2launchtemplate:id"
LT_VERSION_TAG = "aws:ec2launchtemplate:version"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _prctl(option: int, arg: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# ----------------------------------------------------------------------------------------
# /proc helpers


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        if len(rest) >= 2:
            out[int(name)] = (int(rest[1]), rest[0].decode())
    return out


def descendants(pid: int, table: dict | None = None) -> list[int]:
    """Every live descendant of pid (children first, then theirs), zombies left out."""
    table = table if table is not None else _proc_table()
    kids = collections.defaultdict(list)
    for p, (pp, _st) in table.items():
        kids[pp].append(p)
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            if table[c][1] != "Z":
                out.append(c)
            todo.append(c)
    return out


def kill_tree(pid: int, include_self: bool = True, rounds: int = 200) -> list[int]:
    """SIGKILL every descendant of pid until none is left (a process forking meanwhile is caught in the next
    round), then pid itself. Returns the pids signalled."""
    killed: list[int] = []
    for _ in range(rounds):
        d = descendants(pid)
        if not d:
            break
        for p in d:
            try:
                os.kill(p, signal.SIGKILL)
                killed.append(p)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    if include_self:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


# ----------------------------------------------------------------------------------------
# user-data and cloud-config


def user_data_bytes(raw) -> bytes | None:
    """The user-data as IMDS serves it (decoded) from what moto stores (base64: Base64EncodedString or str)."""
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        raw = raw[0] if raw else None
        if raw is None:
            return None
    enc = getattr(raw, "_encoded_string", None)
    if enc is None:
        enc = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return base64.b64decode(enc)
    except (ValueError, TypeError):
        return enc.encode() if isinstance(enc, str) else enc


def cloud_config_of(ud: bytes | None) -> tuple[dict | None, str]:
    """The #cloud-config document in user-data (gzip and MIME multipart unwrapped), or (None, why not)."""
    if not ud:
        return None, "no user-data"
    if ud[:2] == b"\x1f\x8b":
        try:
            ud = gzip.decompress(ud)
        except (OSError, EOFError) as e:
            return None, f"user-data is gzip but does not decompress: {e}"
    text = None
    if ud.lstrip().lower().startswith(b"content-type:") or ud.startswith(b"MIME-Version"):
        msg = email.message_from_bytes(ud)
        for part in msg.walk():
            if part.get_content_type() == "text/cloud-config":
                text = part.get_payload(decode=True).decode("utf-8", "replace")
                break
        if text is None:
            return None, "MIME user-data without a text/cloud-config part"
    else:
        text = ud.decode("utf-8", "replace")
    if not text.startswith("#cloud-config"):
        first = text.split("\n", 1)[0][:40]
        return None, f"user-data is not #cloud-config (starts {first!r}); the simulator runs only cloud-config"
    try:
        import yaml
        doc = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001  (yaml.YAMLError, or PyYAML missing)
        return None, f"cloud-config does not parse: {type(e).__name__}: {e}"
    if not isinstance(doc, dict):
        return None, "cloud-config is not a mapping"
    return doc, ""


def write_files(root: str, doc: dict, log) -> list[str]:
    """cloud-init's write_files, with every path under root. Returns the paths written (as on the instance)."""
    written = []
    for ent in doc.get("write_files") or []:
        if not isinstance(ent, dict) or not ent.get("path"):
            log("write_files: entry without a path skipped")
            continue
        path = str(ent["path"])
        dest = os.path.normpath(os.path.join(root, path.lstrip("/")))
        if not dest.startswith(root.rstrip("/") + "/"):
            log(f"write_files: {path} is outside the root, skipped")
            continue
        content = ent.get("content")
        data = content.encode() if isinstance(content, str) else (content or b"")
        enc = str(ent.get("encoding") or "text/plain").lower()
        if enc in ("b64", "base64", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"):
            data = base64.b64decode(data)
        if enc in ("gz", "gzip", "gz+b64", "gz+base64", "gzip+b64", "gzip+base64"):
            data = gzip.decompress(data)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "ab" if ent.get("append") else "wb") as f:
            f.write(data)
        perms = ent.get("permissions")
        mode = int(str(perms), 8) if perms is not None else 0o644
        os.chmod(dest, mode)
        written.append(path)
        log(f"write_files: {path} ({len(data)} bytes, mode {mode:04o})")
    return written


_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_env_file(path: str) -> dict[str, str]:
    """systemd EnvironmentFile= lines: KEY=VALUE, # and ; comments, values optionally quoted."""
    env: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return env
    for line in lines:
        s = line.strip()
        if not s or s[0] in "#;" or "=" not in s:
            continue
        k, _, v = s.partition("=")
        k, v = k.strip(), v.strip()
        if not _ENV_KEY.fullmatch(k):
            continue
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        env[k] = v
    return env


def backstop_seconds(root: str) -> float | None:
    """OnBootSec of mayfly-backstop.timer as the user-data's drop-in sets it (the unit's own default: 48h)."""
    p = os.path.join(root, "etc/systemd/system/mayfly-backstop.timer.d/deadline.conf")
    try:
        with open(p) as f:
            vals = re.findall(r"^OnBootSec=(\d+)s?\s*$", f.read(), re.M)
    except OSError:
        return None
    return float(vals[-1]) if vals else None


# ----------------------------------------------------------------------------------------
# the per-instance init (systemd stand-in for mayfly.service), a process of its own


def init_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="instances.py init")
    ap.add_argument("--root", required=True)
    ap.add_argument("--mayfly", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--env-json", required=True, help="the agent's environment (a JSON object)")
    ap.add_argument("--grace", type=float, default=10.0)
    ap.add_argument("--restart-sec", type=float, default=5.0)
    ap.add_argument("--start-limit-burst", type=int, default=5)
    ap.add_argument("--start-limit-interval", type=float, default=600.0)
    ap.add_argument("--parent", type=int, default=0)
    a = ap.parse_args(argv)

    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGUSR2))  # the fake cloud died: end everything
    console = os.path.join(a.root, "console")
    events_path = os.path.join(console, "agents.jsonl")
    flags = {"stop": False, "hard": False}

    def note(**ev):
        ev["t"] = round(time.time(), 3)
        with open(events_path, "a") as f:
            f.write(json.dumps(ev) + "\n")

    def on_term(_s, _f):
        flags["stop"] = True

    def on_hard(_s, _f):
        flags["hard"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR2, on_hard)
    if a.parent and os.getppid() != a.parent:
        return 1
    with open(a.env_json) as f:
        env = json.load(f)
    os.umask(0o027)  # UMask=0027
    out = open(os.path.join(console, "agent.stdout"), "ab")
    err = open(os.path.join(console, "agent.stderr"), "ab")
    starts: collections.deque = collections.deque()
    main = {"pid": None, "what": None}
    last = {"code": 0}

    def start(what: str) -> None:
        cmd = [a.mayfly, "run", "--job", a.job] if what == "agent" else [a.mayfly, "failsafe", "--job", a.job]
        try:
            p = subprocess.Popen(cmd, env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True, close_fds=True)
        except OSError as e:
            note(event="exit", what=what, pid=None, code=203, signal=None, error=str(e))  # systemd's 203/EXEC
            main["pid"], last["code"] = None, 203
            return
        p.returncode = 0  # reaped below with waitpid(-1); keeps Popen from reaping or warning
        main["pid"], main["what"] = p.pid, what
        starts.append(time.monotonic())
        note(event="start", what=what, pid=p.pid, argv=cmd)

    def everything_dies() -> None:
        kill_tree(os.getpid(), include_self=False)
        reap()

    def reap() -> tuple[int, int] | None:
        got = None
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return got
            if pid == 0:
                return got
            if pid == main["pid"]:
                got = (pid, st)

    restart_at = None
    stop_since = None
    start("agent")
    while True:
        if flags["hard"]:
            if main["pid"]:
                note(event="exit", what=main["what"], pid=main["pid"], code=None, signal=9, killed=True)
            everything_dies()
            return 137
        done = reap()
        if done:
            pid, st = done
            code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else None
            sig = os.WTERMSIG(st) if os.WIFSIGNALED(st) else None
            what = main["what"]
            note(event="exit", what=what, pid=pid, code=code, signal=sig)
            main["pid"] = None
            last["code"] = code if code is not None else 128 + sig
            if stop_since is None:
                # the main process ended by itself: what is left of the unit goes (KillMode=mixed)
                kill_tree(os.getpid(), include_self=False)
                failed = not (code in CLEAN_EXIT_CODES or sig in CLEAN_SIGNALS)
                if what == "failsafe" or not failed:
                    return last["code"]
                now = time.monotonic()
                while starts and now - starts[0] > a.start_limit_interval:
                    starts.popleft()
                if len(starts) >= a.start_limit_burst:
                    note(event="start-limit-hit", what="agent")
                    start("failsafe")  # OnFailure=mayfly-failsafe.service
                else:
                    restart_at = now + a.restart_sec
        if flags["stop"] and stop_since is None:
            stop_since = time.monotonic()
            restart_at = None
            if main["pid"]:
                note(event="sigterm", what=main["what"], pid=main["pid"])
                try:
                    os.kill(main["pid"], signal.SIGTERM)  # KillMode=mixed: the main process alone
                except ProcessLookupError:
                    pass
        if stop_since is not None:
            if main["pid"] is None or time.monotonic() - stop_since >= a.grace:
                if main["pid"]:
                    note(event="exit", what=main["what"], pid=main["pid"], code=None, signal=9, killed=True)
                everything_dies()
                return last["code"]
        elif restart_at is not None and time.monotonic() >= restart_at:
            restart_at = None
            start("agent")
        time.sleep(0.05)


# ----------------------------------------------------------------------------------------
# the simulator (inside the fake cloud's process)


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("instance simulator (tests/fakes/instances.py)")
    g.add_argument("--simulate-instances", action="store_true",
                   help="every instance moto starts boots a mayfly agent (needs --mayfly)")
    g.add_argument("--mayfly", default=None, help="the mayfly binary the simulated instances run")
    g.add_argument("--instances-dir", default=None, help="where root volumes go (default STATE_DIR/instances)")
    g.add_argument("--sim-grace", type=float, default=10.0,
                   help="seconds from an instance's shutdown (SIGTERM to the agent) to SIGKILL of all its processes")
    g.add_argument("--sim-boot-delay", type=float, default=0.5,
                   help="seconds an instance stays pending before its agent starts (default 0.5)")
    g.add_argument("--sim-restart-sec", type=float, default=5.0, help="RestartSec of the simulated unit")
    g.add_argument("--sim-private-net", default=None, metavar="127.A.B",
                   help="a loopback /24 (its first three octets) from which each simulated instance gets its own "
                        "private IPv4 (IMDS local-ipv4), kept across its reboots, so that instances really reach "
                        "each other (default: moto's 10.x address, which nothing here answers)")
    g.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for every agent (after everything else; repeatable)")


def check_args(p: argparse.ArgumentParser, a) -> None:
    if not a.simulate_instances:
        return
    if not a.mayfly or not os.access(a.mayfly, os.X_OK):
        p.error("--simulate-instances needs --mayfly PATH, an executable mayfly binary")
    a.mayfly = os.path.abspath(a.mayfly)
    if a.sim_private_net and not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", a.sim_private_net):
        p.error("--sim-private-net must be 127.A.B (a loopback /24)")
    for kv in a.agent_env:
        if not _ENV_KEY.fullmatch(kv.partition("=")[0]) or "=" not in kv:
            p.error(f"--agent-env {kv!r} is not KEY=VALUE")


class Rec:
    """One simulated instance."""

    def __init__(self, iid: str):
        self.iid = iid
        self.root: str | None = None
        self.state = "pending"  # pending running stopping stopped rebooting shutting-down terminated
        self.first_seen = time.time()
        self.boots = 0
        self.boot_at: float | None = None
        self.booted_once = False  # cloud-init's per-instance stage has run
        self.boot_error: str | None = None
        self.has_job = False
        self.init: subprocess.Popen | None = None
        self.final: str | None = None  # state after the current shutdown
        self.after: str | None = None  # what to do in moto once the OS is down: terminate | stop
        self.reason: str | None = None  # why the current shutdown
        self.ended_by: str | None = None
        self.ended: float | None = None
        self.view = None  # the instance's IMDS (an InstanceIMDS)
        self.server = None
        self.spot_enforce = True
        self.spot_done = False
        self.backstop_at: float | None = None
        self.boot_env: dict[str, str] = {}
        self.lifecycle = "on-demand"
        self.meta: dict = {}
        self.group: str | None = None  # the Auto Scaling group it is a member of
        self.private_ip: str | None = None  # from --sim-private-net, for the instance's whole life


class Simulator:
    def __init__(self, cloud, args, *, imds_handler, server_cls, view_base, serve):
        self.cloud = cloud
        self.args = args
        self.region = cloud.region
        self.mayfly = args.mayfly
        self.grace = float(args.sim_grace)
        self.boot_delay = max(0.0, float(args.sim_boot_delay))
        self.restart_sec = float(args.sim_restart_sec)
        self.private_net = args.sim_private_net
        self.next_host = 2  # .1 is left to the test's own servers
        self.dir = os.path.abspath(args.instances_dir or os.path.join(args.state_dir, "instances"))
        self.agent_env = dict(kv.split("=", 1) for kv in args.agent_env)
        self.boot_envs: collections.deque = collections.deque()
        self.imds_handler = imds_handler
        self.server_cls = server_cls
        self.view_cls = make_view_class(view_base)
        self.serve = serve
        self.bootstrap_iid = cloud.instance.get("instance_id")
        self.lock = threading.RLock()
        self.recs: dict[str, Rec] = {}
        self.events: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.control_url = ""
        self._unhooks: list = []
        self._last_reap = 0.0
        self.no_capacity: set[str] = set()  # instance types EC2 has none of now (PUT /sim/capacity)
        self.activities: dict[str, list[dict]] = {}  # group -> its scaling activities, oldest first
        self.short: dict[str, float] = {}  # group -> when Auto Scaling tries again to launch what it lacks
        self.capacity_retry = 5.0

    # ---- lifecycle ----
    def start(self, control_url: str) -> None:
        self.control_url = control_url
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        # experiments run as another user: the path to their workdir must be traversable
        sd = os.path.abspath(self.args.state_dir)
        if self.dir.startswith(sd + "/"):
            os.chmod(sd, stat.S_IMODE(os.stat(sd).st_mode) | 0o711)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # what a killed init leaves comes to us, to be reaped
        from moto.ec2.models import ec2_backends
        from moto.autoscaling import autoscaling_backends
        self.ec2 = ec2_backends[ACCOUNT_ID][self.region]
        self.asg = autoscaling_backends[ACCOUNT_ID][self.region]
        self._install_hooks()
        self.thread = threading.Thread(target=self._loop, name="instances", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread:
            self.thread.join(15)
        for undo in self._unhooks:
            undo()

    def console_of(self, iid: str):
        """What a simulated instance's serial console shows (bytes): cloud-init's log, then the agent's output;
        None for an instance the simulator does not know."""
        with self.lock:
            rec = self.recs.get(iid)
        if rec is None or not rec.root:
            return None
        out = b""
        for name in ("cloud-init.log", "init.out", "agent.stderr"):
            try:
                with open(os.path.join(rec.root, "console", name), "rb") as f:
                    out += f.read()
            except OSError:
                pass
        return out

    def info(self) -> dict:
        return {"simulate_instances": True, "instances_dir": self.dir, "sim_grace": self.grace,
                "sim_boot_delay": self.boot_delay, "mayfly": self.mayfly}

    # ---- moto hooks ----
    def _install_hooks(self) -> None:
        from moto.ec2.models import instances as mi
        sim = self

        def wrap(cls, name, kind):
            orig = getattr(cls, name)

            def hooked(self_, *a, **k):
                res = orig(self_, *a, **k)
                try:
                    if kind == "run":
                        if getattr(self_, "region_name", None) == sim.region:
                            sim.events.put(("run", None))
                    elif getattr(self_.ec2_backend, "region_name", None) == sim.region:
                        sim.events.put((kind, self_.id))
                except Exception:  # noqa: BLE001  (never break moto)
                    LOG.exception("instance hook")
                return res

            setattr(cls, name, hooked)
            self._unhooks.append(lambda: setattr(cls, name, orig))

        wrap(mi.Instance, "start", "start")
        wrap(mi.Instance, "stop", "stop")
        wrap(mi.Instance, "terminate", "terminate")
        wrap(mi.Instance, "reboot", "reboot")
        wrap(mi.InstanceBackend, "run_instances", "run")

    def _moto_instances(self) -> list:
        for _ in range(20):
            try:
                return list(self.ec2.all_instances())
            except RuntimeError:  # a dict changed size under us (another thread is in moto)
                time.sleep(0.01)
        return []

    def _moto_instance(self, iid: str):
        for i in self._moto_instances():
            if i.id == iid:
                return i
        return None

    def _moto_end(self, iid: str, how: str, code: str, message: str) -> None:
        """Ends the instance in moto as EC2 itself would (no termination/stop protection applies to an OS
        shutdown, a spot interruption or a hardware loss); a group member's end makes its group replace it."""
        from moto.ec2.models.instances import StateReason
        inst = self._moto_instance(iid)
        if inst is None:
            return
        if how == "terminate" and inst.state != "terminated":
            inst.terminate()
            self.asg.notify_terminate_instances([iid])
        elif how == "stop" and inst.state == "running":
            inst.stop()
        else:
            return
        inst.state_reason = StateReason(f"{code}: {message}", code)
        inst._reason = f"{message} ({time.strftime('%Y-%m-%d %H:%M:%S GMT', time.gmtime())})"

    # ---- the watcher ----
    def _loop(self) -> None:
        last_sync = 0.0
        while not self.stopping.is_set():
            evs = []
            try:
                evs.append(self.events.get(timeout=0.1))
                while True:
                    evs.append(self.events.get_nowait())
            except queue.Empty:
                pass
            try:
                with self.lock:
                    for kind, iid in evs:
                        self._on_event(kind, iid)
                    if evs or time.time() - last_sync >= 0.5:
                        self._sync()
                        last_sync = time.time()
                    self._tick()
            except Exception:  # noqa: BLE001
                LOG.exception("instance simulator loop")
        with self.lock:
            for rec in self.recs.values():
                if rec.init is not None:
                    self._hard_kill(rec, "the fake cloud stopped", moto=False)
                self._close_imds(rec, wait=True)

    def _on_event(self, kind: str, iid: str | None) -> None:
        if kind == "run" or iid is None or iid == self.bootstrap_iid:
            return
        rec = self.recs.get(iid)
        if rec is None:
            return  # _sync picks it up
        if kind == "terminate":
            self._begin_shutdown(rec, "terminated", None, "TerminateInstances")
        elif kind == "stop":
            self._begin_shutdown(rec, "stopped", None, "StopInstances")
        elif kind == "start" and rec.state in ("stopped", "stopping"):
            rec.boot_at = time.time() + self.boot_delay  # boots once the stop is complete
        elif kind == "reboot" and rec.state == "running":
            self._begin_shutdown(rec, "rebooted", None, "RebootInstances")

    def _sync(self) -> None:
        for inst in self._moto_instances():
            iid = inst.id
            if iid == self.bootstrap_iid:
                continue
            st = inst.state
            rec = self.recs.get(iid)
            if rec is None:
                group = self._group_of(inst)
                if group and st in ("pending", "running") and self._launch_fails(inst, group):
                    continue
                rec = self.recs[iid] = Rec(iid)
                rec.group = group
                if group:
                    self._activity(group, "Successful", f"Launching a new EC2 instance: {iid}",
                                   "an instance was started in response to a difference between desired and actual "
                                   "capacity")
                if st == "running":
                    rec.boot_at = time.time() + self.boot_delay
                    LOG.info("instance %s: new, boots in %.1fs", iid, self.boot_delay)
                else:
                    rec.state = st if st in ("stopped", "terminated") else "terminated"
                continue
            if st in ("terminated", "shutting-down") and rec.state not in ("shutting-down", "terminated"):
                self._begin_shutdown(rec, "terminated", None, "TerminateInstances")
            elif st in ("stopped", "stopping") and rec.state in ("pending", "running", "rebooting"):
                self._begin_shutdown(rec, "stopped", None, "StopInstances")
            elif st == "running" and rec.state == "stopped" and rec.boot_at is None:
                rec.boot_at = time.time() + self.boot_delay

    def _tick(self) -> None:
        now = time.time()
        for group, at in list(self.short.items()):
            if now >= at:
                self._relaunch(group)
        if now - self._last_reap >= 2:
            self._last_reap = now
            self._reap_orphans()
        for rec in list(self.recs.values()):
            if rec.init is not None and rec.init.poll() is not None:
                LOG.info("instance %s: init exited %s", rec.iid, rec.init.returncode)
                rec.init = None
                if rec.state in self.SHUTDOWN_STATE.values():
                    self._finish_shutdown(rec)
            if rec.boot_at is not None and now >= rec.boot_at and rec.init is None \
                    and rec.state in ("pending", "stopped", "rebooting"):
                rec.boot_at = None
                inst = self._moto_instance(rec.iid)
                if inst is not None and inst.state == "running":
                    self._boot(rec, inst)
            if rec.state in ("running", "pending") and rec.view is not None:
                sp = rec.view.spot
                if sp and rec.spot_enforce and not rec.spot_done and now >= sp["time"]:
                    rec.spot_done = True
                    self._spot_act(rec, sp["action"])
            if rec.state == "running" and rec.backstop_at is not None and now >= rec.backstop_at:
                rec.backstop_at = None
                LOG.info("instance %s: backstop timer fired", rec.iid)
                self._poweroff(rec, "backstop timer")

    # ---- Auto Scaling's side: capacity, activities ----
    def _group_of(self, inst) -> str | None:
        try:
            return {t["key"]: t["value"] for t in inst.get_tags()}.get(ASG_TAG)
        except RuntimeError:  # the tags changed under us (another thread is in moto)
            return getattr(getattr(inst, "autoscaling_group", None), "name", None)

    def _activity(self, group: str, status: str, description: str, cause: str, message: str = "") -> None:
        acts = self.activities.setdefault(group, [])
        acts.append({"id": str(uuid.uuid4()), "status": status, "description": description,
                     "cause": f"At {iso(int(time.time()))} {cause}.", "message": message, "time": time.time()})
        del acts[:-100]

    def _launch_fails(self, inst, group: str) -> bool:
        """A group's launch of a type EC2 has no capacity of fails as on AWS: no instance, a Failed activity with
        EC2's message, and the group tries again a while later (until the capacity is back)."""
        itype = getattr(inst, "instance_type", "")
        if itype not in self.no_capacity:
            return False
        zone = getattr(getattr(inst, "_placement", None), "zone", None) or self.region + "a"
        msg = (f"We currently do not have sufficient {itype} capacity in the Availability Zone you requested "
               f"({zone}). Our system will be working on provisioning additional capacity. You can currently get "
               f"{itype} capacity by not specifying an Availability Zone in your request or choosing other zones. "
               f"Launching EC2 instance failed.")
        g = self.asg.autoscaling_groups.get(group)
        if g is not None:
            g.instance_states = [s for s in g.instance_states if s.instance.id != inst.id]
        for rid, res in list(self.ec2.reservations.items()):
            if any(i.id == inst.id for i in res.instances):
                res.instances = [i for i in res.instances if i.id != inst.id]
                if not res.instances:
                    self.ec2.reservations.pop(rid, None)
        self._activity(group, "Failed", "Launching a new EC2 instance.  Status Reason: " + msg,
                       "an instance was started in response to a difference between desired and actual capacity",
                       msg)
        self.short[group] = time.time() + self.capacity_retry
        LOG.info("instance %s of %s: launch failed, no %s capacity", inst.id, group, itype)
        return True

    def _relaunch(self, group: str) -> None:
        self.short.pop(group, None)
        g = self.asg.autoscaling_groups.get(group)
        if g is None:
            return
        lack = g.desired_capacity - len(g.active_instances())
        if lack > 0:
            g.replace_autoscaling_group_instances(lack, g.get_propagated_tags())

    def activities_xml(self, group: str, max_records: int) -> bytes:
        """DescribeScalingActivities' answer for the group, newest first, as EC2 Auto Scaling writes it."""
        from xml.sax.saxutils import escape
        with self.lock:
            acts = list(reversed(self.activities.get(group, [])))[:max_records]
        members = "".join(
            "<member><ActivityId>%s</ActivityId><AutoScalingGroupName>%s</AutoScalingGroupName>"
            "<Description>%s</Description><Cause>%s</Cause><StartTime>%s</StartTime><EndTime>%s</EndTime>"
            "<StatusCode>%s</StatusCode>%s<Progress>100</Progress></member>" % (
                a["id"], escape(group), escape(a["description"]), escape(a["cause"]),
                time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(a["time"])),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a["time"])), a["status"],
                "<StatusMessage>%s</StatusMessage>" % escape(a["message"]) if a["message"] else "")
            for a in acts)
        return ('<DescribeScalingActivitiesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
                "<DescribeScalingActivitiesResult><Activities>%s</Activities></DescribeScalingActivitiesResult>"
                "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>"
                % (members, uuid.uuid4())).encode()

    def _reap_orphans(self) -> None:
        tracked = {r.init.pid for r in self.recs.values() if r.init is not None}
        me = os.getpid()
        for pid, (ppid, st) in _proc_table().items():
            if ppid == me and st == "Z" and pid not in tracked:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    # ---- boot ----
    def _launch_data(self, inst) -> dict:
        """The launch template version an instance came from (moto does not copy a template's market options,
        metadata options, instance profile or shutdown behaviour onto the instances it starts from it)."""
        tags = {t["key"]: t["value"] for t in inst.get_tags()}
        lt_id, ver = tags.get(LT_ID_TAG), tags.get(LT_VERSION_TAG)
        if not lt_id:
            return {}
        try:
            return dict(self.ec2.get_launch_template(lt_id).get_version(ver or "$Default").data)
        except Exception:  # noqa: BLE001
            return {}

    def _lifecycle(self, inst, lt: dict, group) -> str:
        if inst.lifecycle == "spot" or (lt.get("InstanceMarketOptions") or {}).get("MarketType") == "spot":
            return "spot"
        mip = getattr(group, "mixed_instances_policy", None) or {}
        dist = mip.get("InstancesDistribution") or {}
        if mip and int(dist.get("OnDemandBaseCapacity", 0)) == 0 \
                and int(dist.get("OnDemandPercentageAboveBaseCapacity", 100)) == 0:
            return "spot"
        return "on-demand"

    def _profile(self, iid: str, lt: dict):
        assoc = self.ec2.iam_instance_profile_associations.get(iid)
        if assoc is not None:
            return assoc.iam_instance_profile
        # moto associates a RunInstances' profile with the first of its instances only; EC2 with every one
        for r in list(self.ec2.reservations.values()):
            ids = [i.id for i in r.instances]
            if iid in ids:
                for other in ids:
                    a = self.ec2.iam_instance_profile_associations.get(other)
                    if a is not None:
                        return a.iam_instance_profile
        want = lt.get("IamInstanceProfile") or {}
        if not want:
            return None
        from moto.iam.models import iam_backends
        for prof in iam_backends[ACCOUNT_ID]["global"].instance_profiles.values():
            if prof.name == want.get("Name") or prof.arn == want.get("Arn"):
                return prof
        return None

    def _shutdown_behaviour(self, iid: str) -> str:
        inst = self._moto_instance(iid)
        if inst is not None and inst.instance_initiated_shutdown_behavior == "terminate":
            return "terminate"
        lt = self._launch_data(inst) if inst is not None else {}
        return "terminate" if lt.get("InstanceInitiatedShutdownBehavior") == "terminate" else "stop"

    def _metadata_tags_enabled(self, inst) -> bool:
        if inst.metadata_options.instance_metadata_tags == "enabled":
            return True
        return (self._launch_data(inst).get("MetadataOptions") or {}).get("InstanceMetadataTags") == "enabled"

    def _private_ip(self, rec: Rec) -> str | None:
        """The instance's own loopback address from --sim-private-net (assigned once: EC2 keeps a private IPv4
        across stop and start)."""
        if self.private_net and rec.private_ip is None:
            if self.next_host > 254:
                raise RuntimeError("--sim-private-net: more than 253 instances")
            rec.private_ip = "%s.%d" % (self.private_net, self.next_host)
            self.next_host += 1
        return rec.private_ip

    def _start_imds(self, rec: Rec, inst) -> None:
        if rec.server is not None:
            return
        lt = self._launch_data(inst)
        tags = {t["key"]: t["value"] for t in inst.get_tags()}
        group = self.asg.autoscaling_groups.get(tags.get(ASG_TAG, ""))
        rec.lifecycle = self._lifecycle(inst, lt, group)
        reservation = next((r.id for r in list(self.ec2.reservations.values()) if inst in r.instances),
                           "r-0000000000000000")
        try:
            mac = inst.nics[0].mac_address
        except (KeyError, AttributeError, IndexError):
            mac = "0e:49:61:0f:c3:11"
        rec.meta = {
            "instance_id": rec.iid,
            "ami_id": inst.image_id,
            "instance_type": inst.instance_type,
            "az": inst._placement.zone,
            "private_ip": self._private_ip(rec) or inst.private_ip or "10.0.0.10",
            "hostname": inst.private_dns_name,
            "mac": mac,
            "reservation_id": reservation,
            "pending_time": iso(inst.launch_time.timestamp()) if hasattr(inst.launch_time, "timestamp")
            else iso(time.time()),
            "launch_index": int(getattr(inst, "ami_launch_index", 0) or 0),
            "group": tags.get(ASG_TAG),
        }
        view = self.view_cls(self, rec, user_data_bytes(inst.user_data))
        view.resolve_profile(inst)
        srv = self.server_cls(("127.0.0.1", 0), self.imds_handler)
        srv.cloud = view
        rec.view, rec.server = view, srv
        self.serve(srv, f"imds-{rec.iid}")

    def _close_imds(self, rec: Rec, wait: bool = False) -> None:
        srv, rec.server = rec.server, None
        if srv is None:
            return

        def close():
            try:
                srv.shutdown()
                srv.server_close()
            except Exception:  # noqa: BLE001
                pass
        if wait:
            close()
        else:
            threading.Thread(target=close, daemon=True).start()

    def imds_endpoint(self, rec: Rec) -> str | None:
        return f"http://127.0.0.1:{rec.server.server_address[1]}" if rec.server is not None else None

    def _boot(self, rec: Rec, inst) -> None:
        first = rec.root is None
        if first:
            rec.root = os.path.join(self.dir, rec.iid)
            for d in ("", "etc/mayfly", "console", "sbin", "cache"):
                os.makedirs(os.path.join(rec.root, d), exist_ok=True)
            # StateDirectoryMode=0711, LogsDirectoryMode=0750
            for d, mode in (("", 0o755), ("state", 0o711), ("logs", 0o750)):
                os.makedirs(os.path.join(rec.root, d), exist_ok=True)
                os.chmod(os.path.join(rec.root, d), mode)
        self._start_imds(rec, inst)
        if rec.state == "stopped":  # StartInstances: a new boot, fresh IMDS tokens, no old notices
            rec.view.tokens.clear()
            rec.view.spot = None
            rec.view.rebalance = None
            rec.spot_done = False
        rec.boots += 1
        rec.state = "running"
        rec.final = rec.after = rec.reason = None
        log_path = os.path.join(rec.root, "console", "cloud-init.log")

        def log(msg):
            with open(log_path, "a") as f:
                f.write(f"{iso(time.time())} boot {rec.boots}: {msg}\n")

        log(f"instance {rec.iid} ({rec.meta['instance_type']}, {rec.meta['az']}, {rec.lifecycle}) boots")
        if not rec.booted_once:  # cloud-init's write_files and runcmd are per instance: first boot only
            rec.booted_once = True
            ud = rec.view.user_data
            if ud is not None:
                with open(os.path.join(rec.root, "console", "user-data"), "wb") as f:
                    f.write(ud)
            doc, why = cloud_config_of(ud)
            if doc is None:
                rec.boot_error = why
                log(why)
            else:
                try:
                    write_files(rec.root, doc, log)
                except Exception as e:  # noqa: BLE001
                    rec.boot_error = f"write_files failed: {type(e).__name__}: {e}"
                    log(rec.boot_error)
                if doc.get("runcmd"):
                    log("runcmd skipped (the install step: the simulator runs --mayfly as it is)")
        job = os.path.join(rec.root, "etc/mayfly/job.json")
        rec.has_job = os.path.exists(job)
        bs = backstop_seconds(rec.root)
        rec.backstop_at = time.time() + (bs if bs is not None else 48 * 3600) if rec.has_job else None
        if not rec.has_job:  # ConditionPathExists=/etc/mayfly/job.json
            log("no /etc/mayfly/job.json: mayfly.service does not start")
            return
        if rec.boots == 1 and self.boot_envs:
            rec.boot_env = self.boot_envs.popleft()
        env = self._agent_env(rec)
        env_json = os.path.join(rec.root, "console", "agent-env.json")
        fd = os.open(env_json, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(env, f, indent=1, sort_keys=True)
        cmd = [sys.executable, THIS, "init", "--root", rec.root, "--mayfly", self.mayfly, "--job", job,
               "--env-json", env_json, "--grace", str(self.grace), "--restart-sec", str(self.restart_sec),
               "--parent", str(os.getpid())]
        with open(os.path.join(rec.root, "console", "init.out"), "ab") as out:
            rec.init = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True, close_fds=True)
        log(f"mayfly.service started (init pid {rec.init.pid})")
        LOG.info("instance %s: boot %d, init pid %d, imds %s", rec.iid, rec.boots, rec.init.pid,
                 self.imds_endpoint(rec))

    def _agent_env(self, rec: Rec) -> dict[str, str]:
        root = rec.root
        poweroff = os.path.join(root, "sbin", "poweroff")
        with open(poweroff, "w") as f:
            f.write(f"#!{sys.executable}\n# the instance's power-off: an OS-initiated shutdown (instances.py)\n"
                    "import sys, urllib.request\n"
                    f"req = urllib.request.Request({self.control_url + '/instances/' + rec.iid + '/poweroff'!r}, "
                    "data=b'{}', method='POST', headers={'Content-Type': 'application/json'})\n"
                    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
                    "sys.exit(0 if opener.open(req, timeout=30).status == 200 else 1)\n")
        os.chmod(poweroff, 0o755)
        env = {"PATH": os.environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        for k in ("LANG", "LC_ALL"):
            if os.environ.get(k):
                env[k] = os.environ[k]
        # the network the instance sits in (the env file may point elsewhere, as a VPC endpoint would)
        env.update({"AWS_ENDPOINT_URL": self.cloud.endpoint, "AWS_REGION": self.region,
                    "MAYFLY_NVML_LIBRARY": os.path.join(root, "no-such-libnvidia-ml.so.1")})
        env.update(read_env_file(os.path.join(root, "etc/mayfly/env")))  # EnvironmentFile=-/etc/mayfly/env
        env.update({  # what systemd and the instance's hardware fix
            "STATE_DIRECTORY": os.path.join(root, "state"),
            "LOGS_DIRECTORY": os.path.join(root, "logs"),
            "CACHE_DIRECTORY": os.path.join(root, "cache"),
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds_endpoint(rec),
            "MAYFLY_POWEROFF_COMMAND": poweroff,
        })
        env.update(self.agent_env)
        env.update(rec.boot_env)
        return env

    # ---- shutdown ----
    SHUTDOWN_STATE = {"terminated": "shutting-down", "stopped": "stopping", "rebooted": "rebooting"}
    SHUTDOWN_RANK = {"rebooted": 0, "stopped": 1, "terminated": 2}

    def _begin_shutdown(self, rec: Rec, final: str, after: str | None, reason: str) -> None:
        """The OS shuts down (SIGTERM to the agent through the init; SIGKILL to the rest after the grace), then the
        instance is `final`: terminated, stopped, or rebooted (booted again on the same root)."""
        if rec.state == "terminated" or (rec.state == "stopped" and final != "terminated"):
            return
        if rec.state in self.SHUTDOWN_STATE.values() and rec.init is not None:
            # a shutdown is under way: a terminate (or a stop during a reboot) takes it over
            if self.SHUTDOWN_RANK[final] > self.SHUTDOWN_RANK[rec.final or "rebooted"]:
                rec.final, rec.reason, rec.state = final, reason, self.SHUTDOWN_STATE[final]
                if after is None:
                    rec.after = None
            return
        rec.boot_at = None
        rec.final, rec.after, rec.reason = final, after, reason
        rec.state = self.SHUTDOWN_STATE[final]
        LOG.info("instance %s: %s (%s)", rec.iid, rec.state, reason)
        if rec.init is not None:
            try:
                os.kill(rec.init.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            self._finish_shutdown(rec)

    def _finish_shutdown(self, rec: Rec) -> None:
        if rec.final == "rebooted":
            rec.state, rec.final, rec.reason = "rebooting", None, None
            rec.boot_at = time.time() + self.boot_delay
            return
        rec.state = rec.final or "terminated"
        after, rec.after = rec.after, None
        rec.ended_by = rec.reason
        rec.backstop_at = None
        if after == "terminate":
            self._moto_end(rec.iid, "terminate", "Client.InstanceInitiatedShutdown", "Instance initiated shutdown")
        elif after == "stop":
            self._moto_end(rec.iid, "stop", "Client.InstanceInitiatedShutdown", "Instance initiated shutdown")
        if rec.state == "terminated":
            rec.ended = time.time()
            self._close_imds(rec)
            if rec.group:
                self._activity(rec.group, "Successful", f"Terminating EC2 instance: {rec.iid}",
                               f"the instance ended ({rec.ended_by})")
        LOG.info("instance %s: %s (%s)", rec.iid, rec.state, rec.ended_by)

    def _poweroff(self, rec: Rec, reason: str) -> None:
        how = self._shutdown_behaviour(rec.iid)
        self._begin_shutdown(rec, "terminated" if how == "terminate" else "stopped", how, reason)

    def _spot_act(self, rec: Rec, action: str) -> None:
        LOG.info("instance %s: spot interruption (%s)", rec.iid, action)
        reason = f"spot interruption ({action})"
        if action == "terminate":
            self._begin_shutdown(rec, "terminated", None, reason)
            self._moto_end(rec.iid, "terminate", "Server.SpotInstanceTermination", "Spot instance termination")
        else:  # stop, hibernate (no memory image: a stop)
            self._begin_shutdown(rec, "stopped", None, reason)
            self._moto_end(rec.iid, "stop", "Server.SpotInstanceShutdown", "Spot instance shutdown")

    def _hard_kill(self, rec: Rec, reason: str, moto: bool = True) -> list[int]:
        killed: list[int] = []
        if rec.init is not None:
            agent = self._agent_info(rec)
            killed = kill_tree(rec.init.pid)
            try:
                rec.init.wait(5)
            except subprocess.TimeoutExpired:
                pass
            rec.init = None
            if agent and agent.get("running") and rec.root:
                with open(os.path.join(rec.root, "console", "agents.jsonl"), "a") as f:
                    f.write(json.dumps({"event": "exit", "what": agent["what"], "pid": agent["pid"], "code": None,
                                        "signal": 9, "killed": True, "t": round(time.time(), 3)}) + "\n")
        rec.state, rec.final, rec.after, rec.boot_at = "terminated", "terminated", None, None
        rec.ended_by, rec.reason, rec.ended = reason, reason, time.time()
        if moto:
            self._moto_end(rec.iid, "terminate", "Server.InternalError", "Internal error")
        self._close_imds(rec)
        return killed

    # ---- views ----
    def _agent_info(self, rec: Rec) -> dict | None:
        if rec.root is None:
            return None
        evs = []
        try:
            with open(os.path.join(rec.root, "console", "agents.jsonl")) as f:
                for line in f:
                    try:
                        evs.append(json.loads(line))
                    except ValueError:
                        pass
        except FileNotFoundError:
            return None
        starts = [e for e in evs if e.get("event") == "start"]
        if not starts:
            return None
        cur = starts[-1]
        ex = next((e for e in evs if e.get("event") == "exit" and e.get("pid") == cur["pid"]), None)
        return {"what": cur.get("what"), "pid": cur["pid"], "running": ex is None and rec.init is not None,
                "exit_code": ex.get("code") if ex else None, "signal": ex.get("signal") if ex else None,
                "killed": bool(ex and ex.get("killed")),
                "starts": sum(1 for e in starts if e.get("what") == "agent"),
                "failsafe": any(e.get("what") == "failsafe" for e in starts)}

    def describe(self, rec: Rec) -> dict:
        inst = self._moto_instance(rec.iid)
        agent = self._agent_info(rec)
        tags = {}
        if inst is not None:
            try:
                tags = {t["key"]: t["value"] for t in inst.get_tags()}
            except RuntimeError:
                pass
        v = rec.view
        return {
            "instance_id": rec.iid,
            "state": rec.state,
            "ec2_state": inst.state if inst is not None else None,
            "root": rec.root,
            "imds_endpoint": self.imds_endpoint(rec),
            "lifecycle": rec.lifecycle if v is not None else None,
            "instance_type": inst.instance_type if inst is not None else None,
            "availability_zone": inst._placement.zone if inst is not None else None,
            "group": tags.get(ASG_TAG),
            "tags": tags,
            "first_seen": iso(rec.first_seen),
            "boots": rec.boots,
            "boot_error": rec.boot_error,
            "has_job": rec.has_job,
            "ended_by": rec.ended_by,
            "ended": iso(rec.ended) if rec.ended else None,
            "shutting_down_because": rec.reason if rec.state in self.SHUTDOWN_STATE.values() else None,
            "spot": None if v is None or v.spot is None else
            {"action": v.spot["action"], "time": iso(v.spot["time"]), "enforce": rec.spot_enforce,
             "acted": rec.spot_done},
            "rebalance": iso(v.rebalance) if v is not None and v.rebalance is not None else None,
            "init_pid": rec.init.pid if rec.init is not None else None,
            "agent": agent,
            "agent_pid": agent["pid"] if agent else None,
            "agent_running": bool(agent and agent["running"]),
            "agent_exit_code": agent["exit_code"] if agent else None,
            "agent_signal": agent["signal"] if agent else None,
            "boot_env": rec.boot_env,
        }

    # ---- control API (routes under /instances and /sim) ----
    def route(self, method: str, path: str, body) -> tuple[int, object]:
        body = body if isinstance(body, dict) else {}
        now = time.time()
        parts = [p for p in path.split("/") if p]
        if parts[0] == "sim":
            if (method, parts[1:]) == ("GET", []):
                with self.lock:
                    return 200, dict(self.info(), agent_env=self.agent_env, boot_envs_queued=list(self.boot_envs))
            if (method, parts[1:]) == ("PUT", ["agent-env"]):
                env = body.get("env")
                if not isinstance(env, dict):
                    raise ValueError('body must be {"env": {KEY: VALUE, ...}}')
                with self.lock:
                    self.agent_env = {str(k): str(v) for k, v in env.items()}
                return 200, {"ok": True, "agent_env": self.agent_env}
            if (method, parts[1:]) == ("POST", ["boot-env"]):
                envs = body.get("envs") if "envs" in body else [body.get("env")]
                if not all(isinstance(e, dict) for e in envs):
                    raise ValueError('body must be {"env": {...}} or {"envs": [{...}, ...]}')
                with self.lock:
                    self.boot_envs.extend({str(k): str(v) for k, v in e.items()} for e in envs)
                    return 200, {"ok": True, "queued": len(self.boot_envs)}
            if (method, parts[1:]) == ("PUT", ["capacity"]):
                types = body.get("none")
                if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                    raise ValueError('body must be {"none": ["p3.2xlarge", ...]} (the types EC2 has no capacity of)')
                with self.lock:
                    self.no_capacity = set(types)
                return 200, {"ok": True, "none": sorted(self.no_capacity)}
            if (method, parts[1:]) == ("DELETE", ["boot-env"]):
                with self.lock:
                    self.boot_envs.clear()
                return 200, {"ok": True}
            return 404, {"error": f"no route {method} {path}"}
        if len(parts) == 1:
            if method == "GET":
                with self.lock:
                    recs = sorted(self.recs.values(), key=lambda r: r.first_seen)
                    return 200, {"instances": [self.describe(r) for r in recs]}
            return 404, {"error": f"no route {method} {path}"}
        iid, rest = parts[1], parts[2:]
        with self.lock:
            rec = self.recs.get(iid)
            if rec is None:
                return 404, {"error": f"no simulated instance {iid}"}
            key = (method, "/".join(rest))
            if key == ("GET", ""):
                return 200, self.describe(rec)
            if key == ("POST", "kill"):
                if rec.state == "terminated":
                    return 409, {"error": f"{iid} is terminated"}
                killed = self._hard_kill(rec, "killed without notice (hardware loss)")
                return 200, {"ok": True, "killed_pids": killed}
            if key == ("POST", "poweroff"):
                if rec.state not in ("running", "pending"):
                    return 200, {"ok": True, "state": rec.state}
                self._poweroff(rec, body.get("reason") or "OS power-off")
                return 200, {"ok": True, "state": rec.state}
            if rec.view is None and (key[1] in ("spot", "rebalance") or key[1].startswith("imds/")):
                return 409, {"error": f"{iid} has not booted"}
            if key == ("POST", "spot"):
                action = body.get("action", "terminate")
                if action not in ("terminate", "stop", "hibernate"):
                    raise ValueError("action must be terminate|stop|hibernate")
                t = _parse_time(body["time"]) if body.get("time") else now + float(body.get("in", 120))
                rec.view.spot = {"action": action, "time": int(t)}
                rec.spot_enforce = bool(body.get("enforce", True))
                rec.spot_done = False
                return 200, {"ok": True, "action": action, "time": iso(int(t)), "enforce": rec.spot_enforce}
            if key == ("DELETE", "spot"):
                rec.view.spot = None
                return 200, {"ok": True}
            if key == ("POST", "rebalance"):
                t = _parse_time(body["time"]) if body.get("time") else now + float(body.get("in", 0))
                rec.view.rebalance = int(t)
                return 200, {"ok": True, "noticeTime": iso(int(t))}
            if key == ("DELETE", "rebalance"):
                rec.view.rebalance = None
                return 200, {"ok": True}
            if key == ("POST", "imds/disable"):
                rec.view.imds_enabled = False
                return 200, {"ok": True}
            if key == ("POST", "imds/enable"):
                rec.view.imds_enabled = True
                return 200, {"ok": True}
            if key == ("POST", "imds/fail"):
                st, cnt = int(body.get("status", 429)), int(body.get("count", 1))
                rec.view.imds_failures.append([st, cnt])
                return 200, {"ok": True, "status": st, "count": cnt}
            if key == ("DELETE", "imds/fail"):
                rec.view.imds_failures.clear()
                return 200, {"ok": True}
        return 404, {"error": f"no route {method} {path}"}


def _parse_time(s: str) -> float:
    import calendar
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return float(calendar.timegm(time.strptime(s.strip(), fmt)))
        except ValueError:
            pass
    raise ValueError(f"bad ISO-8601 UTC time {s!r} (want YYYY-MM-DDTHH:MM:SSZ)")


def make_view_class(base):
    """An instance's IMDS: the fake cloud's IMDS logic (base: cloud.Cloud) over one simulated instance's data, with
    its own tokens, switches and notices; role credentials and counters are the cloud's."""

    class InstanceIMDS(base):
        def __init__(self, sim: Simulator, rec: Rec, user_data: bytes | None):  # noqa: D107  (base.__init__ not run)
            cloud = sim.cloud
            self._sim, self._rec, self._cloud = sim, rec, cloud
            self.args = argparse.Namespace(**vars(cloud.args))
            self.args.lifecycle = rec.lifecycle
            self.lock = threading.RLock()
            self.creds_lock = cloud.creds_lock
            self.stats = cloud.stats
            self.started = time.time()
            self.tokens: dict[str, float] = {}
            self.imds_enabled = True
            self.imds_failures: list[list[int]] = []
            self.imds_delays: list[list[float]] = []
            self.user_data = user_data
            self.spot = None
            self.rebalance = None
            self.region = cloud.region
            self.instance = dict(rec.meta, profile_arn="", profile_id="")
            self._profile = None

        def current_creds(self, force: bool = False) -> dict:
            return self._cloud.current_creds(force)

        def resolve_profile(self, inst) -> None:
            """The instance profile, once known (moto associates it just after RunInstances has started the
            instance, so a first look may come too early)."""
            if self._profile is None and inst is not None:
                self._profile = self._sim._profile(self._rec.iid, self._sim._launch_data(inst))
                if self._profile is not None:
                    self.instance["profile_arn"] = self._profile.arn
                    self.instance["profile_id"] = self._profile.id

        def imds_tree(self) -> dict:
            sim, rec = self._sim, self._rec
            inst = sim._moto_instance(rec.iid)
            self.resolve_profile(inst)
            tree = base.imds_tree(self)
            md = tree["meta-data"]
            md["ami-launch-index"] = str(rec.meta.get("launch_index", 0))
            if self._profile is None:
                md.pop("iam", None)  # no instance profile: no iam/ at all
            else:
                fake_role = next(iter(md["iam"]["security-credentials"]))
                if fake_role not in [r.name for r in getattr(self._profile, "roles", [])]:
                    md["iam"]["security-credentials"] = {}  # only the fake's role has credentials to give
            if inst is not None and sim._metadata_tags_enabled(inst):
                md["tags"] = {"instance": {t["key"]: t["value"] for t in inst.get_tags()}}
            return tree

    return InstanceIMDS


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "init":
        sys.exit(init_main(sys.argv[2:]))
    sys.stderr.write("usage: instances.py init ... (started by the fake cloud's instance simulator)\n")
    sys.exit(2)
