# SPDX-License-Identifier: Apache-2.0
"""A real gang job for the blackbox tests: one process per node, data-parallel with torch.distributed (gloo, CPU).

TRAIN_PY is train.py, the experiment's script (TRAIN_ARCHIVE_FILES packs it into the experiment's archive, e.g.
jobrun.upload_source(cloud, key, scripts=TRAIN_ARCHIVE_FILES)); make_venv(path) makes the venv it runs in (Debian's
python3-torch 1.13 through --system-site-packages; the job spec's "env": {"venv": path}).

    python train.py [STEPS=30] [SLEEP=0.5]

It reads the gang's env (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK through init_method "env://"; MAYFLY_NODE_RANK,
MAYFLY_NNODES, MAYFLY_NODE_IPS are printed only; MAYFLY_CHECKPOINT_DIR, MAYFLY_ATTEMPT, MAYFLY_RESUME) and:
  - trains nn.Linear(16, 4) (torch.manual_seed(0)) with SGD + momentum, in DistributedDataParallel (gradients
    all-reduced over gloo), each rank on its own batch per step, drawn from a generator seeded by (rank, step):
    the data do not depend on where a run resumed, so an interrupted and resumed gang ends with the same weights,
    bit for bit, as one never interrupted (verified);
  - prints "step N" after each step and sleeps SLEEP seconds; rank 0 saves {model, optim, step} to
    $MAYFLY_CHECKPOINT_DIR/ckpt.pt after every step (ckpt.pt.tmp, then os.replace);
  - on start loads ckpt.pt where it exists (every rank: the agent restores rank 0's directory onto each member) and
    prints "resumed from step N", else "starts at step 0"; the ranks compare their steps (an all-reduce) and when
    they differ (a member's directory was not restored) every rank prints "checkpoint mismatch: ..." and exits 3,
    rather than train out of step;
  - runs.txt (cwd): "train rank=R attempt=A from=S at=TIME" at the start, "done rank=R attempt=A step=N at=TIME" at
    the end, "stopped rank=R attempt=A step=N at=TIME" on SIGTERM;
  - at the end: outputs/weights-rank<R>.txt, "sha256=<hex of the parameters' bytes> step=<N>" (equal on every rank),
    prints "done at step N", exits 0;
  - SIGTERM: waited for by a thread of its own (sigwait, SIGTERM blocked in every other thread), so it is seen even
    while the main thread is blocked in gloo (rendezvous, all-reduce); the main thread stops before its next step,
    rank 0 saves, every rank prints "stopped at step N" and exits 143. A peer's death that fails a collective is
    taken as the gang's stop when SIGTERM follows within 10 s (the agent stops the whole gang): exit 143, else 1. A
    main thread still blocked 20 s after SIGTERM is ended by that thread with os._exit(143) (ckpt.pt is then the
    last finished step's).
  - OMP_NUM_THREADS=1 and torch.set_num_threads(1): one thread per process (the test machine has 2 CPUs);
  - GLOO_SOCKET_IFNAME=lo (setdefault) when MASTER_ADDR is a loopback address (127.*) only: gloo's device then binds
    127.0.0.1 whatever the machine's hostname resolves to. Never on a real multi-host gang (each rank would
    advertise 127.0.0.1).
  - init_process_group's timeout is 60 s (rendezvous and each collective): a gang missing a member fails in a
    minute, not in torch's default 30 min.

Verified on Debian 12 (2 CPUs, python3-torch 1.13.1+dfsg-4, torch.__version__ "1.13.0a0"), two processes as one
user, MASTER_ADDR=127.11.1.2 (Linux routes 127/8 to lo; binding 127.11.1.2 works without any address added):
  - 30 steps x 0.5 s: both ranks "done at step 30", equal hashes; about 21 s wall per run (import torch ~1.5 s,
    init_process_group ~0.1 s once both are up);
  - SIGTERM to both at step 12: exit 143 both, ckpt.pt at step 12; restarted with MAYFLY_RESUME=1 and rank 0's
    checkpoint copied into rank 1's directory: "resumed from step 12", "done at step 30", equal hashes, and the
    same hash as the uninterrupted run;
  - without GLOO_SOCKET_IFNAME it works too where the hostname resolves to a bindable address (here 127.0.0.1);
  - rank 1's directory left empty on resume: rank 1 exits 3 ("checkpoint mismatch"), rank 0 fails its next
    collective (exit 1).
  - the TCPStore server (rank 0) listens on MASTER_PORT on every address (0.0.0.0 and ::), not on MASTER_ADDR only:
    two gangs (or tests) on one machine need distinct MASTER_PORTs.
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
import signal
import sys
import threading
import time

STOP = threading.Event()
TRAINING = threading.Event()  # set once the gang is up and the start step is known
GRACE_S = 20.0


def _sigterm_waiter():
    signal.sigwait({signal.SIGTERM})
    STOP.set()
    print("SIGTERM", flush=True)
    if not TRAINING.is_set():  # still importing or in the rendezvous: nothing to save
        print("stopped before training", flush=True)
        os._exit(143)
    time.sleep(GRACE_S)  # the main thread exits first unless it is stuck in a collective
    print("still running %.0f s after SIGTERM: exit" % GRACE_S, flush=True)
    os._exit(143)


# before any other thread (torch's, gloo's) starts: they inherit the mask, so SIGTERM reaches the waiter only
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
threading.Thread(target=_sigterm_waiter, daemon=True).start()

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
dist.init_process_group("gloo", init_method="env://", timeout=datetime.timedelta(seconds=60))
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
TRAINING.set()
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
    print("step %d loss %.6f" % (step, loss.item()), flush=True)
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
