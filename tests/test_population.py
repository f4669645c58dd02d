"""Populations under JAX, through the CLI: members are their solo runs, each a full MLflow run; a member
that diverges is marked and frozen while the others go on; an interrupted population resumes from its
parent's id."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tracking_server
from extras import requires_jax

from harness import tracking

pytestmark = requires_jax
JAX = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1"}


def _harness(cwd, *args, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=900, env=JAX)
    assert not check or p.returncode == 0, p.stderr[-3000:]
    return p


def _members(experiment: str) -> dict:
    runs = tracking.Store().runs(experiment)
    return {r.info.run_id: r for r in runs if r.data.tags.get("kind") != "group"}


def _weights(c, run_id, folder):
    import keras
    path = c.download_artifacts(run_id, "model/generator.keras", str(folder))
    return keras.models.load_model(path).get_weights()


@pytest.mark.slow
def test_population_members_are_their_solo_runs(store, tmp_path):
    args = ["run", "base", "--smoke", "--seeds", "2", "--set", "eval.n_images=100"]  # dropout 0.4, on
    _harness(store, *args, "--set", "train.population=true")
    together = _members("base")
    _harness(store, *args)  # train.population's default: one seed at a time on a CPU
    alone = {k: v for k, v in _members("base").items() if k not in together}
    c = tracking.client()
    assert len(together) == 2 and len(alone) == 2
    assert all(r.data.tags["platform"] == "cpu" and "population.id" not in r.data.tags for r in alone.values())
    parent = {r.data.tags["population.parent"] for r in together.values()}
    assert len(parent) == 1 and {r.data.tags["mlflow.parentRunId"] for r in together.values()} == parent
    assert sorted(r.data.tags["population.index"] for r in together.values()) == ["0", "1"]
    assert {r.data.tags["population.size"] for r in together.values()} == {"2"}
    assert len({r.data.tags["population.id"] for r in together.values()}) == 1
    by_seed = {r.data.tags["seed"]: r for r in alone.values()}
    for member in together.values():
        solo = by_seed[member.data.tags["seed"]]
        assert member.info.status == "FINISHED" and member.data.tags["identity"] == solo.data.tags["identity"]
        assert {f.path for f in c.list_artifacts(member.info.run_id, "samples")}  # grids, like a solo run
        assert {"plots/losses.png", "plots/metrics.png"} <= {f.path for f in c.list_artifacts(member.info.run_id, "plots")}
        assert set(member.data.metrics) == set(solo.data.metrics)
        for key in ("train/d_loss", "train/g_loss"):
            a = [h.value for h in sorted(c.get_metric_history(member.info.run_id, key), key=lambda h: h.step)]
            b = [h.value for h in sorted(c.get_metric_history(solo.info.run_id, key), key=lambda h: h.step)]
            np.testing.assert_allclose(a, b, rtol=1e-5)
        wa = _weights(c, member.info.run_id, tmp_path / member.info.run_id)
        wb = _weights(c, solo.info.run_id, tmp_path / solo.info.run_id)
        largest = max(np.abs(w).max() for w in wb)
        assert max(np.abs(x - y).max() for x, y in zip(wa, wb)) <= 1e-6 * largest


@pytest.mark.slow
def test_a_diverging_member_stops_the_others_go_on_and_a_signal_checkpoints_them_all(store):
    """lr 5e5 for both networks: seeds 0 and 1 diverge at step 3, seed 2 trains on (found by a scan)."""
    (store / "experiments").mkdir()
    (store / "experiments" / "wild.yaml").write_text("# Learning rates some seeds survive and some do not.\n"
                                                     "train:\n  lr_g: 5.0e5\n  lr_d: 5.0e5\n")
    steps = 60
    args = ["run", "wild", "--smoke", "--seeds", "3", "--steps", str(steps), "--set", "eval.n_images=100",
            "--set", "train.log_every_steps=1", "--set", "train.population=true"]
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=store, env=JAX, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tracking_server.wait_for(proc, f"wild-s2 step 24/{steps}")  # past the first evaluation: a checkpoint of all three
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    members = {r.data.tags["seed"]: r for r in _members("wild").values()}
    assert {s: (r.info.status, r.data.tags["state"]) for s, r in members.items()} == {
        "0": ("FAILED", "diverged"), "1": ("FAILED", "diverged"), "2": ("KILLED", "interrupted")}
    assert "at step 3" in members["0"].data.tags["failure.reason"]
    parent = members["2"].data.tags["population.parent"]
    assert f"--resume {parent}" in err

    resumed = _harness(store, *args, "--resume", parent, check=False)
    assert resumed.returncode == 1, resumed.stderr[-3000:]  # two of its seeds diverged
    members = {r.data.tags["seed"]: r for r in _members("wild").values()}
    assert members["2"].info.status == "FINISHED" and "final/fid" in members["2"].data.metrics
    assert members["0"].info.status == "FAILED" and "final/fid" not in members["0"].data.metrics
    c = tracking.client()
    steps_logged = sorted(h.step for h in c.get_metric_history(members["2"].info.run_id, "train/g_loss"))
    assert steps_logged == list(range(1, steps + 1))  # each step once across the interruption
    assert max(h.step for h in c.get_metric_history(members["0"].info.run_id, "train/g_loss")) == 2


@pytest.mark.slow
def test_a_population_on_a_server_resumes_on_another_machine_from_its_parents_checkpoint(tmp_path, monkeypatch):
    """Artifacts on a server (proxied, so no machine sees another's files): the population's checkpoint
    goes to its parent run there, and a second working folder with nothing on disk (another machine)
    resumes from it."""
    steps = 60
    args = ["run", "base", "--smoke", "--seeds", "2", "--steps", str(steps), "--set", "eval.n_images=100",
            "--set", "train.log_every_steps=1", "--set", "train.population=true"]
    (tmp_path / "server").mkdir()
    with tracking_server.serving(tmp_path / "server", f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
                                 dict(os.environ)) as (url, _):
        env = {**JAX, "MLFLOW_TRACKING_URI": url}
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        for machine in ("a", "b"):
            (tmp_path / machine).mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=tmp_path / "a", env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            tracking_server.wait_for(proc, f"base-s1 step 24/{steps}")  # past the first evaluation (step 20)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err[-3000:]
        members = {r.data.tags["seed"]: r for r in _members("base").values()}
        assert {s: r.data.tags["state"] for s, r in members.items()} == {"0": "interrupted", "1": "interrupted"}
        parent = members["0"].data.tags["population.parent"]
        store = tracking.Store()
        folder = f"checkpoint/population-{members['0'].data.tags['population.id']}"
        assert store.artifacts(parent, folder) == [f"{folder}/state.npz"]  # on the server, in the parent run

        resumed = subprocess.run([sys.executable, "-m", "harness", *args, "--resume", parent], cwd=tmp_path / "b",
                                 env=env, capture_output=True, text=True, timeout=900)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        members = {r.data.tags["seed"]: r for r in _members("base").values()}
        for run in members.values():
            assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "true"
            logged = [step for step, _ in store.history(run.info.run_id, "train/g_loss")]
            assert logged == list(range(1, steps + 1))  # each step once, across two machines
