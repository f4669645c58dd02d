"""Stopping a long job cleanly: Ctrl-C or SIGTERM sets a flag that the training loop checks between
steps; the loop then checkpoints and raises Interrupted, and the run is marked KILLED, to be resumed."""
from __future__ import annotations

import signal
from dataclasses import dataclass


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the run checkpointed and stopped. A KeyboardInterrupt, so that searches and
    sweeps stop too instead of catching it as a failed trial."""


class Pruned(Exception):
    """An evaluation callback's request to stop the run early (a search trial the pruner stopped): the run
    ends KILLED with state pruned, not as an error. search.py raises one that is also optuna.TrialPruned."""


@dataclass
class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between steps so a step is never cut in half."""
    signal: int | None = None

    def __call__(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.signal = signum


def install() -> tuple[StopFlag, dict]:
    """Route SIGINT and SIGTERM to a flag; returns the flag and the previous handlers to restore."""
    flag = StopFlag()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, flag)
        except ValueError:  # not the main thread (e.g. a worker thread): leave signals alone
            pass
    return flag, previous


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
