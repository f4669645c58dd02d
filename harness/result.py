"""What training one seed as one MLflow run made (runner.run and its kin return one per seed), and the
state a parent run ends in from its members' results."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.tracking import RunState


@dataclass
class Result:
    run_id: str
    name: str
    seed: int
    status: RunState
    metrics: dict = field(default_factory=dict)  # final evaluation; empty when the run did not finish
    reason: str = ""  # why it did not finish
    collapsed: bool = False  # its final samples were judged collapsed (metrics/collapse.py)


def group_state(results: list[Result]) -> RunState:
    """A parent run's end: FINISHED when every member finished, else FAILED."""
    return RunState.FINISHED if all(r.status == RunState.FINISHED for r in results) else RunState.FAILED
