"""Mode coverage: how many digit classes the generator produces, and how far from uniform."""
from __future__ import annotations

import numpy as np


def label_histogram(probs: np.ndarray) -> np.ndarray:
    """Fraction of images predicted as each class (argmax), shape (classes,)."""
    p = np.asarray(probs)
    counts = np.bincount(p.argmax(axis=1), minlength=p.shape[1])
    return counts / counts.sum()


def modes(histogram: np.ndarray, threshold: float = 0.01) -> int:
    """Classes that receive at least `threshold` (1%) of the images."""
    return int(np.sum(np.asarray(histogram) >= threshold))


def label_kl(histogram: np.ndarray) -> float:
    """KL(histogram || uniform) in nats: 0 when every class is equally common, log(K) for one class."""
    h = np.asarray(histogram, dtype=np.float64)
    nz = h > 0
    return float(np.sum(h[nz] * np.log(h[nz] * len(h))))
