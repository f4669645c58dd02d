"""Faster kernels with the stock layers' maths and variables: the optimisation's own room.

models.py writes the recipe with Keras layer names and chooses, in one line, whether those names are
keras.layers itself or this namespace, where three of them run faster code:
- Conv2D with one filter (G's last layer): `OneFilterConv2D`, matrix products (TensorFlow; JAX on CPUs);
- BatchNormalization: `FusedBatchNormalization`, TensorFlow's fused kernel in training;
- Conv2DTranspose (G's upsampling): `PhaseConv2DTranspose`, four stride-1 convolutions (JAX on CPUs).
Each is a subclass of the layer it replaces, runs the stock code wherever it was not measured faster,
and is proven equal to it by tests (tests/test_models.py, tests/test_backends.py, tests/test_fidelity.py).
Saved generators hold stock layers (`models.stock_copy`).
"""
from __future__ import annotations

from types import SimpleNamespace

import keras

from harness.kernels.fused_batch_norm import FusedBatchNormalization
from harness.kernels.one_filter_conv import OneFilterConv2D
from harness.kernels.phase_conv_transpose import PhaseConv2DTranspose


def _conv2d(filters: int, kernel_size, **kwargs):
    """Conv2D: a one-filter, stride-1 'same' convolution as OneFilterConv2D, every other as stock."""
    one_filter = filters == 1 and kwargs.get("strides", 1) in (1, (1, 1)) and kwargs.get("padding") == "same"
    if one_filter:
        return OneFilterConv2D(kernel_size=kernel_size, **kwargs)
    return keras.layers.Conv2D(filters, kernel_size, **kwargs)


def _conv2d_transpose(filters: int, kernel_size, **kwargs):
    """Conv2DTranspose: the 4x4 stride-2 'same' upsampling as PhaseConv2DTranspose, every other as stock."""
    if kernel_size in (4, (4, 4)) and kwargs.get("strides") in (2, (2, 2)) and kwargs.get("padding") == "same":
        return PhaseConv2DTranspose(filters, kernel_size=kernel_size, **kwargs)
    return keras.layers.Conv2DTranspose(filters, kernel_size, **kwargs)


# keras.layers with three names bound to the fast kernels.
FAST = SimpleNamespace(**{name: getattr(keras.layers, name) for name in dir(keras.layers) if not name.startswith("_")})
FAST.Conv2D, FAST.Conv2DTranspose, FAST.BatchNormalization = _conv2d, _conv2d_transpose, FusedBatchNormalization


def layers(fast: bool):
    """The layer namespace models.py builds from: keras.layers, or the same with the fast kernels."""
    return FAST if fast else keras.layers
