"""The run lifecycle: run() trains one seed of one experiment as one MLflow run (claimed, opened or
reopened, trained by loop.train, ended in a state with why); run_members() several seeds at once (a
population); run_experiment() an experiment's seeds and sweep values under one parent run.

All return their metrics, and search and compare call the same functions; compare then reads every
seed's outcome from the store, its own included, since other processes and machines train the same
comparison's seeds (harness/compare/schedule.py). Data and scorers come from data.for_config and
harness/scorers.py, the time estimate from plan.announce_runs, which run --resume continues from
resume.resolve.
"""
from __future__ import annotations

import sys

from harness import claims as claims_lib
from harness import config as cfg
from harness import data, identity, loop, machine, plan, registry, tracking
from harness import population as population_lib
from harness import scorers as scorers_lib
from harness import resume as resume_lib
from harness import stop as stop_lib
from harness.config import Config
from harness.registry import Experiment
from harness.result import Result, group_state
from harness.tracking import RunState, Store


def open_group(store: Store, experiment: str, label: str, runs: int, tags: dict | None = None,
               config: Config | None = None, here: bool = True) -> str:
    """A parent run (kind group) over `runs` runs of an experiment or arm: several seeds, sweep values or
    a population; it ends FINISHED when all of them did (group_state). here: they train on this
    machine (tagged with its hardware), not imported from another."""
    run_id = store.start(experiment, registry.group_name(label, runs),
                         {"experiment": experiment, "kind": "group", **(machine.tags() if here else {}), **(tags or {})})
    if config is not None:
        store.text(run_id, cfg.to_yaml(config), "config.yaml")
    return run_id


def run(experiment: str, config: Config, seed: int, dataset: data.Dataset, scorer, store: Store | None = None,
        parent_id: str | None = None, sweep_value: dict | None = None, on_eval=None, extra_tags: dict | None = None,
        resume_run_id: str | None = None, stop: stop_lib.StopFlag | None = None, name: str | None = None,
        on_start=None, progress=None, claims=None) -> Result:
    """Train one seed as one MLflow run and return its final metrics. Raises Interrupted on a signal,
    and re-raises what the on_eval callback raises (a pruned trial) after marking the run."""
    return run_members(experiment, config, [seed], dataset, scorer, store, parent_id, sweep_value, on_eval=on_eval,
                       extra_tags=extra_tags, resume_run_ids=[resume_run_id] if resume_run_id else None, stop=stop,
                       names=[name] if name else None, on_start=on_start, progress=progress, claims=claims)[0]


def run_members(experiment: str, config: Config, seeds: list[int], dataset: data.Dataset, scorer, store: Store | None = None,
                parent_id: str | None = None, sweep_value: dict | None = None, *, on_eval=None,
                extra_tags: dict | None = None, resume_run_ids: list[str] | None = None,
                stop: stop_lib.StopFlag | None = None, names: list[str] | None = None, on_start=None,
                progress=None, claims=None) -> list[Result]:
    """Train seeds of one config, each its own MLflow run: one seed alone, or several as one population
    under parent_id (its checkpoint is the parent's artifact). Returns one Result per seed.
    Each seed of the run identity is claimed first (harness/claims.py: claims, else the tracking store's
    database): a seed another live process trains raises claims.Busy, starting nothing."""
    store = store or Store()
    if len(seeds) > 1 and parent_id is None:
        raise ValueError("a population trains under a parent run")
    ident = identity.of(config, dataset.fingerprint, classifier=scorer.classifier_info["weights"])
    claims = claims or claims_lib.open_claims()
    keys = [claims_lib.seed_key(identity.digest(ident), s) for s in seeds]
    with claims.hold(keys, f"{experiment} seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"):
        return _train_members(experiment, config, seeds, dataset, scorer, store, parent_id, sweep_value, ident,
                              on_eval, extra_tags, resume_run_ids, stop, names, on_start, progress,
                              lambda: claims.check(keys))


def run_population(experiment: str, seeds: list[int], label: str, tags: dict, config: Config, store: Store,
                   **members) -> list[Result]:
    """Seeds of one config as one population under a new parent run (kind group): run_members' results;
    the parent ends FINISHED when every member did, FAILED when one did not, KILLED when training raised."""
    parent = open_group(store, experiment, label, len(seeds), tags)
    try:
        results = run_members(experiment, config, seeds, store=store, parent_id=parent, **members)
    except BaseException:
        store.end(parent, RunState.KILLED)
        raise
    store.end(parent, group_state(results))
    return results


def _train_members(experiment, config, seeds, dataset, scorer, store, parent_id, sweep_value, ident, on_eval, extra_tags,
                   resume_run_ids, stop, names, on_start, progress, check_claim) -> list[Result]:
    """run_members' work once its seeds are claimed: open or reopen their runs, train, end them.
    check_claim() raises claims.Lost once another worker has taken the seeds over: then nothing more is
    written to their runs, which are the other worker's now."""
    population = len(seeds) > 1
    population_id = resume_run_ids[0] if resume_run_ids else None
    members, resume_from = [], None
    for i, seed in enumerate(seeds):
        seed_config = cfg.replace(config, {"train.seed": seed})
        name = names[i] if names else registry.run_name(experiment, seed, sweep_value)
        if resume_run_ids:
            run_id = resume_run_ids[i]
            tags = store.get(run_id).data.tags
            population_id = tags.get("population.id", population_id)
            resume_from = resume_lib.checkpoint_for(store, run_id, seed_config, ident)
            if tags.get("state") != "diverged":  # a diverged member stays FAILED, frozen in the population
                store.reopen(run_id)
                store.tags(run_id, {"resumed": "true", "state": "running",  # alive again, at once
                                    **tracking.heartbeat_tags(int(tags.get("heartbeat.step", 0)))})
        else:
            tags = {"experiment": experiment, "seed": seed, "dataset": dataset.name,
                    "dataset.requested": config.data.name, "data.source": dataset.source,
                    "collapse": "false", "state": "running", **machine.tags(), **identity.tags(ident),
                    "classifier.weights": scorer.classifier_info["weights"],
                    "classifier.accuracy": f"{scorer.classifier_info['accuracy']:.4f}",
                    **{f"sweep.{k}": v for k, v in (sweep_value or {}).items()}, **(extra_tags or {})}
            if population:
                population_id = population_id or f"{parent_id[:8]}-{seeds[0]}"
                tags.update({"population.id": population_id, "population.size": len(seeds),
                             "population.index": i, "population.parent": parent_id})
            run_id = open_run(store, experiment, name, tags, parent_id, seed_config, dataset.name, scorer.floor)
        print(f"run {name}: id {run_id} (experiment '{experiment}', dataset {dataset.name}"
              + (f", population {population_id} member {i + 1} of {len(seeds)})" if population else ")"),
              file=sys.stderr)
        if on_start is not None:
            on_start(run_id)
        members.append(loop.Member(seed, loop.RunContext(store.sink(run_id), run_id, name, on_eval=on_eval,
                                                         identity=ident, progress=progress)))
    owner = parent_id if population else members[0].ctx.run_id  # whose artifacts hold the checkpoint
    checkpoint_dir, upload = resume_lib.checkpoint_dir(store, owner, f"population-{population_id}" if population else "")
    for m in members:
        m.ctx.checkpoint_sink = store.sink(owner) if upload else None
        m.ctx.checkpoint_artifact = f"checkpoint/population-{population_id}" if population else "checkpoint"
    try:
        trained = loop.train(config, dataset, members, scorer, checkpoint_dir, resume_from, stop, population,
                             check_claim)
        check_claim()  # still ours to end
    except claims_lib.Lost:  # another worker continues these runs: leave them to it
        raise
    except BaseException as e:  # a signal, a pruned trial, a bug, an outage: mark the runs, then let it rise
        # Only a divergence counts against a variant; "error" runs are retried by compare.
        state = ("pruned" if isinstance(e, stop_lib.Pruned)
                 else "interrupted" if isinstance(e, KeyboardInterrupt) else "error")
        for m in members:
            if m.diverged:
                end_run(store, m.ctx.run_id, m.diverged, [])
            else:
                store.end(m.ctx.run_id, RunState.FAILED if state == "error" else RunState.KILLED,
                          {"state": state, "failure.reason": f"{type(e).__name__}: {e}"[:500]})
        if isinstance(e, stop_lib.Interrupted):
            again = parent_id if population else members[0].ctx.run_id
            print(f"{'population ' + population_id if population else members[0].ctx.name} interrupted: {e}. "
                  f"Resume with: harness run {experiment} --resume {again}", file=sys.stderr)
        raise
    results = []
    for m, t in zip(members, trained):
        status = end_run(store, t.run_id, t.diverged, t.evals)
        if status != RunState.FINISHED:
            print(f"run {m.ctx.name} diverged: {t.diverged or 'no evaluation'}; marked FAILED, last good checkpoint kept.",
                  file=sys.stderr)
            results.append(Result(t.run_id, m.ctx.name, t.seed, status, {}, t.diverged))
            continue
        metrics = dict(t.evals[-1][1])
        if t.collapsed_since is not None:
            print(collapse_message(m.ctx.name, t.collapsed_since, metrics, scorer.floor, config), file=sys.stderr)
        results.append(Result(t.run_id, m.ctx.name, t.seed, status, metrics, collapsed=t.collapsed_since is not None))
    return results


def open_run(store: Store, experiment: str, name: str, tags: dict, parent_id: str | None, config: Config,
             data_used: str, floor: dict) -> str:
    """A new member run with what every member run holds from its start: its config (as params and as
    config.yaml) and the real images' scores (floor/*)."""
    run_id = store.start(experiment, name, tags, parent_id)
    store.params(run_id, {**cfg.flat(config), "data.used": data_used})
    store.text(run_id, cfg.to_yaml(config), "config.yaml")
    store.metrics(run_id, [(f"floor/{k}", v, 0) for k, v in floor.items()])
    return run_id


def end_run(store: Store, run_id: str, diverged: str, evals: list) -> RunState:
    """End a member run whose training ended: FAILED (state diverged) when its loss became non-finite or it
    has no evaluation, else FINISHED with its last evaluation logged as final/*."""
    if diverged or not evals:
        store.end(run_id, RunState.FAILED, {"state": "diverged", "failure.reason": diverged or "no evaluation"})
        return RunState.FAILED
    step, metrics = evals[-1]
    store.metrics(run_id, [(f"final/{k}", v, step) for k, v in metrics.items()])
    store.end(run_id, RunState.FINISHED, {"state": "finished"})
    return RunState.FINISHED


def collapse_message(name: str, since: int, metrics: dict, floor: dict, config: Config) -> str:
    """The words a collapsed run ends with: since when, what its samples look like, what to try."""
    from metrics import collapse
    reason = collapse.judge(metrics, floor, config.eval.collapse_modes, config.eval.collapse_recall)
    return (f"{name} ended COLLAPSED (since the evaluation at step {since}): {reason}; "
            f"{collapse.describe(metrics)}. Early in training, and on little data, the recipe collapses on many "
            f"seeds and some recover: try other seeds or more epochs; docs/results.md gives each arm's collapse "
            f"rate.")


def run_experiment(experiment: Experiment, config: Config, resume: str | None = None, store: Store | None = None,
                   fixed: tuple = ()) -> list[Result]:
    """Every sweep value x seed of an experiment; a parent run ties them together when there are several.
    Under JAX the seeds of each sweep value train as one population. resume: None = fresh runs, "" = the
    latest unfinished run, else a run id (a population's parent id resumes its unfinished populations).
    fixed: keys --set pinned."""
    sweep_values = experiment.sweep_values(fixed)
    seeds = [config.train.seed + i for i in range(config.train.seeds)]
    population = population_lib.trains_together(config, len(seeds))
    jobs = [(sweep_value, seeds) for sweep_value in sweep_values] if population else [(sweep_value, [s]) for sweep_value in sweep_values for s in seeds]
    parent_id, resumes = None, []  # resumes: [(sweep_value, [run ids], [seeds])]
    if resume is not None:
        store = store or Store()
        parent_id, resumes = resume_lib.resolve(store, experiment, config, resume, sweep_values, seeds, jobs)
    dataset = data.for_config(config)  # bad data fails here, before anything is written to the store
    store = store or Store()
    scorers = scorers_lib.Scorers()
    stop, previous = stop_lib.install()
    results: list[Result] = []
    try:
        if parent_id is None and (len(jobs) > 1 or population) and not resumes:
            parent_id = open_group(store, experiment.name, experiment.name, len(sweep_values) * len(seeds),
                                   {"dataset": dataset.name}, config)
        elif parent_id is not None:
            store.reopen(parent_id)
        if not resumes and loop.total_steps(config, len(dataset.train_images)) >= plan.ANNOUNCE_STEPS:
            plan.announce_runs(experiment.name, config, dataset, scorers(config, dataset), len(sweep_values) * len(seeds))
        work = [(sweep_value, job_seeds, None) for sweep_value, job_seeds in jobs] if not resumes else \
            [(sweep_value, job_seeds, run_ids) for sweep_value, run_ids, job_seeds in resumes]
        for sweep_value, job_seeds, run_ids in work:
            job_config = cfg.replace(config, sweep_value) if sweep_value else config
            results += run_members(experiment.name, job_config, job_seeds, dataset, scorers(job_config, dataset), store,
                                   parent_id, sweep_value, resume_run_ids=run_ids, stop=stop)
    except KeyboardInterrupt:  # stop_lib.Interrupted included
        if parent_id:
            store.end(parent_id, RunState.KILLED)
        raise
    finally:
        stop_lib.restore(previous)
    if parent_id:
        store.end(parent_id, group_state(results))
    return results
