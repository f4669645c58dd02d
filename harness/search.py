"""Optuna studies over an experiment's `search.space`: every trial is one run() as a child MLflow run.

Storage: a journal file under mlruns/ by default (safe for several processes on one machine, which
SQLite is not), or any Optuna storage URL (postgresql://... for workers on many machines): harness/study.py.
"""
from __future__ import annotations

import math
import os
import signal
import warnings
import subprocess
import sys
import time
from dataclasses import dataclass, field

import optuna
import yaml
from tqdm import tqdm

from harness import config as cfg
from harness import loop, machine, plots
from harness import claims as claims_lib
from harness import resume as resume_lib
from harness import stop as stop_lib
from harness import data, runner, scorers
from harness.config import Config, UserError
from harness.registry import Experiment
from harness.tracking import RunState, Store
from harness import study as study_lib
from harness.machine import worker_name
from harness.study import STORAGE_ENV, open_study, requeue_lost


class TrialFailed(RuntimeError):
    """A trial's run diverged or crashed; Optuna records it as FAIL with this reason."""


def sample(trial: optuna.Trial, space: dict) -> dict:
    """Dotted config key -> value drawn from the experiment's search space."""
    params = {}
    for key, d in space.items():
        if d["type"] == "float":
            params[key] = trial.suggest_float(key, d["low"], d["high"], log=bool(d.get("log", False)))
        elif d["type"] == "int":
            params[key] = trial.suggest_int(key, d["low"], d["high"], step=int(d.get("step", 1)),
                                            log=bool(d.get("log", False)))
        else:
            params[key] = trial.suggest_categorical(key, d["choices"])
    return params


def parent_run(store: Store, experiment: str, study_name: str, config: Config, storage_url: str | None = None) -> str:
    """The study's parent MLflow run: found by tag, so a resumed study keeps one parent; workers starting
    together on several machines find or make it under one claim (harness/claims.py)."""
    with claims_lib.open_claims(storage_url).mutex(f"study-parent:{experiment}:{study_name}",
                                                   f"the parent run of study {study_name} being made"):
        found = store.runs(experiment, f"tags.`optuna.study` = '{study_name}' and tags.kind = 'study'",
                           newest_first=True, limit=1)
        if found:
            store.reopen(found[0].info.run_id)
            return found[0].info.run_id
        run_id = store.start(experiment, f"{experiment}-study-{study_name.split('/', 1)[1]}",
                             {"kind": "study", "optuna.study": study_name, "experiment": experiment, **machine.tags()})
    store.text(run_id, cfg.to_yaml(config), "config.yaml")
    store.text(run_id, yaml.safe_dump(config.search.space, sort_keys=False), "search_space.yaml")
    return run_id


class TrialPruned(stop_lib.Pruned, optuna.TrialPruned):
    """The pruner stopped this trial: Optuna records it PRUNED, and the run ends KILLED with state pruned."""


def objective_for(experiment: Experiment, config: Config, store: Store, parent_id: str, stop: stop_lib.StopFlag):
    dataset = data.for_config(config)
    scorer_for = scorers.Scorers()
    metric = config.search.metric

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker.host", worker_name())
        trial.set_user_attr("worker.pid", os.getpid())
        params = sample(trial, config.search.space)
        trial_config = cfg.replace(config, params)
        scorer = scorer_for(trial_config, dataset)

        def report(step: int, metrics: dict) -> None:
            trial.report(metrics[metric], step)
            if trial.should_prune():
                raise TrialPruned(f"{metric} {metrics[metric]:.4g} at step {step}")

        tags = {"optuna.study": trial.study.study_name, "optuna.trial": trial.number,
                **{f"optuna.param.{k}": v for k, v in params.items()}}

        def started(run_id: str) -> None:
            trial.set_user_attr("mlflow_run_id", run_id)
            if run_id == resume:  # the lost trial's run, now this trial's
                store.tags(run_id, {"optuna.trial": trial.number, "optuna.retry_of": lost})

        common = dict(on_eval=report, extra_tags=tags, stop=stop, on_start=started, claims=claims_lib.TrialClaim(),
                      name=f"{experiment.name}-t{trial.number}-s{trial_config.train.seed}")
        resume, lost = trial.user_attrs.get("resume.run_id"), trial.user_attrs.get("retry.of")
        if resume:  # a trial lost with its worker (requeue_lost): the pruner sees the whole curve
            earlier = trial.study.get_trials(deepcopy=False)[lost]
            for step, value in sorted(earlier.intermediate_values.items()):
                trial.report(value, step)
        try:
            result = None
            if resume:  # go on from the lost run's checkpoint
                try:
                    result = runner.run(experiment.name, trial_config, trial_config.train.seed, dataset,
                                         scorer, store, parent_id, resume_run_id=resume, **common)
                except resume_lib.ResumeError as e:
                    print(f"trial {trial.number} (retry of {lost}): cannot resume run {resume}: {e} "
                          "Training afresh.", file=sys.stderr)
            if result is None:
                result = runner.run(experiment.name, trial_config, trial_config.train.seed, dataset, scorer,
                                     store, parent_id, **common)
        except stop_lib.Interrupted:  # checkpointed: the study asks this trial again, and that resumes its run
            requeue_lost(trial.study, trial.study._storage.get_trial(trial._trial_id))
            raise
        if result.status != RunState.FINISHED:
            trial.set_user_attr("fail_reason", result.reason)
            raise TrialFailed(result.reason)
        value = result.metrics[metric]
        if not math.isfinite(value):
            raise TrialFailed(f"{metric} is {value}")
        return value

    return objective


def _mark_mlflow_state(store: Store, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    run_id = trial.user_attrs.get("mlflow_run_id")
    if run_id:
        store.tags(run_id, {"optuna.state": trial.state.name.lower()})


def _finished(study: optuna.Study) -> int:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))


def announce(config: Config, study: optuna.Study, trials: int, workers: int):
    """Print the plan (trials, steps, workers, an estimate from a step measured here) and return the
    overall bar over the trials."""
    from harness import plan
    dataset = data.for_config(config, quiet=True)
    steps = loop.total_steps(config, len(dataset.train_images))
    plan.announce(f"plan: study {study.study_name}, {len(study.trials)} trials so far; {trials} more of {steps} steps "
                  f"each (pruned ones stop early), on {workers} worker process(es) sharing this machine's cores",
                  study.study_name, 1, trials, config, dataset, scorers.make(config, dataset, True))
    return tqdm(total=trials, desc="all trials", unit="trial", file=sys.stderr, position=0, dynamic_ncols=True)


COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # what --until counts


def optimize(experiment: Experiment, config: Config, trials: int | None, study: str, storage_url: str | None,
             parent_id: str | None = None, callback=None, until: int | None = None) -> optuna.Study:
    """Run `trials` trials in this process, or (until) trials until the study holds `until` complete or
    pruned ones, counted across every worker and machine."""
    store = Store()
    opened = open_study(experiment.name, study, config, storage_url)
    parent_id = parent_id or parent_run(store, experiment.name, opened.study_name, config, storage_url)
    stop, previous = stop_lib.install()
    try:
        callbacks = [lambda s, t: _mark_mlflow_state(store, s, t)] + ([callback] if callback else [])
        if until is not None:
            if len(opened.get_trials(deepcopy=False, states=COUNTED)) >= until:
                return opened
            callbacks.append(optuna.study.MaxTrialsCallback(until, states=COUNTED))
        opened.optimize(objective_for(experiment, config, store, parent_id, stop),
                        n_trials=None if until is not None else trials,
                        catch=(Exception,), callbacks=callbacks, gc_after_trial=True)
    finally:
        stop_lib.restore(previous)
    return opened


@dataclass(frozen=True)
class Summary:
    """A study as its parent run records it: the study, that run, its trials by state (complete, pruned,
    fail), the best trial (None before one completes) and the Optuna plots logged (artifact paths)."""
    study: optuna.Study
    parent_id: str
    counts: dict
    best: optuna.trial.FrozenTrial | None
    plots: list[str] = field(default_factory=list)


def run_search(experiment: Experiment, config: Config, trials: int, study: str, workers: int,
               storage_url: str | None, worker_argv: list[str], until: int | None = None) -> Summary:
    """N more trials shared among K worker processes (or, until: K workers until the study holds that
    many complete or pruned trials), then the parent run's summary, returned."""
    if not config.search.space:
        raise UserError(f"experiment '{experiment.name}' has an empty search.space; add one to its YAML file.")
    store = Store()  # creates the store once, before any worker touches it
    opened = open_study(experiment.name, study, config, storage_url)
    parent_id = parent_run(store, experiment.name, opened.study_name, config, storage_url)
    if until is not None:
        trials = max(0, until - len(opened.get_trials(deepcopy=False, states=COUNTED)))
    bar = announce(config, opened, trials, workers)
    finished_before = _finished(opened)
    if workers <= 1:
        optimize(experiment, config, trials, study, storage_url, parent_id,
                 callback=lambda s, t: bar.update(1), until=until)
        bar.close()
    else:
        # Each worker gets its share of the cores instead of every worker grabbing all of them.
        env = {**os.environ, **machine.thread_env(machine.threads_each(workers)),
               **({STORAGE_ENV: storage_url} if storage_url else {})}
        shares = [trials // workers + (i < trials % workers) for i in range(workers)]
        procs = []
        for share in shares:
            if share:
                count = ["--until", str(until)] if until is not None else ["--trials", str(share)]
                argv = worker_argv + [*count, "--workers", "1", "--parent-run", parent_id]
                procs.append(subprocess.Popen([sys.executable, "-m", "harness", *argv], env=env))
        stop, previous = stop_lib.install()  # SIGTERM or Ctrl-C here stops the workers too
        try:
            while any(p.poll() is None for p in procs):  # the workers' trials land in the shared storage
                if stop.signal is not None:
                    raise KeyboardInterrupt
                bar.n = min(trials, _finished(opened) - finished_before)
                bar.refresh()
                time.sleep(1)
            bar.n = min(trials, _finished(opened) - finished_before)
            bar.close()
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:  # each worker checkpoints its trial's run, marks it KILLED and fails the trial
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait()
            store.end(parent_id, RunState.KILLED)
            print("search stopped: its workers were stopped with it; the same command resumes the study.",
                  file=sys.stderr)
            raise
        finally:
            stop_lib.restore(previous)
        if any(codes):
            print(f"warning: {sum(1 for c in codes if c)} of {len(procs)} workers exited with an error.", file=sys.stderr)
    return summarize(store, open_study(experiment.name, study, config, storage_url), parent_id)


def summarize(store: Store, study: optuna.Study, parent_id: str) -> Summary:
    """Best value and params, trial counts and Optuna's plots on the study's parent run (ended); returns
    what it recorded."""
    states = [t.state.name.lower() for t in study.trials]
    counts = {s: states.count(s) for s in ("complete", "pruned", "fail")}
    rows = [(f"study/{s}", n, len(study.trials)) for s, n in counts.items()]
    tags = {"optuna.trials": len(study.trials)}
    try:
        best = study.best_trial
    except ValueError:
        best = None
    if best is not None:
        rows.append(("best/value", best.value, best.number))
        tags.update({"best.trial": best.number, **{f"best.{k}": v for k, v in best.params.items()}})
        store.text(parent_id, best_yaml(study), "best.yaml")
    store.metrics(parent_id, rows)
    store.tags(parent_id, tags)
    from optuna.visualization import matplotlib as ovm
    logged = []
    for name, draw in (("optimization_history", ovm.plot_optimization_history),
                       ("param_importances", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = draw(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.tight_layout()
            store.figure(parent_id, fig, f"optuna/{name}.png")
            logged.append(f"optuna/{name}.png")
            plots.close(fig)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # too few complete trials for this plot
            print(f"note: no {name} plot yet ({e}).", file=sys.stderr)
    store.end(parent_id, RunState.FINISHED)
    return Summary(study, parent_id, counts, best, logged)


def best_yaml(study: optuna.Study) -> str:
    """The best params as an experiment file: save it to ./experiments/NAME.yaml and `harness run NAME`."""
    best = study_lib.best(study)
    experiment = study.study_name.split("/", 1)[0]
    delta = cfg.dotted_to_layer(best.params)
    header = (f"# Best of Optuna study {study.study_name}: {study.direction.name.lower()} "
              f"value {best.value:.6g} at trial {best.number} of {len(study.trials)}.\n")
    base = registry_layer(experiment)
    body = yaml.safe_dump(cfg.merge(base, delta), sort_keys=False)
    return header + body


def registry_layer(experiment: str) -> dict:
    """The experiment's own delta, so the best file keeps its variant switches (tanh, smoothing...)."""
    from harness import registry
    layer = dict(registry.load(experiment).layer)
    layer.pop("search", None)
    return layer
