"""One phase of a backend's train step at a time, on the step's own state: what tests check phase by phase.
TensorFlowStep's phases update its models in place; JaxStep's are pure functions of its state."""
from __future__ import annotations


def discriminator_phase(step, real_images, latents) -> dict:
    if not hasattr(step, "live"):  # TensorFlowStep
        return step.discriminator_phase(real_images, latents)
    import jax
    import jax.numpy as jnp
    step.live, out = jax.jit(step.discriminator_phase)(step.live, jnp.asarray(real_images), jnp.asarray(latents))
    step.sync_models()
    return out


def generator_phase(step, latents):
    if not hasattr(step, "live"):
        return step.generator_phase(latents)
    import jax
    import jax.numpy as jnp
    step.live, g_loss = jax.jit(step.generator_phase)(step.live, jnp.asarray(latents))
    step.sync_models()
    return g_loss
