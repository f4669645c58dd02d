"""When several seeds of one config train as one population (harness/step_population.py) rather than
one at a time: train.population, whose default (null) means under JAX on an accelerator."""
from __future__ import annotations

from harness import machine
from harness.config import Config, UserError


def trains_together(config: Config, seeds: int) -> bool:
    """Whether these seeds train as one population. On a CPU a member-step costs more than a solo step
    (vmap turns the convolutions into grouped ones, slow in XLA's CPU backend: docs/performance.md), and
    TensorFlow trains one seed at a time."""
    import keras
    if config.train.population and keras.backend.backend() != "jax":
        raise UserError("train.population=true needs the JAX backend (KERAS_BACKEND=jax, pip install -e \".[jax]\"); "
                        "under TensorFlow seeds train one at a time.")
    if config.train.population is None:
        return seeds > 1 and keras.backend.backend() == "jax" and machine.platform() != "cpu"
    return config.train.population and seeds > 1
