"""Many seeds of one arm as one compiled program under JAX: the population step.

One seed's step uses a few percent of a GPU, so the seeds of an arm train together: JaxStep's pure
train step is vectorised over the members' states and random keys (`jax.vmap`), and a chunk of steps
is one dispatch for all of them (`lax.scan`; on CPUs one dispatch a step, as in step_jax.py). Each member draws exactly what its solo run would (its own
seed's initial weights and key), so a member is the same run as its solo seed (tests/test_population.py
compares them). A member whose loss turns non-finite stops updating from that step on (its state stays
the last finite one) and the others go on.

The state is JaxStep's, with a leading member axis on every array: (K, ...).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _member(tree, i: int):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


class PopulationStep:
    """many(start, count) runs steps start .. start+count-1 for every member; outputs have shape (K, count)."""

    def __init__(self, steps: list):
        self.template = steps[0]  # its Keras models and optimizers give the structure; the state is ours
        self.size = len(steps)
        self.images = self.template.images
        self.live = _stack([s.live for s in steps])
        self.keys = jnp.stack([s.key for s in steps])
        self.alive = jnp.ones(self.size, bool)
        self.generator, self.discriminator = self.template.generator, self.template.discriminator
        self._many = jax.jit(self._scan_steps, static_argnums=5, donate_argnums=0)
        self._one = jax.jit(self._all_members, donate_argnums=0)
        self.scan = self.template.scan  # on CPUs a loop of single steps (step_jax.py says why)

    def _all_members(self, state, keys, alive, images, step):
        """One step of every member (vmap); a member whose loss is not finite keeps its old state."""
        def one_member(state, key, alive):
            new, out = self.template.train_step(state, images, step, key)
            alive = alive & jnp.isfinite(out["d_loss"]) & jnp.isfinite(out["g_loss"])
            new = jax.tree_util.tree_map(lambda n, o: jnp.where(alive, n, o), new, state)  # diverged: frozen
            return new, alive, out

        return jax.vmap(one_member)(state, keys, alive)

    def _scan_steps(self, state, keys, alive, images, start, count):
        def body(carry, i):
            state, alive, out = self._all_members(carry[0], keys, carry[1], images, start + i)
            return (state, alive), out

        (state, alive), outs = jax.lax.scan(body, (state, alive), jnp.arange(count))
        return state, alive, {k: v.T for k, v in outs.items()}  # (count, K) -> (K, count)

    def many(self, start: int, count: int) -> dict:
        if not self.scan:
            outs = []
            for i in range(count):
                self.live, self.alive, out = self._one(self.live, self.keys, self.alive, self.images,
                                                       jnp.asarray(start + i, jnp.int32))
                outs.append(out)
            return {k: jnp.stack([o[k] for o in outs], axis=1) for k in outs[0]}  # (K, count)
        self.live, self.alive, outs = self._many(self.live, self.keys, self.alive, self.images,
                                                 jnp.asarray(start, jnp.int32), count)
        return outs

    def set_alive(self, alive: list[bool]) -> None:
        """Members to train (False: diverged, frozen at its last finite state)."""
        self.alive = jnp.asarray(alive, bool)

    def sync_models(self, member: int = 0) -> None:
        """Write one member's state into the Keras models (before saving its generator)."""
        self.template.live = _member(self.live, member)
        self.template.sync_models()

    def state(self) -> list[np.ndarray]:
        """Every variable of every member, in TensorFlowStep.state()'s order, each stacked to (K, ...)."""
        per_member = []
        for i in range(self.size):
            self.template.live = _member(self.live, i)
            per_member.append(self.template.state())
        return [np.stack(arrays) for arrays in zip(*per_member)]

    def set_state(self, arrays: list[np.ndarray]) -> None:
        trees = []
        for i in range(self.size):
            self.template.set_state([a[i] for a in arrays])
            trees.append(self.template.live)
        self.live = _stack(trees)

    def generate(self, latent_vectors: np.ndarray, member: int = 0) -> np.ndarray:
        """latent (N, latent_dim) -> one member's images (N, 28, 28, 1) in G's output range."""
        g_tv, g_ntv = _member(self.live[0], member), _member(self.live[1], member)
        images = self.template._generate(g_tv, g_ntv, jnp.asarray(latent_vectors, jnp.float32))
        return np.asarray(images, dtype=np.float32)
