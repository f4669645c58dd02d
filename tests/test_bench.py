"""`harness bench`: both sides really run, the FLOP count matches the built layers, the profile adds up.

No timing is asserted (shared machines are noisy): only that the numbers exist and are consistent.
"""
from __future__ import annotations

import os
import subprocess
import sys

import keras
import pytest
from extras import requires_jax

from harness import loop, models, profile, registry
from harness.__main__ import main
from harness.config import ModelConfig

TINY = ["--set", "model.g_filters=8", "--set", "model.d_filters=8", "--set", "train.batch_size=16",
        "--set", "data.name=mnist-5k"]


def _layer_flops(model: keras.Model) -> float:
    """Multiply-adds x 2 of one example, read from the built layers' weight and output shapes."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):  # every input pixel meets the whole kernel
            k_h, k_w, c_out, c_in = layer.kernel.shape
            h, w = layer.input.shape[1:3]
            total += 2 * h * w * k_h * k_w * c_in * c_out
        elif isinstance(layer, keras.layers.Conv2D):  # every output pixel meets the whole kernel
            k_h, k_w, c_in, c_out = layer.kernel.shape
            h, w = layer.output.shape[1:3]
            total += 2 * h * w * k_h * k_w * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


@pytest.mark.parametrize("m", [ModelConfig(), ModelConfig(g_filters=32, d_filters=16, latent_dim=64)])
def test_flop_count_matches_the_built_layers(m):
    g, d = models.forward_flops(m)
    assert g == _layer_flops(models.build_generator(m))
    assert d == _layer_flops(models.build_discriminator(m))


@pytest.mark.slow
def test_bench_times_both_sides_and_a_whole_run_and_ends_with_the_ratio(store, capsys):
    assert main(["bench", "--steps", "2", "--no-score", "--profile", "--run-steps", "4", *TINY]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    whole = next(line for line in lines if line.startswith("whole run of 4 steps"))
    assert "ms/step against the bare step's" in whole and whole.endswith("x")
    assert not (store / "mlflow.db").exists()  # the whole run went to a temporary store
    assert lines[-1].startswith("ratio=") and float(lines[-1].split("=")[1]) > 0
    assert "classic loop's discriminator trained during timing: yes" in lines
    medians = [line for line in lines if "median" in line]
    assert len(medians) == 2 and all("images/s" in line and "GFLOP/s" in line for line in medians)
    assert any(line.strip().startswith("generator/up2 ") for line in lines)  # the profile's layer table


def test_bench_returns_the_times_it_printed():
    """The medians and ratio printed are the ones returned (ms a step to 0.1, the ratio to 3 places)."""
    from harness import bench
    _, config = registry.resolve("base", sets=[TINY[i + 1] for i in range(0, len(TINY), 2)])
    lines = []
    timings = bench.bench(config, steps=2, variants=False, score=False, out=lines.append)
    medians = [float(line.split("median")[1].split()[0]) for line in lines if " median " in line]
    assert medians == [round(timings.classic * 1000, 1), round(timings.harness * 1000, 1)]
    assert lines[-1] == f"ratio={timings.ratio:.3f}"  # the ratio printed is the returned times' ratio
    assert timings.variants == {} and timings.scoring is None and timings.whole_run is None and timings.profile == {}


def test_profile_files_every_op_under_its_layer_and_pass(mnist_5k):
    _, c = registry.resolve("batchnorm", smoke=True, sets=["train.batch_size=16"])
    g, d, step = loop.build(c, mnist_5k, seed=0)
    step(0)  # compile outside the profile
    times = profile.op_times(step, start=1, steps=2, models=(g, d))
    rows = {layer: (forward, backward) for layer, forward, backward in profile.by_layer(times)}
    for layer in ("generator/up2", "generator/up2_bn", "generator/image", "discriminator/down1"):
        forward, backward = rows[layer]
        assert forward > 0 and backward > 0, layer  # the hand-written gradients are filed too
    assert sum(f + b for f, b in rows.values()) == pytest.approx(sum(times.values()))
    assert any(kind.endswith("FusedBatchNormV3") for kind, _ in profile.by_kind(times))


@pytest.mark.slow
@requires_jax
def test_profile_under_jax_files_xla_ops_under_layers():
    p = subprocess.run([sys.executable, "-m", "harness", "bench", "--steps", "2", "--no-score", "--profile",
                        "--run-steps", "0", *TINY],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert p.returncode == 0, p.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in p.stdout.splitlines() if line.startswith("  generator/")}
    forward, backward = (float(x) for x in rows["generator/up2"][:2])
    assert forward > 0 and backward > 0  # HLO instructions mapped back to the layer and its pass
    assert p.stdout.strip().splitlines()[-1].startswith("ratio=")


@pytest.mark.slow
@requires_jax
def test_population_bench_prints_member_steps_against_a_solo_step():
    p = subprocess.run([sys.executable, "-m", "harness", "bench", "--population", "3", "--steps", "1", *TINY],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    assert "backend jax on cpu" in lines[0] and "one dispatch a step" in lines[0]  # no lax.scan on CPUs
    assert "ms per member-step" in lines[-2] and lines[-1].startswith("ratio=") and float(lines[-1][6:]) > 0
    assert main(["bench", "--population", "3", *TINY]) == 2  # TensorFlow: a sentence, not a traceback


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two processes need two cores to share")
def test_cpu_workers_bench_times_one_process_against_two_and_prints_the_ratio_of_their_rates():
    """bench/cpu_workers.py: both sides run, the second as two processes; the ratio is the printed rates'."""
    script = os.path.join(os.path.dirname(__file__), "..", "bench", "cpu_workers.py")
    p = subprocess.run([sys.executable, script, "--steps", "2", "--rounds", "1", *TINY],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    one = float(lines[1].split()[-2])  # "round 1: 1 process  X ms/step  R steps/s"
    each = lines[2].split("processes")[1].split("ms/step")[0].split("/")
    together = float(lines[2].split()[-3])
    assert len(each) == 2 and abs(together - sum(1000 / float(m) for m in each)) < 0.01 * together
    assert lines[-1].startswith("ratio=") and abs(float(lines[-1][6:]) - together / one) < 0.01
    too_many = subprocess.run([sys.executable, script, "--workers", str(len(os.sched_getaffinity(0)) + 1)],
                              capture_output=True, text=True, timeout=60)
    assert too_many.returncode != 0 and "--workers must be 1 to" in too_many.stderr
    alone = subprocess.run([sys.executable, script, "--workers", "1"], capture_output=True, text=True, timeout=60)
    assert alone.returncode != 0 and "give T" in alone.stderr  # one process against itself compares nothing
