"""run(): one seed of one experiment as one MLflow run; run_experiment(): its seeds and sweep values.

Both return their metrics; search and compare call the same functions, nothing reads logs back.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


from harness import config as cfg
from harness import data, identity, loop, tracking
from harness.config import Config, UserError
from harness.registry import Experiment


@dataclass
class Result:
    run_id: str
    name: str
    seed: int
    status: str  # FINISHED, FAILED, KILLED
    metrics: dict = field(default_factory=dict)  # final evaluation; empty when the run did not finish
    reason: str = ""


class ResumeError(UserError):
    """A resume that cannot continue: no such run, no checkpoint, or a changed config."""


def load_dataset(config: Config, quiet: bool = False) -> data.Dataset:
    return data.load(config.data.name, config.data.path, config.data.split_seed, quiet=quiet)


def make_scorer(config: Config, dataset: data.Dataset, quiet: bool = False):
    from metrics.scorer import Scorer
    return Scorer(dataset, config.eval.n_images, config.eval.kid_subsets, config.eval.kid_subset_size, quiet=quiet)


def run_name(experiment: str, seed: int, point: dict | None = None) -> str:
    suffix = "".join(f"-{k.split('.')[-1]}={v}" for k, v in (point or {}).items())
    return f"{experiment}{suffix}-s{seed}"


def local_artifact_dir(artifact_uri: str) -> Path | None:
    parsed = urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path)
    return None


def run(experiment: str, config: Config, seed: int, dataset: data.Dataset, scorer, client=None,
        parent_id: str | None = None, point: dict | None = None, on_eval=None, extra_tags: dict | None = None,
        resume_run_id: str | None = None, stop: loop.StopFlag | None = None, name: str | None = None,
        on_start=None) -> Result:
    """Train one seed as one MLflow run and return its final metrics. Raises Interrupted on a signal,
    and re-raises what the on_eval callback raises (a pruned trial) after marking the run."""
    client = client or tracking.client()
    config = cfg.replace(config, {"train.seed": seed})
    name = name or run_name(experiment, seed, point)
    ident = identity.of(config, dataset.fingerprint)
    resume_from = None
    if resume_run_id:
        run_id = resume_run_id
        resume_from = _checkpoint_for_resume(client, run_id, config, ident)
        client.update_run(run_id, status="RUNNING")
        tracking.set_tags(client, run_id, {"resumed": "true", "state": "running"})
    else:
        tags = {"experiment": experiment, "seed": seed, "dataset": dataset.name,
                "dataset.requested": config.data.name, "data.source": dataset.source,
                "collapse": "false", "state": "running", **tracking.environment_tags(), **identity.tags(ident),
                **{f"sweep.{k}": v for k, v in (point or {}).items()}, **(extra_tags or {})}
        run_id = tracking.start_run(client, experiment, name, tags, parent_id)
        tracking.log_params(client, run_id, {**cfg.flat(config), "data.used": dataset.name})
        client.log_text(run_id, cfg.to_yaml(config), "config.yaml")
        tracking.log_metrics(client, run_id, [(f"floor/{k}", v, 0) for k, v in scorer.floor.items()])
    print(f"run {name}: id {run_id} (experiment '{experiment}', dataset {dataset.name})", file=sys.stderr)
    if on_start is not None:
        on_start(run_id)

    info = client.get_run(run_id).info
    local = local_artifact_dir(info.artifact_uri)
    checkpoint_dir = (local / "checkpoint") if local else Path("mlruns") / "checkpoints" / run_id
    ctx = loop.RunContext(client, run_id, name, on_eval=on_eval, upload_checkpoint=local is None, identity=ident)
    try:
        metrics = loop.train(config, dataset, seed, ctx, scorer, checkpoint_dir, resume_from, stop)
    except loop.Diverged as e:
        _end(client, run_id, "FAILED", {"state": "diverged", "failure.reason": str(e)})
        print(f"run {name} diverged: {e}; marked FAILED, last good checkpoint kept.", file=sys.stderr)
        return Result(run_id, name, seed, "FAILED", {}, str(e))
    except loop.Interrupted as e:
        _end(client, run_id, "KILLED", {"state": "interrupted", "failure.reason": str(e)})
        print(f"run {name} interrupted: {e}. Resume with: harness run {experiment} --resume {run_id}",
              file=sys.stderr)
        raise
    except BaseException as e:  # a pruned trial, a bug, an outage, a second Ctrl-C: mark the run, then let it rise
        # Only a divergence counts against a variant; "error" runs are retried by compare.
        state = ("pruned" if type(e).__name__ == "TrialPruned"
                 else "interrupted" if isinstance(e, KeyboardInterrupt) else "error")
        status = "FAILED" if state == "error" else "KILLED"
        _end(client, run_id, status, {"state": state, "failure.reason": f"{type(e).__name__}: {e}"[:500]})
        raise
    final = {f"final/{k}": v for k, v in metrics.items()}
    tracking.log_metrics(client, run_id, [(k, v, ctx.evals[-1][0]) for k, v in final.items()])
    _end(client, run_id, "FINISHED", {"state": "finished"})
    if ctx.collapsed_since is not None:
        print(collapse_message(name, ctx.collapsed_since, metrics, scorer.floor, config), file=sys.stderr)
    return Result(run_id, name, seed, "FINISHED", metrics)


def collapse_message(name: str, since: int, metrics: dict, floor: dict, config: Config) -> str:
    """The words a collapsed run ends with: since when, what its samples look like, what to try."""
    from metrics import collapse
    reason = collapse.judge(metrics, floor, config.eval.collapse_modes, config.eval.collapse_recall)
    return (f"{name} ended COLLAPSED (since the evaluation at step {since}): {reason}; "
            f"{collapse.describe(metrics)}. On little data the recipe collapses on some seeds; try other seeds, "
            f"a longer run (some seeds recover), or the smoothing experiment.")


def _end(client, run_id: str, status: str, tags: dict) -> None:
    tracking.set_tags(client, run_id, tags)
    client.set_terminated(run_id, status)


def _checkpoint_for_resume(client, run_id: str, config: Config, ident: dict | None = None) -> Path:
    """The run's checkpoint, after checking that it continues the same run: the same config and, once
    the data is loaded (ident), the same data, backend, platform, precision and step maths."""
    try:
        run_info = client.get_run(run_id)
    except Exception:
        raise ResumeError(f"no run with id {run_id} in {tracking.tracking_uri()}.") from None
    if run_info.info.status == "FINISHED":
        raise ResumeError(f"run {run_id} already finished; there is nothing to resume.")
    local = local_artifact_dir(run_info.info.artifact_uri)
    path = (local / "checkpoint" / "state.npz") if local else Path("mlruns") / "checkpoints" / run_id / "state.npz"
    if not path.exists() and local is None:
        try:
            path = Path(client.download_artifacts(run_id, "checkpoint/state.npz"))
        except Exception:
            pass
    if not path.exists():
        raise ResumeError(f"run {run_id} has no checkpoint (it stopped before its first evaluation); start it again.")
    from harness import checkpoint
    _, _, meta = checkpoint.load(path)
    diff = config_diff(meta["config"], config)
    if ident is not None:
        diff += identity.resume_differences(meta.get("identity"), run_info.data.tags, ident)
    if diff:
        raise ResumeError(f"run {run_id} was started with a different config ({'; '.join(diff)}); "
                          "resume with the same settings or start a new run.")
    return path


def config_diff(old: dict, config: Config) -> list[str]:
    """Differences in the keys that change a run; keys absent from an older checkpoint read as their
    old behaviour (identity.LEGACY), keys no longer in the schema are ignored."""
    out = []
    for key, value in cfg.flat(config).items():
        if key in identity.NOT_IDENTITY or key.startswith("search."):
            continue
        before = identity.read_old(key, old)
        if before != value:
            out.append(f"{key}: {before!r} -> {value!r}")
    return out


def find_resumable(client, experiment: str, seed: int) -> str:
    """The latest unfinished run of an experiment and seed."""
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs(
        [found.experiment_id], f"tags.seed = '{seed}' and attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=20)
    runs = [r for r in runs if r.data.tags.get("mlflow.runName", "").endswith(f"-s{seed}")
            and r.data.tags.get("state") != "diverged"]
    if not runs:
        raise ResumeError(f"no unfinished run of '{experiment}' with seed {seed} to resume.")
    return runs[0].info.run_id


def run_experiment(experiment: Experiment, config: Config, resume: str | None = None, client=None,
                   fixed: tuple = ()) -> list[Result]:
    """Every sweep value x seed of an experiment; a parent run ties them together when there are several.
    resume: None = fresh runs, "" = the latest unfinished run, else a run id. fixed: keys --set pinned."""
    points = experiment.sweep_points(fixed)
    seeds = [config.train.seed + i for i in range(config.train.seeds)]
    jobs = [(point, seed) for point in points for seed in seeds]
    parent_id = run_id = None
    if resume is not None:
        if len(jobs) != 1:
            raise ResumeError("--resume continues one run: pass --seeds 1 and, for a sweep, --set the swept key.")
        client = client or tracking.client()
        run_id = resume or find_resumable(client, experiment.name, seeds[0])
        _checkpoint_for_resume(client, run_id, cfg.replace(config, {"train.seed": seeds[0]}))  # fail before loading data
    dataset = load_dataset(config)  # bad data fails here, before anything is written to the store
    client = client or tracking.client()
    scorers: dict = {}
    stop, previous = loop.install_stop_handlers()
    results: list[Result] = []
    try:
        if len(jobs) > 1:
            parent_id = tracking.start_run(client, experiment.name, f"{experiment.name}-x{len(jobs)}",
                                           {"experiment": experiment.name, "kind": "group", "dataset": dataset.name,
                                            **tracking.environment_tags()})
            client.log_text(parent_id, cfg.to_yaml(config), "config.yaml")
        for point, seed in jobs:
            job_config = cfg.replace(config, point) if point else config
            key = (job_config.eval.n_images, job_config.eval.kid_subsets, job_config.eval.kid_subset_size)
            if key not in scorers:
                scorers[key] = make_scorer(job_config, dataset)
            results.append(run(experiment.name, job_config, seed, dataset, scorers[key], client, parent_id, point,
                               resume_run_id=run_id, stop=stop))
    except KeyboardInterrupt:  # loop.Interrupted included
        if parent_id:
            client.set_terminated(parent_id, "KILLED")
        raise
    finally:
        loop.restore_handlers(previous)
    if parent_id:
        status = "FINISHED" if all(r.status == "FINISHED" for r in results) else "FAILED"
        client.set_terminated(parent_id, status)
    return results
