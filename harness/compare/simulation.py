"""The decision design run on simulated seeds (no training): how often it calls arms better, worse or
mixed, and what it spends, for seeds drawn from a bimodal mixture. tests/test_decisions.py holds it to
its guarantees; bench/bimodal_design.py prints the numbers docs/statistics.md gives.

A simulated seed escapes with its arm's probability; an escaped seed's final FID is normal (escaped_fid)
or a mixture of normals (seeds that escaped early and late), a collapsed one's normal (collapsed_fid).
The looks run as harness/compare/looks.py runs them: the escape rule's decision from the same
EscapeRule, the escaped-quality interval from the same critical values, variance floor
(design.spread_floor, over base and every arm, a decided one at its last look) and Welch arithmetic as
harness/sequential.py, combined as design.combine does. (The rank summary decides nothing, so it is not
simulated here; harness/ranks.py calibrates it.)
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from harness import escape as es
from harness.statistics import welch_moments
from harness.compare.design import Design, combine


def draw(rng, p: float, trials: int, seeds: int, escaped_fid=(205.0, 20.0), collapsed_fid=(580.0, 70.0)):
    """(escaped (trials, seeds) bool, final FID (trials, seeds)) for an arm escaping with probability p;
    escaped_fid: (mean, sd), or a mixture [(weight, mean, sd), ...] whose weights sum to 1."""
    escaped = rng.random((trials, seeds)) < p
    if np.isscalar(escaped_fid[0]):
        good = rng.normal(*escaped_fid, (trials, seeds))
    else:  # a mixture: each seed's component, then its draw
        weights, means, sds = (np.array(column) for column in zip(*escaped_fid))
        which = np.searchsorted(np.cumsum(weights)[:-1], rng.random((trials, seeds)), side="right")
        good = rng.normal(means[which], sds[which])
    fid = np.where(escaped, good, rng.normal(*collapsed_fid, (trials, seeds)))
    return escaped, fid


def _moments(escaped: np.ndarray, fid: np.ndarray, n):
    """Over each trial's first n seeds (an int, or one per trial), the escaped ones': (count, mean,
    variance with ddof 1), nan where undefined."""
    seen = np.arange(escaped.shape[-1]) < np.asarray(n)[..., None]
    e, x = escaped & seen, fid
    count = e.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(e, x, 0).sum(-1) / count
        var = np.where(e, (x - mean[..., None]) ** 2, 0).sum(-1) / (count - 1)
    return count, mean, var


def _floor(moments: list) -> np.ndarray:
    """design.spread_floor per trial: the within-arm variance pooled over arms [(count, mean, variance)],
    0 where no arm has 2 escaped seeds."""
    squares = sum(np.where(k >= 2, (k - 1) * np.nan_to_num(v), 0.0) for k, _, v in moments)
    df = sum(np.where(k >= 2, k - 1, 0) for k, _, _ in moments)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(df > 0, squares / df, 0.0)


def simulate(design: Design, p_base: float, p_arms: list[float], trials: int = 4000, seed: int = 0,
             escaped_fid=(205.0, 20.0), collapsed_fid=(580.0, 70.0), arm_escaped_fid=None, floor: bool = True):
    """(verdicts (trials, K) of words as the report gives them, seeds a side spent (trials, K)).
    escaped_fid: base's escaped seeds' FID, (mean, sd) or a mixture [(weight, mean, sd), ...] (seeds
    that escaped early and late); arm_escaped_fid: per arm, the same (default: base's). floor=False
    judges without design.spread_floor (design version 2), for comparison."""
    rng = np.random.default_rng(seed)
    k = len(p_arms)
    base = draw(rng, p_base, trials, design.most, escaped_fid, collapsed_fid)
    arms = [draw(rng, p, trials, design.most, (arm_escaped_fid or [escaped_fid] * k)[i], collapsed_fid)
            for i, p in enumerate(p_arms)]
    rule = design.escape_rule()
    verdict = np.full((trials, k), "undecided", dtype=object)
    spent = np.full((trials, k), design.most)
    open_ = np.ones((trials, k), bool)
    for n in design.looks:
        kb, mb, vb = _moments(*base, n)
        now_seeds = [np.where(open_[:, i], n, spent[:, i]) for i in range(k)]  # a decided arm: at its last look
        moments = [_moments(*arm, now_seeds[i]) for i, arm in enumerate(arms)]
        least = _floor([(kb, mb, vb), *moments]) if floor else np.zeros(trials)
        c = design.critical(n)
        table = es.p_table(n, n)
        for i, arm in enumerate(arms):
            ka, ma, va = moments[i]
            escape = np.full(trials, "", dtype=object)
            if rule.gamma > 0:
                hit = table[ka, kb] <= rule.gamma
                escape[hit & (ka > kb)], escape[hit & (ka < kb)] = "more", "fewer"
            quality = _quality(ka, ma, va, kb, mb, vb, c, design.margin, least)
            words = np.array([combine(e, q) for e, q in zip(escape, quality)], dtype=object)
            decided = np.array([w.split(":")[0] in ("better", "worse", "mixed") for w in words])
            now = open_[:, i] & (decided | (n == design.most))
            verdict[now, i] = np.where(decided[now], words[now], "undecided")
            spent[now, i] = n
            open_[:, i] &= ~now
    return verdict, spent


def _quality(ka, ma, va, kb, mb, vb, c: float, margin: float | None, floor: np.ndarray) -> np.ndarray:
    """The escaped-quality decision per trial: Welch's interval at critical value c (t at Welch's df),
    each side's variance at least floor."""
    out = np.full(len(ka), "", dtype=object)
    ok = (ka >= 2) & (kb >= 2)
    se, df = welch_moments(np.fmax(va, floor), ka, np.fmax(vb, floor), kb)  # as harness/sequential.py's rci:
    df = np.fmin(df, welch_moments(va, ka, vb, kb)[1])  # at most the df of the sides' own variances
    with np.errstate(invalid="ignore"):
        half = stats.t.isf(stats.norm.sf(c), np.where(ok, df, 1.0)) * se
        d = ma - mb
        low, high = d - half, d + half
    ok &= se > 0
    out[ok & (high < 0)] = "better"
    out[ok & (low > 0)] = "worse"
    if margin is not None:
        out[ok & (out == "") & (-margin < low) & (high < margin)] = "equivalent"
    return out
