"""The recipe-scale script for an accelerator (bench/recipe_gpu.py), run here in its quick mode under
JAX, then its results imported as MLflow runs and reported by `compare` for their own identity only."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from extras import requires_jax

from harness import identity, registry, sink, tracking
from harness.__main__ import main

pytestmark = requires_jax
SCRIPT = Path(__file__).parent.parent / "bench" / "recipe_gpu.py"


@pytest.mark.slow
def test_offline_results_import_as_runs_of_their_own_identity(store, capsys, scorer_5k):
    data, out = store / "device", store / "out"
    spec = importlib.util.spec_from_file_location("recipe_gpu", SCRIPT)
    recipe_gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe_gpu)
    data_file = recipe_gpu.export_data(data, "mnist-5k")  # what `recipe_gpu.py DIR --export-data` does, here
    # A GPU machine may have JAX and nothing of TensorFlow, MLflow or Optuna: here they are made to fail
    # on import, so the script shows it needs none of them.
    absent = store / "absent"
    for name in ("mlflow", "tensorflow", "optuna"):
        (absent / name).mkdir(parents=True)
        (absent / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed here')\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "HARNESS_CACHE": str(data / "cache"),
           "PYTHONPATH": os.pathsep.join([str(absent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    p = subprocess.run([sys.executable, str(SCRIPT), str(out), "--data", str(data_file), "--quick", "--arms", "2"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    # the harness's own loop wrote each member's run through a JSONL sink, as it writes an MLflow run
    folders = sorted(d.name for d in (out / "runs").iterdir())
    assert folders == ["base-s0", "base-s1", "smoothing-s0", "smoothing-s1"]  # 2 arms, 2 seeds each
    written = sink.read(out / "runs" / "base-s0")
    evaluated = sorted({s for e in written for k, _, s in e.get("metrics", []) if k == "eval/fid"})
    assert evaluated == [20, 40] and (out / "runs" / "base-s0" / "artifacts" / "model" / "generator.keras").exists()
    (out / "runs" / "tanh-s0").mkdir()  # an arm cut off before its end: named, not imported

    assert main(["import-results", str(out)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "tanh-s0" in line]
    assert len(said) == 1 and "cut off" in said[0] and not tracking.Store().runs("tanh")  # named, nothing imported
    assert main(["import-results", str(out)]) == 0  # again: nothing twice
    c = tracking.client()
    members = [r for r in tracking.Store().runs("base") if r.data.tags.get("kind") != "group"]
    assert len(members) == 2 and all(r.info.status == "FINISHED" for r in members)
    (group,) = [r for r in tracking.Store().runs("base") if r.data.tags.get("kind") == "group"]  # once, after two imports
    assert group.info.run_name == "base-x2" and group.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in members} == {group.info.run_id}
    assert {r.data.tags["population.parent"] for r in members} == {group.info.run_id}
    tags = members[0].data.tags
    assert (tags["backend"], tags["platform"], tags["numerics.version"]) == ("jax", "cpu", str(identity.NUMERICS_VERSION))
    assert tags["state"] == "finished" and tags["collapse"] in ("true", "false")  # the loop's tags, replayed
    files = {f.path for f in c.list_artifacts(members[0].info.run_id, "model")}
    assert files == {"model/generator.keras"} and "final/fid" in members[0].data.metrics
    assert [h.step for h in c.get_metric_history(members[0].info.run_id, "eval/fid")] == [20, 40]
    assert len(c.get_metric_history(members[0].info.run_id, "train/d_loss")) == 40  # every step's loss
    samples = {f.path for f in c.list_artifacts(members[0].info.run_id, "samples")}
    assert samples == {"samples/step_0000020.png", "samples/step_0000040.png"}

    args = ["compare", "base", "smoothing", "--smoke", "--seeds", "2", "--steps", "40", "--backend", "jax",
            "--platform", "cpu"]
    capsys.readouterr()
    assert main(args + ["--out", str(store / "r")]) == 0
    report = (store / "r" / "report.md").read_text()
    for arm in ("base", "smoothing"):  # both seeds of each arm reported (escaped or not), none diverged
        assert re.search(rf"^\| {arm} \| \d of 2 \[", report, re.M), report[:3000]
    said = json.loads((store / "r" / "report.json").read_text())
    assert "count as not escaped: 0 in all." in report and "backend jax on cpu" in report
    assert said["trained"] == said["resumed"] == said["plans"][0]["runs_to_train"] == 0
    assert "made elsewhere" in said["plans"][0]["title"]  # runs of JAX on the CPU: imported, never trained here
    _, config = registry.resolve("base", smoke=True, flags={"train.steps": 40})
    here = identity.digest(identity.of(config, tags["data.fingerprint"], classifier=tags["identity.classifier"]))  # TensorFlow's: another identity
    assert here != tags["identity"]
