"""A password in a store URI stays secret: it is on no child's command line (where `ps` shows it) and in
nothing run, compare, search (with workers), ui or dashboard print. Needs the PostgreSQL server of .ci/run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import need
from tracking_server import free_port
from harness import server

SMOKE = ["--smoke", "--set", "eval.n_images=100"]



def _watched(args: list[str], cwd: Path, env: dict, secret: str, serve_s: float = 0.0) -> str:
    """Run `harness ARGS`; while it runs, read every descendant's command line; a server (serve_s > 0)
    is stopped with SIGTERM after serve_s seconds. Returns its output; fails if a child's argv held secret."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    seen, output = {}, []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
    reader.start()
    started = time.time()
    # harness's own command line holds what the user typed there; a child caught between its fork and its
    # exec shows exactly that line, which is not a leak.
    own = None
    while proc.poll() is None:
        own = own or server.cmdline(proc.pid)
        for pid in server.descendants(proc.pid):
            line = server.cmdline(pid)
            if line != own:
                seen.setdefault(pid, line)
        if serve_s and time.time() - started > serve_s:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        time.sleep(0.2)
    reader.join(timeout=60)
    leaked = [line for line in seen.values() if secret in line]
    assert not leaked, f"`harness {args[0]}` put the password on a child's command line: {leaked}"
    assert seen or not serve_s, f"`harness {args[0]}` started no child to watch"
    return output[0] if output else ""


@pytest.mark.slow
def test_a_password_in_a_store_uri_is_on_no_command_line_and_in_no_output(tmp_path, postgres):
    url = urlsplit(os.environ["HARNESS_TEST_POSTGRES"])
    need(url.password is not None and url.password != url.username,
         "a PostgreSQL role whose password differs from its name")
    secret = f":{url.password}@"  # the password as it sits in a URI
    with_password = lambda db: db.replace(f"{url.username}@", f"{url.username}{secret}")  # noqa: E731
    mlflow_db, optuna_db = with_password(postgres("mlflow")), with_password(postgres("optuna"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_db.replace("postgresql://", "postgresql+psycopg2://"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("PGPASSFILE", None)  # the password comes from the URI alone
    outputs = {
        "run": _watched(["run", "base", *SMOKE], tmp_path, env, secret),
        "compare": _watched(["compare", "base", *SMOKE, "--seeds", "1", "--out", "r"], tmp_path, env, secret),
        "search": _watched(["search", "tanh", "--trials", "2", "--workers", "2", *SMOKE],
                           tmp_path, {**env, "HARNESS_STORAGE": optuna_db}, secret),
        "ui": _watched(["ui", "--port", str(free_port())], tmp_path, env, secret, serve_s=20),
        "dashboard": _watched(["dashboard", "--storage", optuna_db, "--port", str(free_port())], tmp_path, env,
                              secret, serve_s=20),
    }
    for command, output in outputs.items():
        assert secret not in output, f"`harness {command}` printed the password"
    assert f"{url.username}:***@" in outputs["run"] and "study tanh/default: 2 trials" in outputs["search"]
