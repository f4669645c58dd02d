"""Each arm against base at the seeds it has (one look): the decision design of harness/compare/design.py
applied once, per group of arms that may be compared (same data, backend, code and metric settings)."""
from __future__ import annotations

from harness import escape as es
from harness import statistics as st
from harness.compare.arms import Arm
from harness.compare.design import ArmResult, Design, Escape, Quality, judge, spread_floor
from metrics.scorer import RANGE


def reference(arm: Arm, verdict: str = "reference") -> ArmResult:
    """An arm's own counts and escaped quality, with no comparison (base, or an arm not compared)."""
    k, n = arm.count("escaped"), len(arm.runs)
    return ArmResult(arm.label, n, arm.count("finished"), arm.count("diverged"), arm.count("collapsed"),
                     Escape(k, n, es.clopper_pearson(k, n)), Quality(len(arm.escaped_fids()), st.mean_ci(arm.escaped_fids(), RANGE["fid"])),
                     verdict=verdict, look=n)


def analyse(arms: list[Arm], margin: float | None = None, margin_source: str = "", primary: str | None = None
            ) -> list[ArmResult]:
    """One result per arm, base's first in each group. An arm with base's very identity (latent at 100)
    is not tested twice."""
    by_group: dict = {}
    for arm in arms:
        by_group.setdefault(arm.group, []).append(arm)
    results = []
    for group, members in by_group.items():
        base = next((a for a in members if a.experiment == "base" and not a.sweep_value), None)
        tested = [a for a in members if a is not base and not a.same_as and base is not None]
        most = max([len(a.runs) for a in members] + [1])
        design = Design(tuple(a.label for a in tested), most, most, margin=margin,
                        margin_source=margin_source or Design.margin_source,
                        primary=primary if primary in {a.label for a in tested} else None)
        floor = spread_floor([base, *tested]) if base is not None else 0.0
        for arm in members:
            if arm is base:
                results.append(reference(arm))
            elif arm.same_as:
                results.append(reference(arm, f"the same run identity as {arm.same_as}: the same runs, not a separate test"))
            elif base is None:
                results.append(reference(arm, f"not compared: no base arm with the same data, backend, code version "
                                              f"and metric settings (this arm: {group[0]}, {group[2]} on {group[3]}, "
                                              f"N={group[7]})"))
            else:
                results.append(judge(arm, base, design, floor=floor))
    return results
