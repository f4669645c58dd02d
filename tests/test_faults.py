"""Nothing lost: interruption and resume, divergence, collapse, concurrent writers, hostile input."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import one_error
from harness import tracking
from harness.__main__ import main

STEPS = 120
RUN = [sys.executable, "-m", "harness", "run", "batchnorm", "--smoke", "--steps", str(STEPS),
       "--set", "eval.n_images=100", "--set", "train.log_every_steps=1"]


def _start(cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(RUN, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _runs(experiment: str):
    c = tracking.client()
    exp = c.get_experiment_by_name(experiment)
    return c, c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else []


def _generator_weights(c, run_id, tmp):
    import keras
    path = c.download_artifacts(run_id, "model/generator.keras", str(tmp))
    return [np.asarray(w) for w in keras.models.load_model(path).get_weights()]


@pytest.mark.slow
def test_sigint_checkpoints_and_resume_matches_an_uninterrupted_run(store, tmp_path):
    proc = _start(store)
    for line in proc.stderr:  # wait until it is well into training, past its first evaluation
        if f"step 48/{STEPS}" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    c, runs = _runs("batchnorm")
    assert len(runs) == 1 and runs[0].info.status == "KILLED" and runs[0].data.tags["state"] == "interrupted"
    interrupted_id = runs[0].info.run_id
    stopped_at = max(h.step for h in c.get_metric_history(interrupted_id, "train/g_loss"))
    assert 48 <= stopped_at < STEPS

    resumed = subprocess.run(RUN + ["--resume"], cwd=store, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _runs("batchnorm")[1][0].data.tags["resumed.step"] == str(stopped_at)  # from its last checkpoint
    reference = subprocess.run(RUN, cwd=store, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0
    c, runs = _runs("batchnorm")
    assert len(runs) == 2  # the resume continued the same MLflow run
    first, second = runs
    assert first.info.run_id == interrupted_id and first.info.status == "FINISHED"
    for key in ("train/g_loss", "train/d_loss"):
        a = sorted((h.step, h.value) for h in c.get_metric_history(first.info.run_id, key))
        b = sorted((h.step, h.value) for h in c.get_metric_history(second.info.run_id, key))
        assert [s for s, _ in a] == list(range(1, STEPS + 1))  # every step once: nothing lost, nothing twice
        np.testing.assert_allclose([v for _, v in a], [v for _, v in b], rtol=1e-5)
    for wa, wb in zip(_generator_weights(c, first.info.run_id, tmp_path / "a"),
                      _generator_weights(c, second.info.run_id, tmp_path / "b")):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_resume_refuses_other_settings_and_continues_runs_from_before_identities(store, capsys):
    import json
    from harness import checkpoint, runner
    proc = _start(store)
    for line in proc.stderr:
        if f"step 48/{STEPS}" in line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    args = RUN[3:] + ["--resume"]
    assert main(args + ["--set", "train.lr_g=0.001"]) == 2
    one_error(capsys.readouterr().err, "train.lr_g", "0.0002", "0.001")  # the key, as run and as asked

    c, (run,) = _runs("batchnorm")
    path = tracking.Store().artifact_folder(run.info.run_id) / "checkpoint" / "state.npz"
    step, arrays, meta = checkpoint.load(path)
    assert meta["identity"]["numerics"] == runner.identity.NUMERICS_VERSION
    assert checkpoint.header(path) == (step, meta) and step > 0  # what resume checks, without the arrays
    checkpoint.save(path.parent, step, arrays, {**meta, "identity": {**meta["identity"], "numerics": 99}})
    assert main(args) == 2  # another train step's maths: it cannot continue this run
    one_error(capsys.readouterr().err, "numerics v99")

    # A run from before identities: no identity in its checkpoint or tags, an old key, a new key absent.
    old = {k: v for k, v in meta.items() if k != "identity"}
    old["config"] = json.loads(json.dumps(meta["config"]))
    del old["config"]["eval"]["collapse_modes"], old["config"]["eval"]["collapse_recall"]
    old["config"]["eval"]["collapse_d_loss"] = 0.01
    checkpoint.save(path.parent, step, arrays, old)
    for key in ("identity", "identity.schema", "numerics.version", "metrics.version", "data.fingerprint"):
        c.delete_tag(run.info.run_id, key)
    assert main(args) == 0
    (resumed,) = _runs("batchnorm")[1]
    assert resumed.info.status == "FINISHED" and "identity" not in resumed.data.tags  # it stays identity v1


def test_nan_stops_the_run_marks_it_failed_and_keeps_the_last_good_checkpoint(store):
    assert main(["run", "base", "--smoke", "--set", "train.lr_g=1e30", "--set", "train.lr_d=1e30"]) == 1
    c, runs = _runs("base")
    run = runs[-1]
    assert run.info.status == "FAILED" and run.data.tags["state"] == "diverged"
    assert "nan" in run.data.tags["failure.reason"]


def test_divergence_after_an_evaluation_keeps_that_checkpoint_and_metrics(store, tmp_path):
    # Fault injection: the step's outputs turn NaN from step 5 on; evaluations after steps 2 and 4 were good.
    from harness import checkpoint, data, loop, registry, runner
    from metrics.scorer import Scorer
    _, config = registry.resolve("base", smoke=True, sets=["eval.n_images=100"])
    dataset = data.for_config(config, quiet=True)
    scorer = Scorer(dataset, 100, config.eval.kid_subsets, config.eval.kid_subset_size, quiet=True)
    original = loop.make_step

    def poisoned(cfg_, g, d, images, seed):
        step = original(cfg_, g, d, images, seed)
        plain = step.__call__

        class Poisoned(type(step)):
            def __call__(self, i):
                out = plain(i)
                return {k: (v * float("nan") if i >= 4 else v) for k, v in out.items()}
        step.__class__ = Poisoned
        return step
    loop.make_step = poisoned
    try:
        result = runner.run("base", config, 0, dataset, scorer)
    finally:
        loop.make_step = original
    assert result.status == "FAILED" and "step 5" in result.reason
    c, runs = _runs("base")
    run = runs[-1]
    assert run.info.status == "FAILED"
    assert [h.step for h in c.get_metric_history(run.info.run_id, "eval/fid")] == [2, 4]  # the good evaluations stay
    local = tracking.Store().artifact_folder(run.info.run_id)
    step, arrays, _ = checkpoint.load(local / "checkpoint" / "state.npz")
    assert step == 4 and all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f")


@pytest.mark.slow
def test_collapse_is_judged_from_the_samples_and_said_in_words(store, capsys):
    # Six steps at tiny width make no digits: the final samples are one class to the classifier.
    assert main(["run", "smoothing", "--smoke", "--set", "eval.n_images=100"]) == 0
    _, runs = _runs("smoothing")
    tags = runs[-1].data.tags
    assert runs[-1].info.status == "FINISHED" and tags["collapse"] == "true" and tags["collapse.since"] == "2"
    assert "digit classes" in tags["collapse.reason"] and tags["collapse.samples"]
    out, err = capsys.readouterr()
    said = [line for line in err.splitlines() if line.startswith("smoothing-s0 ") and tags["collapse.reason"] in line]
    assert len(said) == 1 and "step 2" in said[0] and "docs/results.md" in said[0]  # its closing words: since, where to read
    assert [line.split()[1:3] for line in out.splitlines() if line.startswith("smoothing-s0")] == [["FINISHED", "COLLAPSED"]]


def test_a_collapsed_stretch_is_dated_from_its_first_evaluation_and_its_end_said_once(tmp_path, capsys):
    """judge_collapse over evaluations collapsed, collapsed, recovered, collapsed: each returns the
    stretch it is in (2, 2, none, 8), the run's tags follow, and the recovery is said with its stretch."""
    from harness import loop, sink
    from harness.config import Config
    floor = {"modes": 10.0, "recall": 0.9}
    blank = {"modes": 1.0, "recall": 0.0, "is": 1.0, "precision": 0.0}
    digits = {"modes": 10.0, "recall": 0.5, "is": 8.0, "precision": 0.7}
    ctx = loop.RunContext(sink.JsonlSink(tmp_path / "run"), "r", "base-s0")
    since, stretches = None, []
    for step, metrics in ((2, blank), (4, blank), (6, digits), (8, blank)):
        since = loop.judge_collapse(Config(), ctx, floor, step, metrics, since)
        stretches.append(since)
    assert stretches == [2, 2, None, 8]
    tags = [e["tags"] for e in sink.read(tmp_path / "run") if "tags" in e]
    assert [(t["collapse"], t.get("collapse.since")) for t in tags] == [("true", "2"), ("true", "2"), ("false", None),
                                                                      ("true", "8")]
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "recovered" in line] == [
        "base-s0: recovered at step 6 (collapsed since step 2)."]
    assert sum("collapsed at step" in line for line in err.splitlines()) == 2  # said where each stretch starts


@pytest.mark.slow
def test_concurrent_runs_on_a_fresh_store_all_land(store):
    """Four processes race to create one SQLite store, its experiment and their runs."""
    cmd = [sys.executable, "-m", "harness", "run", "smoothing", "--smoke", "--steps", "2",
           "--set", "eval.n_images=50", "--set", "eval.min_evals=1"]
    procs = [subprocess.Popen(cmd + ["--set", f"train.seed={i}"], cwd=store, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-800:] for e in errors if e]
    c, runs = _runs("smoothing")
    assert sorted(int(r.data.tags["seed"]) for r in runs) == list(range(4))
    assert all(r.info.status == "FINISHED" and "final/fid" in r.data.metrics for r in runs)
    assert all(len(c.get_metric_history(r.info.run_id, "train/d_loss")) == 2 for r in runs)


@pytest.mark.parametrize("content, words", [
    ("train: [unclosed\n", ["not valid YAML"]),
    ("model:\n  latnt_dim: 3\n", ["model.latnt_dim", "latent_dim"]),
    ("model:\n  latent_dim: many\n", ["model.latent_dim", "integer"]),
    ("train:\n  batch_size: 0\n", ["train.batch_size", "at least"]),
    ("model:\n  g_filters: -4\n", ["model.g_filters", "at least"]),
    ("!!python/object/apply:os.system ['echo pwned']\n", ["not valid YAML"]),
])
def test_hostile_experiment_files_write_nothing(store, capsys, content, words):
    (store / "experiments").mkdir()
    (store / "experiments" / "bad.yaml").write_text("# hostile\n" + content)
    assert main(["run", "bad", "--smoke"]) == 2
    one_error(capsys.readouterr().err, "bad.yaml", *words)
    assert not (store / "mlflow.db").exists() and not (store / "mlruns").exists()


def test_bad_data_path_is_an_error_with_nothing_written(store, capsys):
    (store / "short.npz").write_bytes(b"PK\x03\x04 truncated")
    for path in ("missing.npz", "short.npz"):
        assert main(["run", "base", "--smoke", "--set", "data.name=mnist", "--set", f"data.path={path}"]) == 2
        one_error(capsys.readouterr().err, path)
    assert not (store / "mlflow.db").exists()


def test_ui_is_local_by_default_and_warns_otherwise(store):
    from harness.__main__ import parser
    assert parser().parse_args(["ui"]).host == "127.0.0.1"
    # Another loopback address: it still counts as "not the default", and stays on this machine.
    proc = subprocess.Popen([sys.executable, "-m", "harness", "ui", "--host", "127.0.0.2", "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        first = ""
        for _ in range(20):  # MLflow may log its store set-up first
            first += proc.stderr.readline()
            if "MLflow UI over" in first:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert "warning" in first and "127.0.0.2" in first
