"""The harness step with stock Keras layers against the same step with the fast TensorFlow layers
(OneFilterConv2D for G's image layer, FusedBatchNormalization), side by side in one process.

Both steps start from the same weights and draw the same batches; they are timed in alternating
blocks so that a change in machine load hits both. Prints one line per experiment and its ratio.
Usage: python bench/kernels.py [--steps N] [EXPERIMENT ...]   (default: base batchnorm, 10 steps)
"""
from __future__ import annotations

import argparse

import numpy as np

from harness import loop, plan, registry
from harness import data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", default=["base", "batchnorm"])
    p.add_argument("--steps", type=int, default=10, help="timed steps per side, in blocks of 2")
    args = p.parse_args()
    for name in args.names:
        _, config = registry.resolve(name)
        dataset = data.for_config(config)
        steps = {side: loop.build(config, dataset, seed=0, fast_kernels=side == "fast")[2] for side in ("stock", "fast")}
        times = {side: [] for side in steps}
        for side, step in steps.items():
            plan.time_steps(step, 0, warmup=2)  # compile
        for block in range(0, args.steps, 2):
            for side, step in steps.items():
                times[side] += plan.time_steps(lambda i, step=step: step(i + 2 + block), 2, warmup=0)
        stock, fast = (float(np.median(times[side])) * 1000 for side in ("stock", "fast"))
        print(f"{name:<10} stock layers {stock:7.1f} ms/step   fast layers {fast:7.1f} ms/step   "
              f"ratio={fast / stock:.3f}", flush=True)


if __name__ == "__main__":
    main()
