"""The decision design (harness/compare/design.py) on seeded draws and synthetic arms, no training: the
escape rule's exact worst case, the rank rule's calibration, the escaped-only interval's coverage, the
whole procedure on bimodal seeds and on escaped seeds in two clusters, and a report with words or
numbers in every cell."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness import escape as es
from harness import ranks as rk
from harness import sequential as sq
from harness.compare.design import Design
from harness.compare.simulation import draw, simulate

ALPHA = 0.05
LOOKS = {"3..5": tuple((n, n) for n in range(3, 6)), "3..8": tuple((n, n) for n in range(3, 9))}


@pytest.mark.parametrize("looks", LOOKS)
@pytest.mark.parametrize("k", [1, 6])
def test_the_escape_rules_worst_case_type_one_error_is_at_most_alpha_over_k(looks, k):
    rule = es.rule(LOOKS[looks], ALPHA / k)
    p = np.linspace(0.01, 0.99, 99)  # an independent grid, and the rule's own worst point
    rates = es.rejection(rule.looks, rule.gamma, p, p)
    assert rates.max() <= rule.worst + 1e-12 and rule.worst <= ALPHA / k
    assert es.rejection(rule.looks, rule.gamma, [rule.p_worst], [rule.p_worst])[0] == pytest.approx(rule.worst)
    bigger = min(x for x in np.unique(np.concatenate([es.p_table(n, n).ravel() for n, _ in rule.looks]))
                 if x > rule.gamma)  # the next attainable level would break the bound
    assert es.worst_case(rule.looks, bigger)[0] > ALPHA / k
    design = Design(tuple(f"a{i}" for i in range(k)), LOOKS[looks][0][0], LOOKS[looks][-1][0])
    assert design.escape_rule().worst <= design.escape_level <= ALPHA / k


def test_the_enumeration_matches_every_path_counted_by_hand():
    looks, gamma, p_arm, p_base = ((2, 2), (3, 3)), 0.5, 0.37, 0.71
    total = 0.0
    for a in itertools.product([0, 1], repeat=3):
        for b in itertools.product([0, 1], repeat=3):
            weight = np.prod([p_arm if x else 1 - p_arm for x in a] + [p_base if x else 1 - p_base for x in b])
            total += weight * any(es.fisher_p(sum(a[:n]), n, sum(b[:n]), n) <= gamma for n in (2, 3))
    assert es.rejection(looks, gamma, [p_arm], [p_base])[0] == pytest.approx(total, abs=1e-12)


def test_rates_intervals_and_the_posterior_on_known_cases():
    assert es.prob_more(0, 5, 3, 5) == pytest.approx(1 / 33)  # tanh 0 of 5 against base 3 of 5: P(less) 0.97
    rng = np.random.default_rng(0)
    x, y = rng.beta(1, 6, 400_000), rng.beta(4, 3, 400_000)
    assert es.prob_more(0, 5, 3, 5) == pytest.approx((x > y).mean(), abs=0.002)
    low, high = es.clopper_pearson(0, 5)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 5))
    d, low, high = es.newcombe(5, 5, 3, 5)  # all escaped: still an interval of width, inside [-1, 1]
    assert d == pytest.approx(0.4) and -1 <= low < 0 < high <= 1


@pytest.mark.slow
def test_the_rank_rule_holds_its_level_on_continuous_and_bimodal_draws():
    looks, target = LOOKS["3..8"], ALPHA / 6
    rule = rk.rule(looks, target)
    assert 0 < rule.gamma and rule.rate + 2 * rule.mc_se <= target
    trials = 4000
    rng = np.random.default_rng(7)  # not the calibration's seed
    for kind in ("continuous", "bimodal", "blank ties"):
        rejected = 0
        for _ in range(trials):
            if kind == "continuous":
                a, b = rng.random(8), rng.random(8)
            else:
                a, b = draw(rng, 0.6, 1, 8)[1][0], draw(rng, 0.6, 1, 8)[1][0]
                if kind == "blank ties":  # half the collapsed seeds score exactly a blank image's FID
                    a, b = np.where(a > 400, np.where(rng.random(8) < 0.5, 636.0, a), a), \
                        np.where(b > 400, np.where(rng.random(8) < 0.5, 636.0, b), b)
            rejected += any(rk.exact_p(a[:n], b[:m]) <= rule.gamma for n, m in looks)
        rate, se = rejected / trials, math.sqrt(target * (1 - target) / trials)
        assert rate <= target + 3 * se, (kind, rate)


def test_exact_mann_whitney_with_ties_and_missing_scores():
    from scipy import stats
    a, b = [1.0, 3.0, 5.0, 7.5], [2.0, 4.0, 6.0, 8.0, 9.0]
    assert rk.exact_p(a, b) == pytest.approx(stats.mannwhitneyu(a, b, method="exact").pvalue)
    assert rk.exact_p([636.0] * 5, [636.0] * 5) == 1.0  # every score tied: no split differs
    assert rk.improvement([636.0] * 5, [636.0] * 5) == 0.5
    assert rk.exact_p([636.0] * 5, [212, 567, 554, 222, 210]) == pytest.approx(1 / 126)
    assert rk.improvement([math.nan, 100.0], [200.0]) == 0.5  # a seed without a score ranks worst


def test_the_escaped_only_interval_covers_at_its_level_with_two_escaped_a_side():
    rng = np.random.default_rng(3)
    level, covered, tried = 0.05, 0, 0
    c = sq.critical([1], 1, level)
    while tried < 3000:
        (ea, fa), (eb, fb) = draw(rng, 0.6, 1, 6), draw(rng, 0.6, 1, 6)
        a, b = fa[0][ea[0]], fb[0][eb[0]]
        if len(a) < 2 or len(b) < 2:
            continue
        tried += 1
        _, low, high, _ = sq.rci(a, b, c)
        covered += low <= 0 <= high
    assert covered / tried >= 1 - level - 3 * math.sqrt(level * (1 - level) / tried)


@pytest.mark.parametrize("most", [5, 8])
def test_the_whole_procedure_on_bimodal_seeds_keeps_its_error_rates(most):
    design = Design(tuple(f"a{i}" for i in range(6)), 3, most, margin=25.0, margin_source="test")
    trials = 3000
    for p in (0.3, 0.6, 0.9):  # every arm as base: any better/worse/mixed call is wrong
        verdict, _ = simulate(design, p, [p] * 6, trials=trials, seed=int(p * 10) + most)
        wrong = np.vectorize(lambda w: w.split(":")[0] in ("better", "worse", "mixed"))(verdict)
        se = math.sqrt(ALPHA * (1 - ALPHA) / trials)
        assert wrong.any(axis=1).mean() <= ALPHA + 2 * se
        assert wrong.mean() <= ALPHA / 6 + 2 * math.sqrt(ALPHA / 6 / (trials * 6))
    verdict, _ = simulate(design, 0.6, [1.0] * 6, trials=1000, seed=99)  # every seed escapes against 0.6
    assert not any("equivalent" in w for w in verdict.ravel())


@pytest.mark.parametrize("p_base, p_arm, spread", [(0.6, 0.6, 60.0), (0.9, 0.3, 20.0), (0.3, 0.9, 20.0)])
def test_escaped_quality_calls_stay_rare_when_escape_rates_or_spreads_differ(p_base, p_arm, spread):
    """The escaped seeds' FID is the same in arm and base, but the arm escapes at another rate or its
    escaped seeds spread 3 times as widely: a better/worse call on escaped quality is wrong. Its level
    is approximate (Welch at few seeds); family-wise such calls stay under alpha."""
    design = Design(tuple(f"a{i}" for i in range(6)), 3, 8, margin=25.0, margin_source="test")
    trials = 3000
    verdict, _ = simulate(design, p_base, [p_arm] * 6, trials=trials, seed=5, arm_escaped_fid=[(205.0, spread)] * 6)
    wrong = np.vectorize(lambda w: "escaped seeds score" in w)(verdict)
    assert wrong.any(axis=1).mean() <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / trials)


@pytest.mark.parametrize("late", [0.3, 0.5])
def test_escaped_seeds_in_two_clusters_keep_the_error_rate_that_welch_alone_loses(late):
    """At 20 epochs escaped seeds fell in two clusters (early escapers' FID near 100, late ones' near 185).
    Every arm is base: any better/worse call is wrong. Welch's interval alone (design version 2) often
    gets 2 or 3 seeds of one cluster a side, a far too small variance and a wrong call; the variance
    floor pooled over the arms (version 3) keeps the rate under its promise. With every seed escaping
    only escaped quality can err: its promise is its share, alpha/2."""
    design = Design(tuple(f"a{i}" for i in range(6)), 3, 6, margin=20.0, margin_source="test")  # the 20-epoch one
    mixture = [(1 - late, 100.0, 10.0), (late, 185.0, 15.0)]
    trials = 3000
    wrong = np.vectorize(lambda w: w.split(":")[0] in ("better", "worse", "mixed"))
    for p, promise in ((0.6, ALPHA), (1.0, ALPHA / 2)):
        se = math.sqrt(promise * (1 - promise) / trials)
        rates = [wrong(simulate(design, p, [p] * 6, trials=trials, seed=21, escaped_fid=mixture, floor=floor)[0])
                 .any(axis=1).mean() for floor in (True, False)]
        assert rates[0] <= promise + 2 * se
        if late == 0.5 and p == 1.0:  # what the floor is for: without it the promise is broken
            assert rates[1] > ALPHA + 2 * se


def test_the_floor_widens_an_interval_narrower_than_the_pooled_spread_and_always_holds_the_unfloored_one():
    from harness import statistics as st
    groups = [[100.0, 101.0], [185.0, 186.0, 99.0], [120.0], []]
    var, df = st.pooled_variance(groups)
    assert df == 3 and var == pytest.approx((0.5 + np.var([185.0, 186.0, 99.0]) * 3) / 3)
    assert math.isnan(st.pooled_variance([[1.0], []])[0])
    c = sq.critical([1], 1, 0.05)
    tight = sq.rci([100.0, 101.0], [185.0, 186.0], c)  # one cluster a side: a narrow interval far from 0
    floored = sq.rci([100.0, 101.0], [185.0, 186.0], c, floor=var)
    assert tight[:1] == floored[:1] and floored[2] - floored[1] > 20 * (tight[2] - tight[1])
    wide = [150.0, 250.0, 200.0]
    assert sq.rci(wide, wide[::-1], c, floor=1.0) == sq.rci(wide, wide[::-1], c)  # own spread above it: unchanged
    d, low, high, _ = sq.rci([636.0] * 5, [636.0] * 5, c, floor=var)  # no spread of its own: the floor's width
    assert d == 0 and low < 0 < high
    # A floor raising the smaller side's variance raises Welch's df; the interval still holds the unfloored
    # one (the 5-epoch smoothing arm's 2 escaped seeds against base's 3, floor 19 FID squared).
    rng = np.random.default_rng(7)
    for a, b, floor in [([176.0, 224.0], [212.0, 222.0, 210.0], 372.0)] + [
            (rng.normal(200, rng.uniform(1, 60), rng.integers(2, 7)), rng.normal(200, rng.uniform(1, 60), rng.integers(2, 7)),
             rng.uniform(0, 3000)) for _ in range(200)]:
        _, low, high, _ = sq.rci(a, b, c, floor)
        _, low0, high0, _ = sq.rci(a, b, c)
        assert low <= low0 + 1e-9 and high0 <= high + 1e-9


def test_the_simulation_floors_as_the_design_does_and_analyse_applies_it():
    from harness.compare import analyse
    from harness.compare.design import judge, spread_floor
    from harness.compare.simulation import _floor, _moments
    rng = np.random.default_rng(8)
    for _ in range(50):  # simulate's per-trial floor against design.spread_floor on the same seeds
        escaped = [rng.random(6) < 0.7 for _ in range(4)]
        fids = [rng.normal(150, 40, 6) for _ in range(4)]
        arms = _arms({f"a{i}": [(float(f), not e) for f, e in zip(fids[i], escaped[i])] for i in range(4)})
        moments = [_moments(e[None, :], f[None, :], 6) for e, f in zip(escaped, fids)]
        assert _floor(moments)[0] == pytest.approx(spread_floor(arms), rel=1e-9, abs=1e-9)
    # base's 3 escaped seeds in one cluster, an arm's in the other: alone, a narrow interval calls it better;
    # another arm's escaped seeds span both clusters, and through the floor analyse leaves it undecided.
    arms = _arms({"base": [(185.0, False), (186.0, False), (187.0, False)],
                  "tanh": [(100.0, False), (101.0, False), (102.0, False)],
                  "smoothing": [(100.0, False), (185.0, False), (101.0, False), (186.0, False), (99.0, False)]})
    design = Design(("tanh", "smoothing"), 3, 3, margin=20.0, margin_source="test")
    assert judge(arms[1], arms[0], design).verdict.startswith("better")
    (_, tanh, _) = analyse(arms, 20.0, "test")
    assert tanh.verdict == "undecided" and tanh.quality.diff[1] < 0 < tanh.quality.diff[2]


def _arms(spec: dict):
    """Synthetic arms of one group: name -> list of (final FID or None for diverged, collapsed?)."""
    from harness import compare, identity
    from harness.compare.arms import SeedOutcome
    from harness.registry import resolve
    _, c = resolve("base", smoke=True)
    arms = []
    for name, seeds in spec.items():
        arm = compare.Arm(name, {}, c, "mnist-5k", identity.of(c, "fingerprint", "tensorflow", "cpu", classifier="c"))
        for i, (fid, collapsed) in enumerate(seeds):
            if fid is None:
                arm.runs.append(SeedOutcome(f"{name}{i:07d}", i, "diverged", reason="a non-finite loss at step 40"))
            else:
                metrics = {"fid": fid, "is": 2.0, "kid": 20.0, "modes": 1.0 if collapsed else 9.0,
                           "precision": 0.8, "recall": 0.0 if collapsed else 0.3}
                arm.runs.append(SeedOutcome(f"{name}{i:07d}", i, "finished", metrics,
                                            collapse="1 of 10 digit classes" if collapsed else ""))
        arms.append(arm)
    return arms


BLANK = (636.0, True)


@pytest.mark.parametrize("case", ["two seeds", "none escaped", "blank ties", "diverged", "four against five",
                                  "two clusters"])
def test_the_report_has_words_or_numbers_in_every_cell(case):
    from harness.compare import analyse, markdown
    spec = {"two seeds": {"base": [(210.0, False), (560.0, True)], "tanh": [BLANK, (190.0, False)]},
            "none escaped": {"base": [(210.0, False), (220.0, False), (560.0, True)], "tanh": [BLANK] * 3},
            "blank ties": {"base": [BLANK] * 5, "tanh": [BLANK] * 5},
            "diverged": {"base": [(210.0, False), (220.0, False), (205.0, False)],
                         "smoothing": [(None, False), (200.0, False), (215.0, False)]},
            "four against five": {"base": [(212.0, False), (567.0, True), (554.0, True), (222.0, False), (210.0, False)],
                                  "latent": [(186.0, False), (208.0, False), (243.0, False), (265.0, True)]},
            # the first 20-epoch attempt's seeds (since lost): two escaped 87 apart, whose t interval reaches far below 0
            "two clusters": {"base": [(99.0, False), (262.0, True), (186.0, False)],
                             "smoothing": [(123.0, False), (134.0, False), (153.0, False)]}}[case]
    arms = _arms(spec)
    design = Design(tuple(a.label for a in arms[1:]), 5, 5, margin=20.0, margin_source="test")
    results = analyse(arms, 20.0, "test")
    report = markdown(results, arms, "Settings: synthetic", [], design)
    assert "nan" not in report.lower() and "e+0" not in report and "inf" not in report.lower()
    table = report.split("## The answer")[1].split("\n\n")[2]
    for line in table.splitlines()[2:]:
        cells = line.strip("|").split("|")
        assert all(cell.strip() for cell in cells), line
        assert "[-" not in cells[4] + cells[7], line  # a mean FID's interval stays where FID can lie
    if case == "blank ties":
        assert "636 (all alike: no interval)" in report and "[636, 636]" not in report
    if case == "four against five":
        assert results[1].seeds == 4 and results[0].seeds == 5


def test_the_verdict_comes_from_escape_or_escaped_quality_never_a_mean_over_both_modes():
    from harness.compare import analyse
    # base: 3 of 5 escaped near 210; arm: every seed escaped near 208. The mean over all seeds differs a
    # lot (352 vs 208); the escaped seeds do not, and 5 of 5 against 3 of 5 cannot be significant.
    arms = _arms({"base": [(212.0, False), (567.0, True), (554.0, True), (222.0, False), (210.0, False)],
                  "batchnorm": [(198.0, False), (207.0, False), (216.0, False), (203.0, False), (211.0, False)]})
    (base, arm) = analyse(arms, 30.0, "test")
    assert arm.escape.decision == "" and arm.quality.decision == "equivalent"
    assert arm.verdict == "undecided" and "the escape rate is not shown equal" in arm.note
    (_, arm) = analyse(arms, None, "")  # no margin: no equivalence
    assert arm.quality.decision == "" and arm.verdict == "undecided"
    # escaped seeds clearly lower on both sides' escapes: better, said with its endpoint
    arms = _arms({"base": [(300.0, False), (310.0, False), (305.0, False), (302.0, False)],
                  "tanh": [(200.0, False), (203.0, False), (198.0, False), (201.0, False)]})
    (_, arm) = analyse(arms, None, "")
    assert arm.verdict == "better: its escaped seeds score lower FID"
    (_, arm) = analyse(arms, None, "", primary="tanh")
    assert arm.verdict.startswith("better")
    arms = _arms({"base": [(300.0, False)] * 2 + [(301.0, False)] * 2, "tanh": [(200.0, False)] * 4,
                  "smoothing": [(200.0, False), (201.0, False)] * 2})
    results = analyse(arms, None, "", primary="smoothing")
    assert results[1].verdict == "estimate only (--primary smoothing)"
