"""The machine and code a run ran on: CPU and GPU names, the platform (cpu or gpu), library versions and
the git state of the harness's source, as tags every run carries."""
from __future__ import annotations

import contextlib
import os
import platform as stdlib_platform
import subprocess
from pathlib import Path


def worker_name() -> str:
    """Who runs a trial or holds a claim: HARNESS_WORKER (name each machine's workers when host names repeat,
    as in containers or a Slurm array), else the host name. Only trials of this name are checked by process id."""
    import socket
    return os.environ.get("HARNESS_WORKER") or socket.gethostname()


def cores() -> int:
    """The cores this process may run on: its affinity (a container or taskset may give it fewer than the
    machine has), else the machine's count."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def threads_each(workers: int) -> int:
    """Threads for each of `workers` processes sharing this machine's cores (at least 1)."""
    return max(1, cores() // workers)


def thread_env(threads: int) -> dict:
    """The environment that sizes a process's TensorFlow and OpenMP thread pools to `threads` (nothing is
    pinned): several processes on one machine each take a share instead of a pool the machine's size."""
    return {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": str(threads)}


def tags() -> dict:
    """Versions, hardware and code version, so any run can be reproduced or told apart."""
    from importlib.metadata import version
    import keras
    import numpy
    tags = {
        "backend": keras.backend.backend(),
        "version.keras": keras.__version__,
        "version.numpy": numpy.__version__,
        "version.mlflow": version("mlflow"),  # read without importing it: tracking.py is its one importer
        "hardware.cpu": cpu_name(),
        "hardware.gpu": gpu_name() or "none",
        "host": stdlib_platform.node(),
    }
    try:
        import tensorflow
        tags["version.tensorflow"] = tensorflow.__version__
    except ImportError:
        pass
    commit, dirty = git_state()
    tags["git.commit"], tags["git.dirty"] = commit, dirty
    return tags


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    return stdlib_platform.processor() or "unknown"


def gpu_available() -> bool:
    return gpu_name() is not None


def platform() -> str:
    """'gpu' when the backend sees an accelerator, else 'cpu' (part of a run's identity)."""
    return "gpu" if gpu_available() else "cpu"


def gpu_name() -> str | None:
    import keras
    if keras.backend.backend() == "jax":
        import jax
        gpus = [d for d in jax.devices() if d.platform != "cpu"]
        return gpus[0].device_kind if gpus else None
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def git_state() -> tuple[str, str]:
    """(commit, 'true'/'false' dirty) of the harness's source tree, or ('unknown', 'unknown')."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return commit, "true" if status.strip() else "false"
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
