"""Runs made on a machine without MLflow (bench/recipe_gpu.py on a GPU machine with JAX), recorded as
ordinary MLflow runs: one per member folder that the training loop wrote through a JSONL sink
(harness/sink.py). Each becomes a run with its identity (backend, platform, numerics and metrics
versions, data fingerprint) as the machine that trained it reported it; what the loop wrote (losses,
evaluations, collapse tags, sample grids, plots, the generator) is replayed into it, and each member
ends as `harness run` ends its members (run.end_run); each arm's parent run ends FINISHED once its
members are recorded. `compare` then reads them like any runs and never pools them with runs of another
identity. Importing twice records nothing twice.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from harness import config as cfg
from harness import identity, sink
from harness import runner
from harness.config import Config, UserError
from harness.tracking import RunState, Store


def _config(saved: dict) -> Config:
    return cfg.build([cfg.check_layer(saved, "the imported record")])


def import_results(folder: Path, store: Store | None = None) -> list[str]:
    """Record every member under folder/runs as an MLflow run, under one parent per arm; returns the new
    run ids (members already imported are skipped, arms cut off before their end are named and left)."""
    members = sorted((folder / "runs").glob("*/run.json")) if (folder / "runs").is_dir() else []
    cut = sorted(d.name for d in (folder / "runs").glob("*") if d.is_dir() and not (d / "run.json").exists()) \
        if (folder / "runs").is_dir() else []
    if not members and not cut:
        raise UserError(f"{folder} holds no runs (runs/NAME/run.json); give the folder bench/recipe_gpu.py wrote.")
    for name in cut:
        print(f"{name}: its arm was cut off before it ended (no run.json); not imported", file=sys.stderr)
    store = store or Store()
    parents: dict = {}
    imported: dict = {}  # experiment -> {(imported_from, identity)} of the runs already in the store
    made = []
    for path in members:
        record = json.loads(path.read_text())
        config = _config(record["config"])
        ident, name = record["identity"], path.parent.name
        label = name.rsplit("-s", 1)[0]
        source = f"{folder.resolve()}:{name}"
        if record["experiment"] not in imported:  # each experiment's runs read once, not once per member
            imported[record["experiment"]] = {(r.data.tags.get("imported_from"), r.data.tags.get("identity"))
                                              for r in store.runs(record["experiment"])}
        if (source, identity.digest(ident)) in imported[record["experiment"]]:
            print(f"{name}: already imported", file=sys.stderr)
            continue
        size = record["population"]["size"]
        if label not in parents:
            parents[label] = runner.open_group(store, record["experiment"], label, size,
                                                {"imported_from": str(folder.resolve())}, here=False)
        # run.json's "point" is the arm's sweep value (its key kept, so folders written before read the same)
        tags = {"experiment": record["experiment"], "seed": record["seed"], "dataset": record["dataset"],
                "data.source": "imported", "imported_from": source, **identity.tags(ident), **record["versions"],
                **{f"sweep.{k}": v for k, v in record["point"].items()}, "state": "running",
                "population.size": size, "population.index": record["population"]["index"],
                "population.id": f"{parents[label][:8]}-imported", "population.parent": parents[label]}
        run_id = runner.open_run(store, record["experiment"], name, tags, parents[label], config,
                                  record["dataset"], record["floor"])
        sink.replay(path.parent, store.sink(run_id))
        runner.end_run(store, run_id, record["diverged"], record["evals"])
        made.append(run_id)
        print(f"{name}: run {run_id} ({ident['backend']} on {ident['platform']}, numerics v{ident['numerics']})",
              file=sys.stderr)
    for parent in parents.values():
        store.end(parent, RunState.FINISHED)
    return made
