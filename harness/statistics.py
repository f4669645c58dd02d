"""Statistics of the ablation answer: bootstrap intervals over seeds, Welch's t-test, Holm's correction."""
from __future__ import annotations

import numpy as np
from scipy import stats

MIN_SEEDS_FOR_VERDICT = 3
ALPHA = 0.05
BOOTSTRAP = 10_000  # resamples: the 2.5% tail then holds 250 draws


def mean_ci(values, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap 95% interval of the mean over seeds."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return (float("nan"),) * 3
    if len(x) == 1:
        return float(x[0]), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (BOOTSTRAP, len(x)))].mean(axis=1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def diff_ci(values, reference, seed: int = 0) -> tuple[float, float, float]:
    """(mean(values) - mean(reference), low, high), resampling each group on its own."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return float(a.mean() - b.mean()) if len(a) and len(b) else float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    da = a[rng.integers(0, len(a), (BOOTSTRAP, len(a)))].mean(axis=1)
    db = b[rng.integers(0, len(b), (BOOTSTRAP, len(b)))].mean(axis=1)
    d = da - db
    return float(a.mean() - b.mean()), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))


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
