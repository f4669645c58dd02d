"""What both backends' train steps share (step_tf.py, step_jax.py): the run's settings as the step reads
them, the variables a checkpoint holds, and the contract the loop calls.

The contract: step(i) runs training step i and returns its losses and D accuracies; many(start, count)
runs a chunk of steps, each output stacked to (count,); state() and set_state(arrays) read and write
every variable of both networks and optimizers (dropout seed states included); sync_models() writes
live weights back into the Keras models (before saving or sampling); generate(latents) makes images.
"""
from __future__ import annotations

import numpy as np

from harness.config import Config


def steps_per_epoch(config: Config, n_train: int) -> int:
    """Steps in an epoch: the training images in whole batches (at least one); step i reads batch
    i % steps_per_epoch of epoch i // steps_per_epoch's order."""
    return max(1, n_train // config.train.batch_size)


class Step:
    """The settings and state both backends' steps share; subclasses implement the update itself."""

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, images: np.ndarray, config: Config,
                 seed: int):
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        batch_size = config.train.batch_size
        self.half = batch_size // 2  # real images per step; as many fakes
        self.batch_size = batch_size  # latent points in the generator phase
        self.steps_per_epoch = steps_per_epoch(config, len(images))
        self.latent_dim = generator.input_shape[-1]
        self.real_label = float(config.train.real_label)  # 1, or 0.9 for one-sided smoothing
        self.sampling = config.data.sampling
        self.classic = config.model.batchnorm_mode == "classic"
        self.seed = int(seed)
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)

    def variables(self) -> list:
        """Every variable a checkpoint holds, in one order for both backends."""
        return (self.generator.variables + self.discriminator.variables
                + self.g_optimizer.variables + self.d_optimizer.variables)

    def state(self) -> list[np.ndarray]:
        """Every variable of both networks and optimizers, dropout seed states included."""
        self.sync_models()
        return [np.asarray(v.value) for v in self.variables()]

    def set_state(self, arrays: list[np.ndarray]) -> None:
        variables = self.variables()
        if len(arrays) != len(variables):
            raise ValueError(f"checkpoint holds {len(arrays)} arrays; this model has {len(variables)} variables.")
        for v, a in zip(variables, arrays):
            v.assign(a)
        self.models_changed()

    def models_changed(self) -> None:
        """The Keras variables were set from outside: a step that keeps its own copy reads them again."""

    def sync_models(self, member: int = 0) -> None:
        """Write live weights into the Keras models; nothing to do where the models hold them (TensorFlow)."""
