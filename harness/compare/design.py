"""The decision design of an ablation: what decides an arm against base, at what level, and the record of
one arm's result at a look. GAN seeds at affordable lengths are bimodal (a seed escapes its early
collapse or it does not), so no verdict rests on a mean FID over both modes:

- **Escape** (primary): k of n seeds escaped (finished, final samples not judged collapsed). Decided by
  Fisher's exact test at each look at a nominal level whose worst-case sequential type I error over a
  common escape probability is at most its share of alpha over the K arms (harness/escape.py: exact).
- **Quality among escaped seeds** (secondary): the escaped seeds' final FID, arm minus base, by repeated
  confidence intervals (harness/sequential.py) at its share of alpha over the K arms, once each side has 2
  or more escaped seeds: better or worse when the interval excludes 0; equivalent when it lies inside
  +-margin, a margin fixed before the first look (given, or the experiment file's documented default;
  never estimated from the seeds). Without a margin no equivalence is claimed. Each side's variance is at
  least the within-arm variance of the escaped FIDs pooled over base and every arm at that look
  (spread_floor), and the degrees of freedom at most Welch's on the sides' own: escaped seeds too fall in
  clusters (early and late escapers at 20 epochs lay 87 FID apart, in a first attempt since lost), and 2
  or 3 seeds from one cluster would otherwise make a narrow interval. Its error rate holds (by simulation)
  when the arms' escaped FIDs share one shape, one cluster or the same two; when base alone, or one arm
  alone, is in two clusters, or one arm spreads 12 times as widely as the rest, it is exceeded
  (bench/bimodal_design.py, docs/statistics.md).
- **Rank summary** (its own family, not part of the verdict): the probability of improvement
  P(FID_arm < FID_base) over every seed, with an exact Mann-Whitney test at a calibrated level
  (harness/ranks.py).

alpha is split evenly between the two decided endpoints, so the chance of any wrong better/worse call
over all arms and both endpoints is at most alpha (Bonferroni; exact for escape, approximate for the
escaped seeds' intervals, checked by simulation in tests/test_decisions.py, on one cluster and two);
with `--primary ARM` only that arm is decided (K = 1) and the others are reported as estimates. An arm
is never called "equivalent" outright: escape rates cannot be shown equal with a handful of seeds, so
only its escaped quality can be.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness import escape as es
from harness import ranks as rk
from harness import sequential as sq
from harness import statistics as st
from metrics.scorer import RANGE

ESCAPE_SHARE = 0.5  # of alpha for the escape endpoint; the rest for escaped quality
POWER_AT = (0.6, 1.0)  # the escape probabilities (base, arm) at which the report states the rule's power


@dataclass(frozen=True)
class Design:
    """Fixed before the first look: the arms decided, the looks, alpha and its split, the margin."""
    arms: tuple  # labels of the arms compared with base
    first: int  # seeds a side at the first look
    most: int  # seeds a side at the last look
    alpha: float = st.ALPHA
    margin: float | None = None  # escaped-quality equivalence margin, FID units; None: no equivalence claimed
    margin_source: str = "none given: no equivalence is claimed"
    primary: str | None = None  # the one arm decided at the full alpha; the others are estimates
    spending: str = "pocock"
    gamma: float = 1.0

    @property
    def k(self) -> int:
        """Arms whose decisions share alpha."""
        return 1 if self.primary else max(1, len(self.arms))

    @property
    def looks(self) -> list[int]:
        return list(range(self.first, self.most + 1))

    @property
    def escape_level(self) -> float:
        return self.alpha * ESCAPE_SHARE / self.k

    @property
    def quality_level(self) -> float:
        return self.alpha * (1 - ESCAPE_SHARE) / self.k

    @property
    def rank_level(self) -> float:
        return self.alpha / self.k

    def decides(self, label: str) -> bool:
        return self.primary is None or label == self.primary

    def escape_rule(self, seeds: tuple | None = None) -> es.EscapeRule:
        """The rule over the design's looks; seeds: (the arm's, base's) at a single look of unequal seeds."""
        looks = ((seeds,) if seeds else tuple((n, n) for n in self.looks))
        return es.rule(looks, self.escape_level)

    def rank_rule(self, seeds: tuple | None = None) -> rk.RankRule:
        looks = ((seeds,) if seeds else tuple((n, n) for n in self.looks))
        return rk.rule(looks, self.rank_level)

    def critical(self, look: int) -> float:
        """The escaped-quality interval's normal critical value at the look with `look` seeds a side."""
        return sq.critical(self.looks, look, self.quality_level, self.spending, self.gamma)

    def record(self) -> dict:
        """The design as the store keeps it: every level, and what the rules are, in numbers."""
        rule, ranks = self.escape_rule(), self.rank_rule()
        return {"arms": list(self.arms), "primary": self.primary or "none", "K": self.k, "first": self.first,
                "most": self.most, "alpha": self.alpha, "escape.level": self.escape_level,
                "escape.gamma": rule.gamma, "escape.worst": rule.worst, "escape.p_worst": rule.p_worst,
                "escape.power": rule.power(*POWER_AT), "quality.level": self.quality_level,
                "quality.floor": "pooled within-arm variance of the escaped FIDs",
                "margin": "none" if self.margin is None else self.margin, "margin_source": self.margin_source,
                "spending": self.spending, "gamma": self.gamma, "rank.level": self.rank_level,
                "rank.gamma": ranks.gamma, "rank.rate": ranks.rate, "rank.mc_se": ranks.mc_se,
                "rank.trials": ranks.trials}


@dataclass
class Escape:
    """An arm's escaped seeds and, against base, the difference of rates and the decision on it."""
    k: int
    n: int
    interval: tuple = (math.nan, math.nan)  # Clopper-Pearson 95%
    diff: tuple = (math.nan,) * 3  # arm minus base, Newcombe 95%
    prob_more: float = math.nan  # P(the arm escapes more often than base), Beta(1, 1) priors
    p: float = math.nan  # Fisher's two-sided exact p at this look
    decision: str = ""  # more / fewer / ''
    k_ref: int = 0  # base's escaped seeds, of n_ref, at the same look
    n_ref: int = 0


@dataclass
class Quality:
    """The escaped seeds' final FID and, against base's escaped seeds, the decision on it."""
    n: int
    fid: tuple = (math.nan,) * 3  # mean, Student t 95% interval
    diff: tuple = (math.nan,) * 3  # arm minus base, repeated confidence interval at the design's level
    decision: str = ""  # better / worse / equivalent / ''
    note: str = ""


@dataclass
class Rank:
    improvement: float = math.nan  # P(an arm seed's FID < a base seed's), ties half
    p: float = math.nan  # exact Mann-Whitney, two-sided
    decision: str = ""  # lower / higher / '' at the calibrated level


@dataclass
class ArmResult:
    """One arm at one look: counts, the three endpoints, and the verdict in words."""
    label: str
    seeds: int
    finished: int
    diverged: int
    collapsed: int
    escape: Escape
    quality: Quality
    rank: Rank = field(default_factory=Rank)
    verdict: str = ""
    note: str = ""
    look: int = 0  # seeds a side at the look it was judged

    @property
    def decided(self) -> bool:
        return self.verdict.split(":")[0] in ("better", "worse", "mixed")


def combine(escape: str, quality: str) -> str:
    """The verdict from the two decided endpoints (escape: more / fewer / ''; quality: better / worse /
    equivalent / ''): better, worse, mixed, or undecided, said with the endpoints that carry it."""
    up = {"more": "more seeds escape", "better": "its escaped seeds score lower FID"}
    down = {"fewer": "fewer seeds escape", "worse": "its escaped seeds score higher FID"}
    good = [up[e] for e in (escape, quality) if e in up]
    bad = [down[e] for e in (escape, quality) if e in down]
    if good and bad:
        return f"mixed: {good[0]}, but {bad[0]}"
    if good:
        return "better: " + " and ".join(good)
    if bad:
        return "worse: " + " and ".join(bad)
    return "undecided"


def spread_floor(arms) -> float:
    """The escaped-quality intervals' variance floor: the within-arm variance of the escaped seeds' final
    FID pooled over these arms (base and every arm of the family, each at its latest look); 0 when no arm
    has 2 escaped seeds."""
    variance, _ = st.pooled_variance([a.escaped_fids() for a in arms])
    return 0.0 if math.isnan(variance) else variance


def judge(arm, base, design: Design, look: int | None = None, floor: float = 0.0) -> ArmResult:
    """The arm against base at the look with `look` seeds a side (None: a single look at the seeds each
    has, perhaps unequal); arm and base: harness/compare/arms.Arm; floor: spread_floor over the family."""
    seeds, ref_seeds = len(arm.runs), len(base.runs)
    single = (seeds, ref_seeds) if look is None else None
    k, k_ref = arm.count("escaped"), base.count("escaped")
    escape = Escape(k, seeds, es.clopper_pearson(k, seeds), k_ref=k_ref, n_ref=ref_seeds)
    if seeds and ref_seeds:
        escape.diff = es.newcombe(k, seeds, k_ref, ref_seeds)
        escape.prob_more = es.prob_more(k, seeds, k_ref, ref_seeds)
        escape.p = es.fisher_p(k, seeds, k_ref, ref_seeds)
        if design.decides(arm.label) and design.escape_rule(single).rejects(k, seeds, k_ref, ref_seeds):
            escape.decision = "more" if k / seeds > k_ref / ref_seeds else "fewer"
    quality = _quality(arm.escaped_fids(), base.escaped_fids(), design, look, single, floor)
    if not design.decides(arm.label):
        quality.decision = ""
    whole, whole_ref = arm.scores(), base.scores()
    rank = Rank(rk.improvement(whole, whole_ref), rk.exact_p(whole, whole_ref))
    if design.decides(arm.label) and design.rank_rule(single).rejects(whole, whole_ref):
        rank.decision = "lower" if rank.improvement > 0.5 else "higher"
    result = ArmResult(arm.label, seeds, arm.count("finished"), arm.count("diverged"), arm.count("collapsed"),
                       escape, quality, rank, look=look or seeds)
    if not design.decides(arm.label):
        result.verdict = f"estimate only (--primary {design.primary})"
        return result
    result.verdict = combine(escape.decision, quality.decision)
    notes = []
    if quality.decision == "equivalent" and not escape.decision:
        notes.append(f"escaped quality equivalent within ±{design.margin:g} FID; the escape rate is not shown equal")
    if quality.note:
        notes.append(quality.note)
    if quality.decision in ("better", "worse") and not escape.decision and k / max(1, seeds) < k_ref / max(1, ref_seeds):
        notes.append(f"fewer of its seeds escaped ({k} of {seeds} against {k_ref} of {ref_seeds}), not decided")
    result.note = "; ".join(n for n in notes if n)
    return result


def _quality(values: list, reference: list, design: Design, look: int | None, single: tuple | None,
             floor: float) -> Quality:
    quality = Quality(len(values), st.mean_ci(values, RANGE["fid"]))
    if len(values) < 2 or len(reference) < 2:
        quality.note = (f"under 2 escaped seeds a side ({len(values)} against {len(reference)}): no interval for "
                        "escaped quality")
        return quality
    c = design.critical(look) if single is None else sq.critical([1], 1, design.quality_level)  # one look
    d, low, high, _ = sq.rci(values, reference, c, floor)
    quality.diff = (d, low, high)
    if math.isnan(low):
        quality.note = "no spread among either side's escaped seeds: no interval"
        return quality
    quality.decision = sq.decide(low, high, design.margin)
    if quality.decision in ("better", "worse") and design.margin is not None and -design.margin < low and high < design.margin:
        quality.note = f"escaped quality {quality.decision} by less than the margin (±{design.margin:g})"
    return quality
