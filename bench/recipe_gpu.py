"""The recipe-scale answer on a GPU machine with JAX: every registered arm at full width for the recipe's
100 epochs, 5 seeds per arm as one population, in priority order (base, smoothing, batchnorm,
batchnorm-train, tanh, then the latent sizes), evaluated at half and full length.

Such a machine may have JAX but neither TensorFlow nor MLflow: each arm trains in the harness's own loop
(loop.train, the loop `harness run` uses), writing each member's run to a folder instead of an MLflow
run (harness/sink.py). Each arm's runs are complete as soon as the arm ends:
  OUT/population_bench.txt   first of all: ms per member-step of a population of 5 against one seed
  OUT/runs/NAME/             one folder per member: run.json (arm, seed, config, identity, floor, outcome),
                             events.jsonl (losses, evaluations, tags) and artifacts/ (sample grids,
                             plots, the generator)
`harness import-results OUT` records them as MLflow runs (backend jax, platform gpu), and `harness
compare --seeds 5 --backend jax --platform gpu` reports them like any runs, never pooled with CPU runs.

Usage:
  python bench/recipe_gpu.py DIR --export-data [--dataset mnist]   (here: the digits and the cached classifier)
  KERAS_BACKEND=jax HARNESS_CACHE=DIR/cache python bench/recipe_gpu.py OUT --data DIR/mnist.npz
      [--epochs 100] [--budget-s S] [--arms N] [--quick]   (--quick: tiny widths and 40 steps, a CPU check)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import harness  # noqa: E402,F401
from harness import config as cfg  # noqa: E402
from harness import identity, loop, machine, registry  # noqa: E402
from harness.data import Dataset  # noqa: E402

ARMS = [("base", {}), ("smoothing", {}), ("batchnorm", {}), ("batchnorm-train", {}), ("tanh", {}),
        *[("latent", {"model.latent_dim": n}) for n in (32, 64, 128, 256)]]
SEEDS = 5


def config_for(experiment: str, sweep_value: dict, dataset: str, epochs: int, quick: bool):
    """The arm's config: the registered experiment, 5 seeds, full width, `epochs` of the digits (quick:
    --smoke's tiny model and batch, 40 steps, 2 seeds), evaluated at half and full length."""
    flags = {"train.seeds": SEEDS, "data.name": dataset, "train.epochs": epochs,
             "eval.every_epochs": max(1, epochs // 2)}
    if quick:
        flags.update({"train.steps": 40, "train.seeds": 2, "eval.min_evals": 2})
    _, config = registry.resolve(experiment, smoke=quick, flags=flags)
    return cfg.replace(config, sweep_value) if sweep_value else config


def export_data(folder: Path, name: str = "mnist") -> Path:
    """Here, before the GPU machine: the dataset's arrays and its cached classifier and reference."""
    from harness import data
    from metrics import classifier
    from metrics.scorer import Scorer
    dataset = data.load(name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    np.savez_compressed(path, name=name, train_images=dataset.train_images, train_labels=dataset.train_labels,
             test_images=dataset.test_images, test_labels=dataset.test_labels)
    scorer = Scorer(dataset, quiet=True)  # trains or loads the classifier, computes the reference: cached
    shutil.copytree(classifier.cache_dir(), folder / "cache", dirs_exist_ok=True)
    print(f"{path}: data {dataset.fingerprint}, classifier accuracy {scorer.classifier_info['accuracy']:.4f}")
    return path


def load_data(path: Path) -> Dataset:
    with np.load(path) as f:
        name = str(f["name"]) if "name" in f.files else "mnist-5k"  # exports before the name was saved
        return Dataset(name, f"exported ({path.name})", f["train_images"], f["train_labels"],
                       f["test_images"], f["test_labels"])


def run_arm(experiment: str, sweep_value: dict, config, dataset: Dataset, scorer, out: Path, record: dict) -> None:
    """One arm's seeds as one population in loop.train, each member written to OUT/runs/NAME (a JsonlSink);
    its run.json is written last, so a folder without one is an arm cut off mid-way."""
    import keras
    from harness.sink import JsonlSink
    seeds = [config.train.seed + i for i in range(config.train.seeds)]
    ident = identity.of(config, dataset.fingerprint, backend=keras.backend.backend(), device=machine.platform(),
                        classifier=scorer.classifier_info["weights"])
    names = [registry.run_name(experiment, seed, sweep_value) for seed in seeds]
    for name in names:
        shutil.rmtree(out / "runs" / name, ignore_errors=True)  # an arm cut off before: trained again whole
    members = [loop.Member(seed, loop.RunContext(JsonlSink(out / "runs" / name), name, name, identity=ident))
               for seed, name in zip(seeds, names)]
    with tempfile.TemporaryDirectory() as checkpoints:  # the arm is trained whole: its checkpoints stay here
        trained = loop.train(config, dataset, members, scorer, Path(checkpoints), population=len(members) > 1)
    for i, (m, name) in enumerate(zip(trained, names)):
        config_i = cfg.replace(config, {"train.seed": m.seed})
        (out / "runs" / name / "run.json").write_text(json.dumps({
            "experiment": experiment, "point": sweep_value, "seed": m.seed, "config": cfg.to_dict(config_i),
            "dataset": dataset.name, "identity": ident, "floor": scorer.floor,
            "population": {"size": len(members), "index": i}, "diverged": m.diverged, "evals": m.evals,
            **record}, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, help="the .npz that --export-data wrote")
    p.add_argument("--export-data", action="store_true", help="write OUT/DATASET.npz and OUT/cache, then stop")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "mnist-5k"], help="for --export-data")
    p.add_argument("--epochs", type=int, default=100, help="epochs per run (the recipe: 100)")
    p.add_argument("--budget-s", type=float, default=None, help="start no arm unless the last one's time fits")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--arms", type=int, default=len(ARMS), help="at most this many arms, in priority order")
    args = p.parse_args()
    if args.export_data:
        export_data(args.out, args.dataset)
        return
    import jax
    import keras
    from harness import bench
    from metrics.scorer import Scorer
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = load_data(args.data)
    scorer = Scorer(dataset, quiet=True)
    versions = {"version.keras": keras.__version__, "version.jax": jax.__version__,
                "version.numpy": np.__version__, "hardware.gpu": str(jax.devices()[0].device_kind)}
    print(f"{versions['hardware.gpu']} ({machine.platform()}); data {dataset.name} {dataset.fingerprint}; "
          f"classifier accuracy {scorer.classifier_info['accuracy']:.4f}", flush=True)
    # First the measurement the plan rests on: a population of 5 against one seed, full width (the goal:
    # 5 members in at most 2x one member's step).
    lines: list = []
    bench.bench_population(config_for("base", {}, dataset.name, args.epochs, args.quick), SEEDS,
                           3 if args.quick else 20, out=lambda s: (print(s, flush=True), lines.append(s)),
                           dataset=dataset)
    (args.out / "population_bench.txt").write_text("\n".join(lines) + "\n")
    started, last = time.perf_counter(), 0.0
    for index, (experiment, sweep_value) in enumerate(ARMS[:args.arms]):
        left = (args.budget_s or float("inf")) - (time.perf_counter() - started)
        if index and last > left:
            print(f"stopping before {experiment}{sweep_value or ''}: the last arm took {last:.0f} s, {left:.0f} s are left")
            break
        config = config_for(experiment, sweep_value, dataset.name, args.epochs, args.quick)
        arm_started = time.perf_counter()
        print(f"{experiment}{sweep_value or ''}: {config.train.seeds} seeds as one population", flush=True)
        run_arm(experiment, sweep_value, config, dataset, scorer, args.out, {"versions": versions})
        last = time.perf_counter() - arm_started
        print(f"{experiment}{sweep_value or ''}: {last:.0f} s; written", flush=True)


if __name__ == "__main__":
    sys.exit(main())
