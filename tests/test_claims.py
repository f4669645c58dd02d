"""Claims (harness/claims.py): a seed of a run identity is trained by one process at a time, across
processes and machines; compares sharing one store agree on one design and one record per look; a run
alive elsewhere is never taken over; a store that fails is an error, not a missing checkpoint."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tracking_server
from conftest import eventually, one_error
from harness import claims as claims_lib
from harness import tracking
from harness.__main__ import main

RACE = """
import sys, time
from harness.claims import Claims
claims = Claims(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
print(claims.take("seed:race:0", "racing"), flush=True)
time.sleep(3)  # hold it while the others try
"""


def _race(url: str, n: int = 4, env: dict | None = None) -> list[str]:
    start = time.time() + 8  # every process imported and waiting: they ask at the same instant
    procs = [subprocess.Popen([sys.executable, "-c", RACE, url, str(start)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, **(env or {})}) for _ in range(n)]
    return [p.communicate(timeout=120)[0].strip() for p in procs]


def test_of_processes_racing_for_one_seed_exactly_one_takes_it_sqlite(tmp_path):
    said = _race(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(said) == ["False", "False", "False", "True"]


def test_of_processes_racing_for_one_seed_exactly_one_takes_it_postgres(postgres):
    said = _race(tracking.with_driver(postgres("claims")), env={"PGPASSFILE": str(postgres.pgpass)})
    assert sorted(said) == ["False", "False", "False", "True"]


def test_a_claim_is_nested_released_once_and_taken_over_only_when_stale(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    a, b = claims_lib.Claims(url), claims_lib.Claims(url)  # two processes' views: two owners
    assert a.take("k", "a's seed") and a.take("k")  # nested: a compare's claim, then its run's own
    assert not b.take("k") and b.held_elsewhere("k").detail == "a's seed"
    a.release("k")
    assert not b.take("k")  # still held at depth 1
    a.release("k")
    assert b.holder("k") is None and b.take("k", "b's")
    monkeypatch.setattr(tracking, "STALE_AFTER_S", 0.0)  # b went silent: its claim belongs to a dead worker
    time.sleep(0.01)
    assert a.held_elsewhere("k") is None and a.take("k", "a again") and a.holder("k").owner == a.owner
    monkeypatch.setattr(tracking, "STALE_AFTER_S", 600.0)
    with pytest.raises(claims_lib.Busy, match="is being trained by"):
        with claims_lib.Claims(url).hold(["k"], "base seed 0"):  # a third process
            pass


def _two_compares(store: Path, args: list[str]) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HARNESS_HEARTBEAT_S": "1"}
    return [subprocess.Popen([sys.executable, "-m", "harness", *args, "--out", f"r{i}"], cwd=store, env=env,
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in (1, 2)]


@pytest.mark.slow
def test_two_compares_started_together_train_each_seed_once_and_agree(store):
    args = ["compare", "base", "smoothing", "--smoke", "--until-decided", "--seeds", "2", "--max-seeds", "3",
            "--steps", "24", "--set", "eval.n_images=100", "--margin", "50"]
    procs = _two_compares(store, args)
    outs = [p.communicate(timeout=1200) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    c = tracking.client()
    for experiment in ("base", "smoothing"):
        runs = c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
        seeds = [r.data.tags["seed"] for r in runs if r.data.tags.get("kind") != "group"]
        assert sorted(seeds) == sorted(set(seeds)) and len(seeds) == 3  # each seed once, three looks' worth
    designs = [r for r in c.search_runs([c.get_experiment_by_name("compare").experiment_id])
               if r.data.tags.get("kind") == "design"]
    assert len(designs) == 1  # one wrote it, the other joined it
    looks = json.loads(Path(c.download_artifacts(designs[0].info.run_id, "looks.json", str(store))).read_text())
    assert set(looks) == {"2", "3"} and all(len(ids) == int(look) for look, arms in looks.items() for ids in arms.values())
    reports = [(store / f"r{i}" / "report.md").read_text() for i in (1, 2)]
    assert reports[0] == reports[1]
    said = [json.loads((store / f"r{i}" / "report.json").read_text()) for i in (1, 2)]
    assert sum(s["trained"] for s in said) == 6  # between them, each of the 6 runs once (who trains which: timing)
    assert said[0]["arms"] == said[1]["arms"] and said[0]["design_run"] == designs[0].info.run_id


def test_compares_opening_one_family_at_once_write_one_design(store, monkeypatch):
    """Two processes' views (two claim owners) open one family together on a store slow to create runs:
    without the family's claim both would find no design and write one each."""
    import threading
    from harness import registry
    from harness.compare import looks
    from harness.compare.arms import Arm
    from harness.compare.design import Design
    from harness.tracking import Store
    _, config = registry.resolve("base", smoke=True)
    base, tested = Arm("base", {}, config, "mnist-5k", {"arm": 0}), [Arm("smoothing", {}, config, "mnist-5k", {"arm": 1})]
    design = Design(("smoothing",), 2, 3, margin=50.0, margin_source="given")
    start = Store.start

    def slow_start(self, *args, **kwargs):
        time.sleep(1.0)  # between "no design yet" and the design run existing
        return start(self, *args, **kwargs)
    monkeypatch.setattr(Store, "start", slow_start)
    url, families = f"sqlite:///{store / 'mlflow.db'}", []

    def open_one():
        families.append(looks.open_family(Store(), "compare", "f" * 16, base, tested, design, None,
                                          claims_lib.Claims(url)))
    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(families) == 2 and families[0].run_id == families[1].run_id
    assert len([r for r in Store().runs("compare") if r.data.tags.get("kind") == "design"]) == 1


def _errored_run(seed: int):
    """A run of base that stopped on an error after its first checkpoint (resumable), as the store holds it."""
    from harness import data, registry, runner, scorers
    _, config = registry.resolve("base", smoke=True, sets=["eval.n_images=100"])
    dataset = data.for_config(config, quiet=True)

    def outage(step, metrics):
        raise ConnectionError("cannot reach postgresql://harness:db-secret-7@db-host/harness")
    with pytest.raises(ConnectionError):
        runner.run("base", config, seed, dataset, scorers.make(config, dataset, quiet=True), on_eval=outage)
    c = tracking.client()
    exp = c.get_experiment_by_name("base")
    return next(r for r in c.search_runs([exp.experiment_id]) if r.data.tags["seed"] == str(seed))


@pytest.mark.slow
def test_run_resume_leaves_a_run_with_a_fresh_heartbeat_and_resumes_a_stale_one(store, capsys):
    run = _errored_run(0)
    reason = run.data.tags["failure.reason"]  # stored as it would be printed: the password masked
    assert "postgresql://harness:***@db-host" in reason and "db-secret-7" not in reason
    c = tracking.client()
    c.update_run(run.info.run_id, "RUNNING")  # as a live worker holds it: RUNNING, beating now
    c.set_tag(run.info.run_id, "heartbeat.time", f"{time.time():.0f}")
    resume = ["run", "base", "--smoke", "--set", "eval.n_images=100", "--resume"]
    capsys.readouterr()
    assert main(resume + [run.info.run_id]) == 2
    one_error(capsys.readouterr().err, run.info.run_id, "live process")
    assert main(resume) == 2  # the newest unfinished run of seed 0 is alive: none to take
    one_error(capsys.readouterr().err, "base", "seed 0", "live process")
    assert c.get_run(run.info.run_id).info.status == "RUNNING"  # untouched

    c.set_tag(run.info.run_id, "heartbeat.time", f"{time.time() - 2 * tracking.STALE_AFTER_S:.0f}")  # it died
    assert main(resume) == 0
    again = c.get_run(run.info.run_id)
    assert again.info.status == "FINISHED" and again.data.tags["resumed"] == "true"
    assert len(c.search_runs([again.info.experiment_id])) == 1


@pytest.mark.slow
def test_a_checkpoint_the_server_fails_to_send_stops_compare_and_retrains_nothing(tmp_path, monkeypatch, capsys):
    """The server lists the checkpoint but cannot send it (here: its file replaced by a folder, so the
    download fails with a server error): an outage, not a missing checkpoint."""
    (tmp_path / "server").mkdir()
    with tracking_server.serving(tmp_path / "server", f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
                                 dict(os.environ)) as (url, _):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.chdir(tmp_path)
        run = _errored_run(0)  # its checkpoint uploaded to the server, and kept in ./mlruns/checkpoints
        (tmp_path / "machine-b").mkdir()
        monkeypatch.chdir(tmp_path / "machine-b")  # another machine: no local copy, it must download
        stored = next((tmp_path / "server" / "artifacts").rglob("checkpoint/state.npz"))
        stored.unlink()
        (stored.parent / "state.npz").mkdir()
        args = ["compare", "base", "--smoke", "--seeds", "1", "--set", "eval.n_images=100", "--out", "r"]
        assert main(args) == 2
        err = capsys.readouterr().err
        one_error(err, url, "checkpoint/state.npz", run.info.run_id, alone=False)  # the store, file and run; after the plan
        assert "afresh" not in err
        c = tracking.client()
        runs = c.search_runs([run.info.experiment_id])
        assert len(runs) == 1 and runs[0].info.status == "FAILED"  # not marked lost, not trained again
        assert runs[0].data.tags["state"] == "error"


@pytest.mark.slow
def test_compare_workers_share_one_comparison_and_one_report(store, capsys):
    """--workers 2: two copies of the command train (a share of the cores each), this one reports."""
    args = ["compare", "base", "smoothing", "--smoke", "--seeds", "2", "--steps", "24", "--set", "eval.n_images=100",
            "--workers", "2", "--out", str(store / "r")]
    assert main(args) == 0
    said = json.loads((store / "r" / "report.json").read_text())
    assert said["trained"] == 0 and said["resumed"] == 0  # all trained by its workers
    c = tracking.client()
    for experiment in ("base", "smoothing"):
        runs = c.search_runs([c.get_experiment_by_name(experiment).experiment_id])
        assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1"]  # each seed once
    assert all((store / "r" / f"worker-{i}.log").exists() for i in (0, 1))
    trained = [json.loads((store / "r" / f"worker-{i}" / "report.json").read_text())["trained"] for i in (0, 1)]
    assert sum(trained) == 4  # the workers' own records: each seed trained once, by one of them
    progress = [json.loads((store / "r" / f"worker-{i}.progress.json").read_text()) for i in (0, 1)]
    assert max(p["planned"] for p in progress) == sum(p["done"] for p in progress) == 4 * 24  # the one bar's end
    reports = c.search_runs([c.get_experiment_by_name("compare").experiment_id])
    assert len(reports) == 1 and (store / "r" / "report.md").exists()  # the workers wrote no report run
    first = [(store / "r" / f"worker-{i}.log").read_text() for i in (0, 1)]
    assert main(args) == 0  # started again: nothing left to train; the workers' logs are appended to
    for i, before in enumerate(first):
        after = (store / "r" / f"worker-{i}.log").read_text()
        assert after.startswith(before) and after.count(f": worker {i} of 2 started") == 2


@pytest.mark.slow
def test_a_worker_woken_after_its_seed_was_taken_over_stops_and_writes_nothing_more(store, monkeypatch):
    """A worker frozen past STALE_AFTER_S (here 10 s: a 1-s heartbeat) loses its seed to another; woken, it
    stops with one error line before writing anything more to the run, which the other now owns."""
    steps = 400
    claims_db = f"sqlite:///{store / 'claims.db'}"  # apart from the runs: the frozen worker holds no lock there
    monkeypatch.setenv("HARNESS_STORAGE", claims_db)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "base", "--smoke", "--steps", str(steps),
                             "--set", "eval.n_images=100", "--set", "train.log_every_steps=1"], cwd=store, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "HARNESS_HEARTBEAT_S": "1"})
    try:
        tracking_server.wait_for(proc, f"step 160/{steps}")  # past its first checkpoint (step 133)
        proc.send_signal(signal.SIGSTOP)
        c = tracking.client()
        (run,) = c.search_runs([c.get_experiment_by_name("base").experiment_id])
        before = c.get_run(run.info.run_id)
        history = c.get_metric_history(run.info.run_id, "train/d_loss")
        key = claims_lib.seed_key(run.data.tags["identity"], 0)
        monkeypatch.setattr(tracking, "STALE_AFTER_S", 10.0)  # as the frozen worker counts it
        other = claims_lib.Claims(claims_db)
        assert eventually(lambda: other.take(key, "base seed 0, taken over"), seconds=60, every=0.5)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
    assert proc.returncode == 2, err[-3000:]
    one_error(err, key, alone=False)  # after its own progress lines
    after = c.get_run(run.info.run_id)
    assert after.info.status == "RUNNING" and after.data.tags == before.data.tags  # not ended, no new tag
    assert c.get_metric_history(run.info.run_id, "train/d_loss") == history  # no step logged after it woke
    assert other.holder(key).owner == other.owner  # still the other's
