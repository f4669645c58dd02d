"""The ablation answer: statistics on constructed values, and a smoke comparison through the CLI."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness import statistics as st
from harness import tracking
from harness.__main__ import main


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.normal(10, 2, 5), rng.normal(10, 2, 50)
    m, lo, hi = st.mean_ci(few)
    assert lo < m < hi and m == pytest.approx(few.mean())
    _, lo2, hi2 = st.mean_ci(many)
    assert hi2 - lo2 < hi - lo
    assert math.isnan(st.mean_ci([3.0])[1])


def test_a_clear_difference_is_found_and_identical_groups_are_not():
    base = [30.0, 31.0, 29.5, 30.5, 30.2]
    better = [20.0, 21.0, 19.5, 20.5, 20.2]
    p = st.welch_p(better, base)
    assert p < 1e-4
    d, lo, hi = st.diff_ci(better, base)
    assert d == pytest.approx(-10.0) and hi < 0
    assert st.verdict(d, st.holm([p])[0], 5, 5) == "better"
    assert st.verdict(-d, st.holm([p])[0], 5, 5) == "worse"
    same = st.welch_p(base, list(base))
    assert same == pytest.approx(1.0)
    assert st.verdict(0.0, same, 5, 5).startswith("no detectable difference")


def test_holm_changes_a_borderline_verdict():
    p = [0.03, 0.04, 0.5]
    adjusted = st.holm(p)
    assert adjusted == pytest.approx([0.09, 0.09, 0.5])  # 3 x 0.03, then max(0.09, 2 x 0.04), then 0.5
    assert st.verdict(-1.0, p[0], 5, 5) == "better"  # alone it would pass...
    assert st.verdict(-1.0, adjusted[0], 5, 5).startswith("no detectable")  # ...corrected it does not
    assert math.isnan(st.holm([float("nan"), 0.01])[0]) and st.holm([float("nan"), 0.01])[1] == pytest.approx(0.01)


def test_no_verdict_under_three_seeds():
    assert "fewer than 3 seeds" in st.verdict(-10.0, 0.0001, 2, 5)


def _runs(experiment):
    c = tracking.client()
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id]) if exp else []


def test_smoke_comparison_reuses_runs_and_retrains_on_changed_config(store, capsys):
    args = ["compare", "base", "smoothing", "--smoke", "--seeds", "2", "--set", "eval.n_images=100"]
    assert main(args + ["--out", str(store / "r1")]) == 0
    out = capsys.readouterr().out
    assert "smoothing" in out and "fewer than 3 seeds" in out
    report = (store / "r1" / "report.md").read_text()
    assert "| base | 2 |" in report and "| smoothing | 2 |" in report
    for figure in ("fid_over_training.png", "final_fid.png", "samples.png"):
        assert (store / "r1" / figure).read_bytes()[:4] == b"\x89PNG"
    reports = _runs("compare")
    assert len(reports) == 1
    logged = {f.path for f in tracking.client().list_artifacts(reports[0].info.run_id)}
    assert {"report.md", "fid_over_training.png", "final_fid.png", "samples.png"} <= logged
    assert len(_runs("base")) == 2 and len(_runs("smoothing")) == 2

    assert main(args + ["--out", str(store / "r2")]) == 0  # identical: nothing new to train
    assert len(_runs("base")) == 2 and len(_runs("smoothing")) == 2
    assert "0 runs trained now" in (store / "r2" / "report.md").read_text()

    assert main(args + ["--set", "train.lr_g=3e-4", "--out", str(store / "r3")]) == 0  # changed: trains again
    assert len(_runs("base")) == 4 and len(_runs("smoothing")) == 4
    assert "4 runs trained now" in (store / "r3" / "report.md").read_text()


def test_runs_on_other_data_are_not_pooled(store, capsys):
    from harness import compare
    from harness.registry import resolve
    _, c = resolve("base", smoke=True)
    a = compare.Arm("base", {}, c, "mnist-5k", "h1")
    b = compare.Arm("smoothing", {}, c, "mnist", "h2")
    for arm, fid in ((a, 10.0), (b, 5.0)):
        arm.runs = [{"run_id": "x", "seed": i, "metrics": {m: fid + i for m in compare.METRICS},
                     "fid_history": [], "collapse": False} for i in range(3)]
    rows = compare.analyse([a, b])
    row = next(r for r in rows if r["arm"] == "smoothing")
    assert row["verdict"].startswith("not compared") and "d_fid" not in row
