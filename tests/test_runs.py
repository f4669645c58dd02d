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


@pytest.mark.slow
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
    assert "Traceback" not in out.err


@pytest.mark.slow
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


@pytest.mark.slow
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
    if tracking.client().get_experiment_by_name("tanh") is None:  # run alone: the smoke test's run is not there
        assert main(["run", "tanh", "--smoke"]) == 0
    _, runs = _runs("tanh")
    out = tmp_path / "grid.png"
    assert main(["sample", runs[-1].info.run_id, "--n", "16", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert main(["sample", "0" * 32]) == 2


@pytest.mark.slow
def test_epochs_flag_beats_smoke_steps(store, capsys):
    assert main(["run", "base", "--smoke", "--epochs", "1", "--set", "eval.n_images=100"]) == 0
    c, runs = _runs("base")
    assert runs[-1].data.params["train.steps"] == "None"
    steps = [h.step for h in c.get_metric_history(runs[-1].info.run_id, "train/d_loss")]
    assert steps[-1] == 4000 // 32  # one epoch of the 4,000 mnist-5k digits at batch 32


def test_a_long_run_says_how_long_before_its_first_step(mnist_5k, scorer_5k, capsys):
    from harness import plan
    _, config = registry.resolve("base", smoke=True, flags={"train.epochs": 100, "train.steps": None})
    said = plan.announce_runs("base", config, mnist_5k, scorer_5k, runs=2).as_dict()
    total = 100 * (4000 // config.train.batch_size)
    assert said["runs_to_train"] == 2 and said["steps_to_train"] == 2 * total  # 100 epochs of 4,000 digits
    assert said["step_seconds"] > 0 and said["eval_seconds"] > 0
    assert said["seconds"] == pytest.approx(2 * total * said["step_seconds"] + said["evaluations"] * said["eval_seconds"])
    err = capsys.readouterr().err
    assert said["title"] in err and "--epochs N" in err  # said before the first step, with how to ask for less


def test_mlflow_is_reached_through_tracking_alone():
    """One door to MLflow: tracking.py alone imports it (the UI launcher starts `python -m mlflow` as a
    process), and no other module opens a raw client; the loop writes to a sink, so it also runs where
    MLflow is not installed."""
    import ast
    from pathlib import Path
    root = Path(__file__).parent.parent
    files = sorted((root / "harness").rglob("*.py")) + sorted((root / "bench").glob("*.py"))
    found = []
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):  # function-level imports too
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(root)}: import {n}" for n in names if n.split(".")[0] == "mlflow"]
            if isinstance(node, ast.ImportFrom) and node.module == "harness.tracking":
                found += [f"{path.relative_to(root)}: tracking.{a.name}" for a in node.names if a.name == "client"]
            if isinstance(node, ast.Attribute) and (node.attr == "_c" or (
                    node.attr == "client" and getattr(node.value, "id", "") == "tracking")):
                found.append(f"{path.relative_to(root)}: .{node.attr}")
    assert len(files) > 30
    assert [f for f in found if not f.startswith("harness/tracking.py")] == []
    assert any(f.startswith("harness/tracking.py: import mlflow") for f in found)  # the check sees imports



def test_a_folder_sink_replays_into_an_mlflow_run(store):
    """What the loop writes to a JsonlSink (a machine without MLflow) reaches an MLflow run whole when
    replayed through the tracking door: metrics at their steps, the last tag values, texts, figures and
    files, and a figure redrawn at every evaluation sent once."""
    import matplotlib.pyplot as plt
    from harness import sink
    folder = sink.JsonlSink(store / "member")
    folder.metrics([("train/d_loss", 0.5, 1), ("train/d_loss", 0.25, 2)])
    folder.metrics([])
    folder.tags({"collapse": "true"})
    folder.tags({"collapse": "false", "collapse.since": 2})
    folder.text("a: 1\n", "config.yaml")
    for step in (1, 2):
        fig = plt.figure()
        folder.figure(fig, "plots/losses.png")
        plt.close(fig)
    (store / "generator.keras").write_bytes(b"weights")
    folder.artifact(store / "generator.keras", "model")

    db = tracking.Store()
    run_id = db.start("offline", "member-s0", {"seed": 0})
    sink.replay(store / "member", db.sink(run_id))
    run = db.get(run_id)
    assert db.history(run_id, "train/d_loss") == [(1, 0.5), (2, 0.25)]
    assert run.data.tags["collapse"] == "false" and run.data.tags["collapse.since"] == "2"
    assert db.read_text(run_id, "config.yaml") == "a: 1\n"
    assert db.artifacts(run_id, "plots") == ["plots/losses.png"] and db.artifacts(run_id, "model") == ["model/generator.keras"]
    assert db.download(run_id, "model/generator.keras").read_bytes() == b"weights"
    assert sum("artifact" in e for e in sink.read(store / "member")) == 3  # two drawings, one file on disk


def test_a_member_that_diverged_elsewhere_is_imported_failed_with_its_good_steps(store):
    """A folder from a GPU machine whose member's loss became NaN: imported as a FAILED run in state
    diverged (an outcome counted against its variant), keeping the losses logged before it; a metric
    the sink wrote as "nan" comes back as NaN."""
    import json
    import math
    from harness import config as cfg, identity, offline, sink
    _, config = registry.resolve("base", smoke=True)
    member = store / "out" / "runs" / "base-s0"
    folder = sink.JsonlSink(member)
    folder.metrics([("train/d_loss", 0.7, 1), ("train/d_loss", 0.6, 2), ("eval/kid", float("nan"), 2)])
    ident = identity.of(config, "0123456789abcdef", backend="jax", device="gpu", classifier="feedbeef")
    (member / "run.json").write_text(json.dumps({
        "experiment": "base", "point": {}, "seed": 0, "config": cfg.to_dict(config), "dataset": "mnist-5k",
        "identity": ident, "floor": {"fid": 1.0}, "population": {"size": 1, "index": 0},
        "diverged": "d_loss became nan at step 3", "evals": [], "versions": {"version.jax": "0.0"}}))

    (run_id,) = offline.import_results(store / "out")
    db = tracking.Store()
    run = db.get(run_id)
    assert run.info.status == "FAILED" and run.data.tags["state"] == "diverged"
    assert run.data.tags["failure.reason"] == "d_loss became nan at step 3"
    assert (run.data.tags["backend"], run.data.tags["platform"]) == ("jax", "gpu")
    assert db.history(run_id, "train/d_loss") == [(1, 0.7), (2, 0.6)] and "final/fid" not in run.data.metrics
    assert math.isnan(db.history(run_id, "eval/kid")[0][1])
    assert offline.import_results(store / "out") == []  # nothing twice
