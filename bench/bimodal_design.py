"""Error rates of compare's decisions on bimodal seeds, the earlier design beside the current one (seeded
simulation, no training). Prints the table of docs/statistics.md.

python bench/bimodal_design.py [--trials N]

Seeds: a seed escapes with probability p (the same in every arm unless said), escaped FID ~ N(205, 20),
collapsed ~ N(580, 70): the shapes of the published 5-epoch answer. K = 6 arms against base.
- earlier design (decision version 1): repeated confidence intervals for the mean FID of every finished
  seed at 0.05/K, the margin from base's first-look standard deviation (its default), and the
  failed-seeds rule (an arm with more collapsed seeds than base is called neither better nor
  equivalent); reimplemented here as it was, since compare no longer decides this way;
- current design: harness/compare/simulation.py (escape by exact Fisher, escaped quality by repeated
  intervals at a margin of 25 FID fixed in advance, each side's variance floored at the pooled one).
Then the escaped-quality rule with and without that floor when escaped seeds fall in two clusters.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import sequential as sq  # noqa: E402
from harness.compare.design import Design  # noqa: E402
from harness.compare.simulation import draw, simulate  # noqa: E402

K, ALPHA, MARGIN = 6, 0.05, 25.0


def earlier(p_base: float, p_arms: list, first: int, most: int, trials: int, seed: int) -> np.ndarray:
    """The version-1 design's verdicts (trials, K): better / worse / equivalent / undecided."""
    rng = np.random.default_rng(seed)
    level, looks = ALPHA / K, list(range(first, most + 1))
    be, bf = draw(rng, p_base, trials, most)
    arms = [draw(rng, p, trials, most) for p in p_arms]
    pilot = bf[:, :first].std(axis=1, ddof=1)  # the default margin, from base's first look
    c_last = sq.critical(looks, most, level)
    t_last = stats.t.isf(stats.norm.sf(c_last), 2 * most - 2)
    margin = (t_last + stats.norm.isf(0.1)) * pilot * math.sqrt(2 / most)
    verdict = np.full((trials, K), "undecided", dtype=object)
    for n in looks:
        c = sq.critical(looks, n, level)
        b = bf[:, :n]
        for i, (ae, af) in enumerate(arms):
            a = af[:, :n]
            va, vb = a.var(axis=1, ddof=1) / n, b.var(axis=1, ddof=1) / n
            se = np.sqrt(va + vb)
            df = (va + vb) ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n - 1))
            half = stats.t.isf(stats.norm.sf(c), df) * se
            d = a.mean(axis=1) - b.mean(axis=1)
            low, high = d - half, d + half
            more_failed = (~ae[:, :n]).sum(1) > (~be[:, :n]).sum(1)
            open_ = verdict[:, i] == "undecided"
            for name, hit in (("better", (high < 0) & ~more_failed), ("worse", low > 0),
                              ("equivalent", (-margin < low) & (high < margin) & ~more_failed)):
                now = open_ & hit
                verdict[now, i] = name
                open_ &= ~now
    return verdict


def rates(verdict: np.ndarray) -> tuple[float, float]:
    wrong = np.vectorize(lambda w: w.split(":")[0] in ("better", "worse", "mixed"))(verdict)
    return wrong.any(axis=1).mean(), wrong.mean()


def parse_trials() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20_000)
    return parser.parse_args().trials


def main() -> None:
    t = parse_trials()
    print(f"{t:,} simulated comparisons per cell; K = {K}; Monte Carlo se of a 5% rate {math.sqrt(0.0475 / t):.4f}\n")
    print("| looks | design | p | wrong better/worse, family-wise | per arm | all-escape arm vs base's 0.6 called "
          "equivalent |")
    print("|---|---|---|---|---|---|")
    for first, most in ((3, 5), (3, 8)):
        design = Design(tuple(range(K)), first, most, margin=MARGIN, margin_source="simulation")
        for p in (0.3, 0.6, 0.9):
            old = rates(earlier(p, [p] * K, first, most, t, seed=1))
            new = rates(simulate(design, p, [p] * K, trials=t, seed=1)[0])
            old_eq = (earlier(0.6, [1.0] * K, first, most, t // 4, seed=2) == "equivalent").mean() if p == 0.6 else None
            new_eq = (np.vectorize(lambda w: "equivalent" in w)(simulate(design, 0.6, [1.0] * K, trials=t // 4,
                                                                         seed=2)[0])).mean() if p == 0.6 else None
            for name, (fw, arm), eq in (("earlier", old, old_eq), ("current", new, new_eq)):
                print(f"| {first}..{most} | {name} | {p} | {fw:.4f} | {arm:.4f} | "
                      f"{'-' if eq is None else f'{eq:.3f}'} |")


def clusters(t: int) -> None:
    """The escaped-quality rule with and without its variance floor (design versions 3 and 2) when escaped
    seeds fall in two clusters, as at 20 epochs: early escapers' FID ~ N(100, 10), late ones' ~ N(185,
    15). Every seed escapes (p = 1) unless said, so any better/worse call is escaped quality's, whose
    promise is alpha/2 over the K arms (alpha/2K an arm). Then nulls where the arms' escaped FIDs differ
    in shape but not in mean, and what the floor costs in power."""
    def rate(design, p, base_fid, arm_fids, floor, seed, arm=None, calls="wrong"):
        verdict = simulate(design, p, [p] * K, trials=t, seed=seed, escaped_fid=base_fid, arm_escaped_fid=arm_fids,
                           floor=floor)[0]
        hit = np.vectorize((lambda w: w.startswith("better")) if calls == "better" else
                           (lambda w: w.split(":")[0] in ("better", "worse", "mixed")))(verdict)
        return hit[:, arm].mean() if arm is not None else hit.mean() if calls == "better" else hit.any(axis=1).mean()

    designs = [Design(tuple(range(K)), 3, 6, margin=20.0, margin_source="simulation"),
               Design(tuple(range(K)), 3, 8, margin=25.0, margin_source="simulation")]
    print("\n| looks | escaped seeds, every arm alike | p | wrong, family-wise: version 2 (no floor) | version 3 "
          "(floor) |")
    print("|---|---|---|---|---|")
    for design in designs:
        for late in (0.3, 0.5):
            mixture = [(1 - late, 100.0, 10.0), (late, 185.0, 15.0)]
            for p in (0.6, 1.0):
                v2, v3 = (rate(design, p, mixture, None, f, 3) for f in (False, True))
                print(f"| {design.first}..{design.most} | {late:.0%} late | {p} | {v2:.4f} | {v3:.4f} |")
    half = [(0.5, 100.0, 10.0), (0.5, 185.0, 15.0)]  # mean 142.5
    one = (142.5, 15.0)
    nulls = [("base in two clusters, the arms in one at the same mean, family-wise", half, [one] * K, None),
             ("one arm in two clusters, base and the others in one at the same mean: that arm", one,
              [half] + [one] * (K - 1), 0),
             ("one arm spread 3x (sd 60) among sd 20: that arm", (205.0, 20.0), [(205.0, 60.0)] + [(205.0, 20.0)] * (K - 1), 0),
             ("one arm sd 60 among sd 5: that arm", (205.0, 5.0), [(205.0, 60.0)] + [(205.0, 5.0)] * (K - 1), 0)]
    print("\n| looks | null (same mean escaped FID everywhere), p = 1 | version 2 | version 3 | promise |")
    print("|---|---|---|---|---|")
    for design in designs:
        for name, base_fid, arm_fids, arm in nulls:
            v2, v3 = (rate(design, 1.0, base_fid, arm_fids, f, 6, arm) for f in (False, True))
            promise = design.quality_level if arm is not None else design.alpha / 2
            print(f"| {design.first}..{design.most} | {name} | {v2:.4f} | {v3:.4f} | {promise:.4f} |")
    shifted = [(0.5, 60.0, 10.0), (0.5, 145.0, 15.0)]
    print("\n| looks | an arm whose escaped seeds score 40 lower, p = 1: called better | version 2 | version 3 |")
    print("|---|---|---|---|")
    for design in designs:
        for name, base_fid, arm_fid in (("one cluster: N(165, 20) against N(205, 20)", (205.0, 20.0), (165.0, 20.0)),
                                        ("two clusters, both 40 lower", half, shifted)):
            v2, v3 = (rate(design, 1.0, base_fid, [arm_fid] * K, f, 4, calls="better") for f in (False, True))
            print(f"| {design.first}..{design.most} | {name} | {v2:.3f} | {v3:.3f} |")


if __name__ == "__main__":
    main()
    clusters(parse_trials())
