"""The recipe-scale answer on an accelerator: every registered arm at full width for 100 epochs of the
mnist-5k training digits (1,500 steps), 5 seeds per arm as one population, in priority order (base,
smoothing, batchnorm, batchnorm-train, tanh, then the latent sizes), each evaluated at 50 and 100 epochs
with the harness's metric family and the same cached classifier.

The accelerator image has JAX but no TensorFlow, MLflow or Optuna: this drives the harness's own
population step and Scorer and writes plain files into OUT, each arm's as soon as the arm ends, so a
timeout loses only the arm in flight:
  OUT/recipe.jsonl           one line per member: arm, seed, identity, evaluations, losses, divergence
  OUT/grids.npz              each member's last 25-sample grid (uint8), for the sample figures
  OUT/generators-K.npz       members' generator weights, packed in files of at most 16 MiB (so that
                             a copy back from the GPU machine can take them file by file)
  OUT/population_bench.txt   first of all: ms per member-step of a population of 5 against one seed
`harness import-results OUT` records them as MLflow runs (backend jax, platform gpu), and `harness
compare --seeds 5 --backend jax --platform gpu` reports them like any runs, never pooled with CPU runs.

Usage:
  python bench/recipe_gpu.py --export-data DIR       (here: the mnist-5k arrays and cached classifier)
  KERAS_BACKEND=jax HARNESS_CACHE=DIR/cache python bench/recipe_gpu.py OUT --data DIR/mnist-5k.npz
      [--budget-s 420] [--quick]                      (--quick: tiny widths and 40 steps, a CPU check)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
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
FILE_LIMIT = 15 * 2 ** 20  # bytes a generators file may hold (the tool brings back 16 MiB a file)
GENERATOR_FILES = 4  # at most, leaving room for recipe.jsonl, grids.npz and population_bench.txt (8 files)


def config_for(experiment: str, point: dict, quick: bool):
    """The arm's config: the registered experiment, 5 seeds, the recipe's 100 epochs and full width (quick:
    --smoke's tiny model and batch, 40 steps), evaluated at half and full length."""
    flags = {"train.seeds": SEEDS, "data.name": "mnist-5k", "eval.every_epochs": 50}
    if quick:
        flags.update({"train.steps": 40, "train.seeds": 2, "eval.min_evals": 2})
    _, config = registry.resolve(experiment, smoke=quick, flags=flags)
    return cfg.replace(config, point) if point else config


def export_data(folder: Path) -> None:
    """Here, before the device call: the mnist-5k split and its cached classifier and reference."""
    from harness import data
    from metrics.scorer import Scorer
    dataset = data.load_mnist_5k()
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "mnist-5k.npz", train_images=dataset.train_images, train_labels=dataset.train_labels,
             test_images=dataset.test_images, test_labels=dataset.test_labels)
    from metrics import classifier
    scorer = Scorer(dataset, quiet=True)  # trains or loads the classifier, computes the reference: cached
    shutil.copytree(classifier.cache_dir(), folder / "cache", dirs_exist_ok=True)
    print(f"{folder}: data {dataset.fingerprint}, classifier accuracy {scorer.classifier_info['accuracy']:.4f}")


def load_data(path: Path) -> Dataset:
    with np.load(path) as f:
        return Dataset("mnist-5k", f"exported ({path.name})", f["train_images"], f["train_labels"],
                       f["test_images"], f["test_labels"])


def train_arm(config, dataset, scorer, seeds: list[int]) -> list[dict]:
    """The population loop's work without MLflow: steps in chunks, a member frozen once its loss is not
    finite, the metric family at every evaluation step. One record per member."""
    _, _, population = loop.build_population(config, dataset, seeds)
    n_train = len(dataset.train_images)
    total = loop.total_steps(config, n_train)
    evals = loop.eval_steps(total, max(1, n_train // config.train.batch_size), config.eval.every_epochs,
                            config.eval.min_evals)
    chunk = 50
    records = [{"seed": s, "evals": [], "losses": [], "diverged": ""} for s in seeds]
    latents = [np.random.default_rng(s) for s in seeds]
    latents = [(r.standard_normal((25, config.model.latent_dim)).astype(np.float32),
                r.standard_normal((scorer.n_images, config.model.latent_dim)).astype(np.float32)) for r in latents]
    step, started = 0, time.perf_counter()
    while step < total:
        n = min(chunk, next(e for e in evals if e > step) - step)
        outs = {k: np.asarray(v, dtype=np.float64) for k, v in population.many(step, n).items()}  # (K, n)
        for i, record in enumerate(records):
            if record["diverged"]:
                continue
            bad = [(j, k) for j in range(n) for k in outs if not np.isfinite(outs[k][i, j])]
            if bad:
                j, k = bad[0]
                record["diverged"] = f"{k} became {outs[k][i, j]} at step {step + j + 1}"
            record["losses"].append([step + n] + [float(outs[k][i, -1]) for k in sorted(outs)])
        step += n
        if step in evals:
            for i, record in enumerate(records):
                if record["diverged"]:
                    continue
                z = latents[i][1]
                images = loop.generated(population, z, config.model.output_activation, member=i)
                record["evals"].append([step, scorer.score(images)])
            print(f"  step {step}/{total}: " + "  ".join(
                f"s{r['seed']} " + (f"fid {r['evals'][-1][1]['fid']:.1f}" if not r["diverged"] else "diverged")
                for r in records), flush=True)
    seconds = time.perf_counter() - started
    for i, record in enumerate(records):
        record["seconds"] = seconds
        record["loss_keys"] = ["step"] + sorted(outs)
        grid = population.generate(latents[i][0], i)
        record["grid"] = (loop.to_unit_range(grid, config.model.output_activation)[..., 0] * 255).round().astype(np.uint8)
        if not record["diverged"]:
            population.sync_models(member=i)
            record["weights"] = [np.asarray(w) for w in population.generator.get_weights()]
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--data", type=Path, help="the .npz that --export-data wrote")
    p.add_argument("--export-data", action="store_true", help="write OUT/mnist-5k.npz and OUT/cache, then stop")
    p.add_argument("--budget-s", type=float, default=420, help="start no arm unless the last one's time fits")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--arms", type=int, default=len(ARMS), help="at most this many arms, in priority order")
    args = p.parse_args()
    if args.export_data:
        export_data(args.out)
        return
    import jax
    import keras
    from metrics.scorer import Scorer
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = load_data(args.data)
    scorer = Scorer(dataset, quiet=True)
    device = machine.platform()
    versions = {"version.keras": keras.__version__, "version.jax": jax.__version__,
                "version.numpy": np.__version__, "hardware.gpu": str(jax.devices()[0].device_kind)}
    print(f"{versions['hardware.gpu']} ({device}); data {dataset.fingerprint}; classifier accuracy "
          f"{scorer.classifier_info['accuracy']:.4f}", flush=True)
    # First the measurement the plan rests on: a population of 5 against one seed, full width (the goal:
    # 5 members in at most 2x one member's step).
    from harness import bench
    lines: list = []
    bench.bench_population(config_for("base", {}, args.quick), SEEDS, 3 if args.quick else 20,
                           out=lambda s: (print(s, flush=True), lines.append(s)), dataset=dataset)
    with open(args.out / "population_bench.txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    started, grids, packed, sizes, last = time.perf_counter(), {}, [{}], [0], 0.0
    for index, (experiment, point) in enumerate(ARMS[:args.arms]):
        left = args.budget_s - (time.perf_counter() - started)
        if index and last > left:
            print(f"stopping before {experiment}{point or ''}: the last arm took {last:.0f} s, {left:.0f} s are left")
            break
        config = config_for(experiment, point, args.quick)
        arm_started = time.perf_counter()
        print(f"{experiment}{point or ''}: {config.train.seeds} seeds as one population", flush=True)
        records = train_arm(config, dataset, scorer, [config.train.seed + i for i in range(config.train.seeds)])
        last = time.perf_counter() - arm_started
        ident = identity.of(config, dataset.fingerprint, backend=keras.backend.backend(), device=device,
                            classifier=scorer.classifier_info["weights"])
        label = experiment + "".join(f"-{k.split('.')[-1]}={v}" for k, v in point.items())
        with open(args.out / "recipe.jsonl", "a") as f:
            for i, record in enumerate(records):
                key = f"{label}-s{record['seed']}"
                grids[key] = record.pop("grid")
                weights = record.pop("weights", None)
                if weights is not None:  # pack while the tool can bring the file back
                    size = sum(w.nbytes for w in weights)
                    if sizes[-1] + size > FILE_LIMIT:
                        packed.append({})
                        sizes.append(0)
                    if len(packed) <= GENERATOR_FILES:
                        packed[-1].update({f"{key}/{j:02d}": w for j, w in enumerate(weights)})
                        sizes[-1] += size
                        record["generator"] = f"generators-{len(packed) - 1}.npz:{key}"
                f.write(json.dumps({"experiment": experiment, "point": point, "config": cfg.to_dict(config),
                                    "identity": ident, "floor": scorer.floor, "versions": versions,
                                    "population": {"size": len(records), "index": i}, **record}) + "\n")
        np.savez_compressed(args.out / "grids.npz", **grids)
        for k, weights in enumerate(packed):
            if weights:
                np.savez(args.out / f"generators-{k}.npz", **weights)
        print(f"{label}: {last:.0f} s; written", flush=True)


if __name__ == "__main__":
    sys.exit(main())
