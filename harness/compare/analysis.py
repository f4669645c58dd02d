"""The statistics of each arm against base (harness/statistics.py holds the tests): means and t
intervals, Welch's difference with Holm's correction, power, failure rates and the verdict rule."""
from __future__ import annotations

import math

import numpy as np

from harness import statistics as st
from harness.compare.arms import METRICS, Arm
from metrics.scorer import LOWER_IS_BETTER, RANGE


def analyse(arms: list[Arm]) -> list[dict]:
    """One row per arm: outcome counts; mean and t interval per metric over finished seeds; difference
    from base with its Welch interval, Welch p, Holm, verdict; power; diverged and collapsed rates
    against base (Fisher, Holm). An arm with base's very identity (latent at 100) is not tested twice."""
    by_group = {}
    for arm in arms:
        by_group.setdefault(arm.group, []).append(arm)
    rows = []
    for group, members in by_group.items():
        base = next((a for a in members if a.experiment == "base" and not a.point), None)
        tested = [a for a in members if a is not base and not a.twin and base is not None]
        p_raw = {id(a): st.welch_p(a.values("fid"), base.values("fid")) for a in tested}
        p_holm = dict(zip(p_raw, st.holm(list(p_raw.values()))))
        m = max(1, sum(not math.isnan(p) for p in p_raw.values()))
        # The secondary test: a diverged seed counts at the worst final FID of any finished seed here.
        ceiling = max((v for a in members for v in a.values("fid")), default=float("nan"))
        with_ceiling = {id(a): a.values("fid") + [ceiling] * a.count("diverged") for a in members}
        p_ceiling_raw = {id(a): st.welch_p(with_ceiling[id(a)], with_ceiling[id(base)]) for a in tested}
        p_ceiling = dict(zip(p_ceiling_raw, st.holm(list(p_ceiling_raw.values()))))
        rates = {}
        for outcome in ("diverged", "collapsed"):
            n_of = (lambda a: len(a.runs)) if outcome == "diverged" else (lambda a: a.count("finished"))
            raw = {id(a): st.fisher_p(a.count(outcome), n_of(a), base.count(outcome), n_of(base)) for a in tested}
            family = max(1, sum(not math.isnan(p) for p in raw.values()))  # this rate's own Holm family
            rates[outcome] = (raw, dict(zip(raw, st.holm(list(raw.values())))), n_of, family)
        for arm in members:
            row = {"arm": arm.label, "experiment": arm.experiment, "group": group, "n": len(arm.runs),
                   "n_fid": len(arm.values("fid")), "finished": arm.count("finished"),
                   "diverged": arm.count("diverged"), "collapsed": arm.count("collapsed"), "is_base": arm is base,
                   "tests": m, "alpha_power": st.ALPHA / m, "ceiling": ceiling}
            for metric in METRICS:
                row[metric] = st.mean_ci(arm.values(metric), RANGE[metric])
                if arm in tested:
                    row[f"d_{metric}"] = st.diff_ci(arm.values(metric), base.values(metric))
            if arm is base:
                row["verdict"] = "reference"
            elif arm.twin:
                row["verdict"] = f"the same run identity as {arm.twin}: the same runs, not a separate test"
            elif base is None:
                row["verdict"] = (f"not compared: no base arm with the same data, backend, code version and "
                                  f"metric settings (this arm: {group[0]}, {group[2]} on {group[3]}, N={group[7]})")
            else:
                a, b = arm.values("fid"), base.values("fid")
                row["p"], row["p_holm"] = p_raw[id(arm)], p_holm[id(arm)]
                row["p_ceiling"], row["p_ceiling_holm"] = p_ceiling_raw[id(arm)], p_ceiling[id(arm)]
                row["d_fid_ceiling"] = st.diff_ci(with_ceiling[id(arm)], with_ceiling[id(base)])
                row["detectable"] = st.detectable(a, b, st.ALPHA / m)
                row["effect_of_interest"] = EFFECT_OF_INTEREST * float(np.mean(b)) if b else float("nan")
                row["needed"] = st.seeds_needed(row["effect_of_interest"], a, b, st.ALPHA / m)
                row["verdict"] = failed_seeds_rule(st.verdict(row["d_fid"][0], row["p_holm"], len(a), len(b),
                                                              lower_is_better=LOWER_IS_BETTER["fid"]), arm, base)
                for outcome, (raw, adjusted, n_of, family) in rates.items():
                    row[f"{outcome}_p"], row[f"{outcome}_p_holm"] = raw[id(arm)], adjusted[id(arm)]
                    row[f"{outcome}_needs"] = st.smallest_significant_count(n_of(arm), n_of(base), st.ALPHA / family)
                    row[f"{outcome}_family"] = family
            rows.append(row)
    return rows


EFFECT_OF_INTEREST = 0.10  # the FID difference the report sizes seeds for: 10% of base's mean


def failed_seeds_rule(verdict: str, arm: Arm, base: Arm) -> str:
    """The FID verdict is Welch's on the finished seeds; an arm with more failed seeds (diverged plus
    collapsed) than base is never called better, and a verdict on survivors says how many did not."""
    failed, base_failed = arm.failed, base.failed
    if verdict == "better" and failed > base_failed:
        return (f"not called better: {failed} of {len(arm.runs)} seeds failed (diverged or collapsed) against "
                f"base's {base_failed} of {len(base.runs)}, though its finished seeds' FID is lower")
    if arm.count("diverged"):
        return f"{verdict}, on its {arm.count('finished')} finished seeds ({arm.count('diverged')} diverged: see the ceiling test)"
    return verdict
