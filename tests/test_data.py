"""Datasets: the mnist-5k split, the full-MNIST loaders on small files the test writes, and clear errors."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from harness import data
from harness.data import DataError


def test_mnist_5k_split_is_stratified_fixed_and_disjoint(mnist_5k):
    d = mnist_5k
    assert d.name == "mnist-5k" and d.train_images.shape == (4000, 28, 28) and d.test_images.shape == (1000, 28, 28)
    assert np.bincount(d.train_labels).tolist() == [400] * 10
    assert np.bincount(d.test_labels).tolist() == [100] * 10
    assert len(set(d.train_labels[:50])) == 10  # shuffled, not sorted by class
    train_rows = {x.tobytes() for x in d.train_images}
    assert not any(x.tobytes() in train_rows for x in d.test_images)
    again = data.load_mnist_5k()
    assert np.array_equal(again.train_images, d.train_images)


def _arrays(n_train=20, n_test=10):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train).astype(np.uint8),
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test).astype(np.uint8))


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def test_npz_loader(tmp_path):
    xtr, ytr, xte, yte = _arrays()
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d = data.load("mnist", str(tmp_path / "mnist.npz"))
    assert d.name == "mnist" and np.array_equal(d.train_images, xtr) and np.array_equal(d.test_labels, yte)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_loader(tmp_path, gz):
    xtr, ytr, xte, yte = _arrays()
    for stem, array in (("train-images-idx3-ubyte", xtr), ("train-labels-idx1-ubyte", ytr),
                        ("t10k-images-idx3-ubyte", xte), ("t10k-labels-idx1-ubyte", yte)):
        if gz:
            with gzip.open(tmp_path / f"{stem}.gz", "wb") as f:
                f.write(_idx(array))
        else:
            (tmp_path / stem).write_bytes(_idx(array))
    d = data.load("mnist", str(tmp_path))
    assert np.array_equal(d.train_images, xtr) and np.array_equal(d.test_images, xte)
    assert np.array_equal(d.train_labels, ytr)


def test_bad_data_paths_are_errors_never_fallbacks(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load("mnist", str(tmp_path / "nope.npz"))
    xtr, ytr, xte, yte = _arrays()
    np.savez(tmp_path / "wrong.npz", x_train=xtr.reshape(20, 784), y_train=ytr, x_test=xte, y_test=yte)
    with pytest.raises(DataError, match=r"shape \(20, 784\)"):
        data.load("mnist", str(tmp_path / "wrong.npz"))
    np.savez(tmp_path / "partial.npz", x_train=xtr)
    with pytest.raises(DataError, match="y_train"):
        data.load("mnist", str(tmp_path / "partial.npz"))
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "wrong.npz").read_bytes()[:300])
    with pytest.raises(DataError):
        data.load("mnist", str(tmp_path / "trunc.npz"))
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem, array in (("train-images-idx3-ubyte", xtr), ("train-labels-idx1-ubyte", ytr),
                        ("t10k-images-idx3-ubyte", xte), ("t10k-labels-idx1-ubyte", yte)):
        (folder / stem).write_bytes(_idx(array))
    (folder / "train-images-idx3-ubyte").write_bytes(_idx(xtr)[:-100])
    with pytest.raises(DataError, match="truncated"):
        data.load("mnist", str(folder))
    (folder / "train-images-idx3-ubyte").write_bytes(_idx(xtr))
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels"):
        data.load("mnist", str(folder))


def test_download_failure_falls_back_to_mnist_5k_and_says_so(monkeypatch, capsys):
    import keras

    def offline():
        raise OSError("no network")
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    d = data.load("mnist")
    assert d.name == "mnist-5k"  # the data actually used is what gets recorded
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist-5k" in err
