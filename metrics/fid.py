"""Frechet distance between Gaussian fits of two feature sets (classifier-FID when the features are an
MNIST classifier's penultimate activations)."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), covariance (D, D)) in float64."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # near-singular products are handled below, not worth a warning
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)  # scipy >= 1.17 takes no `disp`; imaginary parts are round-off
    if not np.isfinite(covmean).all():  # singular product: nudge both diagonals, as TF-GAN and pytorch-fid do
        offset = np.eye(len(sigma1)) * 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean), 0.0))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    return frechet_distance(*gaussian(features_a), *gaussian(features_b))
