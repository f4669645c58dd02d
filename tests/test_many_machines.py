"""Many machines, for real: two PostgreSQL databases (MLflow's and Optuna's), an `mlflow server` with
MLflow's basic-auth app, a PostgreSQL backend and a local artifact destination, and two `harness search`
workers with their own working folders, caches and worker names sharing one study. One worker is
killed with SIGKILL mid-trial: Optuna's heartbeat fails its trial, its MLflow run is marked FAILED, the
other machine asks the trial again and resumes that run from the checkpoint the dead one uploaded, and
the study still reaches its trial count. Credentials travel in the environment and a .pgpass file,
never on a command line; anonymous and wrong-password requests are refused."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

import optuna
import pytest

import tracking_server
from harness import search, server
from harness import study as study_lib

TRIALS = 3


def _request(url: str, user: str | None = None, password: str | None = None, data: dict | None = None):
    """(status, body bytes); basic auth when user is given."""
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                     headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except urllib.error.URLError:  # not listening (yet)
        return 0, b""


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    env: dict  # a worker's environment: the server's URL, the worker's account, PGPASSFILE
    worker_password: str
    admin_password: str


@contextlib.contextmanager
def _authenticated_server(tmp_path, postgres):
    """An `mlflow server --app-name basic-auth` over PostgreSQL with a `worker` account; yields a Server."""
    admin_password, worker_password = secrets.token_hex(12), secrets.token_hex(12)
    (tmp_path / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\n"
        f"admin_username = admin\nadmin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {**os.environ, "PGPASSFILE": str(postgres.pgpass), "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "auth.ini"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    with tracking_server.serving(tmp_path, postgres("mlflow").replace("postgresql://", "postgresql+psycopg2://"), env,
                                 ("--app-name", "basic-auth")) as (base, mlflow_server):
        assert _request(f"{base}/api/2.0/mlflow/users/create", "admin", admin_password,
                        {"username": "worker", "password": worker_password})[0] == 200
        worker_env = {**env, "MLFLOW_TRACKING_URI": base, "MLFLOW_TRACKING_USERNAME": "worker",
                      "MLFLOW_TRACKING_PASSWORD": worker_password, "PYTHONUNBUFFERED": "1"}
        for key in ("MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_FLASK_SERVER_SECRET_KEY"):  # the server's, not theirs
            worker_env.pop(key)
        yield Server(base, mlflow_server, worker_env, worker_password, admin_password)


@pytest.mark.slow
def test_two_machines_share_a_compare_and_a_dead_ones_seed_is_resumed_not_retrained(tmp_path, postgres, scorer_5k,
                                                                                    classifier_cache):
    """Two compare workers, each with its own folder and cache, share one comparison through the
    authenticated server (runs, checkpoints) and PostgreSQL (claims). A hangs mid-run (SIGSTOP), then its
    machine is lost (SIGKILL); B trains the other seeds, takes A's seed over once A's claim is stale (10 s
    here), and resumes A's run from the checkpoint A uploaded at step 20."""
    claims_db = postgres("claims")
    with _authenticated_server(tmp_path, postgres) as srv:
        base, env, worker_password = srv.url, srv.env, srv.worker_password
        workers = []
        try:
            def start(name: str) -> subprocess.Popen:
                folder = tmp_path / name
                shutil.copytree(classifier_cache, folder / "cache")
                worker_env = {**env, "HARNESS_WORKER": name, "HARNESS_CACHE": str(folder / "cache"),
                              "HARNESS_HEARTBEAT_S": "1"}  # a dead worker's claim is stale after 10 s
                return subprocess.Popen(
                    [sys.executable, "-m", "harness", "compare", "base", "smoothing", "--smoke", "--seeds", "2",
                     "--steps", "60", "--set", "eval.n_images=100", "--set", "train.print_every_steps=10",
                     "--storage", claims_db, "--out", "report"],
                    cwd=folder, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

            workers.append(start("machine-a"))
            tracking_server.wait_for(workers[0], "step 30/60")  # A's first seed, past its first checkpoint (step 20)
            workers[0].send_signal(signal.SIGSTOP)  # A hangs there, its claim and run beating no more
            workers.append(start("machine-b"))
            tracking_server.wait_for(workers[1], "(experiment '")  # B trains: another seed, or A's taken over
            workers[0].send_signal(signal.SIGKILL)  # then A's machine is lost
            workers[0].wait(timeout=30)
            _, err = workers[1].communicate(timeout=900)
            assert workers[1].returncode == 0, err[-3000:]

            from mlflow.tracking import MlflowClient
            os.environ.update(MLFLOW_TRACKING_USERNAME="worker", MLFLOW_TRACKING_PASSWORD=worker_password)
            client = MlflowClient(base)
            for experiment in ("base", "smoothing"):
                runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
                seeds = sorted(r.data.tags["seed"] for r in runs)
                assert seeds == ["0", "1"], seeds  # every seed once: A's lost one resumed, not trained again
                assert all(r.info.status == "FINISHED" for r in runs)
            resumed = [r for e in ("base", "smoothing")
                       for r in client.search_runs([client.get_experiment_by_name(e).experiment_id])
                       if r.data.tags.get("resumed") == "true"]
            assert len(resumed) == 1 and resumed[0].data.tags["seed"] == "0"  # A's seed, continued by B
            assert resumed[0].data.tags["resumed.step"] == "20"  # from the checkpoint A uploaded at step 20
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                os.environ.pop(key, None)


@pytest.mark.slow
def test_two_machines_share_a_study_through_postgres_and_an_authenticated_server(tmp_path, postgres, scorer_5k,
                                                                                 classifier_cache):
    """scorer_5k: the classifier is trained here first; machine A's cache is a copy of this one, machine B's
    is empty, so B must take A's classifier from the tracking store."""
    optuna_db = postgres("optuna")
    workers = []
    with _authenticated_server(tmp_path, postgres) as srv:
        base, env, worker_password = srv.url, srv.env, srv.worker_password
        argv = server.cmdline(srv.process.pid)  # what `ps` shows anyone on the machine
        assert "mlflow" in argv and not any(p in argv for p in (srv.admin_password, worker_password, "harness:"))
        try:
            search_url = f"{base}/api/2.0/mlflow/experiments/search?max_results=5"
            assert _request(search_url)[0] == 401  # nobody gets in anonymously
            assert _request(search_url, "worker", "not-the-password")[0] == 401
            assert _request(search_url, "worker", worker_password)[0] == 200

            def start(name: str) -> subprocess.Popen:
                folder = tmp_path / name
                if name == "machine-a":  # B starts with an empty cache of its own
                    shutil.copytree(classifier_cache, folder / "cache")
                (folder / "cache").mkdir(parents=True, exist_ok=True)
                worker_env = {**env, "HARNESS_WORKER": name, "HARNESS_CACHE": str(folder / "cache")}
                return subprocess.Popen(
                    [sys.executable, "-m", "harness", "search", "smoothing", "--study", "shared", "--storage", optuna_db,
                     "--until", str(TRIALS), "--smoke", "--steps", "40", "--set", "eval.n_images=100",
                     "--set", "search.heartbeat=2", "--set", "train.print_every_steps=10"],
                    cwd=folder, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

            workers.append(start("machine-a"))
            tracking_server.wait_for(workers[0], "run smoothing-t0-s0")
            workers.append(start("machine-b"))
            tracking_server.wait_for(workers[0], "step 20/40")  # mid-trial
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=30)
            _, err = workers[1].communicate(timeout=900)
            assert workers[1].returncode == 0, err[-3000:]

            os.environ["PGPASSFILE"] = str(postgres.pgpass)  # this process reads the study as the workers did
            study = optuna.load_study(study_name="smoothing/shared", storage=study_lib.storage_for(optuna_db))
            counted = [t for t in study.trials if t.state in search.COUNTED]
            lost = [t for t in study.trials if t.user_attrs.get("worker.host") == "machine-a"]
            assert len(counted) >= TRIALS  # counted for the study, not per worker
            assert len(lost) == 1 and lost[0].state == optuna.trial.TrialState.FAIL
            assert "fail_reason" not in lost[0].system_attrs  # failed by the heartbeat, not by a same-host pid check

            from mlflow.tracking import MlflowClient
            os.environ.update(MLFLOW_TRACKING_USERNAME="worker", MLFLOW_TRACKING_PASSWORD=worker_password)
            client = MlflowClient(base)
            experiment = client.get_experiment_by_name("smoothing")
            runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
            parent = next(r for r in runs.values() if r.data.tags.get("kind") == "study")
            for trial in study.trials:
                run = runs[trial.user_attrs["mlflow_run_id"]]
                assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
            dead = runs[lost[0].user_attrs["mlflow_run_id"]]
            assert "stopped heartbeating" in dead.data.tags["failure.reason"]
            retry = [t for t in study.trials if t.user_attrs.get("retry.of") == lost[0].number]
            assert len(retry) == 1 and retry[0].user_attrs["mlflow_run_id"] == dead.info.run_id  # asked again, on B
            assert dead.data.tags["resumed"] == "true" and int(dead.data.tags["resumed.step"]) > 0  # from its checkpoint
            weights = {r.data.tags["classifier.weights"] for r in runs.values() if "classifier.weights" in r.data.tags}
            assert len(weights) == 1 and dead.data.tags["classifier.weights"] in weights  # A's and B's: one classifier
            shared = client.search_runs([client.get_experiment_by_name("classifiers").experiment_id])
            assert len(shared) == 1  # A published it, B downloaded it: B trained none of its own
            assert list((tmp_path / "machine-b" / "cache" / "classifier").glob("mnist-5k-*.keras"))
            finished = runs[counted[0].user_attrs["mlflow_run_id"]]
            status, body = _request(f"{base}/get-artifact?path=plots/losses.png&run_uuid={finished.info.run_id}",
                                    "worker", worker_password)
            assert status == 200 and body[:4] == b"\x89PNG"  # artifacts readable over HTTP
            assert _request(f"{base}/get-artifact?path=plots/losses.png&run_uuid={finished.info.run_id}")[0] == 401
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
            for key in ("PGPASSFILE", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                os.environ.pop(key, None)
