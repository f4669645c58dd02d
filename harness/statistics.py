"""Statistics of the ablation answer, for the few seeds an ablation can afford.

- Means over seeds: Student t 95% intervals (a percentile bootstrap of the mean covers only about
  75-85% at 3 to 5 seeds).
- Differences from base: Welch t 95% intervals, unadjusted, and Welch's t-test, Holm-corrected over
  the arms of a report; the interval excludes 0 exactly when the unadjusted p < 0.05, so a report
  says so where Holm's correction does not follow.
- Power: the smallest difference the seeds could detect with 80% power, and the seeds a difference
  would need, from the noncentral t at Holm's strictest level (ALPHA / number of arms).
- Rates (diverged, collapsed seeds): Fisher's exact test, with the smallest p the seeds allow.
tests/test_statistics.py checks coverage by simulation through these same functions.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

MIN_SEEDS_FOR_VERDICT = 3
ALPHA = 0.05
POWER = 0.8
CONFIDENCE = 0.95
_NAN3 = (float("nan"),) * 3


def mean_ci(values, bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high): Student t 95% interval of the mean over seeds (nan bounds under 2 seeds),
    clipped to where the metric can lie (recall in [0, 1]): the true mean is inside them, so clipping
    drops only impossible values and keeps the coverage."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return _NAN3
    if len(x) == 1:
        return float(x[0]), float("nan"), float("nan")
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(max(x.mean() - half, bounds[0])), float(min(x.mean() + half, bounds[1]))


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(standard error of mean(a) - mean(b), Welch-Satterthwaite degrees of freedom)."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0, float(len(a) + len(b) - 2)
    return se, (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))


def diff_ci(values, reference) -> tuple[float, float, float]:
    """(mean(values) - mean(reference), low, high): Welch t 95% interval, unadjusted."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return float(a.mean() - b.mean()) if len(a) and len(b) else float("nan"), float("nan"), float("nan")
    d = float(a.mean() - b.mean())
    se, df = _welch(a, b)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
    return d, d - half, d + half


def welch_p(values, reference) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); nan with fewer than 2 per side."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.var(a) == 0 and np.var(b) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (nan stays nan and does not count as a test)."""
    p = np.asarray(p_values, dtype=np.float64)
    tested = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    m = len(tested)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested])]):
        running = max(running, min(1.0, (m - rank) * p[i]))  # step-down, kept monotone
        adjusted[i] = running
    return adjusted.tolist()


def verdict(diff: float, p_adjusted: float, n: int, n_reference: int, lower_is_better: bool = True) -> str:
    """better / worse / no detectable difference, or why no verdict is given."""
    if min(n, n_reference) < MIN_SEEDS_FOR_VERDICT:
        return f"no verdict: fewer than {MIN_SEEDS_FOR_VERDICT} seeds per side ({n} vs {n_reference})"
    if np.isnan(p_adjusted) or p_adjusted >= ALPHA:
        return f"no detectable difference at {min(n, n_reference)} seeds"
    improved = diff < 0 if lower_is_better else diff > 0
    return "better" if improved else "worse"


def _power(effect: float, se: float, df: float, alpha: float) -> float:
    """Power of a two-sided t-test of level alpha when the true difference is `effect`."""
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = effect / se
    power = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    return power if math.isfinite(power) else 1.0  # scipy's nct gives nan far out in the tail, where power is 1


def detectable(values, reference, alpha: float) -> float:
    """The smallest difference these seeds detect with 80% power at their observed spread (Welch)."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    se, df = _welch(a, b)
    if se == 0:
        return 0.0
    return float(optimize.brentq(lambda e: _power(e, se, df, alpha) - POWER, 0.0, 20 * se))


def seeds_needed(diff: float, values, reference, alpha: float, most: int = 10_000) -> int:
    """About how many seeds per side a difference of `diff` needs for 80% power, at the spreads seen."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2 or not math.isfinite(diff):
        return -1
    variance = a.var(ddof=1) + b.var(ddof=1)  # of one seed's difference, equal seeds a side
    if variance == 0:
        return 2
    if diff == 0:
        return most
    low, high = 2, most
    if _power(abs(diff), math.sqrt(variance / high), 2 * high - 2, alpha) < POWER:
        return most
    while low < high:  # power grows with n: bisect for the smallest n that reaches 80%
        mid = (low + high) // 2
        if _power(abs(diff), math.sqrt(variance / mid), 2 * mid - 2, alpha) >= POWER:
            high = mid
        else:
            low = mid + 1
    return low


def fisher_p(count: int, n: int, reference_count: int, reference_n: int) -> float:
    """Two-sided Fisher exact p for count/n against reference_count/reference_n."""
    if n == 0 or reference_n == 0:
        return float("nan")
    table = [[count, n - count], [reference_count, reference_n - reference_count]]
    return float(stats.fisher_exact(table).pvalue)


def smallest_significant_count(n: int, reference_n: int, alpha: float) -> int | None:
    """The fewest seeds of n that must diverge (against none of reference_n) for Fisher's p < alpha;
    None when no split of these seeds can reach it."""
    for count in range(1, n + 1):
        if fisher_p(count, n, 0, reference_n) < alpha:
            return count
    return None
