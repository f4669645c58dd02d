"""Improved precision and recall (Kynkaanniemi et al. 2019): k-NN manifolds in feature space."""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


_ROWS = 2000  # distance rows per chunk: 2,000 x 10,000 float64 is 160 MB


def _radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest other point in the same set."""
    out = []
    for i in range(0, len(features), _ROWS):
        d = cdist(features[i:i + _ROWS], features)
        out.append(np.partition(d, k, axis=1)[:, k])  # column 0 is the point itself
    return np.concatenate(out)


def _coverage(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of points inside at least one ball of the manifold."""
    inside = [(cdist(points[i:i + _ROWS], manifold) <= radii[None, :]).any(axis=1)
              for i in range(0, len(points), _ROWS)]
    return float(np.mean(np.concatenate(inside)))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """precision: fakes on the real manifold; recall: reals on the fake manifold."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    return (_coverage(fake, real, _radii(real, k)), _coverage(real, fake, _radii(fake, k)))
