"""The published 5-epoch answer restated under the escape / escaped-quality design, from its runs' recorded
outcomes (no training): docs/results/report.md lists every seed's final FID and collapse verdict, and
this script replays the looks of that comparison (3 to 5 seeds a side, K = 6 arms; arms that the run
budget held at 4 seeds stop there) with harness/compare/design.py's own judge. docs/results.md quotes
its output.

python bench/results_5_epochs.py [docs/results/report.md] [--figure docs/results/outcomes.png]

With --figure it also draws every seed's final FID and the arms' performance profiles, as compare's
report does (harness/compare/figures.py outcomes).

FIDs in that report are rounded to 3 significant figures; the escape counts are exact.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.compare.arms import Arm, SeedOutcome  # noqa: E402
from harness.compare.design import Design, judge, spread_floor  # noqa: E402
from harness.compare.figures import outcomes  # noqa: E402

ORDER = ["base", "smoothing", "tanh", "batchnorm", "batchnorm-train", "latent[latent_dim=32]", "latent[latent_dim=256]"]


def read(path: Path) -> dict:
    """arm label -> [SeedOutcome] in seed order, from the report's 'Every run' table."""
    table = path.read_text().split("## Every run")[1].split("\n## ")[0]
    arms: dict = {}
    for m in re.finditer(r"^\| ([^|]+) \| (\d+) \| ([0-9a-f]{32}) \| (finished|diverged) \| ([^|]+) \| ([^|]+) \|$",
                         table, re.M):
        label, seed, run_id, outcome, fid, end = (g.strip() for g in m.groups())
        escaped = end == "not collapsed"
        metrics = {} if fid == "-" else {"fid": float(fid), "modes": 9.0 if escaped else 1.0,
                                         "recall": 0.3 if escaped else 0.0}
        arms.setdefault(label, []).append(SeedOutcome(run_id, int(seed), outcome, metrics,
                                                      collapse="" if escaped else end))
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", type=Path,
                        default=Path(__file__).resolve().parent.parent / "docs/results/report.md")
    parser.add_argument("--figure", type=Path, help="also draw the outcomes figure here")
    args = parser.parse_args()
    seeds = read(args.report)
    arms = {label: Arm(label, {}, None, "mnist", {}, title=label) for label in ORDER}
    design = Design(tuple(ORDER[1:]), 3, 5, margin=None)
    rule = design.escape_rule()
    print(f"design: K = {design.k}, looks 3..5; escape: Fisher at nominal {rule.gamma:.4g}, worst-case type I "
          f"{rule.worst:.4g} at p = {rule.p_worst:.2f} (target {design.escape_level:.4g}); power for 0.6 -> 1.0: "
          f"{rule.power(0.6, 1.0):.3f}; escaped quality at {design.quality_level:.4g} an arm, no margin; "
          f"rank summary at nominal {design.rank_rule().gamma:.4g}")
    base = arms["base"]
    decided: dict = {}
    for look in design.looks:
        base.runs = seeds["base"][:look]
        active = [label for label in ORDER[1:] if label not in decided and len(seeds[label]) >= look]
        for label in active:
            arms[label].runs = seeds[label][:look]
        floor = spread_floor(arms.values())  # decided arms at their last look, as compare's looks do
        for label in active:
            result = judge(arms[label], base, design, look, floor)
            if result.decided or look == design.most or len(seeds[label]) == look:
                decided[label] = result
    print("\n| arm | seeds | escaped [exact 95%] | base escaped | Δ rate [Newcombe 95%] | P(escapes more) | Fisher p "
          "| escaped FID (n) | Δ escaped FID [design's CI] | P(FID lower) (exact p) | rank summary | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label in ORDER[1:]:
        r = decided[label]
        e, q = r.escape, r.quality
        d = "under 2 escaped a side" if math.isnan(q.diff[1]) else f"{q.diff[0]:+.0f} [{q.diff[1]:+.0f}, {q.diff[2]:+.0f}]"
        fid = "none" if math.isnan(q.fid[0]) else f"{q.fid[0]:.0f} (n={q.n})"
        print(f"| {label} | {r.seeds} | {e.k} of {r.seeds} [{e.interval[0]:.2f}, {e.interval[1]:.2f}] | "
              f"{e.k_ref} of {e.n_ref} | {e.diff[0]:+.2f} [{e.diff[1]:+.2f}, {e.diff[2]:+.2f}] | {e.prob_more:.2f} | "
              f"{e.p:.2g} | {fid} | {d} | {r.rank.improvement:.2f} ({r.rank.p:.2g}) | {r.rank.decision or 'not significant'} | {r.verdict}"
              + (f"; {r.note}" if r.note else "") + " |")
    if args.figure:
        import matplotlib.pyplot as plt
        for label, arm in arms.items():
            arm.runs = seeds[label]
        palette = [c for i, c in enumerate(plt.cm.tab10.colors) if i != 7]
        print(f"\nwrote {outcomes(list(arms.values()), args.figure, palette)}")


if __name__ == "__main__":
    main()
