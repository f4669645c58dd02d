"""Where a training run writes: a sink. The loop and the evaluation know only this interface:

    metrics(rows)            rows of (key, value, step)
    tags(tags)               {key: value}
    text(text, path)         a text artifact
    figure(fig, path)        a matplotlib figure, saved as a PNG artifact
    artifact(local, folder)  a file copied into the run's artifacts

An MLflow run is one (tracking.RunSink). A JsonlSink is another, for a machine without MLflow (an
accelerator with JAX): a folder holding events.jsonl (metrics, tags and texts in the order written) and
artifacts/. replay() sends such a folder into any other sink: `harness import-results` replays it into a
new MLflow run, so a run trained offline reaches the store through the same door as one trained here.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Protocol


class Sink(Protocol):
    def metrics(self, rows: list[tuple[str, float, int]]) -> None: ...
    def tags(self, tags: dict) -> None: ...
    def text(self, text: str, path: str) -> None: ...
    def figure(self, fig, path: str) -> None: ...
    def artifact(self, local: str | Path, folder: str | None = None) -> None: ...


EVENTS = "events.jsonl"
ARTIFACTS = "artifacts"


class JsonlSink:
    """A run written to a folder: one JSON line per call in events.jsonl, artifacts as files."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        (self.folder / ARTIFACTS).mkdir(parents=True, exist_ok=True)

    def _write(self, event: dict) -> None:
        with open(self.folder / EVENTS, "a") as f:  # line by line: a cut-off run keeps what it wrote
            f.write(json.dumps(event) + "\n")

    def metrics(self, rows: list[tuple[str, float, int]]) -> None:
        if rows:  # JSON has no NaN: a non-finite value is written as its string ("nan", "inf")
            self._write({"metrics": [[k, float(v) if math.isfinite(v) else str(v), int(s)] for k, v, s in rows]})

    def tags(self, tags: dict) -> None:
        self._write({"tags": {k: str(v) for k, v in tags.items()}})

    def text(self, text: str, path: str) -> None:
        self._write({"text": path, "content": text})

    def figure(self, fig, path: str) -> None:
        target = self.folder / ARTIFACTS / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target)
        self._write({"artifact": path})

    def artifact(self, local: str | Path, folder: str | None = None) -> None:
        path = f"{folder}/{Path(local).name}" if folder else Path(local).name
        target = self.folder / ARTIFACTS / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        self._write({"artifact": path})


def read(folder: Path) -> list[dict]:
    """A JsonlSink folder's events, in the order written."""
    path = Path(folder) / EVENTS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def replay(folder: Path, sink: Sink) -> None:
    """Send what a JsonlSink wrote into another sink, in the order it was written (a later tag wins). A
    figure redrawn at every evaluation is one file on disk, its last version: it is sent once."""
    folder = Path(folder)
    sent = set()
    for event in read(folder):
        if "metrics" in event:
            sink.metrics([(k, float(v), s) for k, v, s in event["metrics"]])
        elif "tags" in event:
            sink.tags(event["tags"])
        elif "text" in event:
            sink.text(event["content"], event["text"])
        elif "artifact" in event and event["artifact"] not in sent:
            sent.add(event["artifact"])
            path = Path(event["artifact"])
            sink.artifact(folder / ARTIFACTS / path, str(path.parent) if str(path.parent) != "." else None)
