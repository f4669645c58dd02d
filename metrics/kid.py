"""Kernel Inception Distance: unbiased squared MMD with the cubic polynomial kernel, over subsets."""
from __future__ import annotations

import numpy as np


def _mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    # Unbiased: drop the diagonals of the within-set kernels.
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid(features_a: np.ndarray, features_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the MMD^2 estimate over random subsets drawn without replacement from each set.
    Subsets hold at most half of the smaller set, so that they differ and the std means something."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    size = max(2, min(subset_size, len(a) // 2, len(b) // 2))
    rng = np.random.default_rng(seed)
    values = [_mmd2(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))
