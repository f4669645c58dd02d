"""An Optuna study's storage and its lost trials: the journal file or an RDB URL, the pruner, and trials
whose workers died (failed by Optuna's heartbeat or a same-host process check), which are asked again
so that the worker taking them up resumes their MLflow runs from their checkpoints."""
from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlsplit

import optuna

from harness import server, tracking
from harness.machine import worker_name
from harness.config import Config, UserError


DEFAULT_JOURNAL = Path("mlruns") / "optuna" / "journal.log"


STORAGE_ENV = "HARNESS_STORAGE"  # the storage URL by environment: workers and the dashboard get it so, never on argv


def storage_for(url: str | None, heartbeat: int = 60, failed_trial_callback=None):
    """An Optuna storage. RDB storages (PostgreSQL for many machines) fail a trial whose worker has been
    silent for 2 x heartbeat seconds, calling failed_trial_callback(study, trial); journal files get
    stale-trial handling from fail_dead_local_trials instead, as they have no heartbeats."""
    if url is None:
        DEFAULT_JOURNAL.parent.mkdir(parents=True, exist_ok=True)
        url = str(DEFAULT_JOURNAL)
    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    url = tracking.with_driver(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                                              failed_trial_callback=failed_trial_callback)
    except Exception as e:
        reason = str(e).splitlines()[0][:200]
        password = urlsplit(url).password
        reason = reason.replace(password, "***") if password else reason
        raise UserError(f"cannot open Optuna storage {tracking.shown(url)} ({type(e).__name__}: {reason}).") from None


def pruner_for(config: Config) -> optuna.pruners.BasePruner:
    s = config.search
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=s.startup_trials, n_warmup_steps=0)
    if s.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(experiment: str, study: str, config: Config, storage_url: str | None) -> optuna.Study:
    """The study, created or loaded; trials whose workers died are failed and asked again (_mark_lost)."""
    storage = storage_for(storage_url, config.search.heartbeat, on_lost)
    sampler = optuna.samplers.TPESampler(n_startup_trials=max(1, config.search.startup_trials))
    opened = optuna.create_study(study_name=f"{experiment}/{study}", storage=storage, load_if_exists=True,
                                 direction=config.search.direction, sampler=sampler, pruner=pruner_for(config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(opened)  # RDB storages: heartbeats
    fail_dead_local_trials(opened, on_lost)  # any storage: workers of this host that are gone
    return opened


def fail_dead_local_trials(study: optuna.Study, on_lost=None) -> list[int]:
    """RUNNING trials started by a process of this worker (worker_name) that no longer exists are marked
    FAIL, and on_lost(study, trial) is called for each, as Optuna calls it for a silent RDB worker."""
    host = worker_name()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.user_attrs.get("worker.host") != host:
            continue
        pid = int(trial.user_attrs.get("worker.pid", 0))
        if pid and not server.alive(pid):
            try:
                study._storage.set_trial_system_attr(trial._trial_id, "fail_reason", f"worker {host}:{pid} died")
                study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            except RuntimeError:  # another process failed it first (UpdateFinishedTrialError): its callback ran
                continue
            failed.append(trial.number)
            if on_lost is not None:
                on_lost(study, study._storage.get_trial(trial._trial_id))
    return failed


def best(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The study's best trial, or one sentence when it has no complete trial yet."""
    try:
        return study.best_trial
    except ValueError:
        raise UserError(f"study '{study.study_name}' has no complete trial yet; run some trials first.") from None


def requeue_lost(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial lost with its worker is asked again with its params; the worker that takes it up resumes
    the lost trial's MLflow run from its last checkpoint instead of training it afresh."""
    attrs = {"retry.of": trial.number}
    if trial.user_attrs.get("mlflow_run_id"):
        attrs["resume.run_id"] = trial.user_attrs["mlflow_run_id"]
    study.enqueue_trial(trial.params, user_attrs=attrs)


def on_lost(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    mark_lost(tracking.Store(), study, trial)


def mark_lost(store: tracking.Store, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose worker died (stopped heartbeating, or its process is gone) was failed: its MLflow
    run, which nobody will end, is marked FAILED with the reason, and the trial is asked again, to resume
    that run from its checkpoint (requeue_lost)."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    if run_id:
        lost = {"state": "error", "optuna.state": "fail",
                "failure.reason": f"worker {trial.user_attrs.get('worker.host', '?')} died or stopped "
                                  "heartbeating; Optuna failed the trial and asked it again"}
        store.end(run_id, tracking.RunState.FAILED, lost)
    requeue_lost(study, trial)
