"""`harness compare --workers K`: one comparison shared by K processes on this machine, each with one GPU
(CUDA_VISIBLE_DEVICES) when there are K, else its share of the cores. They are the same command, so the
seed claims that share a comparison among machines (harness/claims.py) share it here; this process
waits for them, then reports from the store, where every seed already has its outcome."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import machine
from harness import stop as stop_lib
from harness.config import UserError

WORKER_ENV = "HARNESS_COMPARE_WORKER"  # set in a worker: it writes no report run of its own to the store


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def gpus() -> int:
    """GPUs on this machine (nvidia-smi's list), without starting a framework on them here."""
    if shutil.which("nvidia-smi") is None:
        return 0
    found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in found.stdout.splitlines()) if found.returncode == 0 else 0


def without(argv: list[str], *options: str) -> list[str]:
    """argv without these options and their values (--opt V or --opt=V)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not a.startswith(tuple(f"{o}=" for o in options)):
            out.append(a)
    return out


def run(argv: list[str], workers: int, out: Path) -> None:
    """Start `workers` copies of this compare command (argv without --workers and --out), each logging to
    out/worker-I.log, and wait for all; Ctrl-C or SIGTERM stops them (each checkpoints its run)."""
    base = without(argv, "--workers", "--out")
    devices = gpus()
    threads = max(1, (os.cpu_count() or 1) // workers)
    out.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    for i in range(workers):
        env = {**os.environ, WORKER_ENV: "1", "HARNESS_WORKER": f"{machine.worker_name()}-w{i}",
               "PYTHONUNBUFFERED": "1"}
        if devices >= workers:
            env["CUDA_VISIBLE_DEVICES"] = str(i)
        else:  # a share of the cores each, not all of them each
            env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS=str(threads))
        log = out / f"worker-{i}.log"
        logs.append(log)
        with open(log, "w") as f:
            procs.append(subprocess.Popen([sys.executable, "-m", "harness", *base, "--out", str(out / f"worker-{i}")],
                                          env=env, stdout=f, stderr=subprocess.STDOUT))
    print(f"{workers} workers share this comparison ({'a GPU each' if devices >= workers else f'{threads} cores each'}); "
          f"their logs: {out}/worker-*.log", file=sys.stderr)
    stop, previous = stop_lib.install()
    try:
        while any(p.poll() is None for p in procs):
            if stop.signal is not None:
                raise KeyboardInterrupt
            time.sleep(1)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise
    finally:
        stop_lib.restore(previous)
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        i, code = failed[0]
        raise UserError(f"compare worker {i} stopped with exit code {code}; its log: {logs[i]} (the same command "
                        "resumes what it was training).")
