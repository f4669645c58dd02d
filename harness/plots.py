"""Figures a run logs: sample grids, loss curves, metric curves. Each returns a matplotlib Figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def sample_grid(images: np.ndarray, title: str = "", rows: int = 5):
    """images float32 (N, 28, 28, 1) in [0, 1] -> a rows x rows grid in the recipe's gray_r colours."""
    fig, axes = plt.subplots(rows, rows, figsize=(rows, rows + (0.3 if title else 0)))
    for ax, image in zip(axes.flat, images):
        ax.imshow(image[..., 0], cmap="gray_r", vmin=0.0, vmax=1.0)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    return fig


def loss_curves(history: dict[str, list[tuple[int, float]]], title: str = ""):
    """history: metric -> [(step, value)]; losses on the left, D accuracies on the right."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, ax in (("d_loss", left), ("g_loss", left), ("d_acc_real", right), ("d_acc_fake", right)):
        if history.get(key):
            steps, values = zip(*history[key])
            ax.plot(steps, values, label=key, linewidth=0.8)
    left.set(xlabel="step", ylabel="binary cross-entropy", title="losses")
    right.set(xlabel="step", ylabel="accuracy", title="discriminator accuracy", ylim=(-0.02, 1.02))
    for ax in (left, right):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def metric_curves(evals: list[tuple[int, dict]], floor: dict | None = None, title: str = ""):
    """FID (log scale) and Inception Score over training, with the real-data floor dashed."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [s for s, _ in evals]
    for ax, key, label in ((left, "fid", "classifier-FID (lower is better)"), (right, "is", "Inception Score")):
        ax.plot(steps, [m[key] for _, m in evals], marker="o", label="generated")
        if floor:
            ax.axhline(floor[key], color="gray", linestyle="--", label="real-data floor")
        ax.set(xlabel="step", title=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if all(m["fid"] > 0 for _, m in evals) and (not floor or floor["fid"] > 0):
        left.set_yscale("log")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)
