"""Train what the arms lack, after saying what and how long: resume interrupted or lost seeds, train
seeds without an outcome, never start a second copy of a live run; then read every arm's outcomes."""
from __future__ import annotations

import sys

from harness import loop, machine, models, plan
from harness import resume as resume_lib
from harness import stop as stop_lib
from harness import run as run_lib
from harness.tracking import RunState, Store
from harness.compare.arms import (Arm, data_key, is_alive, is_outcome, is_resumable, latest,
                                  left_out, outcome)


def fill(arms: list[Arm], datasets: dict, store: Store, retry_diverged: bool = False) -> dict:
    """Train what each arm lacks: resume its interrupted seeds, train seeds without an outcome (and
    diverged ones when retry_diverged), then read every arm's outcomes. Prints the plan with an estimate
    first, and one bar over all of it. Returns {"trained", "resumed", "left_out"}.
    Ctrl-C or SIGTERM checkpoints the run in training, marks it KILLED and stops; the next call resumes it."""
    done = {"trained": 0, "resumed": 0}
    runs_of: dict = {}
    work = []  # (arm, resumable runs {seed: run}, fresh seeds)
    import keras
    elsewhere = (arms[0].identity["backend"], arms[0].identity["platform"]) != (keras.backend.backend(),
                                                                                machine.platform())
    the_plan = plan.Plan("plan: every arm's seeds, reused where their outcome exists" + (
        f"; runs of {arms[0].identity['backend']} on {arms[0].identity['platform']} are made elsewhere "
        "(bench/recipe_gpu.py, harness import-results): nothing is trained here" if elsewhere else ""))
    measured = None
    for arm in arms:
        runs = runs_of.setdefault(arm.experiment, store.runs(arm.experiment))
        c = arm.config
        total = loop.total_steps(c, len(datasets[data_key(c)].train_images))
        if arm.twin:  # the same computation as an earlier arm: its outcomes, not a second training
            the_plan.rows.append((f"{arm.label} (= {arm.twin})", len(arm.seeds), total, len(arm.seeds), 0, 0))
            continue
        test = (lambda r: r.info.status == RunState.FINISHED) if retry_diverged else is_outcome
        todo = [s for s in arm.seeds if not latest(runs, arm, s, test)]
        alive = {s: r for s in todo if (r := latest(runs, arm, s, lambda r: True)) is not None and is_alive(r)}
        for seed, run in alive.items():  # never a second copy of a live run
            print(f"{arm.label} seed {seed}: run {run.info.run_id[:8]} is training elsewhere (heartbeat at step "
                  f"{run.data.tags.get('heartbeat.step', '?')}); not started here.", file=sys.stderr)
        todo = [s for s in todo if s not in alive]
        resumable = {s: r for s in todo if (r := latest(runs, arm, s, is_resumable)) is not None}
        fresh = [s for s in todo if s not in resumable]
        if elsewhere:
            resumable, fresh, todo = {}, [], []
        work.append((arm, resumable, fresh))
        measured = measured or (c if todo else None)
        evals = loop.evaluations(c, datasets[data_key(c)])[1]
        cost = models.step_flops(c) / models.step_flops(measured) if measured else 1.0
        # where each would continue: a run lost before its first checkpoint is trained afresh, so the plan
        # counts it there, and a resumed one's remaining steps from its checkpoint, not its last logged step
        starts = [resume_lib.checkpoint_step(store, r.info.run_id, c) for r in resumable.values()]
        resumes = [step for step in starts if step is not None]
        the_plan.add(arm.label, len(arm.seeds), total, len(arm.seeds) - len(todo), len(resumes),
                     len(todo) - len(resumes), sum(total - step for step in resumes), evals, cost)
    scorer_for = run_lib.Scorers()
    if measured is not None:
        dataset = datasets[data_key(measured)]
        the_plan.step_seconds, the_plan.eval_seconds = plan.measure(measured, dataset, scorer_for(measured, dataset))
        the_plan.note = "; other widths scaled by their FLOPs" if len({models.step_flops(a.config) for a in arms}) > 1 else ""
    print(the_plan.text(), file=sys.stderr)
    bar = the_plan.bar() if the_plan.steps_to_train else None
    stop, previous = stop_lib.install()
    try:
        for arm, resumable, fresh in work:
            c = arm.config
            dataset = datasets[data_key(c)]
            scorer = scorer_for(c, dataset)
            common = dict(config=c, dataset=dataset, scorer=scorer, store=store, point=arm.point,
                          extra_tags={"launched_by": "compare", **arm.tags}, stop=stop, progress=bar)
            for seed, run in resumable.items():  # resumed one by one, each exactly its own run
                if is_alive(store.get(run.info.run_id)):  # another process took it up since the plan
                    print(f"{arm.label} seed {seed}: run {run.info.run_id[:8]} is training elsewhere now; "
                          "not started here.", file=sys.stderr)
                    continue
                try:
                    run_lib.run(arm.experiment, seed=seed, resume_run_id=run.info.run_id, **common)
                    done["resumed"] += 1
                except resume_lib.ResumeError as e:  # no checkpoint yet, or it cannot continue here
                    print(f"cannot resume {run.info.run_id}: {e} Training seed {seed} afresh.", file=sys.stderr)
                    if run.info.status == RunState.RUNNING:  # a lost process's run: ended, with why
                        store.tags(run.info.run_id, {"state": "error", "failure.reason":
                                          "its process died without a word (no heartbeat); trained afresh"})
                        store.end(run.info.run_id, RunState.FAILED)
                    fresh.append(seed)
            if run_lib.population_on(c, len(fresh)):  # JAX on a GPU (or true): the fresh seeds as one population
                parent = run_lib.open_group(store, arm.experiment, arm.label, len(fresh), {"launched_by": "compare"})
                try:
                    results = run_lib.run_members(arm.experiment, seeds=fresh, parent_id=parent, **common)
                except BaseException:
                    store.end(parent, RunState.KILLED)
                    raise
                store.end(parent, run_lib.group_state(results))
            else:
                for seed in fresh:
                    run_lib.run(arm.experiment, seed=seed, **common)
            done["trained"] += len(fresh)
    except KeyboardInterrupt:
        print("compare stopped: the run in training was checkpointed and marked KILLED; "
              "the same command resumes it.", file=sys.stderr)
        raise
    finally:
        stop_lib.restore(previous)
        if bar is not None:
            bar.close()
    for experiment in {arm.experiment for arm, resumable, fresh in work if resumable or fresh}:
        runs_of[experiment] = store.runs(experiment)  # with what was just trained
    for arm in arms:
        if arm.twin:
            continue
        for seed in arm.seeds:
            run = latest(runs_of[arm.experiment], arm, seed, is_outcome)
            if run is not None:
                arm.runs.append(outcome(store, run, arm))
    for arm in arms:
        if arm.twin:
            arm.runs = next(a for a in arms if a.label == arm.twin).runs
    done["left_out"] = left_out(arms, runs_of)
    done["seconds_per_run"] = the_plan.run_seconds()  # of the first arm's config, as measured here (0: not measured)
    return done
