"""The JAX backend: the same update as TensorFlow's step, and smoke experiments end to end."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from extras import requires_jax

pytestmark = requires_jax
HERE = Path(__file__).parent


def _run(backend: str, *args, cwd=None) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                       env={**os.environ, "KERAS_BACKEND": backend})
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _zero_gradient(name: str, names: set) -> bool:
    """A bias right before BatchNorm: its true gradient is 0, so Adam turns float noise into +-lr."""
    layer = name.split("/")[-1].rsplit("_bias", 1)[0] if name.startswith("adam") else name.split("/")[0]
    return name.endswith(("bias", "bias_momentum", "bias_velocity")) and f"{layer}_bn/gamma" in names


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["base", "batchnorm"])
def test_tensorflow_and_jax_steps_make_the_same_update(tmp_path, experiment):
    tf_out, jax_out = tmp_path / "tf.npz", tmp_path / "jax.npz"
    _run("tensorflow", str(HERE / "backend_step.py"), str(tf_out), experiment)
    _run("jax", str(HERE / "backend_step.py"), str(jax_out), experiment, str(tf_out))
    with np.load(tf_out) as a, np.load(jax_out) as b:
        names = [str(x) for x in a["names"]]
        assert a["d_loss"] == pytest.approx(b["d_loss"], rel=1e-5)
        assert a["g_loss"] == pytest.approx(b["g_loss"], rel=1e-5)
        n = int(a["n"])
        moved = 0
        for i in range(n):
            before, tf_after, jax_after = a[f"s{i:04d}"], a[f"a{i:04d}"], b[f"a{i:04d}"]
            if before.dtype.kind != "f" or _zero_gradient(names[i], set(names)):
                continue  # seed-generator and step counters; biases whose gradient is only round-off
            np.testing.assert_allclose(jax_after, tf_after, rtol=1e-4, atol=1e-6)
            moved += not np.array_equal(before, tf_after)
        assert moved > 10  # the step really changed weights, moments and BatchNorm statistics


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["base", "batchnorm"])
def test_fast_layers_compute_what_stock_layers_compute_under_jax(tmp_path, experiment):
    """PhaseConv2DTranspose and OneFilterConv2D's JAX-on-CPU forms: outputs, gradients, BN statistics."""
    out = tmp_path / "layers.npz"
    _run("jax", str(HERE / "backend_layers.py"), str(out), experiment)
    with np.load(out) as f:
        fast = sorted(k for k in f.files if "-fast-" in k)
        assert len(fast) > 10
        for key in fast:
            a, b = f[key], f[key.replace("-fast-", "-stock-")]
            scale = max(float(np.abs(f[k]).max()) for k in f.files if k.split("-")[0] == key.split("-")[0])
            # A bias right before BatchNorm has a true gradient of 0, only round-off: hence atol.
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5 * scale, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["batchnorm"])
def test_smoke_experiment_runs_under_jax(scorer_5k, store, name):
    """The whole path (CLI, MLflow run, evaluations, saved generator) under JAX for the model with
    BatchNorm's state; base's runs under JAX end to end in test_population.py (as a population and solo),
    and every experiment's step is checked under JAX in test_fidelity.py.
    scorer_5k first: the classifier is trained once, in this process (JAX on CPU trains it ~3x slower)."""
    _run("jax", "-m", "harness", "run", name, "--smoke", "--set", "eval.n_images=100", cwd=store)
    from harness import registry, tracking
    c = tracking.client()
    runs = [r for r in c.search_runs([c.get_experiment_by_name(name).experiment_id]) if r.data.tags.get("kind") != "group"]
    assert len(runs) == len(registry.load(name).sweep_values())
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["backend"] == "jax" and "final/fid" in run.data.metrics
