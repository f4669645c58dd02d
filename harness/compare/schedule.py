"""Train what the arms lack, after saying what and how long: resume interrupted or lost seeds, train
seeds without an outcome, each claimed first so that no seed is trained by two processes; wait for the
seeds other processes hold; then read every arm's outcomes.

train_missing is five steps, each returning what it makes: plan_work (what each arm lacks), estimate
(its time, measured here), train_work (train it, waiting for other processes' seeds), read_outcomes
(each arm's seeds' outcomes from the store) and arms.left_out (every other run, with why)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from harness import claims as claims_lib
from harness import loop, machine, models, plan, tracking
from harness import resume as resume_lib
from harness import stop as stop_lib
from harness import population, runner, scorers
from harness.tracking import RunState, Store
from harness.compare import workers
from harness.compare.arms import (Arm, data_key, is_alive, is_outcome, is_resumable, latest,
                                  left_out, outcome, outcome_test, with_outcomes)


@dataclass
class Training:
    """What train_missing made: every arm's outcomes, and what this process did to make them."""
    outcomes: dict = field(default_factory=dict)  # arm label -> [SeedOutcome], seed order (an arm of another's identity: its)
    trained: int = 0  # runs trained afresh by this process
    resumed: int = 0  # runs resumed from a checkpoint by this process
    left_out: list = field(default_factory=list)  # (experiment, run id, kind, reason): arms.left_out
    seconds_per_run: float = 0.0  # one whole run of the first arm's config as measured here (0: not measured)
    plans: list = field(default_factory=list)  # each plan printed, as data (plan.Plan.as_dict)
    waited: list = field(default_factory=list)  # (label, seed, holder) of each seed waited for in other processes
    looks: list = field(default_factory=list)  # --until-decided: per look, its arms and the runs it leaves


@dataclass
class Work:
    """What plan_work found: the plan (its estimate still to come), the arms with seeds to train or wait
    for here (in the order named), the config to time (the first with a seed to train; None when none
    has), and each experiment's runs as read for the plan."""
    plan: plan.Plan
    arms: list
    measured: object
    runs_of: dict


@dataclass
class Pass:
    """One pass of _train_arm over an arm's seeds."""
    waiting: list = field(default_factory=list)  # (label, seed, holder) for seeds other live processes hold now
    handled: set = field(default_factory=set)  # (label, seed) trained or resumed: not tried again in this call
    trained: int = 0
    resumed: int = 0


@dataclass
class TrainedHere:
    """What train_work did over all its passes."""
    trained: int = 0
    resumed: int = 0
    waited: list = field(default_factory=list)  # (label, seed, holder when first waited for), each seed once


def train_missing(arms: list[Arm], datasets: dict, store: Store, retry_diverged: bool = False,
                  claims: claims_lib.Claims | None = None) -> Training:
    """Train what each arm lacks: resume its interrupted seeds, train seeds without an outcome (and
    diverged ones when retry_diverged), then read every arm's outcomes. Prints the plan with an estimate
    first, and one bar over all of it. Returns the outcomes and what this process did (Training).

    Several compares may share one store: each seed is claimed before it is trained (harness/claims.py),
    a seed another live process holds is waited for, and a dead process's seed is taken over and resumed
    from its checkpoint. So this returns once every seed has an outcome, whoever trained it.
    Ctrl-C or SIGTERM checkpoints the run in training, marks it KILLED and stops; the next call resumes it."""
    claims = claims or claims_lib.open_claims()
    work = plan_work(arms, datasets, store, claims, retry_diverged)
    scorer_for = scorers.Scorers()
    estimate(work, arms, datasets, scorer_for)
    print(work.plan.text(), file=sys.stderr)
    here = train_work(work, datasets, store, claims, scorer_for, retry_diverged)
    runs_of = dict(work.runs_of)
    for experiment in {a.experiment for a in work.arms}:
        runs_of[experiment] = store.runs(experiment)  # with what was just trained, here or elsewhere
    outcomes = read_outcomes(arms, store, runs_of)
    return Training(outcomes, here.trained, here.resumed, left_out(with_outcomes(arms, outcomes), runs_of),
                    work.plan.run_seconds(), [work.plan.as_dict()], here.waited)


def plan_work(arms: list[Arm], datasets: dict, store: Store, claims: claims_lib.Claims,
              retry_diverged: bool = False) -> Work:
    """What each arm lacks, as plan rows: seeds reused, resumed (from their checkpoints' steps), trained,
    and held by other processes. Reads the store; trains and times nothing."""
    import keras
    elsewhere = (arms[0].identity["backend"], arms[0].identity["platform"]) != (keras.backend.backend(),
                                                                                machine.platform())
    the_plan = plan.Plan("plan: every arm's seeds, reused where their outcome exists" + (
        f"; runs of {arms[0].identity['backend']} on {arms[0].identity['platform']} are made elsewhere "
        "(bench/recipe_gpu.py, harness import-results): nothing is trained here" if elsewhere else ""))
    measured = None
    work = []
    runs_of = {a.experiment: store.runs(a.experiment) for a in arms}
    for arm in arms:
        runs, c = runs_of[arm.experiment], arm.config
        total = loop.total_steps(c, len(datasets[data_key(c)].train_images))
        if arm.same_as:  # the same computation as an earlier arm: its outcomes, not a second training
            the_plan.rows.append((f"{arm.label} (= {arm.same_as})", len(arm.seeds), total, len(arm.seeds), 0, 0, 0))
            continue
        todo = [s for s in arm.seeds if not latest(runs, arm, s, outcome_test(retry_diverged))]
        held = [s for s in todo if _held_elsewhere(claims, arm, s, runs)]
        todo = [s for s in todo if s not in held]
        resumable = {s: r for s in todo if (r := latest(runs, arm, s, is_resumable)) is not None}
        if elsewhere:
            todo, resumable = [], {}
        if not elsewhere and (todo or held):  # runs made elsewhere are imported, never trained or waited for here
            work.append(arm)
        measured = measured or (c if todo else None)
        evals = loop.evaluations(c, datasets[data_key(c)])[1]
        cost = models.step_flops(c) / models.step_flops(measured) if measured else 1.0
        # where each would continue: a run lost before its first checkpoint is trained afresh, so the plan
        # counts it there, and a resumed one's remaining steps from its checkpoint, not its last logged step
        starts = [resume_lib.checkpoint_step(store, r.info.run_id, c) for r in resumable.values()]
        resumes = [step for step in starts if step is not None]
        the_plan.add(arm.label, len(arm.seeds), total, len(arm.seeds) - len(todo) - len(held), len(resumes),
                     len(todo) - len(resumes), sum(total - step for step in resumes), evals, cost, len(held))
    return Work(the_plan, work, measured, runs_of)


def estimate(work: Work, arms: list[Arm], datasets: dict, scorer_for: scorers.Scorers) -> plan.Plan:
    """The plan's time: a step and an evaluation of work.measured, timed here and now (other widths
    scaled by their FLOPs); nothing to time when nothing is trained. Returns the plan, estimated."""
    c = work.measured
    if c is not None:
        dataset = datasets[data_key(c)]
        work.plan.step_seconds, work.plan.eval_seconds = plan.measure(c, dataset, scorer_for(c, dataset))
        work.plan.note = "; other widths scaled by their FLOPs" if len({models.step_flops(a.config) for a in arms}) > 1 else ""
    return work.plan


def train_work(work: Work, datasets: dict, store: Store, claims: claims_lib.Claims, scorer_for: scorers.Scorers,
               retry_diverged: bool = False) -> TrainedHere:
    """Train and resume the planned arms' seeds, one bar over all of it, passing over them again while
    other live processes hold some (waiting between passes). Returns what it did here (TrainedHere)."""
    bar = workers.bar(work.plan) if work.plan.steps_to_train else None
    stop, previous = stop_lib.install()
    waited: set = set()
    handled: set = set()
    here = TrainedHere()
    try:
        while True:
            waiting = []
            for arm in work.arms:
                this_pass = _train_arm(arm, datasets, store, claims, retry_diverged, scorer_for, stop, bar, handled)
                waiting += this_pass.waiting
                handled |= this_pass.handled
                here.trained, here.resumed = here.trained + this_pass.trained, here.resumed + this_pass.resumed
            if not waiting:
                return here
            seen = {w[:2] for w in here.waited}
            here.waited += [w for w in waiting if w[:2] not in seen]
            if {w[:2] for w in waiting} != waited:  # say it when the set changes, not every poll
                waited = {w[:2] for w in waiting}
                print(f"waiting for {len(waiting)} run{'s' * (len(waiting) > 1)} training in other processes: "
                      + ", ".join(f"{label} seed {seed} ({who})" for label, seed, who in waiting), file=sys.stderr)
            time.sleep(min(30.0, tracking.HEARTBEAT_S))
    except KeyboardInterrupt:
        print("compare stopped: the run in training was checkpointed and marked KILLED; "
              "the same command resumes it.", file=sys.stderr)
        raise
    finally:
        stop_lib.restore(previous)
        if bar is not None:
            bar.close()


def read_outcomes(arms: list[Arm], store: Store, runs_of: dict | None = None) -> dict[str, list]:
    """Arm label -> its seeds' outcomes (arms.outcome), in seed order, for the seeds that have one; an arm
    of another's identity gets that arm's. runs_of: experiment -> its runs, when already read."""
    if runs_of is None:
        runs_of = {a.experiment: store.runs(a.experiment) for a in arms}
    outcomes = {}
    for arm in arms:
        if not arm.same_as:
            found = [latest(runs_of[arm.experiment], arm, seed, is_outcome) for seed in arm.seeds]
            outcomes[arm.label] = [outcome(store, run, arm) for run in found if run is not None]
    for arm in arms:
        if arm.same_as:
            outcomes[arm.label] = outcomes[arm.same_as]
    return outcomes


def _held_elsewhere(claims: claims_lib.Claims, arm: Arm, seed: int, runs: list) -> str:
    """Who trains this seed in another live process ('' when none): its claim's holder, or a run alive
    by its heartbeat."""
    holder = claims.held_elsewhere(claims_lib.seed_key(arm.digest, seed))
    if holder is not None:
        return holder.owner.rsplit(":", 1)[0]
    run = latest(runs, arm, seed, is_alive)
    return f"run {run.info.run_id[:8]}" if run is not None else ""


def _seed_runs(store: Store, arm: Arm, seed: int) -> list:
    return store.runs(arm.experiment, f"tags.identity = '{arm.digest}' and tags.seed = '{seed}'")


def _train_arm(arm: Arm, datasets: dict, store: Store, claims: claims_lib.Claims, retry_diverged: bool,
               scorer_for, stop, bar, handled: set) -> Pass:
    """One pass over an arm's seeds without an outcome. Each seed is claimed, then the store is read
    again (no other process can change the seed now), then the seed is resumed or trained and released
    before the next is claimed, so that other processes take the seeds after it. Under a population
    (JAX on a GPU) the fresh seeds stay claimed and train together. handled: (label, seed) this call
    already trained or resumed, not tried twice (a diverged retry under retry_diverged). Returns the
    pass: seeds other live processes hold now, seeds handled, runs trained and resumed."""
    c = arm.config
    dataset = datasets[data_key(c)]
    common = dict(config=c, dataset=dataset, scorer=scorer_for(c, dataset), store=store,
                  sweep_value=arm.sweep_value, extra_tags={"launched_by": "compare", **arm.tags}, stop=stop,
                  progress=bar, claims=claims)
    test = outcome_test(retry_diverged)
    runs = store.runs(arm.experiment)
    missing = [s for s in arm.seeds if (arm.label, s) not in handled and not latest(runs, arm, s, test)]
    together = population.trains_together(c, len(missing))
    this_pass, fresh, claimed = Pass(), [], []
    try:
        for seed in missing:
            key = claims_lib.seed_key(arm.digest, seed)
            if not claims.take(key, f"{arm.label} seed {seed}"):
                this_pass.waiting.append((arm.label, seed, _held_elsewhere(claims, arm, seed, runs) or "another process"))
                continue
            claimed.append(key)
            now = _seed_runs(store, arm, seed)  # as it stands now that this process holds the seed
            alive = latest(now, arm, seed, is_alive)
            if alive is not None:  # a process that takes no claims (older code), still heartbeating
                this_pass.waiting.append((arm.label, seed, f"run {alive.info.run_id[:8]}"))
            elif not latest(now, arm, seed, test):
                how = _train_seed(arm, seed, now, store, common, together)
                if how in ("alive", "lost"):
                    this_pass.waiting.append((arm.label, seed, "its run's process" if how == "alive"
                                              else "the worker that took it over"))
                else:
                    this_pass.handled.add((arm.label, seed))
                    this_pass.resumed += how == "resumed"
                    this_pass.trained += how == "trained"
                if how == "together":
                    fresh.append(seed)
                    continue  # still claimed: trained with the others below
            claims.release(key)
            claimed.remove(key)
        if fresh:  # JAX on a GPU (or train.population=true): the fresh seeds as one population
            runner.run_population(arm.experiment, fresh, arm.label, {"launched_by": "compare"}, **common)
            this_pass.trained += len(fresh)
    finally:  # an error, a signal or a population: nothing stays claimed past this pass
        for key in claimed:
            claims.release(key)
    return this_pass


def _train_seed(arm: Arm, seed: int, runs: list, store: Store, common: dict, together: bool) -> str:
    """Resume the claimed seed's run, or train it afresh: "resumed", "trained", "together" (afresh, with
    the arm's other fresh seeds as one population), "alive" (its run's process came back) or "lost"
    (another worker took the claim over while this process was silent: that worker goes on)."""
    try:
        how = _resume(arm, seed, runs, store, common)
        if how != "afresh":
            return how
        if together:
            return "together"
        runner.run(arm.experiment, seed=seed, **common)
        return "trained"
    except claims_lib.Lost as e:
        print(f"{arm.label} seed {seed}: {e}", file=sys.stderr)
        return "lost"


def _resume(arm: Arm, seed: int, runs: list, store: Store, common: dict) -> str:
    """Resume the seed's interrupted or lost run if it has one that can continue: "resumed", "alive" (its
    heartbeat came back since the store was read: waited for), or "afresh" (none, or it cannot continue)."""
    run = latest(runs, arm, seed, is_resumable)
    if run is None:
        return "afresh"
    try:
        runner.run(arm.experiment, seed=seed, resume_run_id=run.info.run_id, **common)
        return "resumed"
    except resume_lib.Alive:
        return "alive"
    except resume_lib.ResumeError as e:  # no checkpoint yet, or it cannot continue here
        print(f"cannot resume {run.info.run_id}: {e} Training seed {seed} afresh.", file=sys.stderr)
        if run.info.status == RunState.RUNNING:  # a lost process's run: ended, with why
            store.end(run.info.run_id, RunState.FAILED, {
                "state": "error", "failure.reason": "its process died without a word (no heartbeat); trained afresh"})
        return "afresh"
