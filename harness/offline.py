"""Runs made offline (bench/recipe_gpu.py on an accelerator without MLflow), recorded as ordinary MLflow
runs: one per member, with its identity (backend, platform, numerics and metrics versions, data
fingerprint) as the machine that trained it reported it, its evaluations, losses, floor and final
metrics, its last sample grid and, where it came back, its generator. `compare` then reads them like any
runs and never pools them with runs of another identity. Importing twice records nothing twice.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from harness import config as cfg
from harness import identity, models, plots, tracking
from harness.config import Config, UserError


def _config(saved: dict) -> Config:
    return cfg.build([cfg.check_layer(saved, "the imported record")])


def import_results(folder: Path, client=None) -> list[str]:
    """Record every member of folder/recipe.jsonl as an MLflow run under one parent per arm; returns the
    new run ids (members already imported are skipped)."""
    path = folder / "recipe.jsonl"
    if not path.exists():
        raise UserError(f"{path} does not exist; give the folder bench/recipe_gpu.py wrote.")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    grids = dict(np.load(folder / "grids.npz")) if (folder / "grids.npz").exists() else {}
    client = client or tracking.client()
    parents: dict = {}
    made = []
    for record in records:
        config = cfg.replace(_config(record["config"]), {"train.seed": record["seed"]})
        ident = record["identity"]
        label = record["experiment"] + "".join(f"-{k.split('.')[-1]}={v}" for k, v in record["point"].items())
        name = f"{label}-s{record['seed']}"
        source = f"{folder.resolve()}:{name}"
        found = tracking.all_runs(client, record["experiment"])
        if any(r.data.tags.get("imported_from") == source and r.data.tags.get("identity") == identity.digest(ident)
               for r in found):
            print(f"{name}: already imported", file=sys.stderr)
            continue
        if label not in parents:
            parents[label] = tracking.start_run(client, record["experiment"], f"{label}-x{record['population']['size']}",
                                                {"experiment": record["experiment"], "kind": "group",
                                                 "imported_from": str(folder.resolve())})
        tags = {"experiment": record["experiment"], "seed": record["seed"], "dataset": "mnist-5k",
                "data.source": "imported", "imported_from": source, **identity.tags(ident), **record["versions"],
                **{f"sweep.{k}": v for k, v in record["point"].items()},
                "population.size": record["population"]["size"], "population.index": record["population"]["index"],
                "population.id": f"{parents[label][:8]}-imported", "population.parent": parents[label]}
        run_id = tracking.start_run(client, record["experiment"], name, tags, parents[label])
        tracking.log_params(client, run_id, {**cfg.flat(config), "data.used": "mnist-5k"})
        client.log_text(run_id, cfg.to_yaml(config), "config.yaml")
        keys = record["loss_keys"][1:]
        rows = [(f"floor/{k}", v, 0) for k, v in record["floor"].items()]
        rows += [(f"train/{k}", v, row[0]) for row in record["losses"] for k, v in zip(keys, row[1:])]
        rows += [(f"eval/{k}", v, step) for step, metrics in record["evals"] for k, v in metrics.items()]
        history = {k: [(row[0], row[1 + i]) for row in record["losses"]] for i, k in enumerate(keys)}
        if record["evals"]:
            _log_figures(client, run_id, name, record, history, grids.get(name))
        if record["diverged"] or not record["evals"]:
            tracking.log_metrics(client, run_id, rows)
            tracking.set_tags(client, run_id, {"state": "diverged", "failure.reason": record["diverged"]})
            client.set_terminated(run_id, "FAILED")
        else:
            step, final = record["evals"][-1]
            rows += [(f"final/{k}", v, step) for k, v in final.items()]
            tracking.log_metrics(client, run_id, rows)
            _log_generator(client, run_id, config, folder, record.get("generator"))
            tracking.set_tags(client, run_id, {"state": "finished"})
            client.set_terminated(run_id, "FINISHED")
        made.append(run_id)
        print(f"{name}: run {run_id} ({ident['backend']} on {ident['platform']}, numerics v{ident['numerics']})",
              file=sys.stderr)
    for label, parent in parents.items():
        client.set_terminated(parent, "FINISHED")
    return made


def _log_figures(client, run_id: str, name: str, record: dict, history: dict, grid) -> None:
    step = record["evals"][-1][0]
    figures = [(plots.loss_curves(history, name), "plots/losses.png"),
               (plots.metric_curves(record["evals"], record["floor"], name), "plots/metrics.png")]
    if grid is not None:
        figures.append((plots.sample_grid(grid[..., None].astype(np.float32) / 255.0, f"{name} step {step}"),
                        f"samples/step_{step:07d}.png"))
    for fig, artifact in figures:
        client.log_figure(run_id, fig, artifact)
        plots.close(fig)


def _log_generator(client, run_id: str, config: Config, folder: Path, where: str | None) -> None:
    """The member's generator as a stock Keras file, if its weights came back from the device."""
    if not where:
        tracking.set_tags(client, run_id, {"generator": "stayed on the device (over the transfer limit)"})
        return
    file, key = where.split(":", 1)
    with np.load(folder / file) as f:
        weights = [f[k] for k in sorted(k for k in f.files if k.startswith(key + "/"))]
    generator = models.build_generator(config.model, config.train.precision, fast_kernels=False)
    generator.set_weights(weights)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generator.keras"
        generator.save(path)
        client.log_artifact(run_id, str(path), "model")
