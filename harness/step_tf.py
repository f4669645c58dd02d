"""The GAN train step for the TensorFlow backend: both updates in one compiled function.

It computes what the seed's Keras loop computes (tests/test_fidelity.py proves it step by step against
that loop): D's update on half a batch of real images and half of G's, then G's update through D.
With model.batchnorm_mode "classic" (the seed's semantics) D's fakes come from G in inference mode,
as `G.predict` makes them, and D is frozen in G's update as in the seed's composite model, so its
BatchNorm normalises with moving statistics there (its dropout stays on); "train" runs both networks
in training mode in both phases (keras-io's DCGAN). Without BatchNorm the two are the same maths.

All per-step randomness (which real images, which latent points) is a stateless function of
(seed, step), so a resumed run draws exactly what an uninterrupted one would. Dropout draws from
Keras seed generators whose state is among the models' variables and is checkpointed with them.
"""
from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from harness.config import Config
from harness.models import frozen
from harness.step import Step

# Offsets that give each random draw of a step its own stream: (seed + offset, step or epoch).
_REAL_ORDER, _D_LATENT, _G_LATENT = 0, 1_000_003, 2_000_006


def _bce(labels, logits):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class TensorFlowStep(Step):
    """step(i) runs training step i and returns its losses and D accuracies as scalar tensors."""

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, images: np.ndarray, config: Config,
                 seed: int, jit_compile: bool = True):
        super().__init__(generator, discriminator, g_optimizer, d_optimizer, images, config, seed)
        self.images = tf.constant(images)  # float32 (N, 28, 28, 1) in G's output range, resident on the device
        self._step = tf.function(self._train_step, jit_compile=jit_compile, reduce_retracing=True)
        self._generate = tf.function(lambda z: generator(z, training=False), jit_compile=jit_compile)

    def __call__(self, step: int) -> dict:
        return self._step(self.images, tf.constant(step, tf.int64))

    def many(self, start: int, count: int) -> dict:
        """Steps start .. start+count-1; each output stacked to shape (count,)."""
        outs = [self(i) for i in range(start, start + count)]
        return {key: tf.stack([o[key] for o in outs]) for key in outs[0]}

    def _train_step(self, images, step):
        indices, d_latent, g_latent = self._draws(tf.shape(images, out_type=tf.int64)[0], step)
        out = self.discriminator_phase(tf.gather(images, indices), d_latent)
        out["g_loss"] = self.generator_phase(g_latent)
        return out

    def _draws(self, n, step):
        """Step `step`'s random inputs: (indices of its real half-batch, D's latent points (half, latent),
        G's latent points (batch, latent))."""
        seed = tf.constant(self.seed, tf.int64)
        d_latent = tf.random.stateless_normal([self.half, self.latent_dim], seed=tf.stack([seed + _D_LATENT, step]))
        g_latent = tf.random.stateless_normal([self.batch_size, self.latent_dim], seed=tf.stack([seed + _G_LATENT, step]))
        return self.real_indices(n, step), d_latent, g_latent

    def draws(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What step `step` draws, as numpy (the fidelity tests hand the same to the seed's loop)."""
        out = self._draws(tf.constant(self.images.shape[0], tf.int64), tf.constant(step, tf.int64))
        return tuple(np.asarray(a) for a in out)

    def real_indices(self, n, step):
        """Which real images step `step` shows: half a batch drawn with replacement, as the seed's
        randint does, or consecutive slices of a fresh shuffle every epoch."""
        seed = tf.constant(self.seed, tf.int64)
        if self.sampling == "replacement":
            return tf.random.stateless_uniform([self.half], seed=tf.stack([seed + _REAL_ORDER, step]), minval=0,
                                               maxval=n, dtype=tf.int64)
        epoch, within = step // self.steps_per_epoch, step % self.steps_per_epoch
        order = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([seed + _REAL_ORDER, epoch])))
        return order[within * self.half:(within + 1) * self.half]

    def discriminator_phase(self, real_images, random_latent_vectors) -> dict:
        """One D update on half a batch of real and half a batch of generated images; G is untouched."""
        half = tf.shape(real_images)[0]
        fake_images = self.generator(random_latent_vectors, training=not self.classic)  # classic: as G.predict
        combined_images = tf.concat([real_images, tf.cast(fake_images, real_images.dtype)], axis=0)
        labels = tf.concat([tf.fill([half, 1], self.real_label), tf.zeros([half, 1])], axis=0)  # real_label: 1 or 0.9
        with tf.GradientTape() as tape:
            logits = self.discriminator(combined_images, training=True)
            d_loss = _bce(labels, logits)
        grads = tape.gradient(d_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables))
        return {
            "d_loss": d_loss,
            "d_acc_real": tf.reduce_mean(tf.cast(logits[:half] > 0, tf.float32)),
            "d_acc_fake": tf.reduce_mean(tf.cast(logits[half:] < 0, tf.float32)),
        }

    def generator_phase(self, random_latent_vectors):
        """One G update through D: make D call fakes real. Only G's weights move."""
        misleading_labels = tf.ones([tf.shape(random_latent_vectors)[0], 1])
        with tf.GradientTape() as tape:
            fake_images = self.generator(random_latent_vectors, training=True)
            with frozen(self.discriminator) if self.classic else contextlib.nullcontext():  # classic: the seed's frozen D
                fake_logits = self.discriminator(fake_images, training=True)
            g_loss = _bce(misleading_labels, fake_logits)
        grads = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables))
        return g_loss

    def generate(self, latent_vectors: np.ndarray, member: int = 0) -> np.ndarray:
        """latent (N, latent_dim) -> images (N, 28, 28, 1) in G's output range, as float32 numpy
        (member: always 0, a population of one; see step_population.py)."""
        return self._generate(tf.constant(latent_vectors, tf.float32)).numpy().astype(np.float32)
