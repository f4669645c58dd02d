"""Checkpoints: every variable of both networks and both optimizers (dropout seed states included),
plus the step, in one .npz written atomically. The rest of the random state needs no saving: every
per-step draw is a stateless function of (seed, step)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

FILE = "state.npz"  # in a run's checkpoint folder


def save(folder: Path, step: int, arrays: list[np.ndarray], meta: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE
    tmp = folder / f".{FILE}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, step=np.int64(step), meta=np.array(json.dumps(meta)),
                 **{f"v{i:04d}": a for i, a in enumerate(arrays)})
    os.replace(tmp, path)  # a crash mid-write leaves the previous checkpoint whole
    return path


def load(path: Path) -> tuple[int, list[np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as f:
        keys = sorted(k for k in f.files if k.startswith("v"))
        return int(f["step"]), [f[k] for k in keys], json.loads(str(f["meta"]))


def header(path: Path) -> tuple[int, dict]:
    """(the step a checkpoint continues from, its meta), without reading its arrays (an .npz reads each
    member only when asked)."""
    with np.load(path, allow_pickle=False) as f:
        return int(f["step"]), json.loads(str(f["meta"]))
