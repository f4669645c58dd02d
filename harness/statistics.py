"""Statistics of the ablation answer, for the few seeds an ablation can afford.

- Means over seeds: Student t 95% intervals (a percentile bootstrap of the mean covers only about
  75-85% at 3 to 5 seeds).
- Differences from base: Welch t 95% intervals, unadjusted, and Welch's t-test, Holm-corrected over
  the arms of a report; the interval excludes 0 exactly when the unadjusted p < 0.05, so a report
  says so where Holm's correction does not follow.
- Power: the smallest difference the seeds could detect with 80% power, and the seeds an effect of
  interest would need, at Holm's strictest level (ALPHA / number of arms): the power of Welch's test
  itself, integrated over the sample variances (right at df 1 and alpha 0.05/8, where scipy's noncentral
  t returns nan), checked against a seeded simulation in tests/test_statistics.py.
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


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
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
    se, df = welch(a, b)
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


_GRID = 200  # equal-probability points per sample variance in welch_power's integral


def welch_power(effect: float, sd_a: float, sd_b: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of the two-sided Welch t-test of level alpha for a true difference `effect` between groups
    of n_a and n_b seeds with true standard deviations sd_a and sd_b. The difference of the sample means
    is normal and independent of the sample variances (scaled chi-squares), so the power is the normal
    rejection probability averaged over the two variances, taken at _GRID x _GRID equal-probability
    points; the test's own estimated df and critical value are used at each point."""
    q = (np.arange(_GRID) + 0.5) / _GRID
    va = sd_a ** 2 * stats.chi2.ppf(q, n_a - 1) / (n_a - 1) / n_a  # (grid,) sample variance of mean a
    vb = sd_b ** 2 * stats.chi2.ppf(q, n_b - 1) / (n_b - 1) / n_b
    va, vb = va[:, None], vb[None, :]
    se_hat = np.sqrt(va + vb)  # (grid, grid)
    df = (va + vb) ** 2 / np.maximum(va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1), 1e-300)
    crit = stats.t.ppf(1 - alpha / 2, np.maximum(df, 1e-6)) * se_hat
    sigma = math.sqrt(sd_a ** 2 / n_a + sd_b ** 2 / n_b)  # true sd of the difference of means
    power = stats.norm.sf((crit - effect) / sigma) + stats.norm.cdf((-crit - effect) / sigma)
    return float(power.mean())


def _solve_for_power(power_of, scale: float) -> float:
    """The smallest effect >= 0 with power_of(effect) = POWER (power grows with the effect), or nan."""
    high = 4 * scale
    while power_of(high) < POWER:
        high *= 2
        if high > 2 ** 30 * scale:
            return float("nan")
    return float(optimize.brentq(lambda e: power_of(e) - POWER, 0.0, high, xtol=1e-6 * scale))


def detectable(values, reference, alpha: float) -> float:
    """The smallest difference these seeds detect with 80% power by Welch's test at level alpha, if
    their observed spreads were the true ones; nan with fewer than 2 seeds a side."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    sd_a, sd_b = a.std(ddof=1), b.std(ddof=1)
    if sd_a == 0 and sd_b == 0:
        return 0.0
    scale = math.sqrt(sd_a ** 2 / len(a) + sd_b ** 2 / len(b))
    return _solve_for_power(lambda e: welch_power(e, sd_a, sd_b, len(a), len(b), alpha), scale)


def seeds_needed(effect: float, values, reference, alpha: float, most: int = 10_000) -> int:
    """About how many seeds a side (equal on both) Welch's test needs to detect `effect` with 80% power
    at level alpha, at the spreads seen; -1 when it cannot be said (under 2 seeds a side)."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2 or not math.isfinite(effect):
        return -1
    sd_a, sd_b = a.std(ddof=1), b.std(ddof=1)
    if sd_a == 0 and sd_b == 0:
        return 2
    if effect == 0:
        return most

    def enough(n: int) -> bool:
        return welch_power(abs(effect), sd_a, sd_b, n, n, alpha) >= POWER - 1e-6  # brentq stops within 1e-6
    if not enough(most):
        return most
    low, high = 2, most
    while low < high:  # power grows with n: bisect for the smallest n that reaches 80%
        mid = (low + high) // 2
        if enough(mid):
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
