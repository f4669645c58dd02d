"""What reaches the terminal: TensorFlow's known start-up and grappler lines are dropped unless
--verbose asks for them; everything else, real errors included, passes through.

TensorFlow writes these from C++ straight to file descriptor 2, past Python's sys.stderr, so the
filter sits on the descriptor: fd 2 becomes a pipe, and a thread copies what arrives to the real
stderr, segment by segment (a segment ends at a newline or a carriage return, so progress bars stay
live), leaving out the segments that match NOISE.
"""
from __future__ import annotations

import atexit
import os
import re
import select
import sys
import threading

# Lines TensorFlow prints on every start or step that say nothing about the run (seen on TF 2.21).
NOISE = re.compile("|".join([
    r"Could not find cuda drivers", r"failed call to cuInit", r"cuda_platform\.cc", r"cuda_executor\.cc",
    r"Unable to register cu(DNN|FFT|BLAS) factory", r"computation placer already registered",
    r"oneDNN custom operations are on", r"TF_ENABLE_ONEDNN_OPTS",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"To enable the following instructions: .* rebuild TensorFlow",
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"remapper failed", r"meta_optimizer\.cc", r"TF-TRT Warning", r"cpu_feature_guard\.cc",
    r"Skipping the delay kernel",
]))


def quiet() -> None:
    """Filter fd 2 for the rest of this process (and the processes it starts)."""
    if not hasattr(os, "pipe") or getattr(quiet, "installed", False):
        return
    quiet.installed = True
    sys.stderr.flush()
    real = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    thread = threading.Thread(target=_copy, args=(read, real), daemon=True, name="console-filter")
    thread.start()

    def restore() -> None:  # at exit: give fd 2 back and let the thread drain what is left
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(real, 2)
        thread.join(timeout=2)
    atexit.register(restore)


def _copy(read: int, real: int) -> None:
    pending = b""
    while True:
        ready, _, _ = select.select([read], [], [], 0.2)
        if ready:
            chunk = os.read(read, 65536)
            if not chunk:  # every writer closed: flush and stop
                _write(real, pending)
                return
            pending += chunk
        # Complete segments go out now; a partial one waits for more, at most one idle round.
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r"))
        if cut >= 0:
            _write(real, pending[:cut + 1])
            pending = pending[cut + 1:]
        elif pending and not ready:
            _write(real, pending)
            pending = b""


def _write(real: int, data: bytes) -> None:
    if not data:
        return
    kept = [part for part in re.split(rb"(?<=[\r\n])", data) if part and not NOISE.search(part.decode(errors="replace"))]
    if kept:
        os.write(real, b"".join(kept))
