"""`harness compare --workers K`: one comparison shared by K processes on this machine, each with one GPU
(CUDA_VISIBLE_DEVICES) when there are K, else its share of the cores. They are the same command, so the
seed claims that share a comparison among machines (harness/claims.py) share it here; this process
waits for them, then reports from the store, where every seed already has its outcome."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from harness import machine
from harness import stop as stop_lib
from harness.config import UserError

WORKER_ENV = "HARNESS_COMPARE_WORKER"  # set in a worker: it writes no report run of its own to the store
PROGRESS_ENV = "HARNESS_COMPARE_PROGRESS"  # a worker's progress file, read by the process that started it


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


class Reported:
    """A worker's plan bar that also writes its progress for the starting process to show:
    {"planned": steps planned over every plan this worker printed, "done": steps it trained}, at most every
    2 s and when closed. Steps trained by other workers are theirs: the sum of "done" over the workers
    is the work done, and the largest "planned" the work there was."""
    planned = done = 0  # over this process's plans (--until-decided prints one a look)

    def __init__(self, bar, steps: int, path: Path):
        self._bar, self._path, self._written = bar, path, 0.0
        Reported.planned += steps
        self._write()

    def update(self, n: int) -> None:
        self._bar.update(n)
        Reported.done += n
        if time.monotonic() - self._written >= 2.0:
            self._write()

    def close(self) -> None:
        self._bar.close()
        self._write()

    def _write(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"planned": Reported.planned, "done": Reported.done}))
        tmp.replace(self._path)  # whole, never half-written, for the reader
        self._written = time.monotonic()


def bar(the_plan):
    """The plan's bar over the steps to train, reported to the starting process in a worker of --workers."""
    shown = the_plan.bar()
    path = os.environ.get(PROGRESS_ENV)
    return Reported(shown, the_plan.steps_to_train, Path(path)) if path and is_worker() else shown


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
    threads = machine.threads_each(workers)
    out.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    for i in range(workers):
        env = {**os.environ, WORKER_ENV: "1", "HARNESS_WORKER": f"{machine.worker_name()}-w{i}",
               "PYTHONUNBUFFERED": "1", PROGRESS_ENV: str(out / f"worker-{i}.progress.json")}
        if devices >= workers:
            env["CUDA_VISIBLE_DEVICES"] = str(i)
        else:
            env.update(machine.thread_env(threads))  # a share of the cores each, not all of them each
        log = out / f"worker-{i}.log"
        logs.append(log)
        with open(log, "a") as f:  # appended: the same command resumed keeps what the last start logged
            f.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: worker {i} of {workers} started\n")
            f.flush()
            procs.append(subprocess.Popen([sys.executable, "-m", "harness", *base, "--out", str(out / f"worker-{i}")],
                                          env=env, stdout=f, stderr=subprocess.STDOUT))
    share = "a GPU each" if devices >= workers else f"{threads} core{'s' * (threads != 1)} each"
    print(f"{workers} workers share this comparison ({share}); "
          f"their logs: {out}/worker-*.log", file=sys.stderr)
    stop, previous = stop_lib.install()
    shown = tqdm(total=None, desc="all workers", unit="step", file=sys.stderr, dynamic_ncols=True, smoothing=0.05)
    try:
        while any(p.poll() is None for p in procs):
            if stop.signal is not None:
                raise KeyboardInterrupt
            _show_progress(shown, [out / f"worker-{i}.progress.json" for i in range(workers)])
            time.sleep(1)
        _show_progress(shown, [out / f"worker-{i}.progress.json" for i in range(workers)])
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        raise
    finally:
        shown.close()
        stop_lib.restore(previous)
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    if failed:
        i, code = failed[0]
        raise UserError(f"compare worker {i} stopped with exit code {code}; its log: {logs[i]} (the same command "
                        "resumes what it was training).")


def _show_progress(shown, paths: list[Path]) -> None:
    """One bar over the workers' steps: the most any worker planned, the sum of what each trained."""
    said = [json.loads(p.read_text()) for p in paths if p.exists()]
    if not said:
        return
    planned, done = max(r["planned"] for r in said), sum(r["done"] for r in said)
    if planned != shown.total:
        shown.total = planned
        shown.refresh()
    if done > shown.n:
        shown.update(done - shown.n)
