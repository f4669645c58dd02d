"""Group-sequential intervals: spend seeds only until an arm is decided (here: the escaped seeds' FID, the
secondary endpoint of harness/compare/design.py).

Each arm is compared with base (the shared control) by two-sided repeated confidence intervals (RCIs)
for the FID difference (Jennison & Turnbull, Group Sequential Methods with Applications to Clinical
Trials, 2000, ch. 9): at every look k the interval d_k +- c_k se_k, with critical values c_k from a
Lan-DeMets alpha-spending function, covers the true difference at every look at once with
probability 1 - level (for normal seeds; see the small-sample and two-mode notes below), whatever rule
decides when to stop. So an arm may stop as better or worse (its interval excludes 0) or as equivalent
(its interval lies inside +-margin) at any look, and the stated level still holds for the intervals it
reports.

- Information: a look's fraction t = n / n_max (seeds a side, equal on both sides since base gets a
  seed whenever an arm does).
- Spending: Pocock-type, alpha ln(1 + (e - 1) t), or Hwang-Shih-DeCani (gamma) alpha (1 - e^(-gamma t))
  / (1 - e^(-gamma)); an O'Brien-Fleming shape would spend almost nothing at 3 of 8 seeds.
- Level: ALPHA / K over the K arms of a family (Bonferroni).
- Small samples: each look's normal critical value becomes the Student t quantile of the same nominal
  two-sided level at that look's Welch degrees of freedom (Jennison & Turnbull's approach). It is an
  approximation: with equal spreads the intervals hold conservatively; when one arm's spread is 2 to 3
  times the other's, at 3 to 8 seeds, they miss somewhat more often than the level says (as Welch's test
  alone does at these seed counts).
- Two modes: when values fall in two clusters (seeds that escaped early and late), a side's 2 or 3
  values often lie in one cluster and its variance reads far too small. rci's floor (the compare
  design passes the variance pooled over every arm's escaped seeds) widens such an interval: each
  side's variance is the larger of its own and the floor, and the degrees of freedom the smaller of
  Welch's with and without it, so the interval always contains the one without the floor.
tests/test_sequential.py checks the boundaries against a seeded simulation of the looks.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, stats

from harness.statistics import welch_moments

SPENDING = ("pocock", "hsd")
_GRID = 801  # points of the continuation region in the recursive integration (odd: Simpson's rule)


def spent(t: float, alpha: float, spending: str = "pocock", gamma: float = 1.0) -> float:
    """Type I error spent by information fraction t in [0, 1]."""
    t = min(max(t, 0.0), 1.0)
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    if spending == "hsd":
        return alpha * t if gamma == 0 else alpha * (1 - math.exp(-gamma * t)) / (1 - math.exp(-gamma))
    raise ValueError(f"unknown spending function {spending!r}; choose one of {SPENDING}")


def _simpson(x: np.ndarray) -> np.ndarray:
    """Simpson's weights for an odd number of equally spaced points x."""
    w = np.ones(len(x))
    w[1:-1:2], w[2:-1:2] = 4, 2
    return w * (x[1] - x[0]) / 3


@functools.lru_cache(maxsize=256)
def _boundaries(fractions: tuple, alpha: float, spending: str, gamma: float) -> tuple:
    return tuple(boundaries(list(fractions), alpha, spending, gamma))


def boundaries(fractions: list[float], alpha: float, spending: str = "pocock", gamma: float = 1.0) -> list[float]:
    """Two-sided normal critical values c_1..c_K for looks at increasing information fractions, such
    that the probability under no difference of |Z_j| >= c_j at some look j <= k is spent(t_k): the
    Armitage-McPherson-Rowe recursion on the score S = Z sqrt(t), whose increments are independent
    normals of variance t_k - t_(k-1)."""
    t = np.asarray(fractions, dtype=np.float64)
    if len(t) == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError(f"information fractions must increase within (0, 1]: {list(fractions)}")
    out: list[float] = []
    density = None  # (points, weights x density) of the score among paths that have not crossed yet
    previous, used = 0.0, 0.0
    for tk in t:
        target = spent(tk, alpha, spending, gamma) - used  # what this look may spend
        step = tk - previous
        if density is None:
            def exit_p(c):
                return 2 * stats.norm.sf(c)
        else:
            s, mass = density

            def exit_p(c, s=s, mass=mass):
                bound = c * math.sqrt(tk)
                return float(np.sum(mass * (stats.norm.sf((bound - s) / math.sqrt(step))
                                            + stats.norm.cdf((-bound - s) / math.sqrt(step)))))
        if target <= 0:
            c = math.inf
        else:
            c = float(optimize.brentq(lambda c: exit_p(c) - target, 1e-6, 40.0, xtol=1e-10))
        out.append(c)
        used += exit_p(c) if math.isfinite(c) else 0.0
        # The density of the score at this look on the continuation region (-c sqrt(t), c sqrt(t)).
        half = (c if math.isfinite(c) else 12.0) * math.sqrt(tk)
        grid = np.linspace(-half, half, _GRID)
        if density is None:
            f = stats.norm.pdf(grid / math.sqrt(tk)) / math.sqrt(tk)
        else:
            s, mass = density
            f = (stats.norm.pdf((grid[:, None] - s[None, :]) / math.sqrt(step)) / math.sqrt(step)) @ mass
        density = (grid, f * _simpson(grid))
        previous = tk
    return out


def t_critical(c: float, df: float) -> float:
    """The Student t critical value at df with the normal critical value c's two-sided level."""
    if not math.isfinite(c):
        return math.inf
    return float(stats.t.isf(stats.norm.sf(c), max(df, 1e-6)))


def rci(values, reference, c: float, floor: float = 0.0) -> tuple[float, float, float, float]:
    """(difference of means, low, high, Welch df) of the repeated confidence interval whose normal
    critical value is c (a look's boundary). floor: the least variance either side is taken to have (a
    pooled variance: a few values that happen to lie close together do not make the interval narrow).
    With no spread on either side and no floor there is no interval to give: the bounds are nan (never a
    zero-width interval)."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    d = float(a.mean() - b.mean())
    floor = floor if math.isfinite(floor) else 0.0
    own_var_a, own_var_b = a.var(ddof=1), b.var(ddof=1)
    se, df = welch_moments(max(own_var_a, floor), len(a), max(own_var_b, floor), len(b))
    # df: the smaller of Welch's on the floored variances and on the sides' own (nan when neither has a
    # spread): a floor that raises the smaller side's variance raises Welch's df too, and at df near 1
    # the t quantile would fall faster than the error grows. So the interval always holds version 2's.
    se, df = float(se), float(np.fmin(df, welch_moments(own_var_a, len(a), own_var_b, len(b))[1]))
    if se == 0:
        return d, math.nan, math.nan, float(len(a) + len(b) - 2)
    half = t_critical(c, df) * se
    return d, d - half, d + half, df


def decide(low: float, high: float, margin: float | None) -> str:
    """better / worse (the interval excludes 0; lower FID is better), equivalent (inside +-margin; never
    without a margin fixed in advance), or ''."""
    if math.isnan(low) or math.isnan(high):
        return ""
    if high < 0:
        return "better"
    if low > 0:
        return "worse"
    if margin is not None and -margin < low and high < margin:
        return "equivalent"
    return ""


def critical(looks: list[int], look: int, level: float, spending: str = "pocock", gamma: float = 1.0) -> float:
    """The normal critical value at the look with `look` seeds a side, among looks at these seeds."""
    return _boundaries(tuple(m / looks[-1] for m in looks[:looks.index(look) + 1]), level, spending, gamma)[-1]
