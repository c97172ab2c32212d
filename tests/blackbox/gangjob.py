# SPDX-License-Identifier: Apache-2.0
"""A real gang job for the blackbox tests: one process per node, data-parallel with torch.distributed (gloo, CPU).

TRAIN_PY is train.py, the experiment's script (TRAIN_ARCHIVE_FILES packs it into the experiment's archive, e.g.
jobrun.upload_source(cloud, key, scripts=TRAIN_ARCHIVE_FILES)); make_venv(path) makes the venv it runs in (Debian's
python3-torch through --system-site-packages; the job spec's "env": {"venv": path}); have_torch() says whether
python3-torch is installed (tests/deps.sh does not install it: skip without it).

    python train.py [STEPS=30] [SLEEP=0.5]

It reads the gang's env (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK through init_method "env://"; MAYFLY_NODE_IPS
and MAYFLY_RESUME are only printed; MAYFLY_CHECKPOINT_DIR, default ./checkpoint; MAYFLY_ATTEMPT, default 1) and:
  - trains nn.Linear(16, 4) (torch.manual_seed(0)) with SGD + momentum in DistributedDataParallel (gradients
    all-reduced over gloo), each rank on its own batch per step, drawn from a generator seeded by (rank, step): the
    data do not depend on where a run resumed, so a gang stopped and resumed ends with the same weights, bit for
    bit, as one never stopped (on the same machine and torch);
  - prints "step N" after each step, then sleeps SLEEP s; rank 0 saves {model, optim, step} to
    $MAYFLY_CHECKPOINT_DIR/ckpt.pt after every step (ckpt.pt.tmp, then os.replace);
  - on start every rank loads ckpt.pt where it exists (the agent restores rank 0's directory onto each member):
    "resumed from step N", else "starts at step 0"; the ranks then compare their steps (an all-reduce) and when
    they differ (a member's directory was not restored) every rank prints "checkpoint mismatch: ..." and exits 3;
  - runs.txt (cwd), one line each: "train rank=R attempt=A from=S at=TIME" once started, "done rank=R attempt=A
    step=N at=TIME" at the end, "stopped rank=R attempt=A step=N at=TIME" on SIGTERM;
  - at the end: outputs/weights-rank<R>.txt, "sha256=<hex> step=<N>" (SHA-256 of the state dict's names and
    bytes: equal on every rank), prints "done at step N", exits 0;
  - SIGTERM once the gang is up (after init_process_group): the main thread stops before its next step, rank 0
    saves, every rank prints "stopped at step N" and exits 143. A peer's death that fails a collective (the peer
    got SIGTERM first) counts as the gang's stop when SIGTERM comes within 10 s: exit 143, else exit 1. A thread
    woken by the signal's wakeup fd ends a main thread still stuck (a hung peer) 20 s after SIGTERM: os._exit(143),
    ckpt.pt then being the last finished step's. SIGTERM before the gang is up (import, rendezvous: torch 1.13's
    TCPStore waits for the others holding the GIL, so no Python handler could run) ends the process by the
    default action at once: killed by signal 15, not exit 143;
  - one thread per process: OMP_NUM_THREADS=1 (setdefault, before import torch) and torch.set_num_threads(1);
  - GLOO_SOCKET_IFNAME=lo (setdefault) only when MASTER_ADDR is a loopback address (127.*): gloo's device then
    binds 127.0.0.1 whatever the hostname resolves to; never on a real multi-host gang (each rank would advertise
    127.0.0.1);
  - init_process_group(timeout=60 s; TRAIN_TIMEOUT_S in the env changes it): the rendezvous and each collective. A
    member that never comes makes the others fail after twice that (the TCPStore's wait, then gloo's): ~125 s.

Verified on Debian 12 with 2 CPUs (python3-torch 1.13.1+dfsg-4: torch.__version__ "1.13.0a0"), two processes on
one machine, MASTER_ADDR=127.11.1.2 (Linux routes 127/8 to lo: nothing to add), as root and as nobody
(HOME=/nonexistent: nothing is written there), in a make_venv venv:
  - import torch ~1.1-1.5 s, ~240 MB RSS per process; init_process_group ~1 s when both start together (0.02-0.15 s
    when the other is already waiting); a whole 30-step run (0.5 s sleeps) ~17 s wall; 18 resumed steps ~10-11 s;
  - 30 steps: rc 0 both, "done at step 30", equal hashes;
  - SIGTERM to rank 1 at its step 12, then to rank 0 0.2 s (or 3 s) later: rc 143 both, ckpt.pt at step 12 (with
    3 s rank 0's step 13 all-reduce fails first: "collective failed", then the stop); restarted with MAYFLY_RESUME=1,
    MAYFLY_ATTEMPT=2, the same MASTER_PORT and rank 0's ckpt.pt copied to rank 1: "resumed from step 12", rc 0
    both, "done at step 30", equal hashes, and the hash of the run never stopped;
  - restarted without rank 1's copy: "checkpoint mismatch" on both, rc 3 both, in ~1.5 s;
  - rank 1 SIGSTOPped, rank 0 SIGTERMed: rank 0 exits 143 20 s later; rank 0 alone, SIGTERM during the rendezvous:
    killed by signal 15 at once; rank 0 alone, no SIGTERM: RuntimeError "Socket Timeout", rc 1 after ~125 s;
  - GLOO_SOCKET_IFNAME="" (torch's "unset"): works too here, the hostname resolving to 127.0.0.1;
  - rank 0's TCPStore listens on *:MASTER_PORT (every address, v4 and v6), not on MASTER_ADDR: gangs (or tests)
    at once on one machine need distinct MASTER_PORTs; a port is reusable at once by the next attempt.
"""
import os
import stat
import subprocess

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-torch; not the PATH's (pyenv's has no torch)

TRAIN_PY = r'''#!/usr/bin/env python3
"""mayfly gang test job: data-parallel training, one process per node (torch.distributed, gloo)."""
import datetime
import hashlib
import os
import select
import signal
import sys
import threading
import time

STOP = threading.Event()
GRACE_S = 20.0
TIMEOUT_S = float(os.environ.get("TRAIN_TIMEOUT_S", "60"))  # rendezvous and each collective


def _on_sigterm(signum, frame):  # runs in the main thread, between two bytecodes
    STOP.set()


def _watch(r):
    """Wakes on SIGTERM even while the main thread waits in gloo (the signal's C handler writes to the wakeup fd)."""
    while True:
        select.select([r], [], [])
        try:
            if signal.SIGTERM in os.read(r, 64):
                break
        except BlockingIOError:
            pass
    STOP.set()
    print("SIGTERM", flush=True)
    time.sleep(GRACE_S)  # the main thread exits first unless it is stuck in a collective
    print("still running %.0f s after SIGTERM: exit" % GRACE_S, flush=True)
    os._exit(143)


def catch_sigterm():
    """From here SIGTERM stops the job between steps. Before (import, rendezvous: torch's TCPStore waits for the
    others holding the GIL, no Python handler would run), SIGTERM's default action ends the process at once."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(r,), daemon=True).start()


os.environ.setdefault("OMP_NUM_THREADS", "1")
if os.environ.get("MASTER_ADDR", "").startswith("127."):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: gloo binds 127.0.0.1

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

torch.set_num_threads(1)

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
SLEEP = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
RANK = int(os.environ["RANK"])
WORLD = int(os.environ["WORLD_SIZE"])
ATTEMPT = os.environ.get("MAYFLY_ATTEMPT", "1")
CKPT_DIR = os.environ.get("MAYFLY_CHECKPOINT_DIR") or "checkpoint"
CKPT = os.path.join(CKPT_DIR, "ckpt.pt")


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def note(what, **kv):
    with open("runs.txt", "a") as f:
        f.write("%s rank=%d attempt=%s %s at=%s\n" % (what, RANK, ATTEMPT,
                                                     " ".join("%s=%s" % i for i in kv.items()), now()))


def leave(code):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no atexit: gloo's teardown may wait on a peer that is gone


print("gang rank=%d of %d master=%s:%s node_ips=%s resume=%s attempt=%s" % (
    RANK, WORLD, os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"), os.environ.get("MAYFLY_NODE_IPS"),
    os.environ.get("MAYFLY_RESUME", "0"), ATTEMPT), flush=True)
t0 = time.monotonic()
dist.init_process_group("gloo", init_method="env://", timeout=datetime.timedelta(seconds=TIMEOUT_S))
catch_sigterm()
print("init_process_group %.2f s" % (time.monotonic() - t0), flush=True)

torch.manual_seed(0)
model = nn.Linear(16, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
W_TRUE = torch.randn(16, 4, generator=torch.Generator().manual_seed(1234))

step = 0
if os.path.exists(CKPT):
    ck = torch.load(CKPT, map_location="cpu")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optim"])
    step = int(ck["step"])
    print("resumed from step %d" % step, flush=True)
else:
    print("starts at step 0", flush=True)
span = torch.tensor([step, -step], dtype=torch.int64)
dist.all_reduce(span, op=dist.ReduceOp.MAX)  # every rank learns the latest and the earliest start
if int(span[0]) != -int(span[1]):
    print("checkpoint mismatch: rank %d at step %d, the gang's from %d to %d" % (RANK, step, -int(span[1]),
                                                                              int(span[0])), flush=True)
    leave(3)
note("train", **{"from": step})
ddp = DDP(model)  # broadcasts rank 0's parameters


def save(n):
    if RANK != 0:
        return
    os.makedirs(CKPT_DIR, exist_ok=True)
    tmp = CKPT + ".tmp"
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "step": n}, tmp)
    os.replace(tmp, CKPT)


def stopped(n):
    save(n)
    note("stopped", step=n)
    print("stopped at step %d" % n, flush=True)
    leave(143)


while step < STEPS:
    if STOP.is_set():
        stopped(step)
    g = torch.Generator().manual_seed(100003 * (RANK + 1) + step)
    x = torch.randn(32, 16, generator=g)
    y = x @ W_TRUE + 0.01 * torch.randn(32, 4, generator=g)
    try:
        opt.zero_grad()
        loss = nn.functional.mse_loss(ddp(x), y)
        loss.backward()  # all-reduces the gradients
        opt.step()
    except RuntimeError as e:  # a peer gone: the gang's stop when SIGTERM follows (the step did not happen)
        print("collective failed at step %d: %s" % (step + 1, str(e).splitlines()[0][:200]), flush=True)
        if STOP.wait(10):
            stopped(step)
        leave(1)
    step += 1
    save(step)
    print("step %d" % step, flush=True)
    time.sleep(SLEEP)

h = hashlib.sha256()
for k, v in model.state_dict().items():
    h.update(k.encode())
    h.update(v.detach().cpu().contiguous().numpy().tobytes())
os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "weights-rank%d.txt" % RANK), "w") as f:
    f.write("sha256=%s step=%d\n" % (h.hexdigest(), step))
note("done", step=step)
print("done at step %d" % step, flush=True)
try:
    dist.barrier()  # rank 0's store outlives the others' last use of it
except RuntimeError:
    pass
leave(0)
'''

TRAIN_ARCHIVE_FILES = {"train.py": TRAIN_PY}


def make_venv(path):
    """A venv at path on Debian's Python with its site-packages (python3-torch): `python` in it imports torch.
    --without-pip: 0.06 s instead of 4. Made readable and searchable by everyone, for the run user (its parents must
    be searchable too: tempfile.mkdtemp's are 0700). Returns path."""
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", "--without-pip", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for d, dirs, files in os.walk(path):
        os.chmod(d, os.stat(d).st_mode | stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH
                 | stat.S_IXOTH)
        for n in files:
            p = os.path.join(d, n)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return path


def have_torch():
    """Whether Debian's python3-torch is installed (tests skip without it: tests/deps.sh does not install it)."""
    return subprocess.run([SYSTEM_PYTHON, "-c", "import torch.distributed as d; assert d.is_gloo_available()"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
