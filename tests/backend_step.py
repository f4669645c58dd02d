"""One train step (D phase then G phase) on given weights and inputs, under $KERAS_BACKEND.

python tests/backend_step.py OUT.npz EXPERIMENT [IN.npz]: without IN, draws the initial state and inputs and saves
them too; with IN, starts from IN's state and inputs. Used by test_backends.py to check that the
TensorFlow and JAX steps implement the same update.
"""
import sys

import numpy as np

import harness  # noqa: F401
import phases
from harness import loop, registry
from harness.data import Dataset


def main(out: str, experiment: str, given: str | None) -> None:
    _, config = registry.resolve(experiment, smoke=True, sets=["model.dropout=0.0", "train.batch_size=8"])
    x = np.zeros((16, 28, 28), np.uint8)
    _, _, step = loop.build(config, Dataset("mnist-5k", "test", x, np.zeros(16, int), x, np.zeros(16, int)), seed=0)
    if given:
        with np.load(given) as f:
            initial = [f[f"s{i:04d}"] for i in range(int(f["n"]))]
            real, z_d, z_g = f["real"], f["z_d"], f["z_g"]
        step.set_state(initial)
    else:
        rng = np.random.default_rng(0)
        initial = step.state()
        real = rng.random((4, 28, 28, 1), dtype=np.float32)
        z_d = rng.standard_normal((4, config.model.latent_dim)).astype(np.float32)
        z_g = rng.standard_normal((8, config.model.latent_dim)).astype(np.float32)
    d_out = phases.discriminator_phase(step, real, z_d)
    g_loss = phases.generator_phase(step, z_g)
    after = step.state()
    names = np.array([v.path for v in step.variables()])
    np.savez(out, n=len(after), names=names, real=real, z_d=z_d, z_g=z_g, d_loss=float(d_out["d_loss"]), g_loss=float(g_loss),
             **{f"s{i:04d}": a for i, a in enumerate(initial)}, **{f"a{i:04d}": a for i, a in enumerate(after)})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
