"""run(): one seed of one experiment as one MLflow run; run_experiment(): its seeds and sweep values.

Both return their metrics; search and compare call the same functions, nothing reads logs back.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


from harness import config as cfg
from harness import data, loop, tracking
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


def config_hash(config: Config, dataset_used: str) -> str:
    """What makes two runs comparable: the resolved config but the seed and the search space (neither
    changes a run's training), and the data actually used."""
    d = cfg.to_dict(config)
    d["train"] = {k: v for k, v in d["train"].items() if k not in ("seed", "seeds")}
    d.pop("search")
    d["data"]["used"] = dataset_used
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


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
    resume_from = None
    if resume_run_id:
        run_id = resume_run_id
        resume_from = _checkpoint_for_resume(client, run_id, config)
        client.update_run(run_id, status="RUNNING")
        tracking.set_tags(client, run_id, {"resumed": "true"})
    else:
        tags = {"experiment": experiment, "seed": seed, "dataset": dataset.name,
                "dataset.requested": config.data.name, "data.source": dataset.source,
                "config.hash": config_hash(config, dataset.name), "collapse": "false", "state": "running",
                **tracking.environment_tags(), **{f"sweep.{k}": v for k, v in (point or {}).items()},
                **(extra_tags or {})}
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
    ctx = loop.RunContext(client, run_id, name, on_eval=on_eval, upload_checkpoint=local is None)
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
    except BaseException as e:  # a pruned trial, a bug, a second Ctrl-C: mark the run, then let it rise
        state = "pruned" if type(e).__name__ == "TrialPruned" else "failed"
        status = "KILLED" if state == "pruned" or isinstance(e, KeyboardInterrupt) else "FAILED"
        _end(client, run_id, status, {"state": state, "failure.reason": f"{type(e).__name__}: {e}"[:500]})
        raise
    final = {f"final/{k}": v for k, v in metrics.items()}
    tracking.log_metrics(client, run_id, [(k, v, ctx.evals[-1][0]) for k, v in final.items()])
    _end(client, run_id, "FINISHED", {"state": "finished"})
    return Result(run_id, name, seed, "FINISHED", metrics)


def _end(client, run_id: str, status: str, tags: dict) -> None:
    tracking.set_tags(client, run_id, tags)
    client.set_terminated(run_id, status)


def _checkpoint_for_resume(client, run_id: str, config: Config) -> Path:
    """The run's checkpoint, after checking that the config is the same as the run's."""
    try:
        run_info = client.get_run(run_id)
    except Exception:
        raise ResumeError(f"no run with id {run_id} in {tracking.tracking_uri()}.") from None
    if run_info.info.status == "FINISHED":
        raise ResumeError(f"run {run_id} already finished; there is nothing to resume.")
    local = local_artifact_dir(run_info.info.artifact_uri)
    path = (local / "checkpoint" / "state.npz") if local else Path("mlruns") / "checkpoints" / run_id / "state.npz"
    if not path.exists() and local is None:
        path = Path(client.download_artifacts(run_id, "checkpoint/state.npz"))
    if not path.exists():
        raise ResumeError(f"run {run_id} has no checkpoint (it stopped before its first evaluation); start it again.")
    from harness import checkpoint
    _, _, meta = checkpoint.load(path)
    diff = config_diff(meta["config"], cfg.to_dict(config))
    if diff:
        raise ResumeError(f"run {run_id} was started with a different config ({'; '.join(diff)}); "
                          "resume with the same settings or start a new run.")
    return path


def config_diff(old: dict, new: dict) -> list[str]:
    out = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if key in ("seeds",):
                continue
            if a.get(key) != b.get(key):
                out.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
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
