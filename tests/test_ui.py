"""`harness ui` serves the runs: start it on a free port and query MLflow's REST API."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from harness.__main__ import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_runs_on_localhost(store):
    assert main(["run", "smoothing", "--smoke", "--set", "eval.n_images=100"]) == 0
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "ui", "--port", str(port)], cwd=store,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy(),
                            start_new_session=True)
    try:
        body = None
        deadline = time.time() + 90
        while time.time() < deadline and body is None:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", method="POST",
                    data=json.dumps({"experiment_ids": ["1"]}).encode(), headers={"Content-Type": "application/json"})
                body = json.loads(urllib.request.urlopen(request, timeout=5).read())
            except OSError:
                time.sleep(1)
        assert body is not None, "the UI never answered"
        names = [r["info"]["run_name"] for r in body["runs"]]
        assert names == ["smoothing-s0"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
