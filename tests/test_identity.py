"""Run identity: what it holds, that it is stable when a key is added at its default, and the golden
fingerprint that fails when the train step's output changes without a NUMERICS_VERSION bump."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from extras import HAS_JAX

from harness import config as cfg
from harness import identity, registry
from harness.data import load_mnist_5k

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import golden_step  # noqa: E402


def _golden(backend: str, names: list[str]) -> dict:
    p = subprocess.run([sys.executable, str(HERE / "golden_step.py"), *names], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "KERAS_BACKEND": backend})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=pytest.mark.slow)])
def test_the_train_step_matches_the_golden_fingerprint_of_its_numerics_version(backend):
    if backend == "jax" and not HAS_JAX and os.environ.get("CI") != "true":
        pytest.skip("needs the jax extra; under CI=true it fails instead")
    golden = golden_step.GOLDEN[identity.NUMERICS_VERSION][backend]
    measured = _golden(backend, sorted(golden))
    for name, (d_loss, g_loss, l1, projection) in golden.items():
        got = measured[name]
        message = (f"{backend} {name}: the train step's output changed ({got} against {golden[name]}): if that is "
                   "meant, bump identity.NUMERICS_VERSION and add its GOLDEN entry from tests/golden_step.py")
        assert got[0] == pytest.approx(d_loss, rel=1e-4) and got[1] == pytest.approx(g_loss, rel=1e-4), message
        assert got[2] == pytest.approx(l1, rel=1e-3), message
        assert abs(got[3] - projection) <= 1e-4 * l1, message


def test_identity_holds_what_changes_a_run_and_nothing_else():
    _, base = registry.resolve("base")
    data = load_mnist_5k()
    a = identity.of(base, data.fingerprint, classifier="c")
    assert a["config"] == {} and a["backend"] == "tensorflow" and a["platform"] == "cpu"
    assert a["numerics"] == identity.NUMERICS_VERSION and a["metrics"] == identity.METRICS_VERSION
    other = cfg.replace(base, {"train.lr_g": 3e-4})
    assert identity.of(other, data.fingerprint, classifier="c")["config"] == {"train.lr_g": 3e-4}
    assert identity.of(base, load_mnist_5k(split_seed=99).fingerprint, classifier="c")["data"] != a["data"]
    mixed = cfg.replace(base, {"train.precision": "mixed_bfloat16"})
    assert identity.of(mixed, data.fingerprint, classifier="c")["precision"] == "mixed_bfloat16"


def test_a_run_of_another_identity_is_told_apart_part_by_part():
    """What compare says of a run it leaves out: each part that differs, from the run's tags and params,
    with keys a run from before them lacks read as their LEGACY value and idle keys not named."""
    _, base = registry.resolve("base")
    wanted = identity.of(base, "fp", classifier="c")
    tags, params = identity.tags(wanted), {k: str(v) for k, v in cfg.flat(base).items()}
    assert identity.differences(wanted, tags, params) == ["identity differs"]  # no part differs
    for part, tag, value in (("backend", "backend", "jax"), ("platform", "platform", "gpu"),
                             ("precision", "precision", "mixed_bfloat16"), ("numerics", "numerics.version", 2),
                             ("metrics", "metrics.version", 2), ("data", "data.fingerprint", "other"),
                             ("classifier", "identity.classifier", "other")):
        assert identity.differences(wanted, {**tags, tag: value}, params) == [f"{part} {value} (wanted {wanted[part]})"]
    assert identity.differences(wanted, tags, {**params, "train.lr_g": "0.0003"}) == ["train.lr_g 0.0003 (wanted 0.0002)"]
    before_sampling = {k: v for k, v in params.items() if k != "data.sampling"}
    assert identity.differences(wanted, tags, before_sampling) == ["data.sampling epoch_shuffle (wanted replacement)"]
    idle = {**params, "train.log_every_steps": "1", "model.batchnorm_mode": "train", "eval.every_epochs": "3"}
    assert identity.differences(wanted, tags, idle) == ["identity differs"]
    assert identity.differences(wanted, {"backend": "tensorflow"}, params) == [
        "identity v1 (made before run identities were recorded)"]


def test_a_key_added_at_its_default_changes_no_identity_and_old_checkpoints_still_resume(monkeypatch):
    """The identity hashes keys that differ from their defaults, and the resume check reads keys an
    older checkpoint lacks as their old behaviour: simulate a schema that gained train.jit_compile."""
    from harness import resume as resume_lib
    _, base = registry.resolve("base")
    assert "train.jit_compile" not in identity.of(base, "fp", classifier="c")["config"]  # at its default: not hashed
    old_checkpoint_config = cfg.to_dict(base)
    del old_checkpoint_config["train"]["jit_compile"]  # a key this code has and the old code had not
    old_checkpoint_config["eval"]["collapse_d_loss"] = 0.01  # a key the old code had and this code has not
    assert resume_lib.config_diff(old_checkpoint_config, base) == []
    # A new key whose default does not reproduce the old behaviour reads as its LEGACY value.
    monkeypatch.setitem(identity.LEGACY, "train.jit_compile", True)
    assert resume_lib.config_diff(old_checkpoint_config, base) == ["train.jit_compile: True -> None"]


def test_keys_that_change_nothing_split_no_identity_and_keys_that_do_split():
    _, base = registry.resolve("base")
    a = identity.digest(identity.of(base, "fp", classifier="c"))
    idle = {"train.log_every_steps": 1, "model.batchnorm_mode": "train", "eval.interim_images": 50}  # BatchNorm is off in base
    assert all(identity.digest(identity.of(cfg.replace(base, {k: v}), "fp", classifier="c")) == a for k, v in idle.items())
    steps = cfg.replace(base, {"train.steps": 600})
    assert identity.digest(identity.of(cfg.replace(steps, {"train.epochs": 5}), "fp", classifier="c")) == \
        identity.digest(identity.of(steps, "fp", classifier="c"))  # steps wins over epochs
    splits = {"train.epochs": 5, "train.steps": 600, "model.batchnorm": True, "train.lr_d": 1e-4}
    assert all(identity.digest(identity.of(cfg.replace(base, {k: v}), "fp", classifier="c")) != a for k, v in splits.items())
    bn = cfg.replace(base, {"model.batchnorm": True})
    assert identity.digest(identity.of(cfg.replace(bn, {"model.batchnorm_mode": "train"}), "fp", classifier="c")) != \
        identity.digest(identity.of(bn, "fp", classifier="c"))  # with BatchNorm on, its mode counts


# The defaults of every key in a run's identity, and the metric classifier's settings, as they stood at
# each (NUMERICS_VERSION, METRICS_VERSION). A default that changes without a bump would silently give new
# runs the identity of old ones: this test fails until a version is bumped and an entry added here.
PINNED = {
    (3, 3): {
        "config": {"data.sampling": "replacement", "eval.kid_subset_size": 1000, "eval.kid_subsets": 100,
                   "eval.n_images": None, "model.batchnorm": False, "model.batchnorm_mode": "classic",
                   "model.d_filters": 64, "model.dropout": 0.4, "model.g_filters": 128, "model.latent_dim": 100,
                   "model.leaky_slope": 0.2, "model.output_activation": "sigmoid", "train.batch_size": 256,
                   "train.beta_1": 0.5, "train.epochs": 100, "train.jit_compile": None, "train.lr_d": 0.0002,
                   "train.lr_g": 0.0002, "train.precision": "float32", "train.real_label": 1.0, "train.steps": None},
        "classifier": {"mnist": {"batch_size": 128, "epochs": 6, "filters": [16, 32], "learning_rate": 0.001,
                                 "rotate": 0.0, "seed": 0, "shift": 1},
                       "mnist-5k": {"batch_size": 64, "epochs": 30, "filters": [32, 64], "learning_rate": 0.001,
                                    "rotate": 10.0, "seed": 0, "shift": 2.0}},
    },
}


def test_a_changed_default_fails_until_a_version_is_bumped():
    from metrics import classifier
    version = (identity.NUMERICS_VERSION, identity.METRICS_VERSION)
    assert version in PINNED, f"versions {version} have no PINNED entry: add the defaults as they now stand"
    now = {"config": {k: v for k, v in cfg.flat(cfg.Config()).items() if identity._counts(k)},
           "classifier": json.loads(json.dumps(classifier.SETTINGS))}
    for part in ("config", "classifier"):
        changed = sorted(k for k in set(now[part]) | set(PINNED[version][part])
                         if now[part].get(k) != PINNED[version][part].get(k))
        assert not changed, (f"{part} defaults changed ({', '.join(changed)}) under numerics v{version[0]}, metrics "
                             f"v{version[1]}: bump NUMERICS_VERSION (what a step computes) or METRICS_VERSION "
                             "(scoring) in harness/identity.py and pin the new defaults here")


def test_the_20_epoch_comparison_keeps_its_run_identities_and_design_family():
    """docs/results.md's 20-epoch comparison trains for days on frozen code (bench/results_20_epochs.sh);
    the code here must find its runs and its design again, to resume it and to render its report training
    nothing. Pinned from its store: base's run identity and the design family, on MNIST's 60,000 digits
    (fingerprint c9c899568825c019) scored by the classifier whose weights' digest is 02acc5353520a691.
    If this fails, a change altered the identity of those runs or their design: keep it out until the
    comparison is rendered, or bump the version it changes and start the comparison again."""
    import re
    import shlex
    from harness import commands
    from harness.__main__ import parser
    from harness.compare.arms import Arm
    from harness.compare.looks import family_key
    script = (HERE.parent / "bench" / "results_20_epochs.sh").read_text()
    argv = shlex.split(re.search(r"\nargs=\((.*?)\)\n", script, re.S).group(1))
    documented = (HERE.parent / "docs" / "results.md").read_text().split("## In progress")[1].split("```bash")[1]
    assert shlex.split(documented.split("```")[0].replace("\\\n", " "))[1:] == argv  # the page's command is run
    args = parser().parse_args(argv)
    flags = {**commands._flags(args), "train.seeds": args.seeds}
    arms = []
    for name in ["base", *args.names]:
        experiment, config = registry.resolve(name, False, flags, args.set)
        for value in experiment.sweep_values(tuple(s.partition("=")[0] for s in args.set), commands._sweeps(args.sweep)):
            arm_config = cfg.replace(config, value) if value else config
            arms.append(Arm(name, value, arm_config, "mnist", identity.of(
                arm_config, "c9c899568825c019", backend="tensorflow", device="cpu", classifier="02acc5353520a691")))
    assert [a.label for a in arms] == ["base", "smoothing", "tanh", "batchnorm", "batchnorm-train",
                                       "latent[latent_dim=32]", "latent[latent_dim=256]"]
    assert arms[0].digest == "50f6dda8217d179a"
    assert family_key(arms[0], arms[1:], args.seeds, args.max_seeds, args.spending, args.gamma,
                      args.budget) == "4a1c854803a1bf96"
