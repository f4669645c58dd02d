"""Seeded simulations of `harness compare --until-decided` (no training): the design's error rates and
the seeds it spends, against a fixed design with the same power. Prints the tables of docs/statistics.md.

python bench/sequential_design.py [--trials N]

Each simulated comparison draws final FIDs for base and K arms, normal with the given spread, up to the
last look's seeds, and runs the looks as harness/compare/looks.py does (harness/sequential.py simulate:
the same intervals and decisions; no seed fails here).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import sequential as sq  # noqa: E402
from harness import statistics as st  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20_000)
    args = p.parse_args()
    t, k, sd = args.trials, 8, 100.0
    margin = sq.default_margin(sd, 3, 8, st.ALPHA, k)  # as if the pilot had found the true spread
    level = st.ALPHA / k
    print(f"K = {k} arms against base, looks at 3..8 seeds a side, Pocock-type spending at {st.ALPHA}/{k}, "
          f"sd {sd:g}, margin {margin:.0f} (the default at that spread), {t:,} simulated comparisons each")

    verdict, _ = sq.simulate([0.0] * k, sd, margin, trials=t)
    wrong = np.isin(verdict, ["better", "worse"]).any(axis=1).mean()
    print(f"no true difference: some arm called better or worse in {wrong:.4f} of comparisons "
          f"(family-wise; alpha {st.ALPHA}; Monte Carlo se {math.sqrt(wrong * (1 - wrong) / t):.4f})")

    verdict, _ = sq.simulate([1.1 * margin] * k, sd, margin, trials=t, seed=1)
    eq = (verdict == "equivalent").mean()
    print(f"true difference 1.1 x margin: an arm called equivalent in {eq:.5f} of arm-comparisons "
          f"(per-arm level {level:.5f}; se {math.sqrt(max(eq, 1e-9) * (1 - eq) / (t * k)):.5f})")

    print("\n| true Δ FID | decided as | mean seeds a side (sequential) | a fixed design needs (seeds a side) |")
    print("|---|---|---|---|")
    for delta, words in ((600.0, "large (like batchnorm-train)"), (150.0, "moderate"), (0.0, "none")):
        verdict, spent = sq.simulate([delta] * k, sd, margin, trials=t // 4, seed=2)
        kinds = {v: (verdict == v).mean() for v in ("better", "worse", "equivalent", "undecided")}
        said = ", ".join(f"{v} {share:.0%}" for v, share in kinds.items() if share >= 0.005)
        if delta:
            spread = np.array([-1.0, 1.0]) * sd / math.sqrt(2)  # two values whose standard deviation is sd
            fixed = st.seeds_needed(delta, spread, spread, level)
            fixed_words = f"{fixed} to detect it with 80% power"
        else:
            fixed_words = f"{sq.fixed_seeds(margin, sd, level)[1]} to show equivalence with 80% power"
        print(f"| {delta:g} ({words}) | {said} | {spent.mean():.2f} | {fixed_words} |")


if __name__ == "__main__":
    main()
