"""What long work will do and how long it will take, said before it starts: the plan of a `compare` or a
`search`, with an estimate from a step time measured here and now, and one overall progress bar."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from harness import loop
from harness.config import Config
from harness.data import Dataset
from harness.step import steps_per_epoch


def measure(config: Config, dataset, scorer=None, steps: int = 2) -> tuple[float, float]:
    """(seconds a train step of this config takes on this machine, seconds an evaluation takes), from
    `steps` timed steps after one untimed (compiling) step, and one scoring of N images."""
    _, _, step_fn = loop.build(config, dataset, seed=0)
    eval_seconds = 0.0
    if scorer is not None:  # before any step: a config that diverges at once must not break its own estimate
        z = np.random.default_rng(0).standard_normal((scorer.n_images, config.model.latent_dim)).astype(np.float32)
        started = time.perf_counter()
        images = loop.generated(step_fn, z, config.model.output_activation)
        scorer.score(images)
        eval_seconds = time.perf_counter() - started + 1.0  # + figures and logging, about a second
    step_seconds = float(np.median(time_steps(step_fn, steps, warmup=1)))
    return step_seconds, eval_seconds


def time_steps(step_fn, steps: int, warmup: int = 2) -> list[float]:
    """Seconds of each of `steps` steps after `warmup` untimed ones (compilation happens there)."""
    for i in range(warmup):
        _sync(step_fn(i))
    times = []
    for i in range(warmup, warmup + steps):
        start = time.perf_counter()
        _sync(step_fn(i))
        times.append(time.perf_counter() - start)
    return times


def _sync(out) -> None:
    """Wait for the device: fetch one scalar of the step's result."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    float(np.asarray(out).ravel()[0])


@dataclass
class Plan:
    """Rows of (what, seeds, steps each, reuse, resume, train, held by other processes) and the cost of a
    step and an evaluation."""
    title: str
    rows: list = field(default_factory=list)
    steps_to_train: int = 0  # over all runs to train or resume
    evals_to_run: float = 0.0  # in evaluations of the measured size
    weighted_steps: float = 0.0  # steps_to_train, each scaled by its config's cost relative to the measured one
    step_seconds: float = 0.0
    eval_seconds: float = 0.0
    note: str = ""

    def add(self, what: str, seeds: int, steps: int, reuse: int, resume: int, train: int, resume_steps: int,
            evals_each: float, cost: float = 1.0, others: int = 0) -> None:
        """cost: this row's step time relative to the measured one (FLOPs ratio); evals_each: a run's
        evaluations, counted at the measured evaluation's size (loop.evaluations); others: seeds another
        live process is training (harness/claims.py), waited for, not counted here."""
        self.rows.append((what, seeds, steps, reuse, resume, train, others))
        self.steps_to_train += train * steps + resume_steps
        self.weighted_steps += cost * (train * steps + resume_steps)
        self.evals_to_run += (train + resume) * evals_each

    @property
    def runs_to_train(self) -> int:
        """Runs to train afresh or resume, over every row (row[4]: resume, row[5]: train)."""
        return sum(r[4] + r[5] for r in self.rows)

    def run_seconds(self) -> float:
        """One whole run of the first row's length at the measured step and evaluation times."""
        if not self.rows or not self.step_seconds:
            return 0.0
        steps = self.rows[0][2]
        evals = self.evals_to_run / max(1, self.runs_to_train) if self.evals_to_run else 0.0
        return steps * self.step_seconds + evals * self.eval_seconds

    def seconds(self) -> float:
        return self.weighted_steps * self.step_seconds + self.evals_to_run * self.eval_seconds

    def text(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [4])
        others = sum(r[6] for r in self.rows)
        lines = [self.title, f"  {'what':<{width}}  seeds  steps  reuse  resume  train" + "  others" * bool(others)]
        lines += [f"  {w:<{width}}  {n:>5}  {s:>5}  {a:>5}  {b:>6}  {c:>5}" + f"  {o:>6}" * bool(others)
                  for w, n, s, a, b, c, o in self.rows]
        total = self.runs_to_train
        if total:
            sized = " (counted at the last one's size)" if self.evals_to_run % 1 else ""
            lines.append(f"  {total} run{'s' * (total != 1)} to train or resume, {self.steps_to_train:,} steps and "
                         f"{self.evals_to_run:,.0f} evaluations{sized}: about {duration(self.seconds())} here (a step measured at "
                         f"{self.step_seconds * 1000:.0f} ms, an evaluation at {self.eval_seconds:.0f} s{self.note})")
        elif not others:
            lines.append("  nothing to train: every run is reused")
        if others:
            lines.append(f"  {others} run{'s' * (others != 1)} held by other processes (others): waited for, "
                         "and taken over if one of them dies")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """The plan as data (compare's report.json): its rows and what it would train, with the estimate."""
        keys = ("what", "seeds", "steps", "reuse", "resume", "train", "others")
        return {"title": self.title, "rows": [dict(zip(keys, row)) for row in self.rows],
                "runs_to_train": self.runs_to_train, "steps_to_train": self.steps_to_train,
                "evaluations": self.evals_to_run, "step_seconds": self.step_seconds,
                "eval_seconds": self.eval_seconds, "seconds": self.seconds()}

    def bar(self, unit: str = "step") -> tqdm:
        """One bar over all the work, with its ETA (runs update it as they go)."""
        return tqdm(total=self.steps_to_train, desc="all runs", unit=unit, file=sys.stderr, position=0,
                    dynamic_ncols=True, mininterval=1.0, smoothing=0.05)


def duration(seconds: float) -> str:
    """Seconds in words: 40 s, 12 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


ANNOUNCE_STEPS = 2_000  # runs this long say how long they will take before their first step


def announce(title: str, what: str, seeds: int, runs: int, config: Config, dataset: Dataset, scorer,
             footer: str = "") -> "Plan":
    """Before long work's first step: a plan of `runs` runs of this config, and how long they take on this
    machine (a step and an evaluation timed here and now, about 10-30 s); printed, and returned."""
    the_plan = Plan(title)
    the_plan.add(what, seeds, loop.total_steps(config, len(dataset.train_images)), 0, 0, runs, 0,
                 loop.evaluations(config, dataset)[1])
    the_plan.step_seconds, the_plan.eval_seconds = measure(config, dataset, scorer)
    print(the_plan.text() + footer, file=sys.stderr)
    return the_plan


def announce_runs(experiment: str, config: Config, dataset: Dataset, scorer, runs: int) -> "Plan":
    """`harness run`'s plan: its runs' steps and evaluations, their time here, and how to ask for less;
    printed, and returned."""
    per_epoch = steps_per_epoch(config, len(dataset.train_images))
    total = loop.total_steps(config, len(dataset.train_images))
    return announce(f"plan: {experiment}, {runs} run{'s' * (runs > 1)} of {total:,} steps ({total / per_epoch:g} "
             f"epochs of {len(dataset.train_images):,} {dataset.name} digits)", experiment, runs, runs, config,
             dataset, scorer, "\n  a shorter run: --epochs N or --steps N (the recipe is 100 epochs)")
