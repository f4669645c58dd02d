"""Optuna's best, confirmed: `harness compare study:EXPERIMENT/NAME` makes a study's best trial an arm.

A study's best trial is one seed's score chosen as the best of many, so its FID is biased low (the
winner's curse). The confirmed arm retrains the best parameters, at the settings the study trained with,
on seeds no trial used, as ordinary runs; it joins the family of arms tested against base, and the
report shows the trial's FID beside the confirmed mean.
"""
from __future__ import annotations

import optuna

from harness import config as cfg
from harness import identity, registry, tracking
from harness import study as study_lib
from harness.config import UserError
from harness.tracking import Store

PREFIX = "study:"


def is_study(name: str) -> bool:
    return name.startswith(PREFIX)


def best_trial(name: str, storage_url: str | None) -> tuple[str, dict]:
    """(experiment, {study, trial, value, params, run_id}) of a study named study:EXPERIMENT/NAME."""
    experiment, _, study = name[len(PREFIX):].partition("/")
    if not experiment or not study:
        raise UserError(f"{name!r}: a study's best is named study:EXPERIMENT/NAME, as `harness search` prints it.")
    registry.load(experiment)  # an unknown experiment: its one-sentence error
    try:
        loaded = optuna.load_study(study_name=f"{experiment}/{study}", storage=study_lib.storage_for(storage_url))
    except KeyError:
        raise UserError(f"no study '{experiment}/{study}' in {tracking.shown(storage_url or str(study_lib.DEFAULT_JOURNAL))}"
                        "; `harness search` names its studies EXPERIMENT/NAME.") from None
    best = study_lib.best(loaded)
    run_id = best.user_attrs.get("mlflow_run_id")
    if not run_id:
        raise UserError(f"the best trial of '{experiment}/{study}' has no MLflow run to read its settings from.")
    return experiment, {"study": f"{experiment}/{study}", "trial": best.number, "value": best.value,
                        "params": dict(best.params), "run_id": run_id}


def confirmed_config(store: Store, experiment: str, best: dict, smoke: bool, flags: dict, sets: list[str]):
    """The experiment at this comparison's settings with the best params, starting at the first seed no
    trial of the study used; a setting in which the study's trials differ from this comparison is an error
    that names the flags to give."""
    _, config = registry.resolve(experiment, smoke, flags, sets)
    config = cfg.replace(config, best["params"])
    trial = store.get(best["run_id"]).data.params  # the trial's whole config, as strings
    skip = set(identity.NOT_IDENTITY) | set(best["params"])
    differ = {k: trial[k] for k, v in cfg.flat(config).items()
              if k in trial and k not in skip and not k.startswith("search.") and trial[k] != str(v)}
    if differ:
        raise UserError(f"study {best['study']} trained with " + ", ".join(f"{k}={v}" for k, v in sorted(differ.items()))
                        + "; compare at its settings (" + " ".join(f"--set {k}={v}" for k, v in sorted(differ.items()))
                        + ") so that its best is confirmed as it was found.")
    used = {int(r.data.tags["seed"]) for r in store.runs(experiment)
            if r.data.tags.get("optuna.study") == best["study"] and "seed" in r.data.tags}
    return cfg.replace(config, {"train.seed": max(used | {config.train.seed - 1}) + 1})
