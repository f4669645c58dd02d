"""Browsing: `harness ui` (MLflow, lean, model-training view, no telemetry) and `harness dashboard`
(Optuna Dashboard over search's storage) serve on localhost and stop their whole process tree; the
terminal stays quiet; the CLI says its defaults."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import eventually, one_error
from tracking_server import free_port
from harness import server, tracking
from harness.__main__ import main

SMOKE = ["--smoke", "--set", "eval.n_images=100"]


def _get(url: str, data: dict | None = None, deadline: float = 120):
    """JSON from url, retried until the server answers or the deadline passes."""
    end = time.time() + deadline
    while True:
        try:
            request = urllib.request.Request(url, method="POST" if data is not None else "GET",
                                             data=json.dumps(data).encode() if data is not None else None,
                                             headers={"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(request, timeout=5).read())
        except OSError:
            if time.time() > end:
                raise
            time.sleep(1)



def _start(store, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=store, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=True)


def _stop_and_check_tree(proc: subprocess.Popen) -> None:
    tree = server.descendants(proc.pid)
    assert tree, "the server runs as a child process"
    assert not [p for p in tree if "huey" in server.cmdline(p)], "MLflow's job consumers were started"
    proc.send_signal(signal.SIGTERM)  # to harness alone, as a process manager would
    proc.wait(timeout=60)
    eventually(lambda: not [p for p in tree if server.alive(p)], seconds=10)
    left = [p for p in tree if server.alive(p)]
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, [server.cmdline(p) for p in left]


@pytest.mark.slow
def test_ui_serves_runs_lean_in_the_model_training_view_and_stops_its_tree(store):
    assert main(["run", "smoothing", *SMOKE]) == 0
    c = tracking.client()
    old = c.create_experiment("made-before-this-change")  # an experiment without the kind tag, with a harness run
    c.create_run(old, tags={"experiment": "x"})
    port = free_port()
    proc = _start(store, "ui", "--port", str(port))
    try:
        body = _get(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
                    {"experiment_ids": [c.get_experiment_by_name("smoothing").experiment_id]})
        assert [r["info"]["run_name"] for r in body["runs"]] == ["smoothing-s0"]
        telemetry = _get(f"http://127.0.0.1:{port}/ajax-api/3.0/mlflow/ui-telemetry")
        assert telemetry["disable_ui_telemetry"] is True
        for name in ("smoothing", "made-before-this-change"):
            assert c.get_experiment_by_name(name).tags["mlflow.experimentKind"] == "custom_model_development"
        _stop_and_check_tree(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_dashboard_serves_the_search_storage_and_stops_its_tree(store, capsys):
    pytest.importorskip("optuna_dashboard")
    assert main(["search", "tanh", "--trials", "2", *SMOKE]) == 0
    capsys.readouterr()
    assert main(["dashboard", "--study", "tanh/nope"]) == 2  # an unknown study: a sentence naming the known ones
    one_error(capsys.readouterr().err, "tanh/nope", "tanh/default")
    port = free_port()
    proc = _start(store, "dashboard", "--study", "tanh/default", "--port", str(port))
    try:
        (study,) = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        assert study["study_name"] == "tanh/default"
        assert len(_get(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}")["trials"]) == 2
        _stop_and_check_tree(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = proc.stdout.read().decode()
    assert "/dashboard/studies/" in out


@pytest.mark.slow
def test_tensorflow_start_up_lines_show_only_with_verbose(store):
    import re
    from harness.console import NOISE
    quiet = subprocess.run([sys.executable, "-m", "harness", "run", "base", *SMOKE], cwd=store, capture_output=True,
                           text=True, timeout=600)
    loud = subprocess.run([sys.executable, "-m", "harness", "classifier", "--dataset", "mnist-5k", "--verbose"],
                          cwd=store, capture_output=True, text=True, timeout=600)  # TensorFlow's start-up alone
    assert quiet.returncode == 0 and loud.returncode == 0
    assert not [line for line in re.split(r"[\r\n]", quiet.stderr) if NOISE.search(line)]
    assert [line for line in loud.stderr.splitlines() if NOISE.search(line)]
    assert "eval at step 6" in quiet.stderr  # the harness's own lines pass
    missing = subprocess.run([sys.executable, "-m", "harness", "run", "nosuch"], cwd=store, capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2
    one_error(missing.stderr, "'nosuch'")  # errors pass too


def test_the_cli_says_its_defaults_and_refuses_seeds_for_a_search(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "100 epochs" in text and "seed 0, one seed" in text
    assert main(["search", "base", "--seeds", "3", "--smoke"]) == 2
    one_error(capsys.readouterr().err, "--seeds", "train.seed")
