"""Every registered experiment end to end through the CLI with --smoke, read back from a real MLflow store."""
from __future__ import annotations


import pytest
from mlflow.tracking import MlflowClient

from harness import registry, tracking
from harness.__main__ import main

METRICS = ("fid", "is", "kid", "modes", "label_kl", "precision", "recall")


def _runs(experiment: str):
    c = tracking.client()
    exp = c.get_experiment_by_name(experiment)
    return c, c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def _artifacts(c: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out = set()
    for f in c.list_artifacts(run_id, path):
        out |= _artifacts(c, run_id, f.path) if f.is_dir else {f.path}
    return out


@pytest.mark.parametrize("name", ["base", "tanh", "batchnorm", "smoothing"])
def test_experiment_smoke_run_is_logged(name, in_shared_store, capsys):
    assert main(["run", name, "--smoke"]) == 0
    out = capsys.readouterr()
    c, runs = _runs(name)
    run = runs[-1]
    assert run.info.status == "FINISHED" and run.info.run_name == f"{name}-s0"
    assert run.info.run_id in out.out and "harness ui" in out.out
    p, t, m = run.data.params, run.data.tags, run.data.metrics
    _, expected = registry.resolve(name, smoke=True)
    assert p["model.output_activation"] == expected.model.output_activation
    assert p["train.real_label"] == str(expected.train.real_label) and p["train.steps"] == "6"
    assert t["experiment"] == name and t["seed"] == "0" and t["dataset"] == "mnist-5k"  # --smoke pins mnist-5k
    for key in ("backend", "version.tensorflow", "version.keras", "version.numpy", "hardware.cpu", "git.commit", "git.dirty",
                "identity", "data.fingerprint", "platform", "numerics.version", "metrics.version"):
        assert t[key]
    assert t["platform"] == "cpu" and t["precision"] == "float32" and t["state"] == "finished"
    assert float(t["classifier.accuracy"]) >= 0.98 and len(t["classifier.weights"]) == 16  # who scored it, how well
    assert t["classifier.weights"] == t["identity.classifier"]
    for key in METRICS:
        assert f"final/{key}" in m and f"floor/{key}" in m
    history = c.get_metric_history(run.info.run_id, "eval/fid")
    assert [h.step for h in history] == [2, 4, 6]  # at least three evaluations, the last at the end
    losses = c.get_metric_history(run.info.run_id, "train/d_loss")
    assert [h.step for h in losses] == [1, 2, 3, 4, 5, 6]
    files = _artifacts(c, run.info.run_id)
    assert {"config.yaml", "model/generator.keras", "plots/losses.png", "plots/metrics.png",
            "samples/step_0000006.png"} <= files
    assert "--smoke" not in out.err or "Traceback" not in out.err


def test_latent_sweep_makes_children_of_one_parent(in_shared_store, capsys):
    assert main(["run", "latent", "--smoke", "--seeds", "1", "--set", "eval.n_images=100"]) == 0
    c, runs = _runs("latent")
    parents = [r for r in runs if r.data.tags.get("kind") == "group"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    sizes = registry.load("latent").sweep["model.latent_dim"]
    assert len(parents) == 1 and len(children) == len(sizes)
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert {r.data.params["model.latent_dim"] for r in children} == {str(s) for s in sizes}
    assert {r.info.run_name for r in children} >= {"latent-latent_dim=32-s0", "latent-latent_dim=100-s0"}
    assert parents[0].info.status == "FINISHED"


def test_same_seed_same_losses_through_the_cli(in_shared_store):
    assert main(["run", "smoothing", "--smoke", "--set", "train.seed=7"]) == 0
    # Keys outside the identity change no computation: fewer images scored before the last evaluation
    # (a cheaper curve) and losses fetched in chunks of 3 steps give the same training and final score.
    assert main(["run", "smoothing", "--smoke", "--set", "train.seed=7", "--set", "eval.interim_images=50",
                 "--set", "train.log_every_steps=3"]) == 0
    c, runs = _runs("smoothing")
    a, b = [r for r in runs if r.data.tags["seed"] == "7"][-2:]
    la = [h.value for h in c.get_metric_history(a.info.run_id, "train/g_loss")]
    lb = {h.step: h.value for h in c.get_metric_history(b.info.run_id, "train/g_loss")}
    assert len(la) == 6 and lb == dict(enumerate(la, start=1))
    assert [h.value for h in c.get_metric_history(a.info.run_id, "eval/n_images")] == [200, 200, 200]
    assert [h.value for h in c.get_metric_history(b.info.run_id, "eval/n_images")] == [50, 50, 200]
    assert a.data.tags["identity"] == b.data.tags["identity"]
    assert a.data.metrics["final/fid"] == pytest.approx(b.data.metrics["final/fid"], rel=1e-5)


def test_sample_command_writes_a_grid(in_shared_store, tmp_path):
    _, runs = _runs("tanh")
    out = tmp_path / "grid.png"
    assert main(["sample", runs[-1].info.run_id, "--n", "16", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", "0" * 32]) == 2


def test_epochs_flag_beats_smoke_steps(store, capsys):
    assert main(["run", "base", "--smoke", "--epochs", "1", "--set", "eval.n_images=100"]) == 0
    c, runs = _runs("base")
    assert runs[-1].data.params["train.steps"] == "None"
    steps = [h.step for h in c.get_metric_history(runs[-1].info.run_id, "train/d_loss")]
    assert steps[-1] == 4000 // 32  # one epoch of the 4,000 mnist-5k digits at batch 32


def test_a_long_run_says_how_long_before_its_first_step(mnist_5k, scorer_5k, capsys):
    from harness import run
    _, config = registry.resolve("base", smoke=True, flags={"train.epochs": 100, "train.steps": None})
    run.announce("base", config, mnist_5k, scorer_5k, runs=2)
    err = capsys.readouterr().err
    total = 100 * (4000 // config.train.batch_size)
    assert f"2 runs of {total:,} steps (100 epochs of 4,000 mnist-5k digits)" in err
    assert "about" in err and "a step measured at" in err and "--epochs N or --steps N" in err
