"""`harness compare --until-decided`: seeds are spent in rounds, one more a side each round (a look),
until every arm is decided (harness/compare/design.py holds what decides; harness/escape.py,
harness/ranks.py and harness/sequential.py the statistics).

The design is written to the store before the first look's training, as a run of kind `design`: its
arms, looks, alpha and its split, the escape rule's nominal level and exact worst-case type I error, the
rank rule's calibrated level, and the escaped-quality margin, fixed then (given, or base's
compare.margin; never from the seeds). The same command finds it again, and each look's outcome runs are
recorded in it, so an interrupted comparison resumes at its look, no run is trained twice, and a later
run of the same seed cannot rewrite a look already made. Other arms, looks, budget or primary arm make
another family, with a design of its own; the report names the other families over the same arms.

Per look, for every arm still undecided: base and the arm get seeds up to the look's count (schedule.train_missing
trains only what is missing), then design.judge decides: better, worse or mixed (on escape or on escaped
quality), or another round. With --primary only that arm is decided; the others follow it as estimates.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass, field, replace

from harness import claims as claims_lib
from harness import config as cfg
from harness import loop, plan
from harness import statistics as st
from harness.compare.arms import Arm, data_key, left_out, outcome, with_outcomes
from harness.compare.design import ArmResult, Design, judge, spread_floor
from harness.compare.options import CompareOptions
from harness.compare.schedule import Training, train_missing
from harness.config import UserError
from harness.tracking import RunState, Store

DESIGN_KIND = "design"
DESIGN_VERSION = 3  # 3: escaped-quality variances floored at the pooled one; 2: without the floor; 1: on
# the mean FID of the finished seeds
LOOKS = "looks.json"  # the design run's record of each look's outcome runs: {"seeds": {arm label: [run ids]}}


@dataclass
class Decision:
    """How an arm ended: its verdict, the look it stopped at, its result there and at every look."""
    verdict: str  # better / worse / mixed (with the endpoints that carry it), undecided, estimate only
    seeds: int  # seeds a side at the look it stopped (or the last)
    result: ArmResult  # at that look
    note: str = ""
    history: list = field(default_factory=list)  # an ArmResult per look


@dataclass
class Family:
    """A design as the store holds it: the design, its run (its looks.json records each look's runs), its
    budget, other families."""
    design: Design
    run_id: str
    budget: int | None = None  # the most runs the family may hold
    others: list = field(default_factory=list)  # (design run id, arm labels, decisions) over some of these arms


def family_key(base: Arm, tested: list[Arm], first: int, most: int, spending: str, gamma: float,
               budget: int | None = None, primary: str | None = None) -> str:
    """What makes a family: base's identity, the arms' identities (in any order; with a run budget, in
    their order of priority), the looks, the spending, the budget, the primary arm, the design's version."""
    key = {"base": base.digest, "arms": sorted(a.digest for a in tested), "first": first, "most": most,
           "alpha": st.ALPHA, "spending": spending, "gamma": gamma, "design": DESIGN_VERSION}
    if budget is not None:
        key.update(budget=budget, priority=[a.digest for a in tested])
    if primary is not None:
        key.update(primary=next(a.digest for a in tested if a.label == primary))
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def decision_tag(label: str) -> str:
    """The design run's tag for an arm's decision. MLflow keys take no brackets or '=' (and '/' only where
    a path would keep it): latent[latent_dim=32] -> decision.latent:latent_dim:32."""
    return "decision." + re.sub(r"[^0-9A-Za-z_\-. ]", ":", label).rstrip(":")


def _designs(store: Store, experiment: str) -> list:
    return [r for r in store.runs(experiment) if r.data.tags.get("kind") == DESIGN_KIND]


def open_family(store: Store, experiment: str, key: str, base: Arm, tested: list[Arm], design: Design,
                budget: int | None = None, claims: claims_lib.Claims | None = None) -> Family:
    """This family's design from the store, or the given one written there now, before any training. Under
    the family's claim: of several compares started together, one writes the design and the rest join it."""
    claims = claims or claims_lib.open_claims()
    with claims.mutex(f"design:{key}", f"the design of family {key[:8]} being written"):
        return _open_family(store, experiment, key, base, tested, design, budget)


def _open_family(store: Store, experiment: str, key: str, base: Arm, tested: list[Arm], design: Design,
                 budget: int | None) -> Family:
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
        record = design.record()
        store.params(run_id, {**record, "arms": json.dumps(record["arms"]), "digests": json.dumps(sorted(digests)),
                              "base": base.digest, "version": DESIGN_VERSION,
                              "budget": "none" if budget is None else budget})
        store.end(run_id, RunState.FINISHED)
        return Family(design, run_id, others=others, budget=budget)
    run_id, params = mine.info.run_id, mine.data.params
    registered = None if params.get("margin", "none") == "none" else float(params["margin"])
    if (registered is None) != (design.margin is None) or (
            registered is not None and not math.isclose(registered, design.margin)):
        raise UserError(f"this family's design (run {run_id}) registered the margin "
                        f"{'none' if registered is None else f'{registered:g}'} before its first look; it cannot "
                        "change now (other arms, looks or budget make a new family).")
    now = design.record()
    changed = [k for k in ("escape.gamma", "quality.level", "rank.gamma")
               if k in params and not math.isclose(float(params[k]), float(now[k]), rel_tol=1e-9)]
    if changed:
        raise UserError(f"this family's design (run {run_id}) registered {', '.join(f'{k} {params[k]}' for k in changed)};"
                        f" this code computes {', '.join(f'{now[k]:g}' for k in changed)}, so its looks would not be "
                        "judged as registered. Finish it with the code that registered it, or start a new family.")
    return Family(design, run_id, others=others, budget=budget)


def _hold_to_record(store: Store, family: Family, look: int, arms: list[Arm], claims: claims_lib.Claims) -> dict:
    """The runs each arm is judged on at this look (arm label -> [SeedOutcome]): those recorded for the
    look (a later run of a seed does not rewrite it), or the arms' own, recorded now. Under the family's
    claim, reading the record again first: compares sharing the family record each look once and judge
    the same runs."""
    with claims.mutex(f"looks:{family.run_id}", f"look {look} of design run {family.run_id[:8]} being recorded"):
        looks = json.loads(store.read_text(family.run_id, LOOKS) or "{}")
        recorded = looks.get(str(look), {})
        held = {}
        for arm in arms:
            if arm.label in recorded and recorded[arm.label] != [r.run_id for r in arm.runs]:
                print(f"  {arm.label}: the runs recorded at this look are used, not newer ones of the same seeds",
                      file=sys.stderr)
                held[arm.label] = [outcome(store, store.get(run_id), arm) for run_id in recorded[arm.label]]
            else:
                held[arm.label] = arm.runs
            recorded[arm.label] = [r.run_id for r in held[arm.label]]
        looks[str(look)] = recorded
        store.text(family.run_id, json.dumps(looks, indent=1), LOOKS)
    return held


def until_decided(arms: list[Arm], datasets: dict, store: Store, experiment: str, options: CompareOptions,
                  margin: float | None, margin_source: str) -> tuple[dict, Training, Family, list[Arm]]:
    """Run the looks; returns (arm label -> Decision, what training made over all looks, the family, the
    arms at their last look with the outcomes they were judged on). options.budget: the most
    runs (seeds of base and the arms, reused ones included) the family may hold; when a look would pass it,
    arms get their seed in the order named, and those left without one end undecided at their last look."""
    first, most, budget = arms[0].config.train.seeds, options.max_seeds, options.budget
    if not 2 <= first <= most:
        raise UserError(f"--until-decided needs 2 <= --seeds <= --max-seeds (got {first} and {most}).")
    base, tested = arms[0], [a for a in arms[1:] if not a.same_as]
    if options.primary is not None and options.primary not in {a.label for a in tested}:
        raise UserError(f"--primary {options.primary}: not an arm of this comparison (arms: "
                        f"{', '.join(a.label for a in tested)}).")
    if budget is not None and budget < (len(tested) + 1) * first:
        raise UserError(f"--budget {budget} cannot pay for the first look ({len(tested) + 1} arms with base, "
                        f"{first} seeds each).")
    other = [a.label for a in tested if a.group != base.group]
    if other:
        raise UserError(f"--until-decided compares arms of one data, backend and metric setting with base; "
                        f"{', '.join(other)} differ.")
    design = Design(tuple(a.label for a in tested), first, most, st.ALPHA, margin, margin_source, options.primary,
                    options.spending, options.gamma)
    key = family_key(base, tested, first, most, options.spending, options.gamma, budget, options.primary)
    claims = claims_lib.open_claims(options.storage)
    family = open_family(store, experiment, key, base, tested, design, budget, claims)
    c = base.config
    n_train = len(datasets[data_key(c)].train_images)
    most_runs = (len(tested) + 1) * most if budget is None else min(budget, (len(tested) + 1) * most)
    print(f"--until-decided: looks at {first} to {most} seeds a side for {len(tested)} arms and base; at most "
          f"{most_runs} runs of {loop.total_steps(c, n_train):,} steps if no arm is decided early"
          + (f" (the budget: {budget})" if budget is not None else "") + f" (design run {family.run_id}). "
          "Each round's plan follows.", file=sys.stderr)
    decisions: dict = {}
    histories: dict = {a.label: [] for a in tested}  # an ArmResult at each look
    held: dict = {a.label: [] for a in [base, *tested]}  # arm label -> the outcomes it is judged on so far
    at_look = {a.label: a for a in arms}  # each arm at its last look: its seeds and outcomes there
    training = Training()
    run_seconds = 0.0

    def runs_so_far() -> int:  # runs the family holds so far
        return sum(len(runs) for runs in held.values())

    for look in range(first, most + 1):
        active = [a for a in tested if a.label not in decisions]
        if budget is not None and look > first:  # this look's seeds, in the order named, while the budget lasts
            paid = active[:max(0, budget - runs_so_far() - 1)]
            for arm in active[len(paid):]:
                last = histories[arm.label][-1]
                decisions[arm.label] = Decision(_unsettled(last, design), look - 1, last,
                                                f"the run budget ({budget}) ran out before {look} seeds",
                                                histories[arm.label])
            active = paid
        if not active:
            break
        looked = [replace(a, config=cfg.replace(a.config, {"train.seeds": look}), runs=[]) for a in [base, *active]]
        print(f"look at {look} seeds a side: {', '.join(a.label for a in active)}", file=sys.stderr)
        this_look = train_missing(looked, datasets, store, claims=claims)
        training.trained, training.resumed = training.trained + this_look.trained, training.resumed + this_look.resumed
        training.plans += [{"look": look, **p} for p in this_look.plans]
        training.waited += this_look.waited
        run_seconds = this_look.seconds_per_run or run_seconds
        held.update(_hold_to_record(store, family, look, with_outcomes(looked, this_look.outcomes), claims))
        looked = with_outcomes(looked, held)
        at_look.update({a.label: a for a in looked})
        floor = spread_floor([at_look[a.label] for a in [base, *tested]])  # decided arms: at their last look
        for arm in looked[1:]:
            result = judge(arm, looked[0], design, look, floor)
            if min(len(arm.runs), len(looked[0].runs)) < look:  # the rules hold for complete looks only
                result.verdict = "undecided"
                result.note = (f"{len(arm.runs)} and {len(looked[0].runs)} of {look} seeds have an outcome (the "
                               "rest train elsewhere): not judged at this look")
            histories[arm.label].append(result)
            if result.decided or look == most:
                decisions[arm.label] = Decision(result.verdict if result.decided else _unsettled(result, design),
                                                look, result, result.note, histories[arm.label])
            print(f"  {arm.label}: {_said(result)}: "
                  f"{result.verdict if result.decided else ('undecided' if look == most else 'another round')}"
                  + (f"; {result.note}" if result.note else ""), file=sys.stderr)
        if design.primary and design.primary in decisions:  # the others were only following it
            for arm in active:
                if arm.label not in decisions:
                    last = histories[arm.label][-1]
                    decisions[arm.label] = Decision(last.verdict, look, last, "", histories[arm.label])
        still = [a for a in tested if a.label not in decisions]
        runs_left = 0
        if still and look < most:
            runs_left = (len(still) + 1) * (most - look)
            if budget is not None:
                runs_left = min(runs_left, budget - runs_so_far())
        training.looks.append({"look": look, "arms": [a.label for a in active], "runs": runs_so_far(),
                               "undecided": [a.label for a in still], "runs_left": max(0, runs_left)})
        if still and look < most:
            if runs_left < 2:  # a look needs base's seed and one arm's: none can come
                print(f"  the run budget ({budget}) is spent: {', '.join(a.label for a in still)} end undecided "
                      f"at {look} seeds", file=sys.stderr)
            else:
                print(f"  at most {runs_left} more runs to {most} seeds"
                      + (f", about {plan.duration(runs_left * run_seconds)} here" if run_seconds else ""),
                      file=sys.stderr)
    store.tags(family.run_id, {decision_tag(label): f"{d.verdict.split(':')[0]} at {d.seeds} seeds"
                            for label, d in decisions.items()})
    for arm in arms:  # an arm of another's identity: that arm's runs
        if arm.same_as:
            held[arm.label] = held.get(arm.same_as, [])
    judged = with_outcomes([at_look[a.label] for a in arms], held)
    training.outcomes = {a.label: a.runs for a in judged}
    training.left_out = left_out(judged, {a.experiment: store.runs(a.experiment) for a in arms})
    return decisions, training, family, judged


def _unsettled(result: ArmResult, design: Design) -> str:
    """An arm's verdict when its looks ran out undecided (or it only followed the primary arm)."""
    return result.verdict if not design.decides(result.label) else "undecided"


def _said(r: ArmResult) -> str:
    """One look's numbers for the console: escape counts, the escaped-FID interval, P(improvement)."""
    d, low, high = r.quality.diff
    interval = "-" if math.isnan(low) else f"{d:+.3g} [{low:+.3g}, {high:+.3g}]"
    p = "-" if math.isnan(r.escape.p) else f"{r.escape.p:.2g}"
    better = "-" if math.isnan(r.rank.improvement) else f"{r.rank.improvement:.2f}"
    return f"escaped {r.escape.k} of {r.seeds} (Fisher p {p}); escaped FID Δ {interval}; P(FID lower) {better}"
