"""The report's figures: every seed's final FID and the performance profile (outcomes.png), every seed's FID
over training, every seed's last samples."""
from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from harness import plots
from harness.compare.arms import Arm, fewer_before_last, floors
from harness.tracking import Store


# Each figure's file and the words a report shows it with, in the order a report shows them.
TITLES = {"outcomes.png": "final FID, every seed", "fid_over_training.png": "FID over training",
          "samples.png": "samples"}


def links(paths: list[Path]) -> list[str]:
    """Markdown image lines for the figures written (figures() returns them), in the report's order."""
    names = {p.name for p in paths}
    return [f"![{title}]({name})" for name, title in TITLES.items() if name in names]


def figures(arms: list[Arm], store: Store, out: Path, per_epoch: int | None = None,
            training: dict | None = None) -> list[Path]:
    """fid_over_training.png, outcomes.png and samples.png in out; returns the paths written (none for a
    figure with nothing to draw). per_epoch: steps in an epoch (arms.epoch_length), for an epoch axis over
    the steps. training: arm label -> SeedOutcomes of seeds still training or stopped (`--so-far`), drawn
    dashed in FID over training only; an arm with no finished seed gets a panel there and no row in the
    other two. Colours follow the arms' order as given, so an arm keeps its colour as others start."""
    import matplotlib.pyplot as plt
    arms = [a for a in arms if not a.same_as]  # an arm of another's identity: its runs drawn once, under that arm
    training = training or {}
    paths = []
    palette = [c for i, c in enumerate(plt.cm.tab10.colors) if i != 7]  # tab10's 8th is grey: base's, behind
    color_of = {a.label: palette[i % len(palette)] for i, a in enumerate(arms)}  # one colour an arm, every figure

    if any(a.runs or training.get(a.label) for a in arms):
        paths.append(_save(fid_over_training(arms, color_of, per_epoch, training), out / "fid_over_training.png"))

    arms = [a for a in arms if a.runs]  # from here on the seeds' outcomes: arms with a finished or diverged seed
    if not arms:
        return paths
    paths.append(outcomes(arms, out / "outcomes.png", [color_of[a.label] for a in arms]))

    # Every seed's last sample grid, a row per arm: early in training seeds of one arm split between
    # collapsed and not, so one seed's grid would speak for the arm wrongly.
    cols = max(len(a.runs) for a in arms) or 1
    fig, axes = plt.subplots(len(arms), cols, figsize=(1.7 * cols + 1.0, 1.9 * len(arms)), squeeze=False)
    with tempfile.TemporaryDirectory() as tmp:
        for row, arm in zip(axes, arms):
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
            row[0].set_ylabel(arm.label, fontsize=8)
            for ax, r in zip(row, sorted(arm.runs, key=lambda r: r.seed)):
                fid = r.metrics.get("fid")
                caption = ("diverged" if r.outcome == "diverged" else ("FID -" if fid is None else f"FID {fid:.3g}")
                           + (", collapsed" if r.collapse else ", escaped" if r.escaped else ""))
                ax.set_title(f"s{r.seed}: {caption}", fontsize=7)
                grids = store.artifacts(r.run_id, "samples")
                if grids:
                    ax.imshow(mpimg.imread(store.download(r.run_id, grids[-1], tmp)))
    fig.tight_layout()
    paths.append(_save(fig, out / "samples.png", dpi=90))  # about 0.1 MB a grid: a page of them stays small
    return paths


def fid_over_training(arms: list[Arm], color_of: dict, per_epoch: int | None = None, training: dict | None = None):
    """The figure of FID over training (returned, not saved): a panel per arm with a seed evaluated, base
    first. training: arm label -> SeedOutcomes of unfinished seeds, drawn dashed."""
    import matplotlib.pyplot as plt
    training = training or {}
    # FID over training, a panel per arm: every seed a line (a mean of collapsed and recovered seeds would
    # describe no seed), x where that evaluation was judged collapsed, base's seeds in grey behind.
    base = arms[0]
    arms = [a for a in arms if a.runs or training.get(a.label)]  # no seed finished, training or stopped: no panel
    cols = min(4, len(arms))
    rows = -(-len(arms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.4, 3.2 * cols), 2.6 * rows + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(arms):]:
        ax.set_visible(False)
    for i, (ax, arm) in enumerate(zip(axes.flat, arms)):
        going = training.get(arm.label, [])
        if arm is not base:
            for r in base.runs:
                _seed_line(ax, r, "0.75", zorder=1)
            for r in training.get(base.label, []):
                _seed_line(ax, r, "0.75", zorder=1, linestyle="--")
        for r in arm.runs:
            _seed_line(ax, r, color_of[arm.label], zorder=2)
        for r in going:
            _seed_line(ax, r, color_of[arm.label], zorder=2, linestyle="--")
        ax.set_title(f"{arm.label} ({_seeds(len(arm.runs))}" + (f", {len(going)} not finished" if going else "") + ")",
                     fontsize=8)
        if per_epoch and i < cols:  # the top row carries the epoch axis
            top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch))
            top.set_xlabel("epoch", fontsize=8)
            top.xaxis.set_major_locator(MaxNLocator(integer=True))
            top.tick_params(labelsize=7)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 100, 200, 600: not 10^2, 6x10^2
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.grid(alpha=0.3)
        ax.tick_params(which="both", labelsize=7)
    for i, ax in enumerate(axes.flat[:len(arms)]):
        if i + cols >= len(arms):  # the lowest panel of its column: it carries the step axis
            ax.set_xlabel("step", fontsize=8)
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("classifier-FID", fontsize=8)
    # The floor (real digits scored the same way) in words: as a line it would squash the arms' differences.
    floor = "; ".join(f"real digits ({label}) {f['fid']:.3g}" for label, f in floors(arms) if "fid" in f)
    diverged = any(r.outcome == "diverged" for a in arms for r in a.runs)
    interim = base.config.eval.interim_images
    said = ["FID over training, one line a seed; x: judged collapsed there"
            + ("; ■: diverged after it" if diverged else "")
            + ("; grey: base's seeds" if len(arms) > 1 and base in arms else "")
            + ("; dashed: not finished (training or stopped)"
               if any(r.fid_history for a in arms for r in training.get(a.label, [])) else "")]
    said += [f"floor: {floor}"] if floor else []
    said += [f"earlier points on {interim} images, the last on more: FID reads higher on fewer"] \
        if fewer_before_last(base.config) else []
    width = int(fig.get_figwidth() * 13)  # characters a line at 9 points: a long title wraps, never runs off
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in said), fontsize=9)
    fig.tight_layout()
    return fig


def outcomes(arms: list[Arm], path: Path, colors) -> Path:
    """Left: every seed's final FID, an arm a row on one axis (o escaped, x collapsed, a square at the right
    edge for a seed with no final FID): the two modes stay visible. Right: the performance profile, the
    fraction of an arm's seeds with final FID below tau, over tau (as rliable draws them, Agarwal et al.
    2021, for one task and lower-is-better; a seed without a final FID is never below)."""
    import matplotlib.pyplot as plt
    scored = [v for a in arms for v in a.scores() if np.isfinite(v)]
    top = max(scored) * 1.08 if scored else 1.0
    bottom = min(scored) * 0.9 if scored else 0.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.45 * len(arms) + 2.4),
                                      gridspec_kw={"width_ratios": [1.1, 1]})
    for row, arm in enumerate(arms):
        color = colors[row % len(colors)]
        y = len(arms) - 1 - row
        for r in arm.runs:
            fid = r.metrics.get("fid", np.nan) if r.outcome == "finished" else np.nan
            if not np.isfinite(fid):
                left.scatter(top, y, marker="s", s=22, color=color, zorder=3)
            else:
                left.scatter(fid, y + np.random.default_rng(r.seed).uniform(-0.12, 0.12), zorder=3,
                             marker="o" if r.escaped else "x", s=22, color=color)
        x = np.sort(np.asarray(arm.scores(), dtype=float))
        tau = np.linspace(bottom, top, 400)
        below = (x[None, :] < tau[:, None]).sum(axis=1) / max(1, len(x))  # nan and inf are never below
        right.step(tau, below, where="post", color=color, label=f"{arm.label} ({arm.count('escaped')} of "
                                                                  f"{len(arm.runs)} escaped)")
    left.set_yticks(range(len(arms)), [a.label for a in reversed(arms)], fontsize=8)
    left.set_xlabel("final classifier-FID (lower is better)", fontsize=8)
    left.set_title("every seed: o escaped, x collapsed, ■ no final FID (diverged)", fontsize=9)
    left.grid(alpha=0.3, axis="x")
    right.set(xlabel="tau (final classifier-FID)", ylabel="fraction of seeds with FID < tau", ylim=(-0.02, 1.02))
    right.set_title("performance profile", fontsize=9)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    right.set_xlim(left.get_xlim())
    right.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _seed_line(ax, run, color, zorder: int, linestyle: str = "-") -> None:
    """One seed's FID at each evaluation; an x on each evaluation judged collapsed."""
    if not run.fid_history:
        return
    steps, values = zip(*sorted(run.fid_history))
    ax.plot(steps, values, color=color, linewidth=1, zorder=zorder, linestyle=linestyle)
    if run.outcome == "diverged":  # its line stops early for that reason, not a shorter run
        ax.scatter(steps[-1], values[-1], marker="s", s=16, color=color, zorder=zorder)
    collapsed = {s for s, c in run.collapse_history if c}
    marked = [(s, v) for s, v in zip(steps, values) if s in collapsed]
    if marked:
        ax.scatter(*zip(*marked), marker="x", s=18, color=color, zorder=zorder, linewidths=1)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def _save(fig, path: Path, dpi: int = 110) -> Path:
    fig.savefig(path, dpi=dpi)
    plots.close(fig)
    return path
