"""MLflow tracking: the store, experiments, runs, tags and batched logging.

The store is MLflow's own default (sqlite:///mlflow.db in the working directory, artifacts under
./mlruns) or MLFLOW_TRACKING_URI. Runs are made with the client API, not mlflow's global active run,
so parents, children and several seeds in one process never tangle.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

# mlflow is imported inside the functions: the train loop and bench import this module, and they
# also run where MLflow is not installed (the accelerator image), logging to another client.

_MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
_MAX_PARAMS = 100


def tracking_uri() -> str:
    import mlflow
    return mlflow.get_tracking_uri()


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def store_lock():
    """An exclusive lock beside a SQLite store; nothing for server stores, which serialise themselves."""
    db = _sqlite_path(tracking_uri())
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def client():
    """A client over a store that exists. Several processes creating one SQLite store at once race on
    its schema migrations, so creation happens once, under a file lock; later opens skip the lock."""
    from mlflow.tracking import MlflowClient
    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db is not None and not (db.exists() and db.stat().st_size > 0 and Path(f"{db}.ready").exists()):
        with store_lock():
            MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the schema
            Path(f"{db}.ready").touch()
    return MlflowClient(uri)


# MLflow's experiment kind for model training: its UI then opens runs in the model-training view, not
# the GenAI one ("Evaluation runs", traces, judges) that MLflow 3.17 shows an experiment without it.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(c, name: str) -> str:
    """The experiment's id, created if needed; either way it carries EXPERIMENT_KIND (older ones get it)."""
    found = c.get_experiment_by_name(name)
    if found is None:
        with store_lock():
            found = c.get_experiment_by_name(name)
            if found is None:
                return c.create_experiment(name, tags=EXPERIMENT_KIND)
    mark_kind(c, found)
    return found.experiment_id


def mark_kind(c, experiment) -> None:
    """Tag an experiment with EXPERIMENT_KIND unless it already has it."""
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:
            c.set_experiment_tag(experiment.experiment_id, key, value)


def start_run(c, experiment: str, run_name: str, tags: dict, parent_id: str | None = None) -> str:
    tags = {k: str(v) for k, v in tags.items()}
    if parent_id:
        tags["mlflow.parentRunId"] = parent_id
    run = c.create_run(experiment_id(c, experiment), run_name=run_name, tags=tags)
    return run.info.run_id


def all_runs(c, experiment: str) -> list:
    """Every run of an MLflow experiment (all pages), oldest first; [] when it does not exist."""
    found = c.get_experiment_by_name(experiment)
    if found is None:
        return []
    mark_kind(c, found)
    runs, token = [], None
    while True:
        page = c.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"], max_results=5000,
                             page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def mark_harness_experiments(c) -> int:
    """Give EXPERIMENT_KIND to every experiment in the store that holds harness runs (ones made before
    the harness tagged them included); returns how many were marked now."""
    marked = 0
    for experiment in c.search_experiments():
        if experiment.tags.get("mlflow.experimentKind") == EXPERIMENT_KIND["mlflow.experimentKind"]:
            continue
        runs = c.search_runs([experiment.experiment_id], max_results=200)
        if any("experiment" in r.data.tags or "kind" in r.data.tags for r in runs):
            mark_kind(c, experiment)
            marked += 1
    return marked


def read_text(c, run_id: str, path: str) -> str | None:
    """A text artifact of a run (as log_text wrote it), or None when it has none."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return Path(c.download_artifacts(run_id, path, tmp)).read_text()
        except Exception:  # MLflow raises several kinds for a missing artifact
            return None


def log_params(c, run_id: str, params: dict) -> None:
    from mlflow.entities import Param
    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), _MAX_PARAMS):
        c.log_batch(run_id, params=items[i:i + _MAX_PARAMS])


def log_metrics(c, run_id: str, rows: list[tuple[str, float, int]]) -> None:
    """rows of (key, value, step), sent in batches of up to 1,000."""
    from mlflow.entities import Metric
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, int(s)) for k, v, s in rows]
    for i in range(0, len(items), _MAX_BATCH):
        c.log_batch(run_id, metrics=items[i:i + _MAX_BATCH])


def set_tags(c, run_id: str, tags: dict) -> None:
    from mlflow.entities import RunTag
    c.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


HEARTBEAT_S = 60.0  # a training run tags its last step and the time this often (heartbeat.time, heartbeat.step)
STALE_AFTER_S = 10 * HEARTBEAT_S  # a RUNNING run silent this long has lost its process (machines' clocks must agree)


def heartbeat(c, run_id: str, step: int) -> None:
    set_tags(c, run_id, {"heartbeat.time": f"{time.time():.0f}", "heartbeat.step": step})


def is_stale(run, now: float | None = None) -> bool:
    """A RUNNING run whose process died without a word: no heartbeat for STALE_AFTER_S. A run from before
    heartbeats is judged by its start time."""
    if run.info.status != "RUNNING":
        return False
    beat = run.data.tags.get("heartbeat.time")
    last = float(beat) if beat else run.info.start_time / 1000
    return (now or time.time()) - last > STALE_AFTER_S


CLASSIFIERS = "classifiers"  # the experiment that holds a store's metric classifiers, one run each


class ClassifierShare:
    """The metric classifiers of one tracking store (metrics/classifier.py load_or_train's `share`): a run
    per classifier in the experiment `classifiers`, named by its cache name; the first published wins."""

    def __init__(self, c):
        self.c = c

    def _first(self, name: str):
        found = self.c.get_experiment_by_name(CLASSIFIERS)
        if found is None:
            return None
        runs = self.c.search_runs([found.experiment_id], f"tags.`classifier.name` = '{name}' and "
                                  "attributes.status = 'FINISHED'", order_by=["attributes.end_time ASC"],
                                  max_results=1)
        return runs[0] if runs else None

    def fetch(self, name: str, folder: Path) -> bool:
        """Put the store's classifier of this name into folder (as name.keras and name.json); False when the
        store has none. Nothing is downloaded when folder already holds the same weights."""
        import json
        import tempfile
        run = self._first(name)
        if run is None:
            return False
        meta = folder / f"{name}.json"
        if meta.exists() and json.loads(meta.read_text()).get("weights") == run.data.tags.get("classifier.weights"):
            return True
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            local = Path(self.c.download_artifacts(run.info.run_id, "classifier", tmp))
            for suffix in (".keras", ".json"):  # the model first: a reader takes the pair by its json
                os.replace(local / f"{name}{suffix}", folder / f"{name}{suffix}")
        return True

    def publish(self, name: str, files: list[Path]) -> None:
        import json
        weights = json.loads(next(f for f in files if f.suffix == ".json").read_text())["weights"]
        run_id = start_run(self.c, CLASSIFIERS, name, {"classifier.name": name, "classifier.weights": weights,
                                                       "kind": "classifier"})
        for f in files:
            self.c.log_artifact(run_id, str(f), "classifier")
        self.c.set_terminated(run_id, "FINISHED")


def shown(uri: str) -> str:
    """A store URI fit to print: its password replaced (postgresql://user:***@host/db)."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def ui_command() -> str:
    return f"harness ui   (or: mlflow ui --backend-store-uri {shown(tracking_uri())})"
