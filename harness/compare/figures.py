"""The report's figures: FID over training with a band over seeds, final FID per arm, every seed's last samples."""
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

    # Every seed's last sample grid, a row per arm: early in training seeds of one arm split between
    # collapsed and not, so one seed's grid would speak for the arm wrongly.
    cols = max((len(a.runs) for a in arms), default=1) or 1
    fig, axes = plt.subplots(len(arms), cols, figsize=(1.7 * cols + 1.0, 1.9 * len(arms)), squeeze=False)
    with tempfile.TemporaryDirectory() as tmp:
        for row, arm in zip(axes, arms):
            for ax in row:
                ax.set_xticks([]), ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
            row[0].set_ylabel(arm.label, fontsize=8)
            for ax, r in zip(row, sorted(arm.runs, key=lambda r: r["seed"])):
                fid = r["metrics"].get("fid")
                ax.set_title(f"s{r['seed']}: " + ("diverged" if r["outcome"] == "diverged" else
                             f"FID {fid:.3g}" + (", collapsed" if r["collapse"] else "")), fontsize=7)
                grids = store.artifacts(r["run_id"], "samples")
                if grids:
                    ax.imshow(mpimg.imread(store.download(r["run_id"], grids[-1], tmp)))
    fig.tight_layout()
    paths.append(_save(fig, out / "samples.png", dpi=90))  # about 0.1 MB a grid: a page of them stays small
    return paths


def _save(fig, path: Path, dpi: int = 110) -> Path:
    fig.savefig(path, dpi=dpi)
    plots.close(fig)
    return path
