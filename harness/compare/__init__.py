"""The ablation answer: each experiment (and sweep value) over seeds against base, decided on how often
a seed escapes its early collapse and on the quality of the escaped seeds (harness/compare/design.py),
with a Markdown report, figures, and an MLflow run of its own.

Runs are pooled only within one run identity (harness/identity.py). A seed's outcome is its latest run
of the arm's identity that finished or diverged: a divergence counts against the variant, and is
reused, not retrained; runs that stopped on an error are trained again, interrupted ones resumed.
Every run of the compared experiments that the report does not use is listed with the reason.

Its rooms: options.py (what was asked), selection.py (the arms it names, with their data), arms.py (the
arms and their seeds' outcomes in the store), schedule.py (train_missing: plan, train what is missing,
claimed seed by seed, and read back the outcomes), design.py (what decides an arm), analysis.py (each arm
at one look), looks.py (--until-decided), report.py (Markdown, report.json and the terminal table),
figures.py, workers.py (--workers K). Each step returns what it makes; no step fills another's arms.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from harness import claims as claims_lib
from harness import machine, registry, tracking
from harness.config import UserError
from harness.tracking import RunState, Store
from harness.compare import looks, standing, workers
from harness.compare.analysis import analyse
from harness.compare.arms import METRICS, Arm, SeedOutcome, collapse_over_training, epoch_length, with_outcomes
from harness.compare.selection import collect
from harness.compare.design import Design
from harness.compare.figures import figures, links
from harness.compare.options import CompareOptions
from harness.compare.report import (Written, as_data, confirmations_section, decisions_section, markdown,
                                    settings_line, terminal_table)
from harness.compare.schedule import train_missing

__all__ = ["METRICS", "REPORT_EXPERIMENT", "Arm", "CompareOptions", "SeedOutcome", "analyse", "collapse_over_training",
           "Written", "compare", "markdown"]


REPORT_EXPERIMENT = "compare"


def margin_of(base_config, given: float | None) -> tuple[float | None, str]:
    """The escaped-quality margin, fixed before any look: --margin, else base's compare.margin (the
    experiment file's documented default, or --set), else none (no equivalence is claimed)."""
    if given is not None:
        if not given > 0:
            raise UserError(f"--margin must be a positive FID difference (got {given}).")
        return given, "given (--margin)"
    if base_config.compare.margin is not None:
        return base_config.compare.margin, "compare.margin of base's config (experiments/base.yaml says why)"
    return None, "none given: no equivalence is claimed"


def compare(options: CompareOptions) -> Written:
    """Train what is missing (until_decided: in looks, until each arm is decided or has max_seeds seeds),
    then write the report; returns what it wrote (report.md, its figures, its MLflow run) and the terminal
    text. With so_far, the standing page instead (harness/compare/standing.py)."""
    names = options.names or sorted(registry.files())
    if options.until_decided and options.retry_diverged:
        raise UserError("--retry-diverged would train again seeds that earlier looks counted; a sequential "
                        "design keeps every look's outcomes, so the two do not combine.")
    if options.so_far and not tracking.store_exists():  # it reads a store; it must not make one
        raise UserError(f"--so-far reads a comparison's store and there is none at "
                        f"{tracking.shown(tracking.tracking_uri())}: run it in the folder the comparison runs in, "
                        "or set MLFLOW_TRACKING_URI to its store.")
    store = Store()
    arms, datasets = collect(names, options.smoke, options.flags, options.sets, options.backend, options.platform,
                             options.sweeps, options.storage)
    if options.so_far:  # beside the comparison's own report (out/so-far), never over it
        out = options.out / "so-far" if options.out else Path("reports") / time.strftime("so-far-%Y%m%d-%H%M%S")
        return standing.report(arms, datasets, store, out,
                               options.max_seeds if options.until_decided else arms[0].config.train.seeds,
                               options.retry_diverged)
    margin, source = margin_of(arms[0].config, options.margin)
    sequential, design_run = None, None
    if options.until_decided:
        decisions, training, family, arms = looks.until_decided(arms, datasets, store, REPORT_EXPERIMENT, options, margin,
                                                              source)
        results = [replace(decisions[r.label].result, verdict=f"{decisions[r.label].verdict} (sequential, at "
                           f"{decisions[r.label].seeds} seeds a side)") if r.label in decisions else r
                   for r in analyse(arms, margin, source, options.primary)]
        sequential = decisions_section(decisions, family)
        design, design_run = family.design, family.run_id
    else:
        tested = tuple(a.label for a in arms[1:] if not a.same_as and a.group == arms[0].group)
        if options.primary is not None and options.primary not in tested:
            raise UserError(f"--primary {options.primary}: not an arm tested against base here (arms: "
                            f"{', '.join(tested) or 'none'}).")
        training = train_missing(arms, datasets, store, options.retry_diverged, claims_lib.open_claims(options.storage))
        arms = with_outcomes(arms, training.outcomes)
        results = analyse(arms, margin, source, options.primary)
        n = max([len(a.runs) for a in arms] + [1])
        design = Design(tested, n, n, margin=margin, margin_source=source,
                        primary=options.primary if options.primary in tested else None)
    out = options.out or Path("reports") / time.strftime("compare-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    per_epoch = epoch_length(arms, datasets)
    report = markdown(results, arms, settings_line(arms, datasets, training.left_out), training.left_out, design,
                      (sequential or []) + confirmations_section(arms, results), per_epoch)
    (out / "report.json").write_text(json.dumps(
        as_data(results, arms, training, design_run), indent=1) + "\n")
    paths = []
    try:  # the report is written even if a figure fails (a store that cannot send a sample grid)
        paths = figures(arms, store, out, per_epoch)
    finally:
        (out / "report.md").write_text(report + "\n" + "\n\n".join(links(paths)) + "\n")
    text = terminal_table(results) + (f"\n\n{training.trained} runs trained and {training.resumed} resumed by this "
                                      "command; the rest reused or trained by other processes")
    if workers.is_worker():  # one of --workers K: the process that started them writes the report run
        return Written(text, out / "report.md", paths)
    run_id = store.start(REPORT_EXPERIMENT, f"compare-{'-'.join(names)}"[:200],
                         {"kind": "report", "experiments": ",".join(names), **machine.tags()})
    for path in [out / "report.md", out / "report.json", *paths]:
        store.artifact(run_id, path)
    store.params(run_id, {"seeds": arms[0].config.train.seeds, "trained": training.trained,
                          "resumed": training.resumed, "left_out": len(training.left_out), "arms": len(arms),
                          "margin": "none" if margin is None else margin, "primary": options.primary or "none"})
    store.end(run_id, RunState.FINISHED)
    if training.left_out:
        kinds: dict = {}
        for _, _, kind, _ in training.left_out:
            kinds[kind] = kinds.get(kind, 0) + 1
        text += (f"\n\nleft out {len(training.left_out)} runs of these experiments, with reasons in the report: "
                 + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
    return Written(text, out / "report.md", paths, run_id)
