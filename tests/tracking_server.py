"""A real `mlflow server` for tests that need artifacts on a server: a free port, a wait for its health
endpoint, and a wait for a line from a harness process."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from harness import server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(proc: subprocess.Popen, pattern: str, deadline: float = 300) -> str:
    """Read proc's stderr until a line holds pattern; what it said so far. The deadline is checked between
    lines: a process that falls silent is caught by the test's own timeouts."""
    end, seen = time.time() + deadline, ""
    while time.time() < end:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
        if pattern in line:
            return seen
    raise AssertionError(f"never saw {pattern!r}; the process said: {seen[-3000:]}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except urllib.error.HTTPError as e:
        return e.code == 401  # up, behind its password
    except (urllib.error.URLError, OSError):  # not listening (yet)
        return False


@contextlib.contextmanager
def serving(folder, backend_uri: str, env: dict, extra: tuple = ()):
    """An `mlflow server` on 127.0.0.1 with this backend store and its artifacts proxied to folder/artifacts;
    yields (its URL, its process), and stops its whole process tree after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", *extra, "--backend-store-uri", backend_uri,
               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]  # one server process is plenty here (the default starts 4)
    proc = subprocess.Popen(command, cwd=folder, env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        end = time.time() + 180
        while not healthy(url):
            assert time.time() < end and proc.poll() is None, "the tracking server never came up"
            time.sleep(1)
        yield url, proc
    finally:
        server.stop_tree(proc)
