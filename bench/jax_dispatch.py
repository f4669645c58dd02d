"""Why JAX runs on CPUs step one dispatch at a time: the same jitted train step alone and inside lax.scan
(the chunked form JaxStep.many uses on accelerators), side by side in one process.

    KERAS_BACKEND=jax python bench/jax_dispatch.py [--set model.g_filters=32 ...]

Prints ms per step of each form and ratio=<scan / alone> last.
"""
from __future__ import annotations

import argparse

import numpy as np

from harness import loop, registry
from harness import data
from harness.plan import time_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=2, help="timed steps (or chunks) per form, after one warm-up")
    parser.add_argument("--chunk", type=int, default=5, help="steps per lax.scan dispatch")
    args = parser.parse_args()
    _, config = registry.resolve("base", False, {}, args.set)
    _, _, step = loop.build(config, data.for_config(config), seed=0)

    alone = float(np.median(time_steps(step, args.steps, warmup=1)))
    step.scan = True  # JaxStep.many's accelerator form, here on the CPU
    scanned = float(np.median(time_steps(lambda i: step.many(i * args.chunk, args.chunk), args.steps, warmup=1)))
    scanned /= args.chunk
    print(f"config: G {config.model.g_filters} / D {config.model.d_filters} filters, batch {config.train.batch_size}")
    print(f"one jitted step a dispatch   {alone * 1000:9.1f} ms/step")
    print(f"lax.scan, {args.chunk} steps a dispatch {scanned * 1000:9.1f} ms/step")
    print(f"ratio={scanned / alone:.2f}")


if __name__ == "__main__":
    main()
