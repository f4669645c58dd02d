"""Run identity: what it holds, that it is stable when a key is added at its default, and the golden
fingerprint that fails when the train step's output changes without a NUMERICS_VERSION bump."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import config as cfg
from harness import identity, registry
from harness.data import load_mnist_5k

HERE = Path(__file__).parent


def _golden(backend: str, names: list[str]) -> dict:
    p = subprocess.run([sys.executable, str(HERE / "golden_step.py"), *names], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "KERAS_BACKEND": backend})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_train_step_matches_the_golden_fingerprint_of_its_numerics_version(backend):
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.skip("needs the jax extra")
    golden = identity.GOLDEN[identity.NUMERICS_VERSION][backend]
    measured = _golden(backend, sorted(golden))
    for name, (d_loss, g_loss, l1, projection) in golden.items():
        got = measured[name]
        message = (f"{backend} {name}: the train step's output changed ({got} against {golden[name]}): if that is "
                   "meant, bump identity.NUMERICS_VERSION and add its GOLDEN entry from tests/golden_step.py")
        assert got[0] == pytest.approx(d_loss, rel=1e-4) and got[1] == pytest.approx(g_loss, rel=1e-4), message
        assert got[2] == pytest.approx(l1, rel=1e-3), message
        assert abs(got[3] - projection) <= 1e-4 * l1, message


def test_each_numerics_version_has_its_own_fingerprint():
    versions = sorted(identity.GOLDEN)
    assert versions[-1] == identity.NUMERICS_VERSION
    for older in versions[:-1]:  # a bump without a change of numerics would be a false alarm for every run
        assert identity.GOLDEN[older] != identity.GOLDEN[identity.NUMERICS_VERSION]


def test_identity_holds_what_changes_a_run_and_nothing_else():
    _, base = registry.resolve("base")
    data = load_mnist_5k()
    a = identity.of(base, data.fingerprint)
    assert a["config"] == {} and a["backend"] == "tensorflow" and a["platform"] == "cpu"
    assert a["numerics"] == identity.NUMERICS_VERSION and a["metrics"] == identity.METRICS_VERSION
    same = [cfg.replace(base, {k: v}) for k, v in (("train.seed", 9), ("train.seeds", 5), ("eval.collapse_modes", 0.3),
                                                     ("train.print_every_steps", 7), ("data.name", "mnist-5k"))]
    assert all(identity.digest(identity.of(c, data.fingerprint)) == identity.digest(a) for c in same)
    other = cfg.replace(base, {"train.lr_g": 3e-4})
    assert identity.of(other, data.fingerprint)["config"] == {"train.lr_g": 3e-4}
    assert identity.digest(identity.of(base, load_mnist_5k(split_seed=99).fingerprint)) != identity.digest(a)
    assert identity.digest(identity.of(base, data.fingerprint, backend="jax")) != identity.digest(a)
    assert identity.digest(identity.of(base, data.fingerprint, device="gpu")) != identity.digest(a)
    mixed = cfg.replace(base, {"train.precision": "mixed_bfloat16"})
    assert identity.of(mixed, data.fingerprint)["precision"] == "mixed_bfloat16"


def test_a_key_added_at_its_default_changes_no_identity_and_old_checkpoints_still_resume(monkeypatch):
    """The identity hashes keys that differ from their defaults, and the resume check reads keys an
    older checkpoint lacks as their old behaviour: simulate a schema that gained train.jit_compile."""
    from harness import run as run_lib
    _, base = registry.resolve("base")
    assert "train.jit_compile" not in identity.of(base, "fp")["config"]  # at its default: not hashed
    old_checkpoint_config = cfg.to_dict(base)
    del old_checkpoint_config["train"]["jit_compile"]  # a key this code has and the old code had not
    old_checkpoint_config["eval"]["collapse_d_loss"] = 0.01  # a key the old code had and this code has not
    assert run_lib.config_diff(old_checkpoint_config, base) == []
    # A new key whose default does not reproduce the old behaviour reads as its LEGACY value.
    monkeypatch.setitem(identity.LEGACY, "train.jit_compile", True)
    assert run_lib.config_diff(old_checkpoint_config, base) == ["train.jit_compile: True -> None"]
