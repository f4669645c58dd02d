"""A distribution-free summary of two arms' final FIDs, whole (escaped and collapsed seeds together): the
probability of improvement P(FID_arm < FID_base), and an exact Mann-Whitney test of it.

- Ties count half (identical blank-image scores are common: a blank grid scores the same FID in every
  arm), and the test is the exact permutation test conditional on the ties: every split of the pooled
  seeds into the two arms' sizes is equally likely under no difference, whatever the ties, so the exact
  p is valid with them (computed by counting subsets of midranks, not by a normal approximation).
- A seed with no final FID (diverged, or unscored) ranks worst, tied with its kind.
- Sequentially: the same nominal level at every look, calibrated once by seeded simulation on
  continuous draws (where ranks are distribution-free, so any continuous distribution gives the same
  answer) so that the chance of some look rejecting under no difference, plus two Monte Carlo standard
  errors, is at most the target (an estimate: the same draws pick the level). tests/test_decisions.py checks
  it on fresh draws, continuous, bimodal and with blank-image ties.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

TRIALS = 200_000  # simulated comparisons per calibration
SEED = 0  # the calibration's seed: every process that opens a design gets the same level


def _scores(values) -> np.ndarray:
    """FIDs with a missing one (None, nan) as +inf: worst."""
    x = np.array([math.inf if v is None else v for v in values], dtype=np.float64)
    return np.where(np.isnan(x), math.inf, x)


def improvement(values, reference) -> float:
    """P(a seed of values scores lower FID than a seed of reference), ties counting half; nan when empty."""
    a, b = _scores(values), _scores(reference)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    less = (a[:, None] < b[None, :]).sum()
    ties = (a[:, None] == b[None, :]).sum()
    return float((less + 0.5 * ties) / (len(a) * len(b)))


def _subset_sums(doubled: np.ndarray, n: int) -> dict:
    """How many subsets of n of these integer scores have each sum: {sum: count} (dynamic programming)."""
    counts = [dict() for _ in range(n + 1)]  # counts[j]: subsets of size j so far
    counts[0][0] = 1
    for r in doubled:
        for j in range(min(n, len(doubled)) - 1, -1, -1):
            for s, c in counts[j].items():
                counts[j + 1][s + int(r)] = counts[j + 1].get(s + int(r), 0) + c
    return counts[n]


def exact_p(values, reference) -> float:
    """Two-sided exact Mann-Whitney p, conditional on ties; nan with an empty side; 1.0 when every score
    is tied (no split differs)."""
    a, b = _scores(values), _scores(reference)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    ranks = stats.rankdata(np.concatenate([a, b]))  # midranks; +inf ties rank together, last
    doubled = np.rint(2 * ranks).astype(int)
    centre = len(a) * (len(a) + len(b) + 1)  # the doubled rank sum's mean under no difference
    seen = abs(int(doubled[:len(a)].sum()) - centre)
    sums = _subset_sums(doubled, len(a))
    total = sum(sums.values())
    return float(sum(c for s, c in sums.items() if abs(s - centre) >= seen) / total)


@functools.lru_cache(maxsize=64)
def _p_by_count(n: int, n_ref: int) -> np.ndarray:
    """Without ties, the exact p for each count c = #(arm's seed < base's seed), c = 0..n n_ref: the arm's
    rank sum is then n(n+1)/2 + n n_ref - c (doubled here, as exact_p counts)."""
    sums = _subset_sums(2 * np.arange(1, n + n_ref + 1), n)
    total, centre = sum(sums.values()), n * (n + n_ref + 1)
    doubled = 2 * (n * (n + 1) // 2 + n * n_ref - np.arange(n * n_ref + 1))
    return np.array([sum(c for s, c in sums.items() if abs(s - centre) >= abs(w - centre)) / total
                     for w in doubled])


@functools.lru_cache(maxsize=64)
def _count_pmf(n: int, n_ref: int) -> np.ndarray:
    """Without ties, P(c) of the count c = #(arm's seed < base's seed) under no difference."""
    sums = _subset_sums(2 * np.arange(1, n + n_ref + 1), n)
    total = sum(sums.values())
    return np.array([sums.get(2 * (n * (n + 1) // 2 + n * n_ref - c), 0) / total for c in range(n * n_ref + 1)])


@dataclass(frozen=True)
class RankRule:
    """The exact Mann-Whitney test at each look at nominal level gamma; rate: the sequential type I error
    found for it on continuous draws (exact at one look), mc_se its Monte Carlo standard error."""
    looks: tuple  # ((arm's seeds, base's seeds), ...)
    target: float
    gamma: float
    rate: float
    mc_se: float
    trials: int

    def rejects(self, values, reference) -> bool:
        p = exact_p(values, reference)
        return self.gamma > 0 and not math.isnan(p) and p <= self.gamma


def _min_p(looks: tuple, trials: int, seed: int) -> np.ndarray:
    """Per simulated comparison under no difference, the smallest p over its looks: (trials,)."""
    rng = np.random.default_rng(seed)
    most, most_ref = max(n for n, _ in looks), max(r for _, r in looks)
    a, b = rng.random((trials, most)), rng.random((trials, most_ref))
    smallest = np.ones(trials)
    for n, n_ref in looks:
        count = (a[:, :n, None] < b[:, None, :n_ref]).sum(axis=(1, 2))
        smallest = np.minimum(smallest, _p_by_count(n, n_ref)[count])
    return smallest


@functools.lru_cache(maxsize=64)
def rule(looks: tuple, target: float, trials: int = TRIALS, seed: int = SEED) -> RankRule:
    """The largest attainable nominal level at which the looks' type I error, plus two Monte Carlo
    standard errors, is at most target; at one look the exact level itself (no simulation)."""
    attainable = sorted({float(p) for n, r in looks for p in _p_by_count(n, r) if p <= target})
    if not attainable:
        return RankRule(tuple(looks), target, 0.0, 0.0, 0.0, 0)
    if len(looks) == 1:
        return RankRule(tuple(looks), target, attainable[-1], attainable[-1], 0.0, 0)
    smallest = np.sort(_min_p(looks, trials, seed))
    best = (0.0, 0.0, 0.0)
    for gamma in attainable:  # the rate grows with gamma
        able = [(n, r) for n, r in looks if _p_by_count(n, r).min() <= gamma]
        if len(able) == 1:  # one look alone can reject at this level: its rate is exact
            n, r = able[0]
            rate, se = float(_count_pmf(n, r)[_p_by_count(n, r) <= gamma].sum()), 0.0
        else:
            rate = np.searchsorted(smallest, gamma * (1 + 1e-12), side="right") / trials
            se = math.sqrt(rate * (1 - rate) / trials)
        if rate + 2 * se > target:
            break
        best = (gamma, rate, se)
    return RankRule(tuple(looks), target, *best, trials)
