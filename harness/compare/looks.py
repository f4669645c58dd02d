"""`harness compare --until-decided`: seeds are spent in rounds, one more a side each round (a look),
until every arm is decided (harness/sequential.py holds the statistics).

The design is fixed at the first look and written to the store as a run of kind `design` (arms, looks,
spending, level, margin and how it was chosen, the endpoint); the same command finds it again, so an
interrupted comparison resumes at its look and every run of an earlier look is reused. Adding arms makes
another family, with a design of its own.

Per look, for every arm still undecided: base and the arm get seeds up to the look's count (schedule.fill
trains only what is missing), then its repeated confidence interval for the FID difference decides:
better or worse (it excludes 0), equivalent (inside +-margin), or another round. The failed-seeds rule
holds at every look: an arm with more diverged plus collapsed seeds than base never stops as better.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from harness import config as cfg
from harness import sequential as sq
from harness import statistics as st
from harness import tracking
from harness.compare.arms import Arm, left_out
from harness.compare.schedule import fill
from harness.config import UserError

DESIGN_KIND = "design"
ENDPOINT = ("final classifier-FID of the finished seeds (Welch); a diverged seed has none and counts under the "
            "failed-seeds rule: an arm with more diverged plus collapsed seeds than base never stops as better")


@dataclass
class Decision:
    """How an arm ended: its verdict, the look it stopped at and the interval there, each look's interval."""
    verdict: str  # better / worse / equivalent / undecided
    seeds: int  # seeds a side at the look it stopped (or the last)
    interval: tuple  # (difference, low, high) of FID, arm minus base
    note: str = ""
    history: list = field(default_factory=list)  # (seeds, difference, low, high) at each look


def family(arms: list[Arm], first: int, most: int, spending: str, gamma: float) -> str:
    """What makes a family: the arms' identities (base's first) and the looks and spending."""
    key = {"arms": [a.digest for a in arms], "first": first, "most": most, "alpha": st.ALPHA, "spending": spending,
           "gamma": gamma}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def find_design(client, experiment: str, key: str):
    """(Design, run id) registered for this family, or None."""
    for run in tracking.all_runs(client, experiment):
        tags = run.data.tags
        if tags.get("kind") == DESIGN_KIND and tags.get("design.family") == key:
            p = run.data.params
            design = sq.Design(tuple(json.loads(p["arms"])), int(p["first"]), int(p["most"]), float(p["alpha"]),
                               float(p["margin"]), p["margin_source"], p["spending"], float(p["gamma"]))
            return design, run.info.run_id
    return None


def register(client, experiment: str, key: str, design: sq.Design) -> str:
    """Write the design record as a run of its own; returns its id."""
    run_id = tracking.start_run(client, experiment, f"design-{key[:8]}", {"kind": DESIGN_KIND, "design.family": key})
    tracking.log_params(client, run_id, {"arms": json.dumps(list(design.arms)), "K": len(design.arms),
                                         "first": design.first, "most": design.most, "alpha": design.alpha,
                                         "level": design.level, "spending": design.spending, "gamma": design.gamma,
                                         "margin": design.margin, "margin_source": design.margin_source,
                                         "endpoint": ENDPOINT})
    client.set_terminated(run_id, "FINISHED")
    return run_id


def judge(arm: Arm, base: Arm, design: sq.Design, look: int) -> tuple[str, tuple, str]:
    """(verdict or '', (difference, low, high), note) of an arm at the look with `look` seeds a side."""
    a, b = arm.values("fid"), base.values("fid")
    if len(a) < 2 or len(b) < 2:
        return "", (math.nan,) * 3, f"under 2 finished seeds a side ({len(a)} vs {len(b)}): no interval yet"
    d, low, high, _ = sq.rci(a, b, design, look)
    verdict = sq.decide(low, high, design.margin)
    failed = arm.count("diverged") + arm.count("collapsed")
    base_failed = base.count("diverged") + base.count("collapsed")
    if verdict == "better" and failed > base_failed:
        return "", (d, low, high), (f"its interval is below 0, but {failed} of {len(arm.runs)} seeds failed against "
                                    f"base's {base_failed}: not called better")
    return verdict, (d, low, high), ""


def until_decided(arms: list[Arm], datasets: dict, client, experiment: str, first: int, most: int,
                  margin: float | None, retry_diverged: bool = False, spending: str = "pocock",
                  gamma: float = 1.0) -> tuple[dict, dict, sq.Design, str]:
    """Run the looks; returns (arm label -> Decision, fill's totals, the design, the design run's id)."""
    if not 2 <= first <= most:
        raise UserError(f"--until-decided needs 2 <= --seeds <= --max-seeds (got {first} and {most}).")
    base, tested = arms[0], [a for a in arms[1:] if not a.twin]
    other = [a.label for a in tested if a.group != base.group]
    if other:
        raise UserError(f"--until-decided compares arms of one data, backend and metric setting with base; "
                        f"{', '.join(other)} differ.")
    key = family([base, *tested], first, most, spending, gamma)
    found = find_design(client, experiment, key)
    design, design_id = found if found else (None, "")
    if design is not None and margin is not None and not math.isclose(margin, design.margin):
        raise UserError(f"this family's design (run {design_id}) registered the margin {design.margin:g} at its "
                        "first look; it cannot change now (change the arms or the looks for a new family).")
    print(f"--until-decided: looks at {first} to {most} seeds a side; at most "
          f"{(len(tested) + 1) * most} runs if no arm is decided early. Each round's plan follows.", file=sys.stderr)
    decisions: dict = {}
    histories: dict = {a.label: [] for a in tested}  # (seeds, difference, low, high) at each look
    totals = {"trained": 0, "resumed": 0, "left_out": []}
    for look in range(first, most + 1):
        active = [a for a in tested if a.label not in decisions]
        if not active:
            break
        for arm in [base, *active]:
            arm.config, arm.runs = cfg.replace(arm.config, {"train.seeds": look}), []
        print(f"look at {look} seeds a side: {', '.join(a.label for a in active)}", file=sys.stderr)
        done = fill([base, *active], datasets, client, retry_diverged)
        totals["trained"] += done["trained"]
        totals["resumed"] += done["resumed"]
        totals["left_out"] = done["left_out"]
        if design is None:  # the first look: the margin from base's seeds alone, before any arm is judged
            design = _design([a.label for a in tested], first, most, margin, base, spending, gamma)
            design_id = register(client, experiment, key, design)
        for arm in active:
            verdict, interval, note = judge(arm, base, design, look)
            histories[arm.label].append((look, *interval))
            if verdict or look == most:
                decisions[arm.label] = Decision(verdict or "undecided", look, interval,
                                                note or ("" if verdict else _within(interval)), histories[arm.label])
            print(f"  {arm.label}: Δ FID {_interval(interval)} at {look} seeds a side: "
                  f"{verdict or ('undecided' if look == most else 'another round')}{'; ' + note if note else ''}",
                  file=sys.stderr)
    runs_of = {a.experiment: tracking.all_runs(client, a.experiment) for a in arms}
    for arm in arms:  # every arm's runs as they ended (a twin's are its original's)
        arm.runs = arm.runs if not arm.twin else next(a for a in arms if a.label == arm.twin).runs
    totals["left_out"] = left_out(arms, runs_of)
    return decisions, totals, design, design_id


def _design(arms: list[str], first: int, most: int, margin: float | None, base: Arm, spending: str,
            gamma: float) -> sq.Design:
    if margin is not None:
        return sq.Design(tuple(arms), first, most, st.ALPHA, margin, "given (--margin)", spending, gamma)
    pilot = base.values("fid")
    if len(pilot) < 2:
        raise UserError(f"base has {len(pilot)} finished seeds at the first look: no pilot standard deviation "
                        "for the margin; give --margin.")
    sd = float(np.std(pilot, ddof=1))
    value = sq.default_margin(sd, first, most, st.ALPHA, len(arms), spending, gamma)
    source = (f"from base's standard deviation at the first look ({sd:.3g} over {len(pilot)} seeds), so that an arm "
              f"no different from base lies inside it at {most} seeds with about 80% probability")
    return sq.Design(tuple(arms), first, most, st.ALPHA, value, source, spending, gamma)


def _interval(interval: tuple) -> str:
    d, low, high = interval
    return "-" if math.isnan(d) else f"{d:+.3g} [{low:+.3g}, {high:+.3g}]"


def _within(interval: tuple) -> str:
    """For an undecided arm: the equivalence its interval does establish."""
    d, low, high = interval
    return "" if math.isnan(d) else f"equivalent within ±{max(abs(low), abs(high)):.3g}"
