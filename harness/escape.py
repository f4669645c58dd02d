"""The primary endpoint of an ablation at affordable lengths: how often a seed escapes its early collapse.

GAN seeds at these lengths are bimodal (a seed escapes or stays collapsed), so the first question about a
trick is a rate: k of n seeds escaped. Everything here is exact for binomial counts:
- one arm: k of n with a Clopper-Pearson interval (never narrower than its level allows, even at 0 or n);
- against base: the difference of rates with Newcombe's hybrid score interval (method 10 of Newcombe,
  Statistics in Medicine 1998), and the posterior probability that the arm escapes more often than
  base under uniform Beta(1, 1) priors;
- the sequential rule: Fisher's exact test at every look, at one nominal level chosen so that the
  worst type I error over a common escape probability p in [0.01, 0.99] is at most the target, computed
  by exact enumeration of every binomial path (no simulation).
tests/test_decisions.py checks each against paths counted by hand and known values.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

CONFIDENCE = 0.95
P_RANGE = (0.01, 0.99)  # the common escape probabilities the worst case is taken over
_GRID = np.linspace(P_RANGE[0], P_RANGE[1], 981)  # steps of 0.001; each maximum is then refined


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact interval of an escape probability from k of n; (nan, nan) with no seeds."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k: int, n: int, k_ref: int, n_ref: int, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(k/n - k_ref/n_ref, low, high): Newcombe's hybrid score interval; it keeps its width at 0 or n."""
    if n == 0 or n_ref == 0:
        return math.nan, math.nan, math.nan
    z = float(stats.norm.isf((1 - confidence) / 2))
    p, q = k / n, k_ref / n_ref
    (l1, u1), (l2, u2) = _wilson(k, n, z), _wilson(k_ref, n_ref, z)
    d = p - q
    return d, d - math.sqrt((p - l1) ** 2 + (u2 - q) ** 2), d + math.sqrt((u1 - p) ** 2 + (q - l2) ** 2)


def prob_more(k: int, n: int, k_ref: int, n_ref: int) -> float:
    """P(the arm's escape probability > the reference's | the counts), with Beta(1, 1) priors on both:
    the exact sum for Beta variables with integer parameters (P(X > Y) = sum_i B(a_y+i, b_x+b_y) /
    ((b_x+i) B(1+i, b_x) B(a_y, b_y)), over i < a_x)."""
    ax, bx, ay, by = k + 1, n - k + 1, k_ref + 1, n_ref - k_ref + 1
    i = np.arange(ax)
    terms = (special.betaln(ay + i, bx + by) - np.log(bx + i) - special.betaln(1 + i, bx)
             - special.betaln(ay, by))
    return float(min(1.0, max(0.0, np.exp(terms).sum())))


def fisher_p(k: int, n: int, k_ref: int, n_ref: int) -> float:
    """Two-sided Fisher exact p of k of n against k_ref of n_ref."""
    return float(stats.fisher_exact([[k, n - k], [k_ref, n_ref - k_ref]]).pvalue)


@functools.lru_cache(maxsize=1024)
def p_table(n: int, n_ref: int) -> np.ndarray:
    """Fisher's p for every outcome (k of n, k_ref of n_ref): (n + 1, n_ref + 1)."""
    return np.array([[fisher_p(k, n, r, n_ref) for r in range(n_ref + 1)] for k in range(n + 1)])


def _moves(before: int, after: int, p: np.ndarray) -> np.ndarray:
    """(len(p), before + 1, after + 1): P(count after | count before) when after - before more seeds
    each escape with probability p."""
    more = np.arange(after + 1)[None, :] - np.arange(before + 1)[:, None]  # escapes among the new seeds
    return stats.binom.pmf(more[None], after - before, p[:, None, None])


def rejection(looks: tuple, gamma: float, p_arm, p_ref) -> np.ndarray:
    """P(Fisher's p <= gamma at some look) for each pair of true probabilities (arrays of one length), by
    exact enumeration: the probability of every count pair not yet rejected, carried from look to look.
    looks: ((seeds of the arm, seeds of base), ...) in increasing order."""
    p_arm, p_ref = np.atleast_1d(np.asarray(p_arm, float)), np.atleast_1d(np.asarray(p_ref, float))
    alive = np.ones((len(p_arm), 1, 1))  # (p, arm's escapes, base's escapes): mass not yet rejected
    done, rejected = (0, 0), np.zeros(len(p_arm))
    for n, n_ref in looks:
        move_a = _moves(done[0], n, p_arm)  # (p, earlier count, count now)
        move_b = _moves(done[1], n_ref, p_ref)
        grown = np.einsum("pij,pix,pjy->pxy", alive, move_a, move_b)
        region = p_table(n, n_ref) <= gamma
        rejected += grown[:, region].sum(axis=1)
        grown[:, region] = 0.0
        alive, done = grown, (n, n_ref)
    return rejected


def worst_case(looks: tuple, gamma: float) -> tuple[float, float]:
    """(the largest type I error over a common p in P_RANGE, the p where it is): the grid's maximum,
    refined by a bounded search around it (the rate is a smooth polynomial in p)."""
    rates = rejection(looks, gamma, _GRID, _GRID)
    i = int(np.argmax(rates))
    lo, hi = _GRID[max(0, i - 1)], _GRID[min(len(_GRID) - 1, i + 1)]
    best = optimize.minimize_scalar(lambda p: -rejection(looks, gamma, [p], [p])[0], bounds=(lo, hi),
                                    method="bounded", options={"xatol": 1e-7})
    if -best.fun > rates[i]:
        return float(-best.fun), float(best.x)
    return float(rates[i]), float(_GRID[i])


@dataclass(frozen=True)
class EscapeRule:
    """Fisher's exact test at each look at the nominal level gamma; worst: its exact worst-case type I
    error over a common p (at p_worst), at most target. gamma 0: no split of these seeds can be
    significant at the target, so the rule never decides."""
    looks: tuple  # ((arm's seeds, base's seeds), ...) at each look
    target: float  # the most type I error the rule may have, at any common p
    gamma: float
    worst: float
    p_worst: float

    def rejects(self, k: int, n: int, k_ref: int, n_ref: int) -> bool:
        return self.gamma > 0 and fisher_p(k, n, k_ref, n_ref) <= self.gamma

    def power(self, p_ref: float, p_arm: float) -> float:
        """The chance the rule decides for these true escape probabilities (exact)."""
        return float(rejection(self.looks, self.gamma, [p_arm], [p_ref])[0]) if self.gamma > 0 else 0.0


@functools.lru_cache(maxsize=256)
def rule(looks: tuple, target: float) -> EscapeRule:
    """The largest attainable nominal level whose worst-case sequential type I error is at most target (it
    may lie above target: Fisher's test is conservative). The rejection regions grow with gamma, so the
    error does too: bisect over the attainable p values."""
    candidates = sorted({float(p) for n, n_ref in looks for p in p_table(n, n_ref).ravel() if p < 1})
    low, high = -1, len(candidates) - 1  # candidates[low] is known fine (-1: none), [high + 1:] known too big
    found = (0.0, 0.0, 0.0)
    while low < high:
        mid = (low + high + 1) // 2
        worst, at = worst_case(looks, candidates[mid])
        if worst <= target:
            low, found = mid, (candidates[mid], worst, at)
        else:
            high = mid - 1
    if low >= 0 and found[0] != candidates[low]:
        found = (candidates[low], *worst_case(looks, candidates[low]))
    return EscapeRule(tuple(looks), target, *found)
