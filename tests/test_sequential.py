"""The sequential design's boundaries and intervals, against published values and seeded simulations."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness import sequential as sq


def test_one_look_is_the_fixed_test_and_pocock_type_matches_the_published_boundaries():
    assert sq.boundaries([1.0], 0.05) == pytest.approx([1.959964], abs=1e-5)
    # Lan-DeMets Pocock-type spending, 5 equally spaced looks, two-sided 0.05 (Jennison & Turnbull's
    # tables; gsDesign's sfLDPocock gives the same)
    assert sq.boundaries([0.2, 0.4, 0.6, 0.8, 1.0], 0.05) == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=1e-3)
    # HSD with gamma 0 spends linearly; an early look spends less than Pocock-type
    assert sq.spent(0.5, 0.05, "hsd", 0.0) == pytest.approx(0.025)
    assert sq.spent(3 / 8, 0.05, "hsd", -4.0) < sq.spent(3 / 8, 0.05, "hsd", 1.0) < sq.spent(3 / 8, 0.05)


@pytest.mark.parametrize("spending, gamma", [("pocock", 1.0), ("hsd", 1.0), ("hsd", -2.0)])
def test_boundaries_spend_what_they_promise_in_a_seeded_simulation(spending, gamma):
    """Looks at 3..8 of 8 seeds, level 0.05 / 7: the chance to cross by each look, over 400,000 simulated
    score paths, within 4 standard errors of the spending function."""
    fractions = np.arange(3, 9) / 8
    level = 0.05 / 7
    c = np.array(sq.boundaries(list(fractions), level, spending, gamma))
    rng = np.random.default_rng(0)
    steps = rng.standard_normal((400_000, len(fractions))) * np.sqrt(np.diff(np.r_[0.0, fractions]))
    z = np.cumsum(steps, axis=1) / np.sqrt(fractions)
    crossed = np.cumsum(np.abs(z) >= c, axis=1) > 0
    for k, t in enumerate(fractions):
        want = sq.spent(t, level, spending, gamma)
        assert abs(crossed[:, k].mean() - want) < 4 * math.sqrt(want / 400_000), (k, crossed[:, k].mean(), want)


def test_repeated_intervals_cover_at_every_look_at_once_with_t_quantiles():
    """Normal seeds, no true difference, 3 to 8 seeds a side, one arm at 0.05: the intervals of all six
    looks contain 0 together in at least 95% of 20,000 seeded trials (less 3 standard errors)."""
    looks = list(range(3, 9))
    rng = np.random.default_rng(1)
    trials = 20_000
    a = rng.normal(500, 60, (trials, 8))
    b = rng.normal(500, 60, (trials, 8))
    covered = np.ones(trials, bool)
    for n in looks:
        x, y = a[:, :n], b[:, :n]
        va, vb = x.var(axis=1, ddof=1) / n, y.var(axis=1, ddof=1) / n
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (n - 1))
        from scipy import stats
        half = stats.t.isf(stats.norm.sf(sq.critical(looks, n, 0.05)), df) * se
        covered &= np.abs(x.mean(axis=1) - y.mean(axis=1)) <= half
        if n == 5:  # the vectorised interval is the module's own
            d, low, high, _ = sq.rci(x[0], y[0], sq.critical(looks, n, 0.05))
            assert (low, high) == pytest.approx((d - half[0], d + half[0]))
    assert covered.mean() >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / trials)


def test_decisions_need_a_margin_for_equivalence_and_a_spread_for_an_interval():
    assert sq.decide(-30, -5, 20) == "better" and sq.decide(4, 30, 20) == "worse"
    assert sq.decide(-10, 12, 20) == "equivalent" and sq.decide(-25, 12, 20) == ""
    assert sq.decide(-10, 12, None) == ""  # no margin fixed in advance: never equivalent
    d, low, high, _ = sq.rci([636.0] * 5, [636.0] * 5, 2.5)  # blank images: no spread, no zero-width interval
    assert d == 0 and math.isnan(low) and math.isnan(high) and sq.decide(low, high, 20) == ""
    with pytest.raises(ValueError, match="increase"):
        sq.boundaries([0.5, 0.4], 0.05)
