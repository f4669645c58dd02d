"""MLflow tracking: the store, experiments, runs, tags and batched logging.

The store is MLflow's own default (sqlite:///mlflow.db in the working directory, artifacts under
./mlruns) or MLFLOW_TRACKING_URI. Runs are made with the client API, not mlflow's global active run,
so parents, children and several seeds in one process never tangle.
"""
from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import re
import time
from pathlib import Path

from harness.config import UserError

# mlflow is imported inside the functions: the train loop imports this module, and it also runs where
# MLflow is not installed (an accelerator machine), writing to a JSONL sink (harness/sink.py).

_MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
_MAX_PARAMS = 100


def tracking_uri() -> str:
    import mlflow
    return mlflow.get_tracking_uri()


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def store_exists() -> bool:
    """Whether the store is there already (a server's always is; a SQLite one once its file exists)."""
    db = _sqlite_path(tracking_uri())
    return db is None or db.exists()


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
    """A raw MLflow client over a store that exists (Store's own; tests read the store through it).
    Several processes creating one SQLite store at once race on its schema migrations, so creation
    happens once, under a file lock; later opens skip the lock."""
    from mlflow.tracking import MlflowClient
    uri = tracking_uri()
    db = _sqlite_path(uri)
    if db is not None and not (db.exists() and db.stat().st_size > 0 and Path(f"{db}.ready").exists()):
        with store_lock():
            MlflowClient(uri).search_experiments(max_results=1)  # creates and migrates the schema
            Path(f"{db}.ready").touch()
    return MlflowClient(uri)


class RunState(enum.StrEnum):
    """MLflow's run states as the harness uses them (a str: equal to the status MLflow reports).
    The harness's own `state` tag says why a run ended (finished, diverged, interrupted, error, pruned)."""
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"  # diverged, or an error
    KILLED = "KILLED"  # interrupted or pruned: it may continue


# MLflow's experiment kind for model training: its UI then opens runs in the model-training view, not
# the GenAI one ("Evaluation runs", traces, judges) that MLflow 3.17 shows an experiment without it.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# A training run tags its last step and the time this often (heartbeat.time, heartbeat.step), and its
# claims (harness/claims.py) refresh theirs; HARNESS_HEARTBEAT_S shortens it (tests that kill a worker).
HEARTBEAT_S = float(os.environ.get("HARNESS_HEARTBEAT_S", "60"))
STALE_AFTER_S = 10 * HEARTBEAT_S  # a RUNNING run silent this long has lost its process (machines' clocks must agree)


def heartbeat_tags(step: int) -> dict:
    """The tags a training run refreshes every HEARTBEAT_S to say it is alive at this step."""
    return {"heartbeat.time": f"{time.time():.0f}", "heartbeat.step": step}


def is_stale(run, now: float | None = None) -> bool:
    """A RUNNING run whose process died without a word: no heartbeat for STALE_AFTER_S. A run from before
    heartbeats is judged by its start time."""
    if run.info.status != RunState.RUNNING:
        return False
    beat = run.data.tags.get("heartbeat.time")
    last = float(beat) if beat else run.info.start_time / 1000
    return (now or time.time()) - last > STALE_AFTER_S


class Store:
    """The tracking store, the harness's one door to MLflow: experiments, the run lifecycle (start,
    reopen, end in a RunState), what runs log, and the queries run, compare and search make. Runs come
    back as MLflow's Run records (run.info, run.data), read only."""

    def __init__(self):
        self._c = client()

    # experiments
    def experiment_id(self, name: str) -> str:
        """The experiment's id, created if needed; either way it carries EXPERIMENT_KIND (older ones get it)."""
        from mlflow.exceptions import MlflowException
        found = self._c.get_experiment_by_name(name)
        if found is None:
            try:  # the store's unique name settles a race between two first creations, on any store
                return self._c.create_experiment(name, tags=EXPERIMENT_KIND)
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                found = self._c.get_experiment_by_name(name)
        self._mark_kind(found)
        return found.experiment_id

    def _mark_kind(self, experiment) -> None:
        for key, value in EXPERIMENT_KIND.items():
            if experiment.tags.get(key) != value:
                self._c.set_experiment_tag(experiment.experiment_id, key, value)

    def runs(self, experiment: str, where: str = "", newest_first: bool = False, limit: int | None = None,
             by: str = "start_time") -> list:
        """The runs of an experiment (all pages) matching an MLflow filter, oldest first (by start or
        end time); [] when it does not exist."""
        found = self._c.get_experiment_by_name(experiment)
        if found is None:
            return []
        self._mark_kind(found)
        return self._search(found.experiment_id, where, newest_first, limit, by)

    def _search(self, experiment_id: str, where: str, newest_first: bool = False, limit: int | None = None,
                by: str = "start_time") -> list:
        order = [f"attributes.{by} {'DESC' if newest_first else 'ASC'}"]
        runs, token = [], None
        while True:
            page = self._c.search_runs([experiment_id], where, order_by=order,
                                       max_results=min(limit or 5000, 5000), page_token=token)
            runs += list(page)
            token = page.token
            if not token or (limit and len(runs) >= limit):
                return runs[:limit] if limit else runs

    def siblings(self, run_id: str, where: str, limit: int | None = None) -> list:
        """Runs in run_id's experiment matching an MLflow filter, oldest first."""
        return self._search(self.get(run_id).info.experiment_id, where, limit=limit)

    def mark_harness_experiments(self) -> int:
        """Give EXPERIMENT_KIND to every experiment in the store that holds harness runs (ones made before
        the harness tagged them included); returns how many were marked now."""
        marked = 0
        for experiment in self._c.search_experiments():
            if experiment.tags.get("mlflow.experimentKind") == EXPERIMENT_KIND["mlflow.experimentKind"]:
                continue
            runs = self._c.search_runs([experiment.experiment_id], max_results=200)
            if any("experiment" in r.data.tags or "kind" in r.data.tags for r in runs):
                self._mark_kind(experiment)
                marked += 1
        return marked

    # a run's lifecycle
    def start(self, experiment: str, run_name: str, tags: dict, parent_id: str | None = None) -> str:
        tags = {k: str(v) for k, v in tags.items()}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        return self._c.create_run(self.experiment_id(experiment), run_name=run_name, tags=tags).info.run_id

    def get(self, run_id: str):
        """The run; LookupError when the store has none of that id."""
        from mlflow.exceptions import MlflowException
        try:
            return self._c.get_run(run_id)
        except MlflowException as e:  # an unknown or malformed id; a store that is down says so itself
            if e.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            raise LookupError(f"no run with id {run_id} in {shown(tracking_uri())}.") from None

    def reopen(self, run_id: str) -> None:
        """A run that continues (resumed, or a study's parent again): RUNNING until it ends again."""
        self._c.update_run(run_id, status=RunState.RUNNING.value)

    def end(self, run_id: str, state: RunState, tags: dict | None = None) -> None:
        if tags:
            self.tags(run_id, tags)
        self._c.set_terminated(run_id, RunState(state).value)

    # what a run logs
    def params(self, run_id: str, params: dict) -> None:
        from mlflow.entities import Param
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), _MAX_PARAMS):
            self._c.log_batch(run_id, params=items[i:i + _MAX_PARAMS])

    def metrics(self, run_id: str, rows: list[tuple[str, float, int]]) -> None:
        """rows of (key, value, step), sent in batches of up to 1,000."""
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(s)) for k, v, s in rows]
        for i in range(0, len(items), _MAX_BATCH):
            self._c.log_batch(run_id, metrics=items[i:i + _MAX_BATCH])

    def tags(self, run_id: str, tags: dict) -> None:
        """Set tags; a failure.reason is stored as it would be printed, passwords masked."""
        from mlflow.entities import RunTag
        if "failure.reason" in tags:
            tags = {**tags, "failure.reason": masked(str(tags["failure.reason"]))}
        self._c.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def text(self, run_id: str, text: str, path: str) -> None:
        self._c.log_text(run_id, text, path)

    def figure(self, run_id: str, fig, path: str) -> None:
        self._c.log_figure(run_id, fig, path)

    def artifact(self, run_id: str, local: str | Path, folder: str | None = None) -> None:
        self._c.log_artifact(run_id, str(local), folder)

    def sink(self, run_id: str) -> "RunSink":
        return RunSink(self, run_id)

    # what a run holds
    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """A metric's logged values as (step, value), in step order."""
        return sorted((h.step, h.value) for h in self._c.get_metric_history(run_id, key))

    def timeline(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """A metric's logged steps with the time each was logged, as (step, seconds since the epoch), in
        time order: how fast a run is going."""
        return sorted(((h.step, h.timestamp / 1000) for h in self._c.get_metric_history(run_id, key)),
                      key=lambda p: (p[1], p[0]))

    def artifacts(self, run_id: str, folder: str) -> list[str]:
        return sorted(f.path for f in self._c.list_artifacts(run_id, folder))

    def download(self, run_id: str, path: str, dest: str | Path | None = None) -> Path:
        """An artifact (file or folder) copied to dest, or a temporary folder; raises when it has none."""
        return Path(self._c.download_artifacts(run_id, path, str(dest) if dest else None))

    def has_artifact(self, run_id: str, path: str) -> bool:
        """Whether the run holds the artifact file `path`. Listing says "absent" as an empty folder; a store
        that cannot answer (an outage, a refused login) raises StoreError instead."""
        folder = path.rpartition("/")[0] or None
        try:
            return any(f.path == path for f in self._c.list_artifacts(run_id, folder))
        except Exception as e:
            raise StoreError(f"the tracking store {shown(tracking_uri())} could not list run {run_id}'s "
                             f"artifacts ({_reason(e)}); nothing was changed: run the same command again when it "
                             "answers.") from None

    def fetch(self, run_id: str, path: str, dest: str | Path | None = None) -> Path | None:
        """An artifact file copied to dest (or a temporary folder); None when the run has none. A download
        that fails for another reason raises StoreError: an outage is not a missing file."""
        if not self.has_artifact(run_id, path):
            return None
        try:
            return self.download(run_id, path, dest)
        except Exception as e:
            raise StoreError(f"the tracking store {shown(tracking_uri())} holds {path} of run {run_id} but the "
                             f"download failed ({_reason(e)}); nothing was changed: run the same command again "
                             "when it answers.") from None

    def read_text(self, run_id: str, path: str) -> str | None:
        """A text artifact of a run (as text() wrote it), or None when it has none."""
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            local = self.fetch(run_id, path, tmp)
            return None if local is None else local.read_text()

    def artifact_folder(self, run_id: str) -> Path | None:
        """The run's artifact folder when it is on this machine's disk; None for a server's."""
        from urllib.parse import urlparse
        parsed = urlparse(self.get(run_id).info.artifact_uri)
        return Path(parsed.path) if parsed.scheme in ("", "file") else None


class RunSink:
    """One MLflow run as a sink (harness/sink.py): where the training loop writes."""

    def __init__(self, store: Store, run_id: str):
        self.store, self.run_id = store, run_id

    def metrics(self, rows: list[tuple[str, float, int]]) -> None:
        self.store.metrics(self.run_id, rows)

    def tags(self, tags: dict) -> None:
        self.store.tags(self.run_id, tags)

    def text(self, text: str, path: str) -> None:
        self.store.text(self.run_id, text, path)

    def figure(self, fig, path: str) -> None:
        self.store.figure(self.run_id, fig, path)

    def artifact(self, local: str | Path, folder: str | None = None) -> None:
        self.store.artifact(self.run_id, local, folder)


CLASSIFIERS = "classifiers"  # the experiment that holds a store's metric classifiers, one run each


class ClassifierShare:
    """The metric classifiers of one tracking store (metrics/classifier.py load_or_train's `share`): a run
    per classifier in the experiment `classifiers`, named by its cache name; the first published wins."""

    def __init__(self, store: Store):
        self.store = store

    def _first(self, name: str):
        runs = self.store.runs(CLASSIFIERS, f"tags.`classifier.name` = '{name}' and attributes.status = '{RunState.FINISHED}'",
                               limit=1, by="end_time")
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
            local = self.store.download(run.info.run_id, "classifier", tmp)
            for suffix in (".keras", ".json"):  # the model first: a reader takes the pair by its json
                os.replace(local / f"{name}{suffix}", folder / f"{name}{suffix}")
        return True

    def publish(self, name: str, files: list[Path]) -> None:
        import json
        weights = json.loads(next(f for f in files if f.suffix == ".json").read_text())["weights"]
        run_id = self.store.start(CLASSIFIERS, name, {"classifier.name": name, "classifier.weights": weights,
                                                      "kind": "classifier"})
        for f in files:
            self.store.artifact(run_id, f, "classifier")
        self.store.end(run_id, RunState.FINISHED)


class StoreError(UserError):
    """The tracking store did not answer as a store that holds the thing: an outage, a refused login."""


def _reason(e: Exception) -> str:
    return masked(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")[:300]


_PASSWORD_IN_URL = re.compile(r"(\w[\w+.-]*://[^:/@\s]+):[^@\s]+@")


def masked(text: str) -> str:
    """Text fit to print or store: the password of every URL in it replaced, as shown() does for one."""
    return _PASSWORD_IN_URL.sub(r"\1:***@", text)


def with_driver(url: str) -> str:
    """A database URL SQLAlchemy can open here: postgresql:// names psycopg2 when only it is installed
    (SQLAlchemy 2.1 defaults to psycopg 3; the test and search extras bring psycopg2)."""
    import importlib.util
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


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
