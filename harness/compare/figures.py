"""The report's figures: FID over training with a band over seeds, final FID per arm, a sample grid per arm."""
from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from harness import plots
from harness.compare.arms import Arm, floors
from harness.tracking import Store


def figures(arms: list[Arm], store: Store, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    arms = [a for a in arms if not a.twin]  # a twin's runs are drawn once, under the arm that made them
    paths = []
    colors = plt.cm.tab10.colors

    # FID over training: mean line and min-max band over seeds.
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, arm in enumerate(arms):
        histories = [dict(r["fid_history"]) for r in arm.runs if r["fid_history"]]
        if not histories:
            continue
        steps = sorted(set.intersection(*[set(h) for h in histories]))
        values = np.array([[h[s] for s in steps] for h in histories])
        ax.plot(steps, values.mean(axis=0), color=colors[i % 10], label=f"{arm.label} (n={len(histories)})")
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), color=colors[i % 10], alpha=0.15)
    # The floor (real digits scored the same way) in words: as a line it would squash the arms' differences.
    floor = "; ".join(f"real digits ({label}) {f['fid']:.3g}" for label, f in floors(arms) if "fid" in f)
    ax.set(xlabel="step", ylabel="classifier-FID",
           title="FID over training: mean and range over seeds" + (f"\nfloor: {floor}" if floor else ""))
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(_save(fig, out / "fid_over_training.png"))

    # Final FID per arm: every seed a dot, the box its spread.
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(arms)), 4.5))
    data = [arm.values("fid") for arm in arms]
    ax.boxplot([d if d else [np.nan] for d in data], showfliers=False)
    ax.set_xticks(range(1, len(arms) + 1), [a.label for a in arms], rotation=30, ha="right", fontsize=8)
    for i, d in enumerate(data, start=1):
        ax.scatter(np.full(len(d), i) + np.linspace(-0.12, 0.12, len(d)), d, s=14, color=colors[i % 10], zorder=3)
    ax.set(ylabel="final classifier-FID (lower is better)", title="final FID per experiment, one dot per seed")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    paths.append(_save(fig, out / "final_fid.png"))

    # One sample grid per arm (its first seed's last evaluation), side by side.
    fig, axes = plt.subplots(1, len(arms), figsize=(2.4 * len(arms), 2.8), squeeze=False)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, arm in zip(axes[0], arms):
            ax.axis("off")
            ax.set_title(arm.label, fontsize=8)
            if not arm.runs:
                continue
            run_id = arm.runs[0]["run_id"]
            grids = store.artifacts(run_id, "samples")
            if grids:
                ax.imshow(mpimg.imread(store.download(run_id, grids[-1], tmp)))
    fig.tight_layout()
    paths.append(_save(fig, out / "samples.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plots.close(fig)
    return path
