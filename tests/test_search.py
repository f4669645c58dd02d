"""Optuna studies through the CLI: trials as child MLflow runs, resume, parallel workers, pruning,
failures, --best, and a PostgreSQL study shared by two worker processes."""
from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
import yaml

from harness import registry, tracking
from harness import study as study_lib
from conftest import eventually
from harness.__main__ import main

SMOKE = ["--smoke", "--set", "eval.n_images=100"]


def _study(name="smoothing", study="default", storage=None):
    _, config = registry.resolve(name, smoke=True)
    return study_lib.open_study(name, study, config, storage)


def _children(experiment, study_name):
    c = tracking.client()
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], f"tags.`optuna.study` = '{study_name}'")
    parents = [r for r in runs if r.data.tags.get("kind") == "study"]
    children = [r for r in runs if r.data.tags.get("kind") != "study"]
    return c, parents, children


@pytest.mark.slow
def test_study_trials_are_child_runs_and_resume_adds_trials(store, capsys):
    assert main(["search", "smoothing", "--trials", "2", *SMOKE]) == 0
    study = _study()
    assert len(study.trials) == 2 and all(t.state.name == "COMPLETE" for t in study.trials)
    c, parents, children = _children("smoothing", "smoothing/default")
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == [0, 1]
    for r in children:
        assert r.data.tags["optuna.state"] == "complete"
        sampled = {k for k in r.data.tags if k.startswith("optuna.param.")}
        assert sampled == {f"optuna.param.{k}" for k in registry.resolve("smoothing")[1].search.space}
    assert parent.data.metrics["best/value"] == pytest.approx(study.best_value)
    files = {f.path for f in c.list_artifacts(parent.info.run_id, "optuna")}
    assert "optuna/optimization_history.png" in files
    said = capsys.readouterr().out  # the summary it recorded, as recorded: counts, the parent run, the best
    assert f"2 trials (2 complete, 0 pruned, 0 failed); its MLflow parent run {parent.info.run_id}" in said
    assert f"best fid {study.best_value:.4g} at trial {study.best_trial.number}" in said

    assert main(["search", "smoothing", "--trials", "1", *SMOKE]) == 0  # same study name: resume
    assert len(_study().trials) == 3
    _, parents, children = _children("smoothing", "smoothing/default")
    assert len(parents) == 1 and len(children) == 3

    capsys.readouterr()
    assert main(["search", "smoothing", "--best", "--smoke"]) == 0
    best = capsys.readouterr().out
    delta = yaml.safe_load(best)
    assert best.startswith("# Best of Optuna study") and delta["train"]["real_label"] == 0.9
    assert delta["train"]["lr_g"] == pytest.approx(_study().best_params["train.lr_g"])
    (store / "experiments").mkdir()
    (store / "experiments" / "smoothing-best.yaml").write_text(best)
    _, config = registry.resolve("smoothing-best")
    assert config.train.lr_g == pytest.approx(delta["train"]["lr_g"])


@pytest.mark.slow
def test_two_workers_lose_no_trial(store):
    assert main(["search", "tanh", "--trials", "4", "--workers", "2", *SMOKE]) == 0
    study = _study("tanh")
    assert len(study.trials) == 4 and sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    _, parents, children = _children("tanh", "tanh/default")
    assert len(parents) == 1 and len(children) == 4
    assert len({t.user_attrs["worker.pid"] for t in study.trials}) == 2  # two processes shared the work


def test_pruner_stops_a_trial_far_worse_than_earlier_ones(store):
    _, config = registry.resolve("base", smoke=True)
    study = study_lib.open_study("base", "prune", config, None)
    # An earlier trial, recorded in the study, whose FID was far better at every evaluation.
    dists = {k: optuna.distributions.FloatDistribution(v["low"], v["high"], log=v.get("log", False))
             for k, v in config.search.space.items()}
    params = {k: (d.low * d.high) ** 0.5 if d.log else (d.low + d.high) / 2 for k, d in dists.items()}
    study.add_trial(optuna.trial.create_trial(value=1.0, params=params, distributions=dists,
                                              intermediate_values={2: 1.0, 4: 1.0, 6: 1.0}))
    assert main(["search", "base", "--study", "prune", "--trials", "1", *SMOKE,
                 "--set", "search.startup_trials=1"]) == 0
    trial = study_lib.open_study("base", "prune", config, None).trials[-1]
    assert trial.state.name == "PRUNED"
    c, _, children = _children("base", "base/prune")
    assert len(children) == 1
    run = children[0]
    assert run.info.status == "KILLED" and run.data.tags["state"] == "pruned"
    assert run.data.tags["optuna.state"] == "pruned"


@pytest.mark.slow
def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(store):
    (store / "experiments").mkdir()
    (store / "experiments" / "explode.yaml").write_text(
        "# A search whose first choice diverges.\n"
        "search:\n  space:\n    train.lr_g: {type: categorical, choices: [1.0e+30, 2.0e-4]}\n"
        "    train.lr_d: {type: categorical, choices: [1.0e+30]}\n")
    assert main(["search", "explode", "--trials", "3", *SMOKE, "--set", "search.pruner=none"]) == 0
    study = _study("explode")
    assert len(study.trials) == 3
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all("nan" in t.user_attrs["fail_reason"] for t in failed)
    _, _, children = _children("explode", "explode/default")
    assert len(children) == 3
    assert {r.data.tags["optuna.state"] for r in children if r.data.tags["state"] == "diverged"} == {"fail"}


@pytest.mark.slow
def test_a_dead_workers_trial_is_asked_again_and_resumes_its_run_from_its_checkpoint(store):
    import signal
    args = ["search", "base", "--study", "dead", "--trials", "1", "--smoke", "--steps", "60",
            "--set", "eval.n_images=100", "--set", "train.print_every_steps=2"]
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=store, text=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    try:
        for line in proc.stderr:
            if "step 24/60" in line:  # past the checkpoint of the evaluation at step 20
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker dies without a word
        proc.wait()
    assert main(args) == 0  # the next search on this host finds the trial's process gone
    lost, retry = _study("base", "dead").trials
    assert lost.state.name == "FAIL" and "died" in lost.system_attrs["fail_reason"]
    assert retry.state.name in ("COMPLETE", "PRUNED") and retry.user_attrs["retry.of"] == 0
    assert retry.params == lost.params and sorted(retry.intermediate_values)[0] == 20
    run_id = lost.user_attrs["mlflow_run_id"]
    assert retry.user_attrs["mlflow_run_id"] == run_id  # the same run, continued
    c = tracking.client()
    run = c.get_run(run_id)
    assert run.data.tags["resumed"] == "true" and run.data.tags["optuna.retry_of"] == "0"
    steps = [h.step for h in c.get_metric_history(run_id, "eval/fid")]
    assert steps == [20, 40, 60]  # the evaluation at step 20 was not trained again
    _, _, children = _children("base", "base/dead")
    assert len(children) == 1


@pytest.mark.slow
def test_sigterm_to_a_search_stops_its_workers_and_orphans_no_trial(store):
    import signal
    from harness import server
    proc = subprocess.Popen([sys.executable, "-m", "harness", "search", "base", "--trials", "4", "--workers", "2",
                             "--smoke", "--steps", "400", "--set", "eval.n_images=100",
                             "--set", "train.print_every_steps=10"],
                            cwd=store, env={**os.environ, "PYTHONUNBUFFERED": "1"}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        for line in proc.stderr:  # a worker is training a trial
            if "step 20/400" in line:
                break
        workers = [p for p in server.descendants(proc.pid) if "--parent-run" in server.cmdline(p)]
        assert len(workers) == 2
        proc.send_signal(signal.SIGTERM)  # to the parent alone, as a process manager would
        proc.communicate(timeout=180)
        assert proc.returncode == 130 and eventually(lambda: not [p for p in workers if server.alive(p)])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    study = _study("base")
    ended = [t for t in study.trials if t.state.name != "WAITING"]
    assert ended and all(t.state.name in ("FAIL", "COMPLETE", "PRUNED") for t in ended)  # none RUNNING
    _, _, children = _children("base", "base/default")
    assert children and all(r.info.status != "RUNNING" for r in children)
    # Each interrupted trial is asked again, to resume its checkpointed run when the search is run again.
    stopped = {r.info.run_id for r in children if r.data.tags.get("state") == "interrupted"}
    asked_again = {t.user_attrs.get("resume.run_id") for t in study.trials if t.state.name == "WAITING"}
    assert stopped and asked_again == stopped

