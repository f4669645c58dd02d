"""Inception Score with an MNIST classifier: exp(E_x KL(p(y|x) || p(y))), over splits."""
from __future__ import annotations

import numpy as np


def inception_score(probs: np.ndarray, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """probs (N, classes) rows summing to 1 -> (mean, std) over `splits` equal parts; 1 to #classes.
    The rows are put in a canonical order (sorted by their values), then shuffled with a fixed seed (as
    torch-fidelity shuffles): the splits depend on which images there are, never on their order, and
    splits taken from class-sorted images would each hold one class and score about 1."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[np.lexsort(p.T[::-1])]  # rows in lexicographic order: the same set gives the same array
    p = p[np.random.default_rng(seed).permutation(len(p))]
    scores = []
    for part in np.array_split(p, min(splits, len(p))):
        marginal = part.mean(axis=0, keepdims=True)
        kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
