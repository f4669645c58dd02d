"""The ablation answer: each experiment (and sweep value) over seeds against base, with intervals,
Welch's t-test on FID, Holm's correction, a Markdown report, figures, and an MLflow run of its own.

Finished runs whose resolved config (all but the seed, with the data actually used) matches are
reused; only missing seeds are trained.
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from harness import config as cfg
from harness import plots, registry, tracking
from harness import run as run_lib
from harness import statistics as st
from harness.config import Config
from metrics.scorer import LOWER_IS_BETTER

METRICS = ("fid", "is", "kid", "modes", "precision", "recall")
REPORT_EXPERIMENT = "compare"


@dataclass
class Arm:
    """One experiment at one sweep value: the unit compared against base."""
    experiment: str
    point: dict
    config: Config
    dataset: str
    config_hash: str
    runs: list = field(default_factory=list)  # [{run_id, seed, metrics, fid_history, collapse}]

    @property
    def label(self) -> str:
        if not self.point:
            return self.experiment
        return self.experiment + "[" + ",".join(f"{k.split('.')[-1]}={v}" for k, v in self.point.items()) + "]"

    @property
    def group(self) -> tuple:
        """Runs are only pooled or compared within one dataset and one metric setting."""
        e = self.config.eval
        return (self.dataset, e.n_images, e.kid_subsets, e.kid_subset_size)

    def values(self, metric: str) -> list[float]:
        return [r["metrics"][metric] for r in self.runs if metric in r["metrics"]]


def collect(names: list[str], smoke: bool, flags: dict, sets: list[str]) -> tuple[list[Arm], dict]:
    """Arms for the named experiments (base first), with the datasets they use."""
    names = list(dict.fromkeys(["base", *names]))
    datasets: dict = {}
    arms = []
    for name in names:
        experiment, config = registry.resolve(name, smoke, flags, sets)
        key = (config.data.name, config.data.path, config.data.split_seed)
        if key not in datasets:
            datasets[key] = run_lib.load_dataset(config)
        dataset = datasets[key]
        fixed = tuple(s.partition("=")[0].strip() for s in sets)
        for point in experiment.sweep_points(fixed):
            arm_config = cfg.replace(config, point) if point else config
            arms.append(Arm(name, point, arm_config, dataset.name, run_lib.config_hash(arm_config, dataset.name)))
    return arms, datasets


def finished_runs(client, arm: Arm) -> dict[int, object]:
    """seed -> the latest finished MLflow run of this exact config."""
    exp = client.get_experiment_by_name(arm.experiment)
    if exp is None:
        return {}
    runs = client.search_runs([exp.experiment_id],
                              f"tags.`config.hash` = '{arm.config_hash}' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time ASC"], max_results=1000)
    return {int(r.data.tags["seed"]): r for r in runs if "optuna.study" not in r.data.tags}


def fill(arms: list[Arm], datasets: dict, client) -> int:
    """Train the missing seeds of every arm; return how many runs were trained."""
    trained = 0
    scorers: dict = {}
    for arm in arms:
        seeds = [arm.config.train.seed + i for i in range(arm.config.train.seeds)]
        have = finished_runs(client, arm)
        missing = [s for s in seeds if s not in have]
        print(f"{arm.label}: {len(seeds) - len(missing)} of {len(seeds)} seeds already in MLflow"
              + (f", training {len(missing)}" if missing else ""), file=sys.stderr)
        c = arm.config
        dataset = datasets[(c.data.name, c.data.path, c.data.split_seed)]
        key = (dataset.name, c.eval.n_images, c.eval.kid_subsets, c.eval.kid_subset_size)
        for seed in missing:
            if key not in scorers:
                scorers[key] = run_lib.make_scorer(c, dataset)
            run_lib.run(arm.experiment, c, seed, dataset, scorers[key], client, point=arm.point,
                        extra_tags={"launched_by": "compare"})
            trained += 1
        have = finished_runs(client, arm)
        for seed in seeds:
            if seed in have:
                r = have[seed]
                metrics = {k[len("final/"):]: v for k, v in r.data.metrics.items() if k.startswith("final/")}
                history = [(h.step, h.value) for h in client.get_metric_history(r.info.run_id, "eval/fid")]
                arm.runs.append({"run_id": r.info.run_id, "seed": seed, "metrics": metrics,
                                 "fid_history": sorted(history), "collapse": r.data.tags.get("collapse") == "true"})
    return trained


def analyse(arms: list[Arm]) -> list[dict]:
    """One row per arm: mean and CI per metric, difference from base, Welch p, Holm, verdict."""
    by_group = {}
    for arm in arms:
        by_group.setdefault(arm.group, []).append(arm)
    rows = []
    for group, members in by_group.items():
        base = next((a for a in members if a.experiment == "base" and not a.point), None)
        others = [a for a in members if a is not base]
        p_raw = [st.welch_p(a.values("fid"), base.values("fid")) if base else float("nan") for a in others]
        p_holm = dict(zip([id(a) for a in others], st.holm(p_raw)))
        p_raw = dict(zip([id(a) for a in others], p_raw))
        for arm in members:
            row = {"arm": arm.label, "experiment": arm.experiment, "group": group, "n": len(arm.runs),
                   "collapsed": sum(r["collapse"] for r in arm.runs), "is_base": arm is base}
            for metric in METRICS:
                row[metric] = st.mean_ci(arm.values(metric))
                if base is not None and arm is not base:
                    row[f"d_{metric}"] = st.diff_ci(arm.values(metric), base.values(metric))
            if arm is base:
                row["verdict"] = "reference"
            elif base is None:
                row["verdict"] = (f"not compared: base ran on dataset {arms[0].dataset} with other metric settings; "
                                  f"this arm used {group[0]} with N={group[1]}")
            else:
                row["p"], row["p_holm"] = p_raw[id(arm)], p_holm[id(arm)]
                row["verdict"] = st.verdict(row["d_fid"][0], row["p_holm"], len(arm.runs), len(base.runs),
                                            lower_is_better=LOWER_IS_BETTER["fid"])
            rows.append(row)
    return rows


def _num(x: float) -> str:
    """Few digits, no exponents for the magnitudes these metrics take."""
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 0.1 else f"{x:.3g}"


def _fmt(triple) -> str:
    mean, low, high = triple
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return _num(mean)
    return f"{_num(mean)} [{_num(low)}, {_num(high)}]"


def markdown(rows: list[dict], arms: list[Arm], settings: str) -> str:
    lines = ["# Ablation report", "", settings, "",
             "FID, IS, KID, modes, precision and recall are final values: mean over seeds with a bootstrap 95% "
             "interval. Δ FID is the difference from base (negative is better) with its interval. p is Welch's "
             "t-test on final FID against base, Holm-corrected over every arm in this report; verdicts need at "
             f"least {st.MIN_SEEDS_FOR_VERDICT} seeds a side and p < {st.ALPHA}.", "",
             "| arm | seeds | FID | Δ FID vs base | p (Holm) | verdict | IS | KID | modes | precision | recall | collapsed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = f"{r['p']:.3g} ({r['p_holm']:.3g})" if "p_holm" in r and not math.isnan(r["p_holm"]) else "-"
        d = _fmt(r["d_fid"]) if "d_fid" in r else "-"
        lines.append(f"| {r['arm']} | {r['n']} | {_fmt(r['fid'])} | {d} | {p} | {r['verdict']} | {_fmt(r['is'])} | "
                     f"{_fmt(r['kid'])} | {_fmt(r['modes'])} | {_fmt(r['precision'])} | "
                     f"{_fmt(r['recall'])} | {r['collapsed']} |")
    groups = {a.group for a in arms}
    if len(groups) > 1:
        lines += ["", "Runs on different datasets or metric settings were not pooled: "
                  + "; ".join(f"{g[0]} with N={g[1]}" for g in groups) + "."]
    lines += ["", "Runs: " + ", ".join(f"{a.label}: " + " ".join(r["run_id"][:8] for r in a.runs) for a in arms), ""]
    return "\n".join(lines)


def terminal_table(rows: list[dict]) -> str:
    header = f"{'arm':<26} {'n':>2}  {'FID [95% CI]':<26} {'Δ vs base [95% CI]':<28} {'p Holm':>8}  verdict"
    out = [header, "-" * len(header)]
    for r in rows:
        p = f"{r['p_holm']:.3g}" if "p_holm" in r and not math.isnan(r["p_holm"]) else "-"
        d = _fmt(r["d_fid"]) if "d_fid" in r else "-"
        out.append(f"{r['arm']:<26} {r['n']:>2}  {_fmt(r['fid']):<26} {d:<28} {p:>8}  {r['verdict']}")
    return "\n".join(out)


def figures(arms: list[Arm], client, out: Path) -> list[Path]:
    import matplotlib.pyplot as plt
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
    ax.set(xlabel="step", ylabel="classifier-FID", title="FID over training: mean and range over seeds")
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
            grids = sorted(f.path for f in client.list_artifacts(run_id, "samples"))
            if grids:
                ax.imshow(mpimg.imread(client.download_artifacts(run_id, grids[-1], tmp)))
    fig.tight_layout()
    paths.append(_save(fig, out / "samples.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plots.close(fig)
    return path


def compare(names: list[str], smoke: bool, flags: dict, sets: list[str], out: Path | None) -> tuple[str, Path]:
    """Train what is missing, then write the report; returns (terminal table, report folder)."""
    if not names:
        names = sorted(registry.files())
    client = tracking.client()
    arms, datasets = collect(names, smoke, flags, sets)
    trained = fill(arms, datasets, client)
    rows = analyse(arms)
    out = out or Path("reports") / time.strftime("compare-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    c = arms[0].config
    n_scored = c.eval.n_images or len(datasets[(c.data.name, c.data.path, c.data.split_seed)].test_images)
    settings = (f"Settings: dataset {arms[0].dataset}; {c.train.steps or str(c.train.epochs) + ' epochs'}"
                f"{' steps' if c.train.steps else ''} at batch {c.train.batch_size}; widths G {c.model.g_filters} / "
                f"D {c.model.d_filters}; N = {n_scored} generated images scored against the held-out reference; "
                f"{c.train.seeds} seeds per arm starting at {c.train.seed}; {trained} runs trained now, the rest reused.")
    report = markdown(rows, arms, settings)
    (out / "report.md").write_text(report + "\n![FID over training](fid_over_training.png)\n\n"
                                   "![final FID](final_fid.png)\n\n![samples](samples.png)\n")
    paths = figures(arms, client, out)
    run_id = tracking.start_run(client, REPORT_EXPERIMENT, f"compare-{'-'.join(names)}"[:200],
                                {"kind": "report", "experiments": ",".join(names), **tracking.environment_tags()})
    for path in [out / "report.md", *paths]:
        client.log_artifact(run_id, str(path))
    tracking.log_params(client, run_id, {"seeds": c.train.seeds, "trained": trained, "arms": len(arms)})
    client.set_terminated(run_id, "FINISHED")
    return terminal_table(rows), out
