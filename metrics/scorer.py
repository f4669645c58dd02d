"""The metric family over one dataset: the cached classifier, the reference set and the real-data floor.

score(images) maps float32 (N, 28, 28, 1) images in [0, 1] to named floats. The reference is real
data the classifier never trained on (mnist: the 10,000 test digits; mnist-5k: the 1,000 held out).
The floor is the same metrics for as many real training digits as images scored: the best a
generator could hope for. Reference features and the floor are cached by the data's content fingerprint,
the classifier's hash, N and the metrics' VERSION.
"""
from __future__ import annotations

import copy
import json
import os

import numpy as np

from metrics import VERSION, MetricsError
from metrics import classifier as classifier_lib
from metrics.fid import fid
from metrics.inception_score import inception_score
from metrics.kid import kid
from metrics.modes import label_histogram, label_kl, modes
from metrics.precision_recall import precision_recall

HEADLINE = ("fid", "is", "kid", "modes", "precision", "recall")  # what a run's lines and reports show first
# Which way is better, for reports and searches.
LOWER_IS_BETTER = {"fid": True, "kid": True, "label_kl": True, "is": False, "modes": False,
                   "precision": False, "recall": False}
# Where each metric's values can lie (KID's unbiased estimate can go below 0): intervals are clipped to it.
RANGE = {"fid": (0.0, float("inf")), "is": (1.0, 10.0), "kid": (float("-inf"), float("inf")),
         "modes": (0.0, 10.0), "label_kl": (0.0, float("inf")), "precision": (0.0, 1.0), "recall": (0.0, 1.0)}
_BATCH = 1000  # images per classifier call


class ImageError(MetricsError):
    """Images that break the pixel contract."""


def check_images(images: np.ndarray, where: str = "images") -> np.ndarray:
    """Accept uint8 0..255 or float in [0, 1], (N, 28, 28) or (N, 28, 28, 1); return float32 (N, 28, 28, 1)."""
    a = np.asarray(images)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"{where} have dtype {a.dtype}; expected uint8 0..255 or float in [0, 1].")
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[1:] != (28, 28, 1) or len(a) < 2:
        raise ImageError(f"{where} have shape {np.shape(images)}; expected (N, 28, 28) or (N, 28, 28, 1) with N >= 2.")
    if np.issubdtype(a.dtype, np.integer):
        if a.dtype != np.uint8 and (a.min() < 0 or a.max() > 255):
            raise ImageError(f"{where} hold integers outside 0..255.")
        return (a.astype(np.float32) / 255.0)
    if not np.isfinite(a).all():
        raise ImageError(f"{where} hold NaN or infinite values.")
    if a.min() < 0.0 or a.max() > 1.0:
        raise ImageError(f"{where} hold floats in [{a.min():.3g}, {a.max():.3g}]; expected [0, 1] "
                         "(map tanh output with (x + 1) / 2).")
    return a.astype(np.float32)


def family(gen_features, gen_probs, ref_features, kid_subsets=100, kid_subset_size=1000) -> dict:
    """All metrics from classifier outputs: a pure function of arrays."""
    is_mean, is_std = inception_score(gen_probs)
    kid_mean, kid_std = kid(gen_features, ref_features, kid_subsets, kid_subset_size)
    hist = label_histogram(gen_probs)
    precision, recall = precision_recall(ref_features, gen_features, k=3)
    return {"fid": fid(gen_features, ref_features), "is": is_mean, "is_std": is_std, "kid": kid_mean,
            "kid_std": kid_std, "modes": float(modes(hist)), "label_kl": label_kl(hist),
            "precision": precision, "recall": recall}


class Scorer:
    """Loads (or trains) the dataset's classifier and reference statistics once; scores many image sets.
    share: where classifiers are shared beyond the local cache (classifier.load_or_train)."""

    def __init__(self, dataset, n_images: int | None = None, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 quiet: bool = False, share=None):
        import keras
        self.dataset = dataset.name
        self._dataset = dataset  # for resized(): a smaller N needs its own floor
        self.model, self.classifier_info = classifier_lib.load_or_train(dataset, quiet, share)
        self.features_model = keras.Model(self.model.input,
                                          [self.model.get_layer(classifier_lib.FEATURES).output, self.model.output])
        self.n_images = int(n_images or len(dataset.test_images))
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.reference_features, self.floor = self._reference(dataset)

    def resized(self, n_images: int) -> "Scorer":
        """The same classifier and reference scoring n_images generated images (its own floor at that N)."""
        if n_images == self.n_images:
            return self
        other = copy.copy(self)
        other.n_images = int(n_images)
        other.reference_features, other.floor = other._reference(self._dataset)
        return other

    def classify(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (N, 28, 28, 1) in [0, 1] -> (features (N, 128), probs (N, 10))."""
        import keras
        feats, probs = [], []
        for i in range(0, len(images), _BATCH):
            f, p = self.features_model(images[i:i + _BATCH], training=False)
            feats.append(keras.ops.convert_to_numpy(f))
            probs.append(keras.ops.convert_to_numpy(p))
        return np.concatenate(feats), np.concatenate(probs)

    def score(self, images: np.ndarray) -> dict:
        images = check_images(images)
        features, probs = self.classify(images)
        out = family(features, probs, self.reference_features, self.kid_subsets, self.kid_subset_size)
        out["n_images"] = float(len(images))
        return out

    def _reference(self, dataset):
        """Reference features and the real-data floor, cached by data content, classifier hash, N and
        the metric code's version."""
        key = (f"{dataset.name}-{dataset.fingerprint}-{self.classifier_info['weights'][:12]}-n{self.n_images}"
               f"-kid{self.kid_subsets}x{self.kid_subset_size}-m{VERSION}")
        folder = classifier_lib.cache_dir() / "reference"
        path, meta = folder / f"{key}.npy", folder / f"{key}.json"
        if path.exists() and meta.exists():
            return np.load(path, allow_pickle=False), json.loads(meta.read_text())
        folder.mkdir(parents=True, exist_ok=True)
        ref_features, _ = self.classify(check_images(dataset.test_images))
        n_real = min(self.n_images, len(dataset.train_images))
        real_features, real_probs = self.classify(check_images(dataset.train_images[:n_real]))
        floor = family(real_features, real_probs, ref_features, self.kid_subsets, self.kid_subset_size)
        floor["n_images"] = float(n_real)
        tmp = folder / f".{key}.{os.getpid()}.tmp"  # written whole, then renamed: readers never see half a file
        with open(tmp, "wb") as f:
            np.save(f, ref_features)
        os.replace(tmp, path)
        tmp.write_text(json.dumps(floor))
        os.replace(tmp, meta)
        return ref_features, floor
