"""The recipe-scale script for an accelerator (bench/recipe_gpu.py), run here in its quick mode under
JAX, then its results imported as MLflow runs and reported by `compare` for their own identity only."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from extras import requires_jax

from harness import identity, registry, tracking
from harness.__main__ import main

pytestmark = requires_jax
SCRIPT = Path(__file__).parent.parent / "bench" / "recipe_gpu.py"


def test_offline_results_import_as_runs_of_their_own_identity(store, capsys, scorer_5k):
    data, out = store / "device", store / "out"
    spec = importlib.util.spec_from_file_location("recipe_gpu", SCRIPT)
    recipe_gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe_gpu)
    recipe_gpu.export_data(data)  # what `recipe_gpu.py OUT --export-data` does, in this process
    env = {**os.environ, "KERAS_BACKEND": "jax", "HARNESS_CACHE": str(data / "cache")}
    p = subprocess.run([sys.executable, str(SCRIPT), str(out), "--data", str(data / "mnist-5k.npz"), "--quick",
                        "--arms", "2"], capture_output=True, text=True, timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (out / "grids.npz").exists() and (out / "generators-0.npz").exists()
    assert len((out / "recipe.jsonl").read_text().splitlines()) == 4  # base and smoothing, 2 seeds each

    assert main(["import-results", str(out)]) == 0
    assert main(["import-results", str(out)]) == 0  # again: nothing twice
    c = tracking.client()
    members = [r for r in tracking.all_runs(c, "base") if r.data.tags.get("kind") != "group"]
    assert len(members) == 2 and all(r.info.status == "FINISHED" for r in members)
    tags = members[0].data.tags
    assert (tags["backend"], tags["platform"], tags["numerics.version"]) == ("jax", "cpu", str(identity.NUMERICS_VERSION))
    files = {f.path for f in c.list_artifacts(members[0].info.run_id, "model")}
    assert files == {"model/generator.keras"} and "final/fid" in members[0].data.metrics

    args = ["compare", "base", "smoothing", "--smoke", "--seeds", "2", "--steps", "40", "--backend", "jax",
            "--platform", "cpu"]
    capsys.readouterr()
    assert main(args + ["--out", str(store / "r")]) == 0
    report = (store / "r" / "report.md").read_text()
    assert "| base | 2 | 0 |" in report and "| smoothing | 2 | 0 |" in report and "0 runs trained" in report
    assert "backend jax on cpu" in report and "made elsewhere" in capsys.readouterr().err
    _, config = registry.resolve("base", smoke=True, flags={"train.steps": 40})
    here = identity.digest(identity.of(config, tags["data.fingerprint"], classifier=tags["identity.classifier"]))  # TensorFlow's: another identity
    assert here != tags["identity"]
