"""Outputs and gradients of G and D built with the fast layers and with stock Keras layers, under $KERAS_BACKEND.

python tests/backend_layers.py OUT.npz EXPERIMENT: same seed, same weights, one training-mode call each on
the same inputs and a fixed uneven loss. Used by test_backends.py to check the JAX paths of the fast layers.
"""
import sys

import jax
import jax.numpy as jnp
import keras
import numpy as np

from harness import models, registry


def outputs_and_grads(model, x):
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    def loss(tv):
        out, new_ntv = model.stateless_call(tv, ntv, x, training=True)
        return jnp.sum(out * (jnp.arange(out.size).reshape(out.shape) % 7 - 3.0)), (out, new_ntv)

    (_, (out, new_ntv)), grads = jax.value_and_grad(loss, has_aux=True)(tv)
    return [np.asarray(out)] + [np.asarray(g) for g in grads] + [np.asarray(v) for v in new_ntv]


def main(out: str, experiment: str) -> None:
    _, c = registry.resolve(experiment, smoke=True, sets=["model.dropout=0.0"])
    rng = np.random.default_rng(1)
    inputs = {models.build_generator: rng.standard_normal((32, c.model.latent_dim)).astype(np.float32),
              models.build_discriminator: rng.random((32, 28, 28, 1), dtype=np.float32)}
    arrays = {}
    for build, x in inputs.items():
        for fast in (True, False):
            keras.utils.set_random_seed(0)
            model = build(c.model, fast_kernels=fast)
            for i, a in enumerate(outputs_and_grads(model, jnp.asarray(x))):
                arrays[f"{build.__name__}-{'fast' if fast else 'stock'}-{i:03d}"] = a
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
