"""The golden fingerprint of the train step under $KERAS_BACKEND: 4 steps at tiny width from seed 0 on
fixed images, dropout on, for a few experiments.

python tests/golden_step.py [EXPERIMENT ...]: prints {experiment: [d_loss sum, g_loss sum, L1 of the
update, projection of the update]} as JSON (default: every experiment in EXPERIMENTS); the update is every float variable's change (weights,
Adam moments, BatchNorm statistics), the projection its dot product with fixed random numbers, so a
change of direction shows even where the size does not. harness/identity.py GOLDEN stores these per
NUMERICS_VERSION and backend; tests/test_identity.py compares.
"""
import json
import sys

import numpy as np

import harness  # noqa: F401
from harness import loop, registry
from harness.data import Dataset

EXPERIMENTS = ("base", "batchnorm", "smoothing", "tanh")
STEPS = 4


def fingerprint(experiment: str) -> list[float]:
    _, config = registry.resolve(experiment, smoke=True, sets=["train.batch_size=16"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    y = np.arange(64) % 10
    _, _, step = loop.build(config, Dataset("golden", "tests/golden_step.py", x, y, x, y), seed=0)
    before = step.state()
    out = step.many(0, STEPS)
    after = step.state()
    deltas = [(a - b).astype(np.float64).ravel() for a, b in zip(after, before) if a.dtype.kind == "f"]
    delta = np.concatenate(deltas)
    weights = np.random.default_rng(1).standard_normal(delta.size)
    return [float(np.sum(np.asarray(out["d_loss"], np.float64))), float(np.sum(np.asarray(out["g_loss"], np.float64))),
            float(np.abs(delta).sum()), float(delta @ weights)]


def main() -> None:
    names = sys.argv[1:] or EXPERIMENTS
    print(json.dumps({name: [float(f"{v:.10g}") for v in fingerprint(name)] for name in names}))


if __name__ == "__main__":
    main()
