"""The MNIST classifier behind every metric: a small CNN, trained once per dataset content and cached on disk.

Its penultimate layer ("features", 128 ReLU units) feeds FID, KID and precision/recall; its softmax
feeds the Inception Score and mode coverage. Input: float32 (N, 28, 28, 1) in [0, 1].
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ARCHITECTURE = "conv{}x2-bn-pool-conv{}x2-bn-pool-dense128-v2"  # filled with SETTINGS' filters
# Training settings per dataset: light augmentation in the data pipeline, never as layers in the graph
# (such layers run slowly under JAX on accelerators). mnist-5k: shifts and small rotations (scipy, per image;
# 4,000 digits need them). mnist: half the filters and 6 epochs with shifts of one whole pixel, about a
# fifth of metrics v2's 12-epoch time for 99.4-99.5% on the test digits (bench/classifier.py).
SETTINGS = {
    "mnist-5k": {"filters": (32, 64), "epochs": 30, "batch_size": 64, "learning_rate": 1e-3, "shift": 2.0,
                 "rotate": 10.0, "seed": 0},
    "mnist": {"filters": (16, 32), "epochs": 6, "batch_size": 128, "learning_rate": 1e-3, "shift": 1, "rotate": 0.0,
              "seed": 0},
}
FEATURES = "features"


def cache_dir() -> Path:
    """HARNESS_CACHE, else ~/.cache/dcgan-harness: classifiers and reference statistics live here."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "dcgan-harness"))


def cache_key(dataset) -> str:
    """Keyed by the data's content and the training settings: a changed split or file trains afresh."""
    blob = json.dumps({"data": dataset.fingerprint, "architecture": architecture(SETTINGS[dataset.name]),
                       "settings": SETTINGS[dataset.name]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def architecture(settings: dict) -> str:
    return ARCHITECTURE.format(*settings["filters"])


def build(filters: tuple = (32, 64)):
    import keras
    from keras import layers
    image = keras.Input((28, 28, 1), name="image")
    x = image
    for filters in filters:
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)  # 28 -> 14 -> 7
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu", name=FEATURES)(x)
    x = layers.Dropout(0.4)(x)
    probs = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(image, probs, name="mnist_classifier")


def augment(images: np.ndarray, rng: np.random.Generator, shift: float, rotate: float) -> np.ndarray:
    """Random small rotation and shift of each (28, 28) image, by an affine map about the centre."""
    from scipy import ndimage
    out = np.empty_like(images)
    angles = np.deg2rad(rng.uniform(-rotate, rotate, len(images)))
    shifts = rng.uniform(-shift, shift, (len(images), 2))
    centre = np.array([13.5, 13.5])
    for i, (a, s) in enumerate(zip(angles, shifts)):
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        offset = centre - rot @ centre - s
        out[i] = ndimage.affine_transform(images[i], rot, offset=offset, order=1, mode="constant")
    return out


def shift(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Each (28, 28) image moved by a random whole number of pixels in -max_shift..max_shift on each
    axis, zeros coming in: one padded copy and one gather for the whole array."""
    n, pad = len(images), max_shift
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))  # (n, 28 + 2 pad, 28 + 2 pad)
    dy, dx = rng.integers(0, 2 * pad + 1, (2, n))
    rows = dy[:, None] + np.arange(28)  # (n, 28)
    cols = dx[:, None] + np.arange(28)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def train(dataset, quiet: bool = False, settings: dict | None = None):
    """Train on the dataset's training split; return (model, held-out accuracy, seconds).
    settings: the dataset's SETTINGS unless given (the benchmark passes earlier ones)."""
    import keras
    s = settings or SETTINGS[dataset.name]
    keras.utils.set_random_seed(s["seed"])
    model = build(s["filters"])
    steps = s["epochs"] * -(-len(dataset.train_images) // s["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(s["learning_rate"], steps)  # anneal to 0: a steadier final model
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = dataset.train_images.astype(np.float32) / 255.0
    rng = np.random.default_rng(s["seed"])
    start = time.time()
    from tqdm import tqdm
    for _ in tqdm(range(s["epochs"]), desc=f"classifier[{dataset.name}]", unit="epoch", disable=quiet, file=sys.stderr):
        x_aug = (augment(x, rng, s["shift"], s["rotate"]) if s["rotate"] else shift(x, rng, s["shift"]))[..., None]
        model.fit(x_aug, dataset.train_labels, batch_size=s["batch_size"], epochs=1, shuffle=True, verbose=0)
    seconds = time.time() - start
    x_test = (dataset.test_images.astype(np.float32) / 255.0)[..., None]  # (N, 28, 28, 1) in [0, 1]
    _, accuracy = model.evaluate(x_test, dataset.test_labels, batch_size=1000, verbose=0)
    return model, float(accuracy), seconds


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock on path for a block: concurrent processes take turns (classifier, data cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def weights_digest(model) -> str:
    """A hash of the weight arrays (dtype, shape, bytes): equal weights, equal digest, whatever the file's
    save date; 16 hex digits. Runs scored by classifiers of different digests are never pooled."""
    h = hashlib.sha256()
    for w in model.weights:
        a = np.ascontiguousarray(np.asarray(w.numpy() if hasattr(w, "numpy") else w))
        h.update(f"{w.path}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def load_or_train(dataset, quiet: bool = False, share=None):
    """(model, info) for the dataset, training it once; concurrent callers wait for the first.
    share: where classifiers are shared beyond this cache (the tracking store), with fetch(name, folder)
    -> bool, which puts the first classifier published under that name into folder, and publish(name,
    files). The store's classifier wins over this cache's; one this cache has (or trains) is published
    when the store has none, and if another machine published first, its classifier is used instead:
    one store scores with one classifier."""
    import keras
    stem = cache_dir() / "classifier" / f"{dataset.name}-{cache_key(dataset)}"
    path, meta = stem.with_suffix(".keras"), stem.with_suffix(".json")
    with file_lock(stem.with_suffix(".lock")):
        if share is not None and share.fetch(stem.name, stem.parent):
            pass  # the store's classifier, now in this cache
        elif path.exists() and meta.exists():
            info = json.loads(meta.read_text())
            if "weights" not in info:  # a cache written before weight digests: add it
                info["weights"] = weights_digest(keras.models.load_model(path))
                _write_json(meta, info)
            if share is not None:  # this cache's classifier becomes the store's, unless another won meanwhile
                share.publish(stem.name, [path, meta])
                share.fetch(stem.name, stem.parent)
        else:
            model, accuracy, seconds = train(dataset, quiet)
            tmp = stem.parent / f".{stem.name}.{os.getpid()}.keras"
            model.save(tmp)
            info = {"dataset": dataset.name, "accuracy": accuracy, "train_seconds": seconds,
                    "architecture": architecture(SETTINGS[dataset.name]), "settings": SETTINGS[dataset.name],
                    "weights": weights_digest(model), "test_images": len(dataset.test_images),
                    "data": dataset.fingerprint}
            os.replace(tmp, path)  # atomic: a reader sees the old state or the whole new file
            _write_json(meta, info)
            if share is not None:
                share.publish(stem.name, [path, meta])
                share.fetch(stem.name, stem.parent)  # the first published wins a race between machines
        info = json.loads(meta.read_text())  # read under the lock: the pair cannot change meanwhile
        info["path"] = str(path)
        return keras.models.load_model(path), info


def _write_json(path: Path, info: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # written whole, then renamed: readers never see half
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, path)
