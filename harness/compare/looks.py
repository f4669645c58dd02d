"""`harness compare --until-decided`: seeds are spent in rounds, one more a side each round (a look),
until every arm is decided (harness/sequential.py holds the statistics).

The design is written to the store before the first look's training, as a run of kind `design` (arms,
looks, spending, level, endpoint), and its margin at the first look, from base's seeds alone unless one
is given. The same command finds it again, and each look's outcome runs are recorded in it, so an
interrupted comparison resumes at its look, no run is trained twice, and a later run of the same seed
cannot rewrite a look already made. Other arms or looks make another family, with a design of its own;
the report names the other families over the same arms.

Per look, for every arm still undecided: base and the arm get seeds up to the look's count (schedule.fill
trains only what is missing), then its repeated confidence interval for the FID difference decides:
better or worse (it excludes 0), equivalent (inside +-margin), or another round. The failed-seeds rule
holds at every look: an arm with more diverged plus collapsed seeds than base stops neither as better nor
as equivalent.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from harness import config as cfg
from harness import loop, plan
from harness import sequential as sq
from harness import statistics as st
from harness.compare.arms import Arm, data_key, left_out, outcome
from harness.compare.schedule import fill
from harness.config import UserError
from harness.tracking import RunState, Store

DESIGN_KIND = "design"
LOOKS = "looks.json"  # the design run's record of each look's outcome runs: {"seeds": {arm label: [run ids]}}
WIDE_MARGIN = 0.5  # a margin this share of base's mean FID or more makes "equivalent" say little
ENDPOINT = ("final classifier-FID of the finished seeds (Welch); a diverged seed has none and counts under the "
            "failed-seeds rule: an arm with more diverged plus collapsed seeds than base stops neither as better "
            "nor as equivalent")


@dataclass
class Decision:
    """How an arm ended: its verdict, the look it stopped at and the interval there, each look's interval."""
    verdict: str  # better / worse / equivalent / undecided
    seeds: int  # seeds a side at the look it stopped (or the last)
    interval: tuple  # (difference, low, high) of FID, arm minus base
    note: str = ""
    history: list = field(default_factory=list)  # (seeds, difference, low, high) at each look


@dataclass
class Family:
    """A design as the store holds it: the design, its run, the pilot, the looks' runs, other families."""
    design: sq.Design
    run_id: str
    pilot: tuple = ()  # (standard deviation, seeds) of base's first look, when the margin came from it
    looks: dict = field(default_factory=dict)  # "seeds" -> {arm label: [run ids]}
    budget: int | None = None  # the most runs the family may hold
    others: list = field(default_factory=list)  # (design run id, arm labels, decisions) over some of these arms


def family_key(base: Arm, tested: list[Arm], first: int, most: int, spending: str, gamma: float,
               budget: int | None = None) -> str:
    """What makes a family: base's identity, the arms' identities (in any order; with a run budget, in
    their order of priority), the looks, the spending, the budget."""
    key = {"base": base.digest, "arms": sorted(a.digest for a in tested), "first": first, "most": most,
           "alpha": st.ALPHA, "spending": spending, "gamma": gamma}
    if budget is not None:
        key.update(budget=budget, priority=[a.digest for a in tested])
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def decision_tag(label: str) -> str:
    """The design run's tag for an arm's decision. MLflow keys take no brackets or '=' (and '/' only where
    a path would keep it): latent[latent_dim=32] -> decision.latent:latent_dim:32."""
    return "decision." + re.sub(r"[^0-9A-Za-z_\-. ]", ":", label).rstrip(":")


def _designs(store: Store, experiment: str) -> list:
    return [r for r in store.runs(experiment) if r.data.tags.get("kind") == DESIGN_KIND]


def open_family(store: Store, experiment: str, key: str, base: Arm, tested: list[Arm], first: int, most: int,
                margin: float | None, spending: str, gamma: float, budget: int | None = None) -> Family:
    """This family's design from the store, or a new one written there now (its margin still open when it
    is to come from the first look)."""
    runs = _designs(store, experiment)
    mine = next((r for r in runs if r.data.tags.get("design.family") == key), None)
    digests = {a.digest for a in tested}
    others = []
    for r in runs:
        if r is not mine and digests & set(json.loads(r.data.params.get("digests", "[]"))):
            arms = json.loads(r.data.params.get("arms", "[]"))
            tags = r.data.tags  # earlier designs tagged 'decision.<label>' as it stood, slashes kept
            made = {arm: tags.get(decision_tag(arm), tags.get(f"decision.{arm}")) for arm in arms}
            made = {arm: v for arm, v in made.items() if v is not None}
            others.append((r.info.run_id, arms, made))
    labels = tuple(a.label for a in tested)
    if len({decision_tag(label) for label in labels}) < len(labels):
        raise UserError(f"arms {', '.join(labels)}: two of them differ only in characters an MLflow tag cannot "
                        "hold, so their decisions could not be told apart; compare them in separate commands.")
    if mine is None:
        run_id = store.start(experiment, f"design-{key[:8]}", {"kind": DESIGN_KIND, "design.family": key})
        store.params(run_id, {"arms": json.dumps(list(labels)), "digests": json.dumps(sorted(digests)),
                                             "base": base.digest, "K": len(tested), "first": first, "most": most,
                                             "alpha": st.ALPHA, "level": st.ALPHA / max(1, len(tested)),
                                             "spending": spending, "gamma": gamma, "endpoint": ENDPOINT,
                                             "budget": "none" if budget is None else budget})
        store.end(run_id, RunState.FINISHED)
        params, looks = {}, {}
    else:
        run_id, params = mine.info.run_id, mine.data.params
        looks = json.loads(store.read_text(run_id, LOOKS) or "{}")
    if "margin" in params:
        if margin is not None and not math.isclose(margin, float(params["margin"])):
            raise UserError(f"this family's design (run {run_id}) registered the margin {float(params['margin']):g} "
                            "at its first look; it cannot change now (other arms or looks make a new family).")
        design = sq.Design(labels, first, most, st.ALPHA, float(params["margin"]), params["margin_source"], spending, gamma)
        pilot = (float(params["pilot_sd"]), int(params["pilot_seeds"])) if "pilot_sd" in params else ()
        return Family(design, run_id, pilot=pilot, looks=looks, others=others, budget=budget)
    return Family(sq.Design(labels, first, most, st.ALPHA, math.nan, "", spending, gamma), run_id, looks=looks,
                  others=others, budget=budget)


def set_margin(store: Store, fam: Family, base: Arm, margin: float | None) -> None:
    """At the first look, before any arm is judged: the given margin, or one from base's seeds alone."""
    d = fam.design
    if margin is not None:
        value, source, extra = margin, "given (--margin)", {}
    else:
        pilot = base.values("fid")
        if len(pilot) < 2:
            raise UserError(f"base has {len(pilot)} finished seeds at the first look: no pilot standard deviation "
                            "for the margin; give --margin.")
        sd = float(np.std(pilot, ddof=1))
        value = sq.default_margin(sd, d.first, d.most, d.alpha, len(d.arms), d.spending, d.gamma)
        source = (f"from base's standard deviation at the first look, {sd:.3g} over {len(pilot)} seeds: if that were "
                  f"the true spread, an arm no different from base would end inside it at {d.most} seeds with about "
                  f"80% probability; {len(pilot)} seeds estimate a spread loosely, so that chance is uncertain")
        extra = {"pilot_sd": sd, "pilot_seeds": len(pilot)}
        fam.pilot = (sd, len(pilot))
        mean = float(np.mean(pilot))
        if value >= WIDE_MARGIN * mean:  # seeds this spread apart make equivalence nearly free
            print(f"  note: the margin, {value:.3g} FID, is {value / mean:.0%} of base's mean FID ({mean:.3g}) at "
                  "this look: 'equivalent' within it will say little, and the report says so. This design's margin "
                  "is registered now; a margin that matters is given with --margin at a new design's first look "
                  "(other arms, looks or budget).", file=sys.stderr)
    store.params(fam.run_id, {"margin": value, "margin_source": source, **extra})
    fam.design = sq.Design(d.arms, d.first, d.most, d.alpha, value, source, d.spending, d.gamma)


def judge(arm: Arm, base: Arm, design: sq.Design, look: int) -> tuple[str, tuple, str]:
    """(verdict or '', (difference, low, high), note) of an arm at the look with `look` seeds a side."""
    a, b = arm.values("fid"), base.values("fid")
    if len(a) < 2 or len(b) < 2:
        return "", (math.nan,) * 3, f"under 2 finished seeds a side ({len(a)} vs {len(b)}): no interval yet"
    d, low, high, _ = sq.rci(a, b, design, look)
    verdict = sq.decide(low, high, design.margin)
    failed, base_failed = arm.failed, base.failed
    if verdict in ("better", "equivalent") and failed > base_failed:
        return "", (d, low, high), (f"its finished seeds say {verdict}, but {failed} of {len(arm.runs)} seeds failed "
                                    f"against base's {base_failed}: not called {verdict}")
    if verdict in ("better", "worse") and -design.margin < low and high < design.margin:
        return verdict, (d, low, high), f"by less than the margin (±{design.margin:.3g})"
    return verdict, (d, low, high), ""


def _replay(store: Store, fam: Family, look: int, arms: list[Arm]) -> None:
    """Hold each arm to the runs recorded for this look (a later run of a seed does not rewrite it), or
    record them now."""
    recorded = fam.looks.get(str(look), {})
    for arm in arms:
        ids = [r["run_id"] for r in arm.runs]
        if arm.label in recorded and recorded[arm.label] != ids:
            print(f"  {arm.label}: the runs recorded at this look are used, not newer ones of the same seeds",
                  file=sys.stderr)
            arm.runs = [outcome(store, store.get(run_id), arm) for run_id in recorded[arm.label]]
        recorded[arm.label] = [r["run_id"] for r in arm.runs]
    fam.looks[str(look)] = recorded
    store.text(fam.run_id, json.dumps(fam.looks, indent=1), LOOKS)


def until_decided(arms: list[Arm], datasets: dict, store: Store, experiment: str, first: int, most: int,
                  margin: float | None, spending: str = "pocock", gamma: float = 1.0,
                  budget: int | None = None) -> tuple[dict, dict, Family]:
    """Run the looks; returns (arm label -> Decision, fill's totals, the family). budget: the most runs
    (seeds of base and the arms, reused ones included) the family may hold; when a look would pass it,
    arms get their seed in the order named, and those left without one end undecided at their last look."""
    if not 2 <= first <= most:
        raise UserError(f"--until-decided needs 2 <= --seeds <= --max-seeds (got {first} and {most}).")
    if margin is not None and not margin > 0:
        raise UserError(f"--margin must be a positive FID difference (got {margin}).")
    base, tested = arms[0], [a for a in arms[1:] if not a.twin]
    if budget is not None and budget < (len(tested) + 1) * first:
        raise UserError(f"--budget {budget} cannot pay for the first look ({len(tested) + 1} arms with base, "
                        f"{first} seeds each).")
    other = [a.label for a in tested if a.group != base.group]
    if other:
        raise UserError(f"--until-decided compares arms of one data, backend and metric setting with base; "
                        f"{', '.join(other)} differ.")
    key = family_key(base, tested, first, most, spending, gamma, budget)
    fam = open_family(store, experiment, key, base, tested, first, most, margin, spending, gamma, budget)
    c = base.config
    n_train = len(datasets[data_key(c)].train_images)
    most_runs = (len(tested) + 1) * most if budget is None else min(budget, (len(tested) + 1) * most)
    print(f"--until-decided: looks at {first} to {most} seeds a side for {len(tested)} arms and base; at most "
          f"{most_runs} runs of {loop.total_steps(c, n_train):,} steps if no arm is decided early"
          + (f" (the budget: {budget})" if budget is not None else "") + f" (design run {fam.run_id}). "
          "Each round's plan follows.", file=sys.stderr)
    decisions: dict = {}
    histories: dict = {a.label: [] for a in tested}  # (seeds, difference, low, high) at each look
    totals = {"trained": 0, "resumed": 0, "left_out": []}
    run_seconds = 0.0

    def held() -> int:  # runs the family holds so far
        return len(base.runs) + sum(len(a.runs) for a in tested)

    for look in range(first, most + 1):
        active = [a for a in tested if a.label not in decisions]
        if budget is not None and look > first:  # this look's seeds, in the order named, while the budget lasts
            paid = active[:max(0, budget - held() - 1)]
            for arm in active[len(paid):]:
                last = histories[arm.label][-1]
                decisions[arm.label] = Decision("undecided", look - 1, last[1:],
                                                f"the run budget ({budget}) ran out before {look} seeds; "
                                                + _within(last[1:]), histories[arm.label])
            active = paid
        if not active:
            break
        for arm in [base, *active]:
            arm.config, arm.runs = cfg.replace(arm.config, {"train.seeds": look}), []
        print(f"look at {look} seeds a side: {', '.join(a.label for a in active)}", file=sys.stderr)
        done = fill([base, *active], datasets, store)
        totals["trained"] += done["trained"]
        totals["resumed"] += done["resumed"]
        run_seconds = done["seconds_per_run"] or run_seconds
        _replay(store, fam, look, [base, *active])
        if math.isnan(fam.design.margin):  # the first look: the margin, before any arm is judged
            set_margin(store, fam, base, margin)
        for arm in active:
            verdict, interval, note = judge(arm, base, fam.design, look)
            histories[arm.label].append((look, *interval))
            if verdict or look == most:
                decisions[arm.label] = Decision(verdict or "undecided", look, interval,
                                                note or ("" if verdict else _within(interval)), histories[arm.label])
            print(f"  {arm.label}: Δ FID {_interval(interval)} at {look} seeds a side: "
                  f"{verdict or ('undecided' if look == most else 'another round')}{'; ' + note if note else ''}",
                  file=sys.stderr)
        still = [a for a in tested if a.label not in decisions]
        if still and look < most:
            runs_left = (len(still) + 1) * (most - look)
            if budget is not None:
                runs_left = min(runs_left, budget - held())
            if runs_left < 2:  # a look needs base's seed and one arm's: none can come
                print(f"  the run budget ({budget}) is spent: {', '.join(a.label for a in still)} end undecided "
                      f"at {look} seeds", file=sys.stderr)
            else:
                print(f"  at most {runs_left} more runs to {most} seeds"
                      + (f", about {plan.duration(runs_left * run_seconds)} here" if run_seconds else ""),
                      file=sys.stderr)
    store.tags(fam.run_id, {decision_tag(label): f"{d.verdict} at {d.seeds} seeds"
                                           for label, d in decisions.items()})
    runs_of = {a.experiment: store.runs(a.experiment) for a in arms}
    for arm in arms:  # a twin's runs are its original's
        if arm.twin:
            arm.runs = next(a for a in arms if a.label == arm.twin).runs
    totals["left_out"] = left_out(arms, runs_of)
    return decisions, totals, fam


def _interval(interval: tuple) -> str:
    d, low, high = interval
    return "-" if math.isnan(d) else f"{d:+.3g} [{low:+.3g}, {high:+.3g}]"


def _within(interval: tuple) -> str:
    """For an undecided arm: the equivalence its interval does establish."""
    d, low, high = interval
    return "" if math.isnan(d) else f"equivalent within ±{max(abs(low), abs(high)):.3g}"
