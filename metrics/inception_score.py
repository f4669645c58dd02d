"""Inception Score with an MNIST classifier: exp(E_x KL(p(y|x) || p(y))), over splits."""
from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """probs (N, classes) rows summing to 1 -> (mean, std) over `splits` equal parts; 1 to #classes."""
    p = np.asarray(probs, dtype=np.float64)
    scores = []
    for part in np.array_split(p, min(splits, len(p))):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
