"""An arm (one experiment at one sweep value, the unit compared against base) and its seeds' outcomes,
read from the tracking store: which run is a seed's outcome, which is resumed, which is alive elsewhere,
and why every other run of the compared experiments is left out."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from harness import identity, registry, tracking
from harness.config import Config
from harness.step import steps_per_epoch
from harness.tracking import RunState, Store
from metrics import collapse
from metrics.scorer import HEADLINE


METRICS = HEADLINE  # the final metrics every arm reports


_NOT_SEED_RUNS = ("group", "study", "report")  # `kind` tags of parent and report runs


@dataclass
class SeedOutcome:
    """A seed's outcome: its latest run of the arm's identity that finished or diverged (or, for
    `--so-far`'s figure only, one still training or stopped, with its evaluations so far)."""
    run_id: str
    seed: int
    outcome: str  # finished / diverged (a non-finite loss: no final metrics); training / stopped (--so-far)
    metrics: dict = field(default_factory=dict)  # final metrics, name -> value
    floor: dict = field(default_factory=dict)  # the same metrics for real digits
    reason: str = ""  # why it stopped, when it diverged
    last_step: int | None = None  # where a diverged seed stopped
    collapse: str = ""  # a finished seed's final samples judged collapsed, in words; '' if not
    fid_history: list = field(default_factory=list)  # (step, FID) at each evaluation
    collapse_history: list = field(default_factory=list)  # (step, collapsed) at each evaluation
    versions: dict = field(default_factory=dict)  # version.* tags

    @property
    def judged(self) -> bool:
        """Finished with finite final modes and recall: its samples could be judged."""
        return self.outcome == "finished" and all(math.isfinite(self.metrics.get(m, math.nan))
                                                  for m in ("modes", "recall"))

    @property
    def escaped(self) -> bool:
        """Finished, its final samples judged and not collapsed, with a final FID: the primary endpoint."""
        return self.judged and not self.collapse and math.isfinite(self.metrics.get("fid", math.nan))

    @property
    def escaped_since(self) -> int | None:
        """An escaped seed's first evaluation step of the uncollapsed stretch it ended in: seeds that escape
        early and late can end far apart (at 20 epochs, in a first attempt since lost, base's escaped by steps
        468 and 2,808 and ended at FID 99 and 186). None when it did not escape, or its evaluations judged it
        collapsed at the end (fewer images than the final scores')."""
        if not self.escaped:
            return None
        since = None
        for step, collapsed in sorted(self.collapse_history):
            since = None if collapsed else (since or step)
        return since


@dataclass
class Arm:
    """One experiment at one sweep value: the unit compared against base."""
    experiment: str
    sweep_value: dict
    config: Config
    dataset: str  # the name of the data actually used
    identity: dict  # harness/identity.py: only runs with exactly this identity are pooled
    runs: list = field(default_factory=list)  # one SeedOutcome per seed: see outcome()
    same_as: str = ""  # label of an earlier arm with this very identity (latent at 100 is base): its runs are used
    title: str = ""  # its label when not the experiment's own (a study's best: study:EXPERIMENT/NAME)
    tags: dict = field(default_factory=dict)  # on each run it trains
    best: dict = field(default_factory=dict)  # a study's best trial: study, trial, value, seed, run_id

    @property
    def digest(self) -> str:
        return identity.digest(self.identity)

    @property
    def seeds(self) -> list[int]:
        return [self.config.train.seed + i for i in range(self.config.train.seeds)]

    @property
    def label(self) -> str:
        return self.title or registry.arm_label(self.experiment, self.sweep_value)

    @property
    def group(self) -> tuple:
        """Arms are only compared within one data, backend, platform, precision, code version and
        metric setting: everything in the identity but the config under study."""
        i, e = self.identity, self.config.eval
        return (self.dataset, i["data"], i["backend"], i["platform"], i["precision"], i["numerics"], i["metrics"],
                e.n_images, e.kid_subsets, e.kid_subset_size)

    def finished(self) -> list[SeedOutcome]:
        return [r for r in self.runs if r.outcome == "finished"]

    def values(self, metric: str, escaped: bool = False) -> list[float]:
        """Final values over the seeds that finished (a diverged seed has none), or escaped."""
        return [r.metrics[metric] for r in self.finished() if metric in r.metrics and (r.escaped or not escaped)]

    def escaped_fids(self) -> list[float]:
        return self.values("fid", escaped=True)

    def scores(self) -> list[float]:
        """Every seed's final FID, nan where it has none (diverged, unscored): the rank summary's input."""
        return [r.metrics.get("fid", math.nan) if r.outcome == "finished" else math.nan for r in self.runs]

    def count(self, outcome: str) -> int:
        """Seeds that finished, diverged, collapsed (finished, judged collapsed) or escaped."""
        if outcome == "collapsed":
            return sum(bool(r.collapse) for r in self.finished())
        if outcome == "escaped":
            return sum(r.escaped for r in self.runs)
        return sum(r.outcome == outcome for r in self.runs)


def with_outcomes(arms: list[Arm], outcomes: dict) -> list[Arm]:
    """New arms with their seeds' outcomes (arm label -> [SeedOutcome], as schedule.read_outcomes gives):
    the arms given are left as they were."""
    return [replace(a, runs=list(outcomes.get(a.label, []))) for a in arms]


def epoch_length(arms: list[Arm], datasets: dict) -> int | None:
    """Steps in an epoch, when every arm's length was asked in epochs of one size (the report then says
    the epoch beside each step); None otherwise."""
    lengths = {None if a.config.train.steps else
               steps_per_epoch(a.config, len(datasets[data_key(a.config)].train_images)) for a in arms}
    return lengths.pop() if len(lengths) == 1 else None


def data_key(config: Config) -> tuple:
    """What chooses an arm's data (the datasets dict's key): its name, path and split seed."""
    return config.data.name, config.data.path, config.data.split_seed


def _is_seed_run(run) -> bool:
    tags = run.data.tags
    return tags.get("kind") not in _NOT_SEED_RUNS and "optuna.study" not in tags and "seed" in tags


def latest(runs: list, arm: Arm, seed: int, test) -> object | None:
    """The newest run of this arm's identity and seed that passes test(run)."""
    mine = [r for r in runs if _is_seed_run(r) and r.data.tags.get("identity") == arm.digest
            and r.data.tags.get("seed") == str(seed) and test(r)]
    return mine[-1] if mine else None


def is_outcome(run) -> bool:
    """A result of the variant: it finished, or it diverged (a non-finite loss counts against it)."""
    return run.info.status == RunState.FINISHED or run.data.tags.get("state") == "diverged"


def outcome_test(retry_diverged: bool):
    """What counts as a seed's outcome: a finished or diverged run, or with --retry-diverged (diverged
    seeds trained again) only a finished one."""
    return (lambda r: r.info.status == RunState.FINISHED) if retry_diverged else is_outcome


def is_resumable(run) -> bool:
    """Its checkpoint continues it: stopped by a signal, ended by an error (not a divergence), or RUNNING
    with no heartbeat for tracking.STALE_AFTER_S (its process died without a word)."""
    state = run.data.tags.get("state")
    return ((run.info.status == RunState.KILLED and state == "interrupted") or (run.info.status == RunState.FAILED and state == "error")
            or tracking.is_stale(run))


def is_alive(run) -> bool:
    """RUNNING with a recent heartbeat: training in another process or on another machine."""
    return run.info.status == RunState.RUNNING and not tracking.is_stale(run)


def floor_of(run) -> dict:
    """The real digits' metrics a run logged (floor/*), by name: what its collapse is judged against."""
    return {k[len("floor/"):]: v for k, v in run.data.metrics.items() if k.startswith("floor/")}


def outcome(store: Store, run, arm: Arm) -> SeedOutcome:
    metrics = {k[len("final/"):]: v for k, v in run.data.metrics.items() if k.startswith("final/")}
    floor = floor_of(run)
    finished = run.info.status == RunState.FINISHED
    e = arm.config.eval
    return SeedOutcome(run.info.run_id, int(run.data.tags["seed"]), "finished" if finished else "diverged",
                       metrics, floor, reason=run.data.tags.get("failure.reason", ""),
                       last_step=last_step(store, run) if not finished else None,
                       collapse=collapse.judge(metrics, floor, e.collapse_modes, e.collapse_recall) if finished else "",
                       fid_history=store.history(run.info.run_id, "eval/fid"),
                       collapse_history=evaluations_judged(store, run.info.run_id, floor, e),
                       versions={k: v for k, v in run.data.tags.items() if k.startswith("version.")})


def evaluations_judged(store: Store, run_id: str, floor: dict, e) -> list[tuple[int, bool]]:
    """(step, collapsed) at each evaluation, by the rule the final samples are judged with."""
    if not {"modes", "recall"} <= floor.keys():
        return []
    seen = {m: dict(store.history(run_id, f"eval/{m}")) for m in ("modes", "recall")}
    steps = sorted(seen["modes"].keys() & seen["recall"].keys())
    return [(s, bool(collapse.judge({m: seen[m][s] for m in seen}, floor, e.collapse_modes, e.collapse_recall)))
            for s in steps]


def fewer_before_last(c, n_scored: int | None = None) -> bool:
    """Whether evaluations before the last scored fewer images than the last (eval.interim_images), so that
    FID reads higher there. n_scored: the last one's images when eval.n_images is None (the test set)."""
    interim, last = c.eval.interim_images, c.eval.n_images or n_scored
    return bool(interim) and (last is None or interim < last)


def collapse_over_training(arms: list[Arm]) -> tuple[list[int], list[tuple[str, list[tuple[int, int, int]]]]]:
    """Evaluation steps, and per arm (an arm of another's identity once, under the arm that made its runs) at each step:
    (collapsed, evaluated, diverged before it) -- a diverged seed is evaluated until it stopped and
    counted as diverged at every later evaluation of its arm (up to the arm's last: arms of another
    length are not counted at steps they never reach)."""
    arms = [a for a in arms if not a.same_as]
    steps = sorted({s for a in arms for r in a.runs for s, _ in r.collapse_history})
    rows = []
    for arm in arms:
        at = [dict(r.collapse_history) for r in arm.runs]
        stopped = [r.last_step or max(h, default=0) for r, h in zip(arm.runs, at) if r.outcome == "diverged"]
        reached = [s for r, h in zip(arm.runs, at) if r.outcome == "finished" for s in h]
        end = max(reached) if reached else (steps[-1] if steps else 0)  # the arm's last evaluation
        rows.append((arm.label, [(sum(h[s] for h in at if s in h), sum(s in h for h in at),
                                  sum(last < s for last in stopped) if s <= end else 0) for s in steps]))
    return steps, rows


def floors(arms: list[Arm]) -> list[tuple[str, dict]]:
    """One real-data floor per group of arms compared (its runs score the same real images the same way),
    labelled by its data, and by its number of images scored when groups differ."""
    found: dict = {}
    for arm in arms:
        floor = next((r.floor for r in arm.runs if r.floor), None)
        if floor and arm.group not in found:
            found[arm.group] = floor
    several = len(found) > 1
    return [(f"{g[0]}, N={g[7] or 'all held-out'}" if several else g[0], f) for g, f in found.items()]


def last_step(store: Store, run) -> int:
    return max((step for step, _ in store.history(run.info.run_id, "train/d_loss")), default=0)


def left_out(arms: list[Arm], runs_of: dict) -> list[tuple[str, str, str, str]]:
    """(experiment, run id, kind, reason) for every run of the compared experiments that the report does
    not use; kind is a short class of reason (for counts), reason says it in full."""
    used = {r.run_id for arm in arms for r in arm.runs}
    same = {a.digest: a.same_as for a in arms if a.same_as}
    out = []
    for experiment, runs in runs_of.items():
        mine = [a for a in arms if a.experiment == experiment]
        for run in runs:
            if run.info.run_id in used or run.data.tags.get("kind") in _NOT_SEED_RUNS:
                continue
            if run.data.tags.get("identity") in same:
                out.append((experiment, run.info.run_id, "same identity",
                            f"the same run identity as {same[run.data.tags['identity']]}, whose runs are used"))
                continue
            out.append((experiment, run.info.run_id, *_left_out_reason(run, mine)))
    return out


def _left_out_reason(run, arms: list[Arm]) -> tuple[str, str]:
    tags = run.data.tags
    if "optuna.study" in tags:
        return "search trial", f"a trial of Optuna study {tags['optuna.study']}"
    arm = next((a for a in arms if a.digest == tags.get("identity")), None)
    if arm is None:  # explain against the arm of the same sweep value, if any
        if "identity" not in tags:
            return "identity v1", identity.differences({}, tags, {})[0]
        sweep_value = {k[len("sweep."):]: v for k, v in tags.items() if k.startswith("sweep.")}
        near = next((a for a in arms if {k: str(v) for k, v in a.sweep_value.items()} == sweep_value), arms[0])
        return "other identity", "identity differs: " + "; ".join(identity.differences(near.identity, tags,
                                                                                        run.data.params))
    seed, state = int(tags.get("seed", -1)), tags.get("state", "")
    if seed not in arm.seeds:
        return "seed not requested", f"seed {seed} not requested (seeds {arm.seeds[0]}-{arm.seeds[-1]})"
    if state == "error":
        return "error, trained again", f"error, not an outcome of the variant: {tags.get('failure.reason', '?')[:120]}"
    if state == "diverged":
        return "diverged, trained again", "diverged, trained again (--retry-diverged)"
    if run.info.status == RunState.RUNNING:
        if tracking.is_stale(run):
            return "lost", "RUNNING without a heartbeat: its process died without a word"
        return "running", (f"still RUNNING elsewhere (heartbeat at step {run.data.tags.get('heartbeat.step', '?')}); "
                           "not started twice")
    return "superseded", f"an earlier {state or run.info.status.lower()} run of seed {seed}; the latest outcome is used"
