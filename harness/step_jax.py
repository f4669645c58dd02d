"""The GAN train step for the JAX backend: both updates in one jitted, pure function of the state.

Keras 3's stateless API (stateless_call, stateless_apply) keeps the models and optimizers the same
objects as under TensorFlow; the state (weights, BatchNorm statistics, dropout seed states, Adam
moments) lives in JAX arrays between steps and is written back to the Keras variables on demand.
Per-step draws are a stateless function of (seed, step), and model.batchnorm_mode has the same two
meanings, as in step_tf.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import numpy as np

from harness.config import Config
from harness.models import frozen
from harness.step import Step

# Streams of the step's random draws, folded into the run's key.
_REAL_ORDER, _D_LATENT, _G_LATENT = 0, 1, 2


def _bce(labels, logits):
    """Sigmoid cross-entropy from logits, the stable form (as tf.nn.sigmoid_cross_entropy_with_logits)."""
    logits = logits.astype(jnp.float32)
    return jnp.mean(jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits))))


class JaxStep(Step):
    """step(i) runs training step i and returns its losses and D accuracies as scalar arrays."""

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, images: np.ndarray, config: Config,
                 seed: int, jit_compile: bool = True):
        super().__init__(generator, discriminator, g_optimizer, d_optimizer, images, config, seed)
        self.images = jnp.asarray(images)  # float32 (N, 28, 28, 1) in G's output range, resident on the device
        self.key = jax.random.key(self.seed)
        self.live = self._read_state()  # the state between steps, as JAX arrays
        wrap = jax.jit if jit_compile else (lambda f, **kw: f)
        self._step = wrap(self.train_step, donate_argnums=0)
        self._many = jax.jit(self._scan_steps, static_argnums=3, donate_argnums=0) if jit_compile else self._scan_steps
        # XLA's CPU backend runs the step 3x (quarter width) to 15x (full width) slower inside lax.scan than
        # alone (bench/jax_dispatch.py), so on CPUs a chunk is a loop of single steps: the same function.
        self.scan = jax.default_backend() != "cpu"
        self._generate = wrap(self._generate_images)

    # ------------------------------------------------------------------ the step, top to bottom

    def __call__(self, step: int) -> dict:
        self.live, out = self._step(self.live, self.images, jnp.asarray(step, jnp.int32))
        return out

    def many(self, start: int, count: int) -> dict:
        """Steps start .. start+count-1, each output stacked to shape (count,): one dispatch (lax.scan) on
        an accelerator, one per step on a CPU."""
        if not self.scan:
            outs = [self(start + i) for i in range(count)]
            return {k: jnp.stack([o[k] for o in outs]) for k in outs[0]}
        self.live, outs = self._many(self.live, self.images, jnp.asarray(start, jnp.int32), count)
        return outs

    def _scan_steps(self, state, images, start, count):
        return jax.lax.scan(lambda s, i: self.train_step(s, images, start + i), state, jnp.arange(count))

    def train_step(self, state, images, step, key=None):
        """One step of a pure function of the state; key: the run's random key (harness/step_population.py
        passes each member's)."""
        indices, d_latent, g_latent = self._draws(images.shape[0], step, self.key if key is None else key)
        state, out = self.discriminator_phase(state, images[indices], d_latent)
        state, out["g_loss"] = self.generator_phase(state, g_latent)
        return state, out

    def _draws(self, n: int, step, key):
        """Step `step`'s random inputs: (indices of its real half-batch, D's latent points (half, latent),
        G's latent points (batch, latent))."""
        d_latent = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, _D_LATENT), step),
                                     (self.half, self.latent_dim))
        g_latent = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, _G_LATENT), step),
                                     (self.batch_size, self.latent_dim))
        return self.real_indices(n, step, key), d_latent, g_latent

    def draws(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What step `step` draws, as numpy (the fidelity tests hand the same to the seed's loop)."""
        return tuple(np.asarray(a) for a in self._draws(self.images.shape[0], jnp.asarray(step, jnp.int32), self.key))

    def real_indices(self, n: int, step, key=None):
        """Which real images step `step` shows: half a batch drawn with replacement, as the seed's
        randint does, or consecutive slices of a fresh shuffle every epoch."""
        stream = jax.random.fold_in(self.key if key is None else key, _REAL_ORDER)
        if self.sampling == "replacement":
            return jax.random.randint(jax.random.fold_in(stream, step), (self.half,), 0, n)
        epoch, within = step // self.steps_per_epoch, step % self.steps_per_epoch
        order = jax.random.permutation(jax.random.fold_in(stream, epoch), n)
        return jax.lax.dynamic_slice(order, (within * self.half,), (self.half,))

    def discriminator_phase(self, state, real_images, random_latent_vectors):
        """One D update on half a batch of real and half a batch of generated images; G's weights untouched."""
        g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov = state
        half = real_images.shape[0]
        fake_images, g_ntv = self.generator.stateless_call(g_tv, g_ntv, random_latent_vectors,
                                                           training=not self.classic)  # classic: as G.predict
        combined_images = jnp.concatenate([real_images, fake_images.astype(real_images.dtype)], axis=0)
        labels = jnp.concatenate([jnp.full((half, 1), self.real_label), jnp.zeros((half, 1))])  # real_label: 1 or 0.9

        def d_loss_fn(d_tv, d_ntv):
            logits, d_ntv = self.discriminator.stateless_call(d_tv, d_ntv, combined_images, training=True)
            return _bce(labels, logits), (logits, d_ntv)

        (d_loss, (logits, d_ntv)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_tv, d_ntv)
        d_tv, d_ov = self.d_optimizer.stateless_apply(d_ov, grads, d_tv)
        out = {"d_loss": d_loss,
               "d_acc_real": jnp.mean((logits[:half] > 0).astype(jnp.float32)),
               "d_acc_fake": jnp.mean((logits[half:] < 0).astype(jnp.float32))}
        return (g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov), out

    def generator_phase(self, state, random_latent_vectors):
        """One G update through D: make D call fakes real. Only G's weights move."""
        g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov = state
        misleading_labels = jnp.ones((random_latent_vectors.shape[0], 1))

        def g_loss_fn(g_tv, g_ntv, d_ntv):
            fake_images, g_ntv = self.generator.stateless_call(g_tv, g_ntv, random_latent_vectors, training=True)
            if self.classic:  # the seed's frozen D
                logits, d_ntv = self._frozen_discriminator(d_tv, d_ntv, fake_images)
            else:
                logits, d_ntv = self.discriminator.stateless_call(d_tv, d_ntv, fake_images, training=True)
            return _bce(misleading_labels, logits), (g_ntv, d_ntv)

        (g_loss, (g_ntv, d_ntv)), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_tv, g_ntv, d_ntv)
        g_tv, g_ov = self.g_optimizer.stateless_apply(g_ov, grads, g_tv)
        return (g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov), g_loss

    def _frozen_discriminator(self, d_tv, d_ntv, images):
        """D called in training mode while frozen (models.frozen), statelessly: stateless_call needs the
        trainable/non-trainable split, which freezing changes, so map every variable to its value here."""
        d = self.discriminator
        mapping = list(zip(d.trainable_variables, d_tv)) + list(zip(d.non_trainable_variables, d_ntv))
        non_trainable = d.non_trainable_variables
        with frozen(d), keras.StatelessScope(state_mapping=mapping) as scope:
            logits = d(images, training=True)
        return logits, [scope.get_current_value(v) for v in non_trainable]

    def _generate_images(self, g_tv, g_ntv, latent_vectors):
        return self.generator.stateless_call(g_tv, g_ntv, latent_vectors, training=False)[0]

    # ------------------------------------------------------------------ the state between steps

    def _read_state(self):
        g, d = self.generator, self.discriminator
        return ([v.value for v in g.trainable_variables], [v.value for v in g.non_trainable_variables],
                [v.value for v in d.trainable_variables], [v.value for v in d.non_trainable_variables],
                [v.value for v in self.g_optimizer.variables], [v.value for v in self.d_optimizer.variables])

    def sync_models(self, member: int = 0) -> None:
        """Write the live JAX state back into the Keras variables (before saving or sampling)."""
        g, d = self.generator, self.discriminator
        groups = (g.trainable_variables, g.non_trainable_variables, d.trainable_variables,
                  d.non_trainable_variables, self.g_optimizer.variables, self.d_optimizer.variables)
        for variables, values in zip(groups, self.live):
            for v, value in zip(variables, values):
                v.assign(value)

    def models_changed(self) -> None:
        self.live = self._read_state()

    def generate(self, latent_vectors: np.ndarray, member: int = 0) -> np.ndarray:
        """latent (N, latent_dim) -> images (N, 28, 28, 1) in G's output range (member: see step_population.py)."""
        g_tv, g_ntv = self.live[0], self.live[1]
        return np.asarray(self._generate(g_tv, g_ntv, jnp.asarray(latent_vectors, jnp.float32)), dtype=np.float32)
