"""The ablation answer: each experiment (and sweep value) over seeds against base, with t intervals,
Welch's t-test on FID, Holm's correction, power, failure rates, a Markdown report, figures, and an
MLflow run of its own (harness/statistics.py holds the statistics).

Runs are pooled only within one run identity (harness/identity.py). A seed's outcome is its latest run
of the arm's identity that finished or diverged: a divergence counts against the variant, and is
reused, not retrained; runs that stopped on an error are trained again, interrupted ones resumed.
Every run of the compared experiments that the report does not use is listed with the reason.

Its rooms: arms.py (the arms and their seeds' outcomes in the store), schedule.py (training what is
missing), analysis.py (the statistics), report.py (Markdown and the terminal table), figures.py.
"""
from __future__ import annotations

import time
from pathlib import Path

from harness import machine, registry
from harness.config import UserError
from harness.tracking import RunState, Store
from harness.compare import looks
from harness.compare.analysis import analyse
from harness.compare.arms import METRICS, Arm, collapse_over_training, collect
from harness.compare.figures import figures
from harness.compare.report import (confirmations_section, decisions_section, markdown, settings_line,
                                    terminal_table)
from harness.compare.schedule import fill

__all__ = ["METRICS", "REPORT_EXPERIMENT", "Arm", "analyse", "collapse_over_training", "compare", "markdown"]


REPORT_EXPERIMENT = "compare"


def compare(names: list[str], smoke: bool, flags: dict, sets: list[str], out: Path | None,
            retry_diverged: bool = False, backend: str | None = None, platform: str | None = None,
            sweeps: dict | None = None, until_decided: bool = False, max_seeds: int = 8,
            margin: float | None = None, spending: str = "pocock", gamma: float = 1.0,
            storage: str | None = None, budget: int | None = None) -> tuple[str, Path]:
    """Train what is missing (until_decided: in looks, until each arm is decided or has max_seeds seeds),
    then write the report; returns (terminal text, report folder)."""
    if not names:
        names = sorted(registry.files())
    if until_decided and retry_diverged:
        raise UserError("--retry-diverged would train again seeds that earlier looks counted; a sequential "
                        "design keeps every look's outcomes, so the two do not combine.")
    store = Store()
    arms, datasets = collect(names, smoke, flags, sets, backend, platform, sweeps, storage)
    sequential = None
    if until_decided:
        decisions, done, fam = looks.until_decided(arms, datasets, store, REPORT_EXPERIMENT,
                                                   arms[0].config.train.seeds, max_seeds, margin, spending, gamma,
                                                   budget)
        rows = analyse(arms)
        for row in rows:
            if row["arm"] in decisions:
                d = decisions[row["arm"]]
                row["verdict"] = f"{d.verdict} (sequential, at {d.seeds} seeds a side)"
        sequential = decisions_section(decisions, fam, arms[0].values("fid"))
    else:
        done = fill(arms, datasets, store, retry_diverged)
        rows = analyse(arms)
    out = out or Path("reports") / time.strftime("compare-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    report = markdown(rows, arms, settings_line(arms, datasets, done), done["left_out"],
                      (sequential or []) + confirmations_section(arms, rows))
    (out / "report.md").write_text(report + "\n![FID over training](fid_over_training.png)\n\n"
                                   "![final FID](final_fid.png)\n\n![samples](samples.png)\n")
    paths = figures(arms, store, out)
    run_id = store.start(REPORT_EXPERIMENT, f"compare-{'-'.join(names)}"[:200],
                                {"kind": "report", "experiments": ",".join(names), **machine.tags()})
    for path in [out / "report.md", *paths]:
        store.artifact(run_id, path)
    store.params(run_id, {"seeds": arms[0].config.train.seeds, "trained": done["trained"],
                                         "resumed": done["resumed"], "left_out": len(done["left_out"]),
                                         "arms": len(arms)})
    store.end(run_id, RunState.FINISHED)
    text = terminal_table(rows)
    if done["left_out"]:
        kinds: dict = {}
        for _, _, kind, _ in done["left_out"]:
            kinds[kind] = kinds.get(kind, 0) + 1
        text += (f"\n\nleft out {len(done['left_out'])} runs of these experiments, with reasons in the report: "
                 + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
    return text, out
