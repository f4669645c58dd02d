"""What `harness compare` was asked: one object, from the command line to every room of compare."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CompareOptions:
    names: list = field(default_factory=list)  # experiments and study:EXPERIMENT/NAME arms; empty: every registered one
    smoke: bool = False  # tiny and fast on mnist-5k
    flags: dict = field(default_factory=dict)  # --seeds/--epochs/--steps as dotted config keys
    sets: list = field(default_factory=list)  # --set key=value
    out: Path | None = None  # report folder; None: reports/compare-<time>
    retry_diverged: bool = False  # train diverged seeds again
    backend: str | None = None  # of runs made elsewhere (imported), instead of this machine's
    platform: str | None = None
    sweeps: dict = field(default_factory=dict)  # sweep key -> the values to compare
    until_decided: bool = False  # spend seeds in looks until each arm is decided
    max_seeds: int = 8  # seeds a side at the last look
    margin: float | None = None  # escaped-quality equivalence margin (FID); None: base's compare.margin, if any
    primary: str | None = None  # the one arm decided at the full alpha
    spending: str = "pocock"  # alpha spending of the escaped-quality intervals
    gamma: float = 1.0  # Hwang-Shih-DeCani's gamma
    storage: str | None = None  # Optuna storage of study:... arms
    budget: int | None = None  # the most runs an --until-decided family may hold
    so_far: bool = False  # only say where the comparison stands (compare/standing.py): nothing trained or decided
