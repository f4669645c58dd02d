"""The ablation answer through the CLI: reuse, outcomes, left-out runs, signals (statistics: test_statistics.py)."""
from __future__ import annotations

import copy
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from conftest import one_error
from harness import tracking
from harness.__main__ import main


def _said(out: Path) -> dict:
    """A compare's report.json: what it trained, resumed, planned and waited for, and each arm's answer."""
    return json.loads((out / "report.json").read_text())


def _row(said: dict, arm: str) -> dict:
    """The first plan's row for an arm, without its label."""
    row = next(r for r in said["plans"][0]["rows"] if r["what"] == arm)
    return {k: v for k, v in row.items() if k != "what"}


def _runs(experiment):
    c = tracking.client()
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id]) if exp else []


@pytest.mark.slow
def test_smoke_comparison_reuses_runs_and_retrains_on_changed_config(store, capsys):
    args = ["compare", "base", "smoothing", "--smoke", "--seeds", "2", "--set", "eval.n_images=100"]
    assert main(args + ["--out", str(store / "r1")]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert re.search(r"^smoothing +\d/2 ", out, re.M)  # the terminal table: escaped of seeds
    (planned,) = _said(store / "r1")["plans"]  # printed before the first step, and kept in report.json
    assert (planned["runs_to_train"], planned["steps_to_train"], planned["evaluations"]) == (4, 24, 12)
    assert planned["seconds"] > 0 and planned["title"] in captured.err
    report = (store / "r1" / "report.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (base|smoothing) \| (\d) of 2 \[.*$", report, re.M)}
    assert set(rows) == {"base", "smoothing"} and "| reference |" in rows["base"]  # escaped of 2 seeds, each arm
    assert "numerics v" in report and "backend tensorflow on cpu" in report and "2 seeds per arm" in report
    floor = re.search(r"^\| \*floor: real digits \(mnist-5k\)\* \| - \| ([^|]+) \| ([^|]+) \|", report, re.M)
    whole = re.search(r"^\| base \|(?: [^|]+ \|){6} ([^|]+) \|", report, re.M).group(1)  # mean FID, all finished
    assert floor and 0 <= float(floor.group(1)) < float(whole.split()[0]) and 1 <= float(floor.group(2)) <= 10
    for run in _runs("base"):  # every seed under its full run id
        assert f"| {run.data.tags['seed']} | {run.info.run_id} | finished |" in report.split("## Every run")[1]
    over = re.search(r"^\| base \| (\d+ of \d+(?: \| \d+ of \d+)*) \|$", report.split("## Collapse over training")[1], re.M)
    assert over and over.group(1).split(" | ")[-1] == "2 of 2"  # every evaluation of both seeds; the last is the final one
    assert len(over.group(1).split(" | ")) == 3  # 12 evaluations over 4 runs: 3 a run
    for figure in ("fid_over_training.png", "outcomes.png", "samples.png"):
        assert (store / "r1" / figure).read_bytes()[:4] == b"\x89PNG"
    height, width = plt.imread(store / "r1" / "samples.png").shape[:2]  # every seed's grid: 2 arms x 2 seeds
    assert (height, width) == (round(1.9 * 2 * 90), round((1.7 * 2 + 1.0) * 90))
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report) == ["outcomes.png", "fid_over_training.png", "samples.png"]
    reports = _runs("compare")
    assert len(reports) == 1
    assert f"also MLflow run {reports[0].info.run_id} in experiment 'compare'" in out  # the run it made, named
    logged = {f.path for f in tracking.client().list_artifacts(reports[0].info.run_id)}
    assert {"report.md", "fid_over_training.png", "outcomes.png", "samples.png"} <= logged
    assert len(_runs("base")) == 2 and len(_runs("smoothing")) == 2

    assert main(args + ["--out", str(store / "r2")]) == 0  # identical: nothing new to train
    said = _said(store / "r2")
    assert said["plans"][0]["runs_to_train"] == said["trained"] == said["resumed"] == 0
    assert len(_runs("base")) == 2 and len(_runs("smoothing")) == 2
    assert _runs("compare")[0].data.params["trained"] == "0"  # the newest report run's own record

    import harness.compare as compare_pkg

    def broken(*args, **kwargs):
        raise OSError("the store sent no sample grid")

    with pytest.MonkeyPatch.context() as patch:  # a figure that fails keeps the report written
        patch.setattr(compare_pkg, "figures", broken)
        with pytest.raises(OSError):
            main(args + ["--out", str(store / "r2-figures")])
    assert _said(store / "r2-figures")["trained"] == 0
    assert "| reference |" in (store / "r2-figures" / "report.md").read_text()
    assert "![" not in (store / "r2-figures" / "report.md").read_text()  # no link to a figure that failed

    assert main(args + ["--set", "train.lr_g=3e-4", "--out", str(store / "r3")]) == 0  # changed: trains again
    assert len(_runs("base")) == 4 and len(_runs("smoothing")) == 4
    report = (store / "r3" / "report.md").read_text()
    assert (_said(store / "r3")["trained"], _said(store / "r3")["resumed"]) == (4, 0)
    assert "train.lr_g 0.0002 (wanted 0.0003)" in report  # the earlier runs, listed with the reason


def test_collapse_over_training_counts_each_evaluation_and_an_arm_of_the_same_identity_once():
    from harness.compare import Arm, SeedOutcome, collapse_over_training

    def seed(outcome, history, last_step=None):
        return SeedOutcome("x", 0, outcome, collapse_history=history, last_step=last_step)
    base = Arm("base", {}, None, "mnist-5k", {}, runs=[
        seed("finished", [(150, True), (300, False), (450, False)]),  # recovers
        seed("finished", [(150, True), (300, True), (450, True)]),
        seed("diverged", [(150, True)], 160)])  # after its first evaluation
    same = Arm("latent", {"model.latent_dim": 100}, None, "mnist-5k", {}, runs=base.runs, same_as="base")
    late = Arm("tanh", {}, None, "mnist-5k", {}, runs=[
        seed("finished", [(150, False), (300, True), (450, True)]),
        seed("diverged", [], 3),  # before its first evaluation
        seed("diverged", [], 320)])  # no judged evaluations: its last step
    short = Arm("smoothing", {}, None, "mnist-5k", {}, runs=[  # an arm of 300 steps beside arms of 450
        seed("finished", [(150, True), (300, False)]),
        seed("diverged", [], 10)])
    steps, rows = collapse_over_training([base, same, late, short])
    assert steps == [150, 300, 450]
    assert rows == [("base", [(3, 3, 0), (1, 2, 1), (1, 2, 1)]), ("tanh", [(0, 1, 1), (1, 1, 1), (1, 1, 2)]),
                    ("smoothing", [(1, 1, 1), (0, 1, 1), (0, 0, 0)])]
    from harness.compare.report import _over_cell
    assert [_over_cell(*c) for c in rows[0][1]] == ["3 of 3", "1 of 2, 1 diverged", "1 of 2, 1 diverged"]
    assert _over_cell(0, 0, 2) == "2 diverged" and [_over_cell(*c) for c in rows[2][1]][-1] == "-"


@pytest.mark.slow
def test_divergence_is_an_outcome_counted_reused_and_retried_only_on_request(store, capsys):
    (store / "experiments").mkdir()
    (store / "experiments" / "explode.yaml").write_text("# A discriminator learning rate nothing survives.\n"
                                                         "train:\n  lr_d: 1.0e30\n")
    args = ["compare", "explode", "--smoke", "--seeds", "2", "--set", "eval.n_images=100"]
    assert main(args + ["--out", str(store / "r1")]) == 0
    report = (store / "r1" / "report.md").read_text()
    assert "| explode | 0 of 2 [0.00, 0.84] |" in report  # 2 seeds, both diverged: counted, not dropped
    assert "count as not escaped: 2 in all (explode 2)." in report
    explode = _runs("explode")
    assert len(explode) == 2 and all(r.data.tags["state"] == "diverged" for r in explode)
    over = report.split("## Collapse over training")[1].split("\n## ")[0]
    assert re.search(r"^\| explode \| 2 diverged( \| 2 diverged)* \|$", over, re.M)  # before its first evaluation
    every_run = report.split("## Every run")[1]
    for run in explode:
        reason = run.data.tags["failure.reason"][:40]
        assert f"| explode | {run.data.tags['seed']} | {run.info.run_id} | diverged | - | {reason}" in every_run

    assert main(args + ["--out", str(store / "r2")]) == 0  # a divergence is reused, not retrained
    assert len(_runs("explode")) == 2 and "(explode 2)." in (store / "r2" / "report.md").read_text()

    assert main(args + ["--retry-diverged", "--out", str(store / "r3")]) == 0
    report = (store / "r3" / "report.md").read_text()
    assert len(_runs("explode")) == 4 and "(explode 2)." in report
    assert "diverged, trained again (--retry-diverged): 2 runs" in report
    left = _said(store / "r3")["left_out"]
    assert sorted(r["run_id"] for r in left if r["kind"] == "diverged, trained again") == sorted(
        r.info.run_id for r in explode)  # the first two, each with why


@pytest.mark.slow
def test_error_runs_resume_from_their_checkpoint_and_runs_from_before_identities_are_listed(store, capsys):
    from harness import data, registry, runner, scorers
    assert main(["run", "base", "--smoke", "--set", "eval.n_images=100"]) == 0  # seed 0
    c = tracking.client()
    old = _runs("base")[0]
    for key in ("identity", "identity.schema", "numerics.version", "metrics.version", "data.fingerprint"):
        c.delete_tag(old.info.run_id, key)  # as a run made before this code recorded identities
    _, config = registry.resolve("base", smoke=True, sets=["eval.n_images=100"])
    dataset = data.for_config(config, quiet=True)

    def outage(step, metrics):
        raise ConnectionError("tracking server unreachable")
    with pytest.raises(ConnectionError):
        runner.run("base", config, 1, dataset, scorers.make(config, dataset, quiet=True), on_eval=outage)
    errored = next(r for r in _runs("base") if r.data.tags["seed"] == "1")
    assert errored.info.status == "FAILED" and errored.data.tags["state"] == "error"

    assert main(["compare", "base", "--smoke", "--seeds", "2", "--set", "eval.n_images=100",
                 "--out", str(store / "r")]) == 0
    report = (store / "r" / "report.md").read_text()
    # seed 0 trained again (its v1 run is left out); seed 1's error run continues from its checkpoint
    assert re.search(r"^\| base \| \d of 2 ", report, re.M)
    assert (_said(store / "r")["trained"], _said(store / "r")["resumed"]) == (1, 1)
    assert "identity v1 (made before run identities were recorded): 1 run" in report
    resumed = tracking.client().get_run(errored.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["resumed"] == "true"
    every_run = report.split("## Every run")[1]
    assert f"| base | 1 | {errored.info.run_id} | finished |" in every_run  # the full id: a scorer can find it


STEPS = 120
COMPARE = ["compare", "base", "--smoke", "--seeds", "1", "--steps", str(STEPS), "--set", "eval.n_images=100",
           "--set", "train.log_every_steps=1"]


def _compare_past_its_first_checkpoint(store, step: int = 48, extra: tuple = ()) -> subprocess.Popen:
    """COMPARE (+ extra) in a process of its own, returned once it prints step (a multiple of 12): past
    its first evaluation at step 40, where a checkpoint exists, unless step is earlier."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *COMPARE, *extra, "--out", "r1"], cwd=store, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "HARNESS_HEARTBEAT_S": "1"})
    for line in proc.stderr:
        if f"step {step}/{STEPS}" in line:
            break
    return proc


@pytest.mark.slow
def test_a_seed_held_by_a_dead_process_is_waited_for_then_resumed_never_trained_twice(store, capsys, monkeypatch):
    steps, args = STEPS, COMPARE
    proc = _compare_past_its_first_checkpoint(store)  # its run and its claim beat every second
    proc.kill()  # SIGKILL: no handler runs, the run stays RUNNING and its claim stays, as when a machine dies
    proc.communicate(timeout=60)
    (run,) = _runs("base")
    assert run.info.status == "RUNNING" and int(run.data.tags["heartbeat.step"]) >= 0

    monkeypatch.setattr(tracking, "HEARTBEAT_S", 1.0)  # this compare asks again every second
    monkeypatch.setattr(tracking, "STALE_AFTER_S", 12.0)  # a claim silent 12 s is a dead worker's (10 min by default)
    assert main(args + ["--out", str(store / "r2")]) == 0
    said = _said(store / "r2")
    assert _row(said, "base") == dict(seeds=1, steps=steps, reuse=0, resume=0, train=0, others=1)  # held elsewhere
    assert [(w["arm"], w["seed"]) for w in said["waited_for"]] == [("base", 0)]
    (again,) = _runs("base")  # taken over when its claim went stale: resumed, not trained a second time
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags["resumed"] == "true"
    history = tracking.client().get_metric_history(run.info.run_id, "train/d_loss")
    assert sorted(h.step for h in history)[-1] == steps and min(h.step for h in history) == 1


@pytest.mark.slow
def test_a_run_lost_before_its_first_checkpoint_is_planned_and_trained_afresh(store, capsys, monkeypatch):
    proc = _compare_past_its_first_checkpoint(store, step=12)  # the console prints every 12 steps of 120
    proc.kill()  # lost at step 12, before the first evaluation (step 40) wrote a checkpoint
    proc.communicate(timeout=60)
    (lost,) = _runs("base")
    monkeypatch.setattr(tracking, "STALE_AFTER_S", 0.0)
    assert main(COMPARE + ["--out", str(store / "r2")]) == 0
    said = _said(store / "r2")
    assert _row(said, "base") == dict(seeds=1, steps=STEPS, reuse=0, resume=0, train=1, others=0)
    assert said["plans"][0]["steps_to_train"] == STEPS  # every step, not those after its last log
    runs = {r.info.run_id: r for r in _runs("base")}
    assert runs[lost.info.run_id].info.status == "FAILED" and "trained afresh" in runs[lost.info.run_id].data.tags[
        "failure.reason"]
    (fresh,) = [r for r in runs.values() if r.info.run_id != lost.info.run_id]
    assert fresh.info.status == "FINISHED"


@pytest.mark.slow
def test_a_run_killed_between_evaluations_resumes_from_its_timed_checkpoint(store, capsys, monkeypatch):
    # A checkpoint every 0.06 s of wall clock (train.checkpoint_minutes; 10 minutes by default): SIGKILL
    # at step 24, before the first evaluation (step 40), leaves one.
    timed = ("--set", "train.checkpoint_minutes=0.001")
    proc = _compare_past_its_first_checkpoint(store, step=24, extra=timed)
    proc.kill()
    proc.communicate(timeout=60)
    (killed,) = _runs("base")
    assert killed.info.status == "RUNNING"  # no handler ran
    monkeypatch.setattr(tracking, "STALE_AFTER_S", 0.0)
    assert main(COMPARE + [*timed, "--out", str(store / "r2")]) == 0
    said = _said(store / "r2")
    assert _row(said, "base") == dict(seeds=1, steps=STEPS, reuse=0, resume=1, train=0, others=0)
    (run,) = _runs("base")  # the same run, continued: not trained afresh
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert 0 < int(run.data.tags["resumed.step"]) < 40  # a timed checkpoint's step, not an evaluation's
    steps = {h.step for h in tracking.client().get_metric_history(run.info.run_id, "train/d_loss")}
    assert steps == set(range(1, STEPS + 1))


@pytest.mark.slow
def test_sigterm_stops_compare_with_a_checkpoint_and_the_next_compare_resumes(store, capsys):
    steps, args = STEPS, COMPARE
    proc = _compare_past_its_first_checkpoint(store)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    (run,) = _runs("base")
    assert run.info.status == "KILLED" and run.data.tags["state"] == "interrupted"

    assert main(args + ["--out", str(store / "r2")]) == 0
    said = _said(store / "r2")
    assert _row(said, "base") == dict(seeds=1, steps=steps, reuse=0, resume=1, train=0, others=0)
    (again,) = _runs("base")
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    history = tracking.client().get_metric_history(run.info.run_id, "train/d_loss")
    assert sorted(h.step for h in history) == list(range(1, steps + 1))  # each step once
    assert (said["trained"], said["resumed"]) == (0, 1)


def test_runs_on_other_data_are_not_pooled(store, capsys):
    from harness import compare, identity
    from harness.registry import resolve
    _, c = resolve("base", smoke=True)
    a = compare.Arm("base", {}, c, "mnist-5k", identity.of(c, "fingerprint-a", "tensorflow", "cpu", classifier="c"))
    b = compare.Arm("smoothing", {}, c, "mnist", identity.of(c, "fingerprint-b", "tensorflow", "cpu", classifier="c"))
    for arm, fid in ((a, 10.0), (b, 5.0)):
        arm.runs = [compare.SeedOutcome("x", i, "finished", {m: fid + i for m in compare.METRICS}) for i in range(3)]
    results = compare.analyse([a, b])
    row = next(r for r in results if r.label == "smoothing")
    assert row.verdict.startswith("not compared") and math.isnan(row.quality.diff[0])


def _synthetic_arms(fids: dict, diverged: dict | None = None, collapsed: dict | None = None):
    """Arms of one group from final FIDs per arm (no training): diverged seeds have no metrics."""
    from harness import compare, identity
    from harness.registry import resolve
    _, c = resolve("base", smoke=True)
    arms = []
    for name, values in fids.items():
        arm = compare.Arm(name, {}, c, "mnist-5k", identity.of(c, "fingerprint", "tensorflow", "cpu", classifier="c"))
        arm.runs = [compare.SeedOutcome(f"{name}{i:07d}", i, "finished", {m: v for m in compare.METRICS},
                                        collapse="collapsed" if i < (collapsed or {}).get(name, 0) else "")
                    for i, v in enumerate(values)]
        arm.runs += [compare.SeedOutcome(f"{name}d{i:06d}", len(values) + i, "diverged")
                     for i in range((diverged or {}).get(name, 0))]
        arms.append(arm)
    return arms


def test_outcomes_make_new_arms_and_report_json_holds_the_answer_as_strict_json():
    """Compare's steps return what they make: with_outcomes leaves the arms it is given as they were, and
    report.json is strict JSON (an interval that does not exist is null, not NaN)."""
    from dataclasses import replace
    from harness.compare import analyse
    from harness.compare.arms import with_outcomes
    from harness.compare.report import as_data
    from harness.compare.schedule import Training
    made = _synthetic_arms({"base": [500, 510, 200], "smoothing": [180]}, diverged={"smoothing": 2})
    bare = [replace(a, runs=[]) for a in made]
    arms = with_outcomes(bare, {a.label: a.runs for a in made})
    assert all(a.runs == [] for a in bare) and [len(a.runs) for a in arms] == [3, 3]
    training = Training(trained=2, resumed=1, waited=[("base", 0, "machine-b")],
                        left_out=[("base", "x" * 32, "superseded", "an earlier run")])
    said = json.loads(json.dumps(as_data(analyse(arms), arms, training)), parse_constant=_no_constants)
    smoothing = next(a for a in said["arms"] if a["label"] == "smoothing")
    assert [r["outcome"] for r in smoothing["runs"]] == ["finished", "diverged", "diverged"]
    assert smoothing["diverged"] == 2 and smoothing["quality"]["diff"][1] is None  # 1 escaped seed: no interval
    assert said["waited_for"] == [{"arm": "base", "seed": 0, "holder": "machine-b"}]
    assert (said["trained"], said["resumed"], said["left_out"][0]["kind"]) == (2, 1, "superseded")


def test_every_run_says_when_an_escaped_seed_escaped():
    """Early and late escapers: the first evaluation of the uncollapsed stretch a seed ended in, in the
    report's table and report.json; none for a seed collapsed at the end or one whose last evaluation
    was judged collapsed."""
    from dataclasses import replace
    from harness.compare import analyse, markdown
    from harness.compare.design import Design
    from harness.compare.report import as_data
    from harness.compare.schedule import Training
    base, arm = _synthetic_arms({"base": [99.0, 186.0, 600.0, 190.0], "tanh": [150.0]}, collapsed={"base": 0})
    histories = [[(468, False), (936, False), (4680, False)],  # escaped at once
                 [(468, True), (2340, True), (2808, False), (3276, True), (3744, False), (4680, False)],  # late, relapsed
                 [(468, False), (4680, True)],
                 [(468, True), (4680, True)]]  # the last evaluation (fewer images) says collapsed
    base.runs = [replace(r, collapse_history=h) for r, h in zip(base.runs, histories)]
    base.runs[2] = replace(base.runs[2], collapse="1 of 10 digit classes")
    assert [r.escaped_since for r in base.runs] == [468, 3744, None, None]
    results = analyse([base, arm])
    said = as_data(results, [base, arm], Training())
    assert [r["escaped_since"] for r in said["arms"][0]["runs"]] == [468, 3744, None, None]
    report = markdown(results, [base, arm], "Settings: synthetic", [], Design(("tanh",), 4, 4))
    rows = [line for line in report.split("## Every run")[1].splitlines() if line.startswith("| base |")]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["step 468", "step 3,744", "-", "-"]
    # runs asked in epochs (234 steps each on the 60,000 digits at batch 256): the epoch beside each step
    report = markdown(results, [base, arm], "Settings: synthetic", [], Design(("tanh",), 4, 4), per_epoch=234)
    rows = [line for line in report.split("## Every run")[1].splitlines() if line.startswith("| base |")]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["step 468 (epoch 2)", "step 3,744 (epoch 16)", "-", "-"]
    header = report.split("## Collapse over training")[1].split("| arm |")[1].splitlines()[0]
    assert header.split("|")[0].strip() == "step 468 (epoch 2)" and "step 4,680 (epoch 20)" in header


def test_an_epoch_is_said_beside_a_step_only_when_every_arm_was_asked_in_epochs_of_one_size(mnist_5k):
    from dataclasses import replace
    from harness.compare.arms import data_key, epoch_length
    def train(a, **changes):
        return replace(a, config=replace(a.config, train=replace(a.config.train, **changes)))

    base, arm = (train(a, steps=None, epochs=2) for a in _synthetic_arms({"base": [99.0], "tanh": [150.0]}))
    datasets = {data_key(base.config): mnist_5k}
    per_epoch = len(mnist_5k.train_images) // base.config.train.batch_size
    assert epoch_length([base, arm], datasets) == per_epoch
    half = train(arm, batch_size=base.config.train.batch_size // 2)
    assert epoch_length([base, half], datasets) is None  # arms of other batch sizes: steps only
    assert epoch_length([base, train(arm, steps=40)], datasets) is None  # a length in steps: no epochs to speak of


def test_so_far_says_where_a_comparison_stands_from_the_store_alone(store, mnist_5k, capsys, monkeypatch):
    """A long comparison's seeds as the store has them (finished, diverged, training, stopped, not
    started, a later look's), written as a page with no verdicts; nothing is added to the store. The runs
    are made by hand (their training is the slow tests'), with the tags and metrics a real run logs."""
    import time
    from dataclasses import replace
    from harness import config as cfg
    from harness.compare import standing
    from harness.compare.figures import links
    from harness.compare.arms import data_key
    from harness.tracking import RunState
    s = tracking.Store()
    base, tanh = (replace(a, config=cfg.replace(a.config, {"train.seeds": 3})) for a in
                  _synthetic_arms({"base": [], "tanh": []}))
    floor = [("floor/modes", 10.0, 6), ("floor/recall", 0.9, 6), ("floor/fid", 1.0, 6)]

    def made(arm, seed, evaluations, final=None, status=RunState.FINISHED, tags=None):
        """evaluations: (step, FID, collapsed?) each; final: the final FID and whether it is collapsed."""
        run_id = s.start(arm.experiment, f"{arm.experiment}-s{seed}", {"identity": arm.digest, "seed": str(seed),
                                                                       **(tags or {})})
        rows = [*floor] + [(f"eval/{k}", v, step) for step, fid, bad in evaluations
                           for k, v in (("fid", fid), ("modes", 1.0 if bad else 10.0), ("recall", 0.0 if bad else 0.5))]
        rows += [("train/d_loss", 0.7, evaluations[-1][0] + (0 if final else 1))]  # a running seed is past it
        if final:
            rows += [("final/fid", final[0], 6), ("final/modes", 1.0 if final[1] else 10.0, 6),
                     ("final/recall", 0.0 if final[1] else 0.5, 6)]
        s.metrics(run_id, rows)
        if status != RunState.RUNNING:
            s.end(run_id, status)
        return run_id

    made(base, 0, [(2, 400.0, True), (4, 150.0, False), (6, 99.0, False)], (99.0, False))
    made(base, 1, [(2, 600.0, True), (4, 610.0, True), (6, 620.0, True)], (620.0, True))
    made(base, 2, [(2, 600.0, True)], status=RunState.FAILED,
         tags={"state": "diverged", "failure.reason": "a non-finite loss at step 3"})
    alive = made(tanh, 0, [(2, 636.0, True)], status=RunState.RUNNING,
                 tags={"heartbeat.time": str(time.time()), "heartbeat.step": "4"})  # past its last logged loss
    from mlflow.entities import Metric
    tracking.client().log_batch(alive, metrics=[Metric("train/d_loss", 0.7, int(1000 * (time.time() - 60)), 1)])
    made(tanh, 1, [(2, 500.0, True), (4, 200.0, False)], status=RunState.KILLED, tags={"state": "interrupted"})
    made(tanh, 4, [(2, 300.0, False), (4, 250.0, False), (6, 240.0, False)], (240.0, False))  # a later look's seed
    before = {e: len(s.runs(e)) for e in ("base", "tanh", "compare")}

    same = replace(base, experiment="latent", title="latent[latent_dim=100]", same_as="base")  # base's identity
    written = standing.report([base, tanh, same], {data_key(base.config): mnist_5k}, s, store / "so-far", most=6)
    text, out, page = written.text, written.report.parent, written.report.read_text()
    assert written.run_id is None and written.report == store / "so-far" / "report.md"
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): [c.strip() for c in line.strip("|").split("|")]
            for line in page.split("Every seed")[1].splitlines() if line.startswith(("| base |", "| tanh |"))}
    assert sorted(rows) == [("base", "0"), ("base", "1"), ("base", "2"), ("tanh", "0"), ("tanh", "1"), ("tanh", "2"),
                            ("tanh", "4")]  # the first look's three seeds, and a later seed that has a run
    assert "latent[latent_dim=100] has base's run identity: its seeds are base's." in text  # listed once, as base
    assert not any(line.startswith("| latent") for line in page.splitlines())
    assert rows["base", "0"][3:] == ["finished", "6 of 6", "99.0 final", "escaped since step 4"]
    assert rows["base", "1"][3] == "finished" and rows["base", "1"][6].startswith("1 of 10 digit classes")
    assert rows["base", "2"][3:] == ["diverged", "3 of 6", "600 at step 2", "a non-finite loss at step 3"]
    assert rows["tanh", "0"][2:] == [alive, "training", "4 of 6", "636 at step 2", "collapsed at its last evaluation"]
    assert rows["tanh", "1"][3:] == ["stopped", "5 of 6", "200 at step 4", "not collapsed at its last evaluation"]
    assert rows["tanh", "2"][2:] == ["-", "not started", "-", "-", "-"]
    assert rows["tanh", "4"][6] == "escaped since step 2"
    summary = next(line for line in page.splitlines() if line.startswith("| tanh | "))
    assert summary == "| tanh | 1 | 1 | 0 | 0 | 1 | 1 | 1 | 240 | - |"
    assert "| base | 2 | 1 | 1 | 1 | 0 | 0 | 0 | 99.0 | 620 |" in text
    assert not re.search(r"\b(better|worse|equivalent|undecided)\b", page)  # a design decides only at its looks
    trained = 6 + 6 + 6 + 4 + 5 + 6  # base's three (the diverged one has trained all it will), tanh's so far
    assert f"{trained:,} of the {6 * 7:,} steps of the seeds listed (78%)" in page
    # how long the rest takes: the training seed's pace over its last half hour (steps 1 to 3 in a minute)
    assert f"At the {2 / 60:.2f} steps a second that the seeds in training made" in page
    assert f"the {6 * 7 - trained:,} steps left take about {(6 * 7 - trained) / (2 / 60) / 3600:.1f} h more" in page
    assert standing.pace([(0, 1000.0), (100, 1100.0), (300, 1200.0)], now=1200.0) == 1.5
    assert standing.pace([(0, 1000.0), (900, 1100.0)], now=1100.0 + standing.PACE_WINDOW_S) == 0.0  # too old
    assert standing.pace([(5, 1000.0)], now=1000.0) == 0.0  # one point: no pace
    assert sorted(p.name for p in out.iterdir()) == ["fid_over_training.png", "outcomes.png", "report.md",
                                                     "samples.png"]
    assert sorted(written.figures) == sorted(out.glob("*.png"))  # it returns what it drew, and links each once
    assert re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page) == ["outcomes.png", "fid_over_training.png", "samples.png"]
    assert links([out / "samples.png", out / "fid_over_training.png"]) == [  # a report links only what was drawn
        "![FID over training](fid_over_training.png)", "![samples](samples.png)"]
    assert {e: len(s.runs(e)) for e in before} == before  # nothing recorded
    # the seeds still training or stopped are drawn too (dashed), with their evaluations so far; an arm with
    # none finished (tanh, when seed 4 is not asked for) gets its panel there, no row in the outcome figures,
    # and the colour it has when it has finished seeds
    import matplotlib.pyplot as plt
    from harness.compare.figures import fid_over_training, figures
    for most, tanh_finished in ((6, 1), (3, 0)):
        _, finished, going, _ = standing.states([base, tanh], s, most)
        assert going["base"] == [] and [(o.seed, o.outcome, o.fid_history, o.collapse_history)
                                        for o in going["tanh"]] == [
            (0, "training", [(2, 636.0)], [(2, True)]), (1, "stopped", [(2, 500.0), (4, 200.0)], [(2, True), (4, False)])]
        arms = [replace(a, runs=finished[a.label]) for a in (base, tanh)]
        assert len(arms[1].runs) == tanh_finished
        colors = {"base": "C0", "tanh": "C1"}
        fig = fid_over_training(arms, colors, training=going)
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
        assert [ax.get_title() for ax in panels] == [
            "base (3 seeds)", f"tanh ({tanh_finished} seed{'s' * (tanh_finished != 1)}, 2 not finished)"]
        dashed = sorted([tuple(map(tuple, line.get_xydata())), line.get_color()] for line in panels[1].get_lines()
                        if line.get_linestyle() == "--")
        assert dashed == [[((2.0, 500.0), (4.0, 200.0)), "C1"], [((2.0, 636.0),), "C1"]]
        assert "dashed: not finished" in fig.get_suptitle()
        plt.close(fig)
        out = store / f"figures-{most}"
        out.mkdir()
        drawn = figures(arms, s, out, training=going)
        assert [p.name for p in drawn] == ["fid_over_training.png", "outcomes.png", "samples.png"]
        rows = plt.imread(out / "samples.png").shape[0]
        assert rows == round(1.9 * (1 + (tanh_finished > 0)) * 90)  # a row an arm with a finished seed
    # with --retry-diverged the diverged seed is one to train again, not an outcome
    again = {(x.arm, x.seed): x.state for x in standing.states([base, tanh], s, 6, retry_diverged=True)[0]}
    assert again["base", 2] == "not started" and again["base", 0] == "finished"

    # From the command line, whose arms have the real data's and classifier's identity: the runs above are
    # another identity's, said as such; the page goes beside the comparison's report, not over it.
    (store / "r").mkdir()
    (store / "r" / "report.md").write_text("the comparison's report")
    capsys.readouterr()
    asked = ["compare", "tanh", "--smoke", "--seeds", "3", "--workers", "2", "--out", str(store / "r")]
    assert main([*asked, "--so-far"]) == 0  # the comparison's own command (--workers and all), and --so-far
    said = capsys.readouterr().out
    assert "| tanh | 0 | 0 | 0 | 0 | 0 | 0 | 3 | - | - |" in said
    assert "no arm asked here could use" in said and "base 3 (identity differs: " in said and "tanh 3 (" in said
    assert (store / "r" / "report.md").read_text() == "the comparison's report"
    assert "| tanh | 2 | - | not started |" in (store / "r" / "so-far" / "report.md").read_text()
    assert {e: len(s.runs(e)) for e in before} == before
    # where there is no store, it says so and makes none
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'elsewhere' / 'mlflow.db'}")
    assert main(["compare", "tanh", "--smoke", "--so-far"]) == 2
    one_error(capsys.readouterr().err, "--so-far reads a comparison's store")
    assert not (store / "elsewhere").exists()


def test_looks_judge_new_arms_each_look_and_leave_the_arms_given_as_they_were(store, mnist_5k, monkeypatch):
    """until_decided's bookkeeping on a real store and real claims, with each seed's outcome given (its
    training is the slow tests'): the arms passed in keep their runs and seeds, each look trains new
    arms, the budget's cut arms keep their last look, and an arm of base's identity gets base's runs."""
    from dataclasses import replace
    from harness import config as cfg
    from harness import tracking
    from harness.compare import looks
    from harness.compare.arms import data_key
    from harness.compare.options import CompareOptions
    from harness.compare.schedule import Training
    fids = {"base": [100, 600, 110], "smoothing": [100, 600, 110], "tanh": [100, 900, 640], "batchnorm": [90, 95, 99]}
    table = {a.label: a.runs for a in _synthetic_arms(fids)}
    arms = [replace(a, experiment=a.label, config=cfg.replace(a.config, {"train.seeds": 2}), runs=[])
            for a in _synthetic_arms(fids)]
    arms.append(replace(arms[0], experiment="latent", title="latent[latent_dim=100]", same_as="base"))
    given = copy.deepcopy(arms)
    asked = []

    def outcomes_given(looked, datasets, store, claims=None):
        asked.append([(a.label, a.config.train.seeds, len(a.runs)) for a in looked])
        return Training({a.label: table[a.label][:a.config.train.seeds] for a in looked})
    monkeypatch.setattr(looks, "train_missing", outcomes_given)
    options = CompareOptions(until_decided=True, max_seeds=3, budget=10, margin=20.0)
    decisions, training, family, judged = looks.until_decided(
        arms, {data_key(arms[0].config): mnist_5k}, tracking.Store(), "compare", options, 20.0, "given")
    assert arms == given  # the arms given, as they were
    assert asked[0] == [(label, 2, 0) for label in fids]  # each look trains new arms, without outcomes
    assert asked[1] == [("base", 3, 0), ("smoothing", 3, 0)]  # the budget's 10 pays for one arm's third seed
    assert [a.config.train.seeds for a in judged[:4]] == [3, 3, 2, 2]  # each arm at its last look
    assert [len(a.runs) for a in judged] == [3, 3, 2, 2, 3] and judged[4].runs == judged[0].runs
    assert {label: d.seeds for label, d in decisions.items()} == {"smoothing": 3, "tanh": 2, "batchnorm": 2}
    assert [(x["look"], x["runs"]) for x in training.looks] == [(2, 8), (3, 10)]
    recorded = json.loads(tracking.Store().read_text(family.run_id, "looks.json"))
    assert recorded["3"]["base"] == [r.run_id for r in judged[0].runs]
    # smoothing's look-3 interval: each side's variance floored at the spread pooled over every arm, the
    # ones the budget stopped at 2 seeds included (tanh's 100 and 900 make the floor bind)
    from harness.compare.design import judge, spread_floor
    last = [replace(a, runs=table[a.label][:n]) for a, n in zip(arms[:4], (3, 3, 2, 2))]
    interval = decisions["smoothing"].result.quality.diff
    assert interval == judge(last[1], last[0], family.design, 3, spread_floor(last)).quality.diff
    unfloored = judge(last[1], last[0], family.design, 3).quality.diff
    assert interval[2] - interval[1] > unfloored[2] - unfloored[1]


def _no_constants(name):
    raise AssertionError(f"report.json holds {name}, which strict JSON readers refuse")


@pytest.mark.slow
def test_compare_at_two_seeds_over_every_experiment_writes_a_report_with_words_for_every_arm(store, capsys):
    """The failure that ended `compare --seeds 2` without a report after all its training."""
    from harness import registry
    assert main(["compare", "--smoke", "--seeds", "2", "--set", "eval.n_images=100", "--out", str(store / "r")]) == 0
    report = (store / "r" / "report.md").read_text()
    table = report.split("## The answer")[1].split("## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| arm")]
    arms = {line.split(" | ")[0][2:] for line in rows}
    assert {"base", "smoothing", "tanh", "batchnorm", "batchnorm-train"} <= arms and len(rows) >= 9
    for line in rows:
        cells = line.strip("| ").split(" | ")
        assert len(cells) == 9 and all(c.strip() for c in cells), line
        verdict = cells[8]  # a verdict, or a sentence saying why there is none
        assert verdict.split(";")[0].split(":")[0] in ("reference", "undecided", "better", "worse", "mixed") \
            or "same run identity" in verdict, line
        assert "nan" not in line, line
    assert len(registry.files()) >= 6


@pytest.mark.slow
def test_until_decided_registers_its_design_once_and_resumes_without_training(store, capsys):
    args = ["compare", "smoothing", "--smoke", "--until-decided", "--seeds", "2", "--max-seeds", "3",
            "--set", "eval.n_images=100"]
    assert main(args + ["--out", str(store / "r1")]) == 0
    said = _said(store / "r1")
    assert [p["look"] for p in said["plans"]][0] == 2 and said["design_run"]  # the first look: 2 seeds a side
    designs = [r for r in _runs("compare") if r.data.tags.get("kind") == "design"]
    params = designs[0].data.params
    assert len(designs) == 1 and params["K"] == "1" and params["margin"] == "20.0"  # base.yaml's compare.margin
    assert 0 <= float(params["escape.worst"]) <= float(params["escape.level"]) == 0.025  # exact, at its share
    report = (store / "r1" / "report.md").read_text()
    row = re.search(r"^\| smoothing \| \*\*(better|worse|mixed|undecided)[^*]*\*\* \| ([23]) \|", report, re.M)
    assert row and designs[0].info.run_id in report and "Pocock-type" in report
    assert "inside ±20.0 FID (the margin, fixed before the first look: compare.margin of base's config" in report
    seeds = int(row.group(2))
    assert len(_runs("smoothing")) == seeds and len(_runs("base")) == seeds  # base went on only while smoothing did
    recorded = json.loads(tracking.Store().read_text(designs[0].info.run_id, "looks.json"))
    assert sorted(recorded) == [str(n) for n in range(2, seeds + 1)] and len(recorded["2"]["smoothing"]) == 2

    assert main(args + ["--out", str(store / "r2")]) == 0  # the same command: the same design, nothing trained
    again = _said(store / "r2")
    assert again["trained"] == again["resumed"] == 0 and again["design_run"] == said["design_run"]
    assert all(p["runs_to_train"] == 0 for p in again["plans"])
    assert len([r for r in _runs("compare") if r.data.tags.get("kind") == "design"]) == 1
    assert row.group(0) in (store / "r2" / "report.md").read_text()
    capsys.readouterr()
    assert main(args + ["--margin", "1e6"]) == 2  # the margin was registered before the first look
    one_error(capsys.readouterr().err, "margin", "20", said["design_run"])  # as registered, and where
    assert main(args + ["--retry-diverged"]) == 2
    one_error(capsys.readouterr().err, "--retry-diverged")
    assert main(args + ["--primary", "tanh"]) == 2  # not an arm of this comparison: one sentence, nothing trained
    one_error(capsys.readouterr().err, "--primary tanh", "smoothing")  # the arms it could be
    # Other looks make another family, with its own design; the report names the earlier one.
    assert main(args[:-4] + ["--max-seeds", "2", "--set", "eval.n_images=100", "--out", str(store / "r3")]) == 0
    assert len([r for r in _runs("compare") if r.data.tags.get("kind") == "design"]) == 2
    assert f"own design (run {designs[0].info.run_id}" in (store / "r3" / "report.md").read_text()


@pytest.mark.slow
def test_a_studys_best_is_confirmed_on_fresh_seeds_beside_its_trial(store, capsys):
    smoke = ["--smoke", "--set", "eval.n_images=100"]
    assert main(["search", "smoothing", "--trials", "2", *smoke]) == 0
    assert main(["compare", "study:smoothing/default", "--seeds", "2", *smoke, "--out", str(store / "r1")]) == 0
    confirmations = [r for r in _runs("smoothing") if r.data.tags.get("confirms") == "smoothing/default"]
    assert sorted(int(r.data.tags["seed"]) for r in confirmations) == [1, 2]  # the trials used seed 0
    best = [r for r in _runs("smoothing") if r.data.tags.get("optuna.study") and r.data.tags.get("kind") != "study"]
    best = min(best, key=lambda r: r.data.metrics["final/fid"])
    assert all(r.data.params["train.lr_g"] == best.data.params["train.lr_g"] for r in confirmations)
    section = (store / "r1" / "report.md").read_text().split("## Optuna's best, confirmed")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| study:smoothing/default |"))
    assert best.info.run_id[:8] in row and "| 1-2 |" in row
    capsys.readouterr()
    assert main(["compare", "study:smoothing/default", "--seeds", "2", "--smoke", "--steps", "8"]) == 2
    one_error(capsys.readouterr().err, "train.steps=6")  # confirmed only at the settings it was found at
    assert main(["compare", "study:smoothing/none", "--smoke"]) == 2


@pytest.mark.slow
def test_until_decided_resumes_at_its_look_after_sigterm_and_trains_nothing_twice(store, capsys):
    args = ["compare", "smoothing", "--smoke", "--until-decided", "--seeds", "2", "--max-seeds", "4", "--steps", "60",
            "--margin", "0.001", "--set", "eval.n_images=100", "--set", "train.print_every_steps=10"]
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args, "--out", "r1"], cwd=store, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = ""
    for line in proc.stderr:  # at 2 seeds a side the interval is far too wide to decide: a second look comes
        seen += line
        if "look at 3 seeds a side" in seen and "step 30/60" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (seen + err)[-2000:]
    stopped = [r for r in _runs("base") + _runs("smoothing") if r.info.status == "KILLED"]
    assert len(stopped) == 1 and stopped[0].data.tags["state"] == "interrupted"

    assert main(args + ["--out", str(store / "r2")]) == 0
    assert [p["look"] for p in _said(store / "r2")["plans"]][:2] == [2, 3]  # the first look reused, then the second
    runs = _runs("base") + _runs("smoothing")
    seeds = [(r.data.tags["experiment"], r.data.tags["seed"]) for r in runs]
    assert len(seeds) == len(set(seeds)) and all(r.info.status == "FINISHED" for r in runs)  # each seed once
    history = tracking.client().get_metric_history(stopped[0].info.run_id, "train/d_loss")
    assert sorted(h.step for h in history) == list(range(1, 61))  # resumed from its checkpoint, each step once


@pytest.mark.slow
def test_until_decided_spends_no_run_past_its_budget_and_says_who_went_without(store, capsys):
    # a sweep's arm last: its label, latent[latent_dim=32], is no valid MLflow key as it stands
    args = ["compare", "smoothing", "latent", "--sweep", "model.latent_dim=32", "--smoke", "--until-decided",
            "--seeds", "2", "--max-seeds", "3", "--budget", "8", "--margin", "0.001", "--steps", "4",
            "--set", "eval.n_images=100"]
    assert main(args + ["--out", str(store / "r1")]) == 0
    first = _said(store / "r1")["looks"][0]
    assert (first["runs"], first["runs_left"]) == (6, 2)  # the budget's 2 runs left, not 3 seeds' 3
    report = (store / "r1" / "report.md").read_text()
    runs = _runs("base") + _runs("smoothing") + _runs("latent")
    # 6 runs at the first look (2 seeds a side are far too few to decide); at the second the budget pays
    # for base's third seed and the first arm named, so latent, named second, ends undecided at 2
    assert len(runs) == 8 and len(_runs("latent")) == 2
    assert "| latent[latent_dim=32] | **undecided** | 2 |" in report
    assert "the run budget (8) ran out before 3 seeds" in report
    design = next(r for r in _runs("compare") if r.data.tags.get("kind") == "design")
    assert design.data.tags["decision.latent:latent_dim:32"] == "undecided at 2 seeds"
    capsys.readouterr()
    assert main(args[:-4] + ["--budget", "5", "--steps", "4"]) == 2
    one_error(capsys.readouterr().err, "--budget 5")
    assert main(args[:-4] + ["--budget", "6", "--steps", "4", "--set", "eval.n_images=100",
                             "--out", str(store / "r2")]) == 0  # the first look's runs, reused: nothing left
    said = _said(store / "r2")  # the budget spent at the first look: both end undecided there, nothing more trained
    assert [p["look"] for p in said["plans"]] == [2] and said["trained"] == 0
    assert said["looks"] == [{"look": 2, "arms": ["smoothing", "latent[latent_dim=32]"], "runs": 6,
                              "undecided": ["smoothing", "latent[latent_dim=32]"], "runs_left": 0}]
    assert {a["label"]: (a["verdict"].split()[0], a["look"]) for a in said["arms"] if a["label"] != "base"} == {
        "smoothing": ("undecided", 2), "latent[latent_dim=32]": ("undecided", 2)}
    assert len(_runs("base") + _runs("smoothing") + _runs("latent")) == 8


def test_the_settings_say_when_earlier_evaluations_scored_fewer_images():
    """FID's bias grows as fewer images are scored, so a curve whose last point scored more drops there
    for that reason too: the report's settings say so whenever eval.interim_images is smaller."""
    from harness import config as cfg
    from harness.compare.report import settings_line
    arms = _synthetic_arms({"base": [500, 510]})
    arms[0].config = cfg.replace(arms[0].config, {"eval.n_images": 1000, "eval.interim_images": 200})
    line = settings_line(arms, {}, [])
    assert "N = 1000 generated images scored against the held-out reference at the end and 200 at the" in line
    assert "FID reads higher on fewer images" in line
    arms[0].config = cfg.replace(arms[0].config, {"eval.interim_images": None})
    assert "FID reads higher" not in settings_line(arms, {}, [])


def test_other_families_decisions_are_read_back_under_their_arms_labels(store):
    """A sweep arm's label is no valid tag key as it stands: the design tags it sanitised, and a later
    family over the same arms finds the decision under the label again (and an earlier design's
    decision tagged with the label as it stood)."""
    from harness.compare.design import Design
    from harness.compare.looks import decision_tag, open_family
    base, latent, study = _synthetic_arms({"base": [1.0], "latent": [1.0], "study": [1.0]})
    latent.sweep_value = {"model.latent_dim": 32}
    study.title = "study:smoothing/default"
    s = tracking.Store()
    run_id = s.start("compare", "design-old", {"kind": "design", "design.family": "other",
                                               decision_tag(latent.label): "better at 3 seeds",
                                               f"decision.{study.label}": "worse at 4 seeds"})
    s.params(run_id, {"arms": json.dumps([latent.label, study.label]),
                      "digests": json.dumps([latent.digest, study.digest])})
    family = open_family(s, "compare", "new", base, [latent, study], Design((latent.label, study.label), 3, 5))
    assert latent.label == "latent[latent_dim=32]"
    assert family.others == [(run_id, [latent.label, study.label],
                           {latent.label: "better at 3 seeds", study.label: "worse at 4 seeds"})]


def test_the_figures_draw_diverged_collapsed_and_unscored_seeds(store):
    """Every seed is drawn, whatever its outcome: a diverged seed, a collapsed one, and a finished seed
    with no final FID (none of them may stop the figures after a comparison's training)."""
    from harness.compare.figures import figures
    arms = _synthetic_arms({"base": [500.0, 510.0], "tanh": [300.0, 305.0]}, diverged={"tanh": 1},
                           collapsed={"tanh": 1})
    arms[1].runs[1].metrics = {}  # finished, but its final metrics are missing
    s = tracking.Store()
    for arm in arms:
        for r in arm.runs:  # real runs in the store, so the figures find (no) sample grids there
            r.run_id = s.start(arm.experiment, f"{arm.experiment}-s{r.seed}", {})
            r.fid_history = [(10, 600.0), (20, 400.0)][:1 if r.outcome == "diverged" else 2]
            r.collapse_history = [(10, True), (20, bool(r.collapse))]
    paths = figures(arms, s, store, per_epoch=10)
    assert sorted(p.name for p in paths) == ["fid_over_training.png", "outcomes.png", "samples.png"]
    height, width = plt.imread(store / "samples.png").shape[:2]  # 2 arms x 3 seeds (tanh's diverged one too)
    assert (height, width) == (round(1.9 * 2 * 90), round((1.7 * 3 + 1.0) * 90))
