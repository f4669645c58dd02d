"""How an interrupted run continues: finding it (and its population), finding its checkpoint (its own
artifact folder, or downloaded from a server), and checking that the checkpoint continues the same run."""
from __future__ import annotations

from pathlib import Path

from harness import config as cfg
from harness import checkpoint, identity, tracking
from harness.config import Config, UserError
from harness.tracking import RunState, Store


class ResumeError(UserError):
    """A resume that cannot continue: no such run, no checkpoint, or a changed config."""


class Alive(ResumeError):
    """The run is training in a live process (a fresh heartbeat): it is never taken over."""


def checkpoint_dir(store: Store, run_id: str, sub: str) -> tuple[Path, bool]:
    """(folder, upload): a run's checkpoint folder, its local artifact folder; for server stores a local
    folder whose file is also uploaded as an artifact."""
    local = store.artifact_folder(run_id)
    folder = (local / "checkpoint") if local else Path("mlruns") / "checkpoints" / run_id
    return (folder / sub if sub else folder), local is None


def checkpoint_for(store: Store, run_id: str, config: Config, ident: dict | None = None) -> Path:
    """The run's checkpoint, after checking that it continues the same run: the same config and, once
    the data is loaded (ident), the same data, backend, platform, precision and step maths (read from its
    header; loop.train loads its arrays)."""
    try:
        run_info = store.get(run_id)
    except LookupError as e:
        raise ResumeError(str(e)) from None
    if run_info.info.status == RunState.FINISHED:
        raise ResumeError(f"run {run_id} already finished; there is nothing to resume.")
    if run_info.info.status == RunState.RUNNING and not tracking.is_stale(run_info):
        beat = run_info.data.tags.get("heartbeat.step", "?")
        raise Alive(f"run {run_id} is training in a live process (heartbeat at step {beat}, within "
                    f"{tracking.STALE_AFTER_S:.0f} s); it is not taken over. Resume it once it stops.")
    tags = run_info.data.tags
    path = checkpoint_dir(store, run_id, "")[0] / checkpoint.FILE  # its own, or its population's in the parent
    owner, sub = run_id, ""
    if not path.exists() and "population.parent" in tags:
        owner, sub = tags["population.parent"], f"population-{tags['population.id']}"
        path = checkpoint_dir(store, owner, sub)[0] / checkpoint.FILE
    if not path.exists():  # on a server: downloaded; an outage raises StoreError, it is not "no checkpoint"
        path = store.fetch(owner, f"checkpoint/{sub + '/' if sub else ''}{checkpoint.FILE}") or path
    if not path.exists():
        raise ResumeError(f"run {run_id} has no checkpoint (it stopped before its first evaluation or train.checkpoint_minutes); start it again.")
    _, meta = checkpoint.header(path)
    diff = config_diff(meta["config"], config)
    if ident is not None:
        diff += identity.resume_differences(meta.get("identity"), run_info.data.tags, ident)
    if diff:
        raise ResumeError(f"run {run_id} was started with a different config ({'; '.join(diff)}); "
                          "resume with the same settings or start a new run.")
    return path


def checkpoint_step(store: Store, run_id: str, config: Config) -> int | None:
    """The step a run would continue from, or None where it cannot (no checkpoint yet, another config)."""
    try:
        path = checkpoint_for(store, run_id, config)
    except ResumeError:
        return None
    return checkpoint.header(path)[0]


def config_diff(old: dict, config: Config) -> list[str]:
    """Differences in the keys that change a run; keys absent from an older checkpoint read as their
    old behaviour (identity.LEGACY), keys no longer in the schema are ignored."""
    out = []
    for key, value in cfg.flat(config).items():
        if key in identity.NOT_IDENTITY or key.startswith(("search.", "compare.")):
            continue
        before = identity.read_old(key, old)
        if before != value:
            out.append(f"{key}: {before!r} -> {value!r}")
    return out


def find_resumable(store: Store, experiment: str, seed: int) -> str:
    """The latest unfinished run of an experiment and seed that no live process is training (a RUNNING
    run with a fresh heartbeat is alive elsewhere: it is never taken over)."""
    runs = store.runs(experiment, f"tags.seed = '{seed}' and attributes.status != '{RunState.FINISHED}'", newest_first=True,
                      limit=20)
    runs = [r for r in runs if r.data.tags.get("mlflow.runName", "").endswith(f"-s{seed}")
            and r.data.tags.get("state") != "diverged"]
    free = [r for r in runs if r.info.status != RunState.RUNNING or tracking.is_stale(r)]
    if not free:
        alive = f" ({len(runs)} training in a live process now: heartbeat within {tracking.STALE_AFTER_S:.0f} s)" if runs else ""
        raise ResumeError(f"no unfinished run of '{experiment}' with seed {seed} to resume{alive}.")
    return free[0].info.run_id


def populations_of(store: Store, parent_id: str) -> list[list]:
    """The unfinished populations under a parent run: each its member runs in member order."""
    runs = store.siblings(parent_id, f"tags.`population.parent` = '{parent_id}'")
    groups: dict = {}
    for r in runs:
        groups.setdefault(r.data.tags["population.id"], []).append(r)
    return [sorted(g, key=lambda r: int(r.data.tags["population.index"])) for g in groups.values()
            if any(r.info.status != RunState.FINISHED and r.data.tags.get("state") != "diverged" for r in g)]


def has_populations(store: Store, run_id: str) -> bool:
    """Whether run_id is a parent run with population members under it."""
    try:
        return bool(store.siblings(run_id, f"tags.`population.parent` = '{run_id}'", limit=1))
    except LookupError:
        return False


def resolve(store: Store, experiment, config: Config, resume: str, sweep_values: list, seeds: list[int],
            jobs: list) -> tuple[str | None, list]:
    """What `harness run --resume [ID]` continues: (the parent run to reopen or None, [(sweep value,
    [run ids], [seeds])]). ID "" is the latest unfinished run of the seed that no live process trains; a
    population's parent id resumes its unfinished populations. Checks the checkpoint before any data loads."""
    parent_id, resumes = None, []
    if resume and has_populations(store, resume):
        parent_id = resume
        for members in populations_of(store, resume):
            sweep_value = {k[len("sweep."):]: _value(v) for k, v in members[0].data.tags.items() if k.startswith("sweep.")}
            resumes.append((sweep_value, [r.info.run_id for r in members],
                            [int(r.data.tags["seed"]) for r in members]))
        if not resumes:
            raise ResumeError(f"run {resume} has no unfinished population to resume.")
    else:
        if len(jobs) != 1 or len(jobs[0][1]) != 1:
            raise ResumeError("--resume continues one run, or a population's parent run: pass --seeds 1 and, "
                              "for a sweep, --set the swept key; or give the parent's id.")
        run_id = resume or find_resumable(store, experiment.name, seeds[0])
        checkpoint_for(store, run_id, cfg.replace(config, {"train.seed": seeds[0]}))  # fail before loading data
        resumes.append((sweep_values[0], [run_id], seeds))
    return parent_id, resumes


def _value(text: str):
    """A sweep value read back from its tag (tags are strings): as YAML, so 32 is 32 again."""
    import yaml
    return yaml.safe_load(text)
