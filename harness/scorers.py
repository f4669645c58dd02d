"""The metric scorer of a dataset (metrics/scorer.py), with the classifier its tracking store shares: made
once per dataset and evaluation settings and reused by run, compare and search."""
from __future__ import annotations

from harness import data, tracking
from harness.config import Config
from harness.tracking import Store


def make(config: Config, dataset: data.Dataset, quiet: bool = False):
    """The dataset's scorer, with the classifier this tracking store shares (trained here only if it has none)."""
    from metrics.scorer import Scorer
    return Scorer(dataset, config.eval.n_images, config.eval.kid_subsets, config.eval.kid_subset_size, quiet=quiet,
                  share=tracking.ClassifierShare(Store()))


def classifier_info(dataset: data.Dataset, quiet: bool = False) -> dict:
    """The dataset's classifier as this tracking store scores with it: accuracy, weights digest, path."""
    from metrics import classifier
    return classifier.load_or_train(dataset, quiet, tracking.ClassifierShare(Store()))[1]


class Scorers:
    """One scorer per dataset and evaluation settings, made on first use (a scorer holds its classifier
    and the real images' features, seconds to build): what run, compare and search share."""

    def __init__(self):
        self._made: dict = {}

    def __call__(self, config: Config, dataset: data.Dataset):
        e = config.eval
        key = (dataset.fingerprint, e.n_images, e.kid_subsets, e.kid_subset_size)
        if key not in self._made:
            self._made[key] = make(config, dataset)
        return self._made[key]
