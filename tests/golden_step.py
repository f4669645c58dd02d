"""The golden fingerprint of the train step under $KERAS_BACKEND: 4 steps at tiny width from seed 0 on
fixed images, dropout on, for a few experiments.

python tests/golden_step.py [EXPERIMENT ...]: prints {experiment: [d_loss sum, g_loss sum, L1 of the
update, projection of the update]} as JSON (default: every experiment in EXPERIMENTS); the update is every float variable's change (weights,
Adam moments, BatchNorm statistics), the projection its dot product with fixed random numbers, so a
change of direction shows even where the size does not. GOLDEN below stores these per
NUMERICS_VERSION and backend; tests/test_identity.py compares.
"""
import json
import sys

import numpy as np

import harness  # noqa: F401
from harness import loop, registry
from harness.data import Dataset

EXPERIMENTS = ("base", "batchnorm", "smoothing", "tanh")

# The golden fingerprint of each NUMERICS_VERSION on CPUs: 4 steps at tiny width (fingerprint() below:
# d_loss sum, g_loss sum, L1 and a random projection of the update), per backend and experiment. A change
# to what the step computes fails tests/test_identity.py until harness/identity.py's NUMERICS_VERSION is
# bumped and a new entry is added from `KERAS_BACKEND=... python tests/golden_step.py`; old entries stay
# as history.
GOLDEN = {
    2: {"tensorflow": {"base": [2.89138031, 3.065365522, 25.59866048, -0.01653895238],
                       "batchnorm": [3.70812726, 3.139108300, 226.5262751, 1.956243921],
                       "smoothing": [2.874932051, 3.074811220, 25.15061746, 0.2539140575],
                       "tanh": [2.842606783, 2.737396479, 31.38426576, -0.5340291971]},
        "jax": {"base": [2.976130307, 1.995937854, 27.21624236, 1.266065088],
                "batchnorm": [2.763740957, 3.306762695, 225.0671424, -2.427653273]}},
    3: {"tensorflow": {"base": [2.950380087, 3.060612679, 24.99818824, 0.01724704133],
                       "batchnorm": [3.870925248, 2.962044895, 83.46434104, 0.1464479667],
                       "smoothing": [2.925606251, 3.071354508, 24.59792394, 0.2771155713],
                       "tanh": [2.83949846, 2.736020267, 30.84188332, -0.7559167624]},
        "jax": {"base": [2.96573174, 1.994834065, 27.50606516, 1.157648867],
                "batchnorm": [2.852619946, 2.053719789, 88.14741551, -2.652592157]}},
}
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
