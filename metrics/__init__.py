"""MNIST-classifier metric family: classifier-FID, Inception Score, KID, mode coverage, precision/recall.

Depends on nothing in harness: it takes a dataset (any object with name, fingerprint and uint8
train/test images and labels) and images, and owns its version and its errors.
"""

# Bumped by any change to scoring; part of every scored run's identity (harness/identity.py).
VERSION = 3  # v3: the mnist classifier at half its filters, 6 epochs, 1-pixel shifts (metrics/classifier.py);
# Inception Score splits from the images' canonical order, so exactly order-free
# v2: Inception Score splits after a fixed-seed shuffle; caches keyed by data content


class MetricsError(Exception):
    """Input a metric cannot score (images breaking the pixel contract): the caller's to fix."""
