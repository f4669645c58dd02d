"""The harness's train step computes what the seed's own Keras loop computes, step by step, for every
registered experiment and each sweep value whose model differs. The reference is harness/classic.py
(the seed's loop in public Keras calls on its own stock layers, sharing nothing with models.py or
step_*.py); the harness side is the step as training runs it (`step.many`: the compiled TensorFlow
function, the jitted JAX step). Both start from the same state and see the same real digits (the
harness's draw, each side scaling the uint8 digits its own way) and latent points, at tiny width, with
the recipe's dropout of 0.4, whose masks both sides draw alike from the same seed states
(tests/seed_loop.py).

What is compared is what round-off cannot turn over: Adam's first moments after one step (the
gradients, per tensor), first and second moments and BatchNorm's moving statistics after three steps
(by kind and network, relative to the largest value of the kind) and the losses. Weights after several
Adam steps are not: a gradient of round-off size still takes a full step of either sign, so a weight can
differ by the learning rate with both sides right (their moments show any real difference anyway).

The tolerances are not one machine's worst case. In the same process the seed's loop runs against
itself from states one float32 ulp apart (seed_loop.roundoff_case): how far round-off alone carries
each quantity in three steps, on this CPU, this backend and these libraries. A difference passes when
it is within FACTOR times that. Measured on a 2-core AMD EPYC under TensorFlow 2.21: round-off 1.8e-7
to 4.7e-4 (the largest for G's moments with BatchNorm), the harness's differences at most 0.072 of
their tolerance with stock layers and the fast kernels alike, and the injected bugs of
test_each_injected_bug_fails_by_over_100x_its_tolerance 11,900x (LeakyReLU slope 0.3) to 635,000x (D
learning in G's phase) their tolerance (BatchNorm placed after D's activation in models.py, tried by hand:
11,700x).
A bias right before a BatchNorm (true gradient 0, so pure round-off) and its moments are left out, as in
tests/test_backends.py. Dropout: the recipe's 0.4; D's dropout is active in G's update on both sides
(gan.train_on_batch calls D in training mode), or the losses would differ.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from extras import requires_jax

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import seed_loop  # noqa: E402

FACTOR = 100.0  # a difference passes within FACTOR x the round-off scale measured in the same process
FLOOR = 1e-8  # the smallest round-off scale used, for a quantity round-off happened to leave unmoved


def _layer(key: str) -> str:
    """'d.weight.04.down2/bias' -> 'down2'; 'd.m.03.down2_bias_momentum' -> 'down2'."""
    name = key.split(".", 3)[3]
    return name.split("/")[0] if "/" in name else name.rsplit("_", 2)[0]


def _zero_gradient(key: str, keys) -> bool:
    is_bias = key.endswith(("/bias", "_bias_momentum", "_bias_velocity"))
    return is_bias and any(f".{_layer(key)}_bn/" in k for k in keys)


def _worst(arrays: dict, prefix: str, when: str) -> dict:
    """(kind, network) -> worst |seed - harness| over tensors of that kind, divided by the largest |value|
    of that kind (for step 1's first moments: per tensor, by its own largest value)."""
    seed = {k[len(f"{prefix}seed/{when}/"):]: v for k, v in arrays.items() if k.startswith(f"{prefix}seed/{when}/")}
    out = {}
    for key, a in seed.items():
        if _zero_gradient(key, seed):
            continue
        b = arrays[f"{prefix}harness/{when}/{key}"]
        net, kind = key.split(".")[:2]
        if when == "after1":
            if kind != "m":
                continue
            scale = np.abs(a).max()
        else:
            scale = max(np.abs(v).max() for k, v in seed.items() if k.startswith(f"{net}.{kind}."))
        out[(kind, net)] = max(out.get((kind, net), 0.0), float(np.abs(a - b).max() / max(scale, 1e-30)))
    return out


def _loss_gap(arrays: dict, prefix: str) -> float:
    return max(float(np.max(np.abs(arrays[f"{prefix}seed/loss.{i}"] - arrays[f"{prefix}harness/loss.{i}"])
                            / np.abs(arrays[f"{prefix}seed/loss.{i}"]))) for i in range(1, seed_loop.STEPS + 1))


def _comparisons(arrays: dict, labels=None, sides=("stock", "fast")) -> list[tuple[str, float, float]]:
    """(what, difference, tolerance) for every robust quantity of every case and side."""
    out = []
    for label in labels or [c[0] for c in seed_loop.CASES]:
        roundoff = f"{label}/roundoff/"
        scale = {when: _worst(arrays, roundoff, when) for when in ("after1", "after")}
        for kernels in sides:
            prefix = f"{label}/{kernels}/"
            for when, words in (("after1", "Adam first moments after one step"),
                                ("after", f"after {seed_loop.STEPS} steps")):
                for (kind, net), worst in _worst(arrays, prefix, when).items():
                    if kind == "weight":
                        continue  # not a robust witness: see the module's docstring
                    tolerance = FACTOR * max(scale[when].get((kind, net), 0.0), FLOOR)
                    out.append((f"{label} {kernels}: {net} {kind} {words}", worst, tolerance))
            out.append((f"{label} {kernels}: losses", _loss_gap(arrays, prefix),
                        FACTOR * max(_loss_gap(arrays, roundoff), FLOOR)))
    return out


def _check(arrays: dict, labels=None) -> list[str]:
    return [f"{what} differ by {worst:.2e} (tolerance {tolerance:.1e})"
            for what, worst, tolerance in _comparisons(arrays, labels)
            if worst > tolerance]


@pytest.mark.slow
def test_tensorflow_step_is_the_seed_loop_for_every_experiment():
    assert _check(seed_loop.all_cases()) == []


def _d_learns_in_g_phase(step):
    """A bug: the generator phase also applies the G loss's gradient to D (the seed's D is frozen there)."""
    import tensorflow as tf

    def generator_phase(random_latent_vectors):
        g_vars, d_vars = step.generator.trainable_variables, step.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            logits = step.discriminator(step.generator(random_latent_vectors, training=True), training=True)
            g_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits))
        grads = tape.gradient(g_loss, g_vars + d_vars)
        step.g_optimizer.apply_gradients(zip(grads[:len(g_vars)], g_vars))
        step.d_optimizer.apply_gradients(zip(grads[len(g_vars):], d_vars))
        return g_loss
    step.generator_phase = generator_phase
    return step


def _without_tanh_scaling(config, dataset):
    """A bug: the data pipeline leaves real images in [0, 1] where tanh's G makes [-1, 1]."""
    from harness import loop, models
    right = models.pixel_range
    models.pixel_range = lambda activation: (0.0, 1.0)
    try:
        return loop.build(config, dataset, seed=0, fast_kernels=False)
    finally:
        models.pixel_range = right


@pytest.mark.slow
def test_each_injected_bug_fails_by_over_100x_its_tolerance():
    """Bugs injected into the harness side, each against the seed's loop of its experiment, stock layers."""
    from harness import config as cfg
    bugs = {  # name: (experiment, what run_case is given)
        "real label 1.0 in smoothing": ("smoothing", lambda c: {"harness_config": cfg.replace(c, {"train.real_label": 1.0})}),
        # 1e-6, not 0: Keras builds no RNG state for rate 0, and the two sides' variables would not line up
        "dropout off in D": ("base", lambda c: {"harness_config": cfg.replace(c, {"model.dropout": 1e-6})}),
        "D updated in the generator phase": ("base", lambda c: {"step_for_harness": _d_learns_in_g_phase}),
        "the other BatchNorm mode": ("batchnorm", lambda c: {"harness_config": cfg.replace(c, {"model.batchnorm_mode": "train"})}),
        "tanh without scaling real images to [-1, 1]": ("tanh", lambda c: {"build_for_harness": _without_tanh_scaling}),
        "LeakyReLU slope 0.3": ("base", lambda c: {"harness_config": cfg.replace(c, {"model.leaky_slope": 0.3})}),
    }
    for bug, (experiment, injected) in bugs.items():
        config = seed_loop.config_for(experiment, [], 0.4)
        arrays = {f"{bug}/stock/{k}": v for k, v in seed_loop.run_case(config, False, **injected(config)).items()}
        arrays.update({f"{bug}/roundoff/{k}": v for k, v in seed_loop.roundoff_case(config).items()})
        worst = max(_comparisons(arrays, [bug], sides=("stock",)), key=lambda c: c[1] / c[2])
        assert worst[1] > 100 * worst[2], f"{bug}: the largest excess is {worst[1] / worst[2]:.0f}x ({worst[0]})"


@pytest.mark.slow
@requires_jax
def test_jax_step_is_the_seed_loop_for_every_experiment(tmp_path):
    """The jitted harness step against the seed's loop op by op (--eager-reference: its train functions
    without XLA, to spare CI their compilations), everything TensorFlow's test compares, within FACTOR x
    the round-off measured under JAX. (Measured on a 2-core AMD EPYC, JAX 0.10.2: at most 0.053 of the
    tolerance. When the harness side was driven phase by phase instead of as training runs it, G's
    moments after three steps at latent 256 differed by 2.3e-4 of the largest; the step as it trains
    agrees.)"""
    out = tmp_path / "jax.npz"
    p = subprocess.run([sys.executable, str(HERE / "seed_loop.py"), str(out), "--eager-reference"], capture_output=True,
                       text=True, timeout=900, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert p.returncode == 0, p.stderr[-3000:]
    with np.load(out) as f:
        assert _check(dict(f)) == []
