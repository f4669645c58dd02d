"""The browsing servers the harness starts (MLflow's UI, Optuna Dashboard): a child process tree in a
session of its own, stopped whole on Ctrl-C or SIGTERM, so that nothing of it outlives `harness ui`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

LOCAL = "127.0.0.1"


def warn_if_public(host: str, what: str) -> None:
    if host != LOCAL:
        print(f"warning: {what} will listen on {host}, reachable by anyone who can reach this machine.",
              file=sys.stderr)


def descendants(pid: int) -> list[int]:
    """Every process below pid, read from /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    """A process's command line, as `ps` shows it ("" once it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead but still listed until its parent reaps it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_tree(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the child, its process group and every descendant; SIGKILL whatever is left after
    `grace` seconds (some workers ignore SIGTERM)."""
    pids = [proc.pid, *descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.time() + grace
        while time.time() < deadline and any(alive(p) for p in pids):
            proc.poll()  # reap our own child so it does not linger as a zombie
            time.sleep(0.2)
        if not any(alive(p) for p in pids):
            break
    proc.poll()


def serve(command: list[str], env: dict | None = None) -> int:
    """Run a server command until it exits, or until Ctrl-C or SIGTERM stops its whole tree."""
    proc = subprocess.Popen(command, env=env, start_new_session=True)  # our signals do not reach it alone
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while proc.poll() is None and not received:
            time.sleep(0.2)
    finally:
        stop_tree(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if received else proc.returncode
