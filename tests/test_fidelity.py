"""The harness's train step computes what the seed's own Keras loop computes, step by step, for every
registered experiment and each sweep value whose model differs (tests/seed_loop.py: the reference in
public Keras calls on stock layers; both sides from the same weights, on the same real half-batches and
latent points, at tiny width, with the recipe's dropout of 0.4, whose masks both sides draw alike
because they call D in the same order with the same seed state).

- After one step, Adam's first moments ((1 - beta_1) x gradient) agree per tensor to 1e-5 relative.
- After three steps, weights, both optimizers' moments and BatchNorm's moving statistics agree within
  TOLERANCE of the largest value of their kind in that network, and the losses to the same relative
  tolerance: stock layers on both sides, and the harness's fast kernels (which round differently).

Adam divides by sqrt(v) + 1e-7, so a gradient that is round-off-sized gets a step of about lr whose sign
is the round-off's: the tolerances are set by that, from measurements (worst seen, 2-core CPU):
- stock layers 1e-6 (measured at most 3e-7 for weights and 7e-7 for moments); BatchNorm's moments and
  losses 1e-5 (measured 5e-6 and 2e-6): D's bias before its BatchNorm has a true gradient of 0, so
  Adam moves it by +-lr on round-off, and in the seed's semantics the frozen D, normalising with moving
  statistics, does not cancel that bias in G's update;
- fast kernels 2e-3 (measured 1.2e-3: under JAX, latent 256's dense kernel, 214 of 100,352 weights
  whose tiny gradients took opposite Adam steps); BatchNorm's moments 1e-2 (measured 3.3e-3).
The other BatchNorm semantics (model.batchnorm_mode=train) differ from the seed's loop by 0.8-8 in the
moments and 3e-2 in the moving statistics: far outside these (test_the_comparison_can_fail).
A bias right before a BatchNorm (true gradient 0, so pure round-off) and its moments are left out, as in
tests/test_backends.py. Dropout: the recipe's 0.4; D's dropout is active in G's update on both sides
(gan.train_on_batch calls D in training mode), or the losses would differ.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import seed_loop  # noqa: E402

TOLERANCE = {"stock": 1e-6, "fast": 2e-3}
BATCHNORM_MOMENTS = {"stock": 1e-5, "fast": 1e-2}  # moments and losses of the batchnorm case: see above


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


def _check(arrays: dict, labels=None) -> list[str]:
    failures = []
    for label in labels or [c[0] for c in seed_loop.CASES]:
        for kernels, tolerance in TOLERANCE.items():
            prefix = f"{label}/{kernels}/"
            looser = BATCHNORM_MOMENTS[kernels] if label.startswith("batchnorm") else tolerance
            for (kind, net), worst in _worst(arrays, prefix, "after1").items():
                if worst > 1e-5:
                    failures.append(f"{label} {kernels}: {net}'s Adam first moments after one step differ by {worst:.2e}")
            for (kind, net), worst in _worst(arrays, prefix, "after").items():
                if worst > (looser if kind in "mv" else tolerance):
                    failures.append(f"{label} {kernels}: {net} {kind} after {seed_loop.STEPS} steps differ by {worst:.2e}")
            for step in range(1, seed_loop.STEPS + 1):
                a, b = arrays[f"{prefix}seed/loss.{step}"], arrays[f"{prefix}harness/loss.{step}"]
                if not np.allclose(a, b, rtol=looser, atol=0):
                    failures.append(f"{label} {kernels}: losses at step {step} differ: {a} against {b}")
    return failures


def test_tensorflow_step_is_the_seed_loop_for_every_experiment():
    assert _check(seed_loop.all_cases()) == []


def test_the_comparison_can_fail():
    """The harness in keras-io's BatchNorm semantics against the seed's loop: caught, on both kernels."""
    from harness import config as cfg
    config = seed_loop.config_for("batchnorm", [], 0.4)
    other = cfg.replace(config, {"model.batchnorm_mode": "train"})
    arrays = {f"batchnorm/{'fast' if fast else 'stock'}/{k}": v
              for fast in (False, True) for k, v in seed_loop.run_case(config, fast, harness_config=other).items()}
    failures = _check(arrays, ["batchnorm"])
    assert any("stock: d m" in f for f in failures) and any("fast: g bn" in f for f in failures), failures


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the jax extra")
def test_jax_step_is_the_seed_loop_for_every_experiment(tmp_path):
    """Op by op (--eager: both sides without XLA, to spare CI 2.5 minutes of compilation); jitted, the
    same cases agree as closely (measured with `KERAS_BACKEND=jax python tests/seed_loop.py OUT.npz`)."""
    out = tmp_path / "jax.npz"
    p = subprocess.run([sys.executable, str(HERE / "seed_loop.py"), str(out), "--eager"], capture_output=True,
                       text=True, timeout=900, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert p.returncode == 0, p.stderr[-3000:]
    with np.load(out) as f:
        assert _check(dict(f)) == []
