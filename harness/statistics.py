"""Statistics over a handful of seeds shared by the endpoints (harness/escape.py, harness/ranks.py and
harness/sequential.py hold each endpoint's own):
- means over seeds: Student t 95% intervals (a percentile bootstrap of the mean covers only about
  75-85% at 3 to 5 seeds), never of zero width;
- Welch's standard error and degrees of freedom of a difference of means;
- the within-group variance pooled over groups (the escaped-quality interval's floor).
tests/test_statistics.py checks coverage by simulation through these same functions.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
_NAN3 = (float("nan"),) * 3


def mean_ci(values, bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high): Student t 95% interval of the mean over seeds (nan bounds under 2 seeds or with
    no spread: never a zero-width interval),
    clipped to where the metric can lie (recall in [0, 1]): the true mean is inside them, so clipping
    drops only impossible values and keeps the coverage."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return _NAN3
    if len(x) == 1 or x.std() == 0:  # one seed, or seeds all alike: no spread to make an interval from
        return float(x.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(max(x.mean() - half, bounds[0])), float(min(x.mean() + half, bounds[1]))


def welch_moments(var_a, n_a, var_b, n_b):
    """(standard error of a difference of means, Welch-Satterthwaite degrees of freedom) from each side's
    variance (ddof 1) and count; numpy arrays or scalars (nan where a side has under 2 values)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sa, sb = var_a / n_a, var_b / n_b
        return np.sqrt(sa + sb), (sa + sb) ** 2 / (sa ** 2 / (n_a - 1) + sb ** 2 / (n_b - 1))


def pooled_variance(groups) -> tuple[float, int]:
    """(the within-group variance pooled over groups, its degrees of freedom): sum of squares about each
    group's own mean over sum of (n - 1); groups of under 2 values add nothing; (nan, 0) when none has 2."""
    squares, df = 0.0, 0
    for g in groups:
        x = np.asarray(g, dtype=np.float64)
        if len(x) >= 2:
            squares += float(((x - x.mean()) ** 2).sum())
            df += len(x) - 1
    return (squares / df if df else math.nan), df
