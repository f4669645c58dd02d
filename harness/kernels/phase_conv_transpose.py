"""G's upsampling layers, Conv2DTranspose(f, 4, strides=2, padding="same"), as four stride-1
convolutions under JAX on CPUs.

XLA's CPU backend computes a strided transposed convolution's weight gradient as a convolution over a
zero-dilated input ("convolution-base-dilated" in `harness bench --profile`): 96% of a full-width JAX
step on the 2-core CPU, 19 s a step. Output pixel (2i + r, 2j + s) of this layer sees only 2x2 of the
4x4 kernel taps: for r = 0, taps 3 and 1 on input rows i - 1 and i; for r = 1, taps 2 and 0 on rows i
and i + 1 (columns the same with s). So the layer is four 2x2 stride-1 convolutions, one per output
phase, interleaved; their gradients are ordinary convolutions. One full-width layer, forward and
backward at batch 256: 14.2 s -> 0.38 s.

Weights, their layout (4, 4, filters, channels) and results are Keras's (tests compare them). Under
TensorFlow, oneDNN's own kernel is faster (149 ms against 264 ms for the phase form), so the stock op
runs; on GPUs too until measured (`use_phases` lets bench/gpu.py time both).
"""
from __future__ import annotations

import keras

# Output phase -> (kernel taps in input order, (padding before, after)) along one axis.
_PHASE_TAPS = {0: ((3, 1), (1, 0)), 1: ((2, 0), (0, 1))}


@keras.saving.register_keras_serializable(package="harness")
class PhaseConv2DTranspose(keras.layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same") with a fast JAX-on-CPU path."""

    stock = keras.layers.Conv2DTranspose  # what `models.stock_copy` saves in its place
    use_phases: bool | None = None  # None: under JAX on a CPU only

    def __init__(self, filters: int, **kwargs):
        kwargs.setdefault("kernel_size", 4)
        kwargs.setdefault("strides", 2)
        kwargs.setdefault("padding", "same")
        super().__init__(filters=filters, **kwargs)
        if (self.kernel_size, tuple(self.strides), self.padding, tuple(self.dilation_rate), self.output_padding,
                self.data_format) != ((4, 4), (2, 2), "same", (1, 1), None, "channels_last"):
            raise ValueError("PhaseConv2DTranspose is for a 4x4 kernel, stride 2, 'same' padding, channels last.")

    def _phases_here(self) -> bool:
        if keras.backend.backend() != "jax":
            return False
        if self.use_phases is not None:
            return self.use_phases
        import jax
        return jax.default_backend() == "cpu"

    def call(self, inputs):
        if not self._phases_here():
            return super().call(inputs)
        outputs = _phase_conv_transpose(inputs, keras.ops.convert_to_tensor(self.kernel))
        if self.use_bias:
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, (1, 1, 1, self.filters)))
        return self.activation(outputs) if self.activation is not None else outputs


def _phase_conv_transpose(x, kernel):
    """x (N, H, W, C), kernel (4, 4, F, C) -> (N, 2H, 2W, F), as Conv2DTranspose(stride 2, same)."""
    import jax.numpy as jnp
    from jax import lax

    h, w = x.shape[1:3]
    rows = []
    for r in (0, 1):
        columns = []
        for s in (0, 1):
            (row_taps, row_pad), (col_taps, col_pad) = _PHASE_TAPS[r], _PHASE_TAPS[s]
            taps = kernel[jnp.array(row_taps)][:, jnp.array(col_taps)]  # (2, 2, F, C)
            columns.append(lax.conv_general_dilated(x, jnp.transpose(taps, (0, 1, 3, 2)), (1, 1), [row_pad, col_pad],
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC")))
        rows.append(jnp.stack(columns, axis=3))  # (N, H, W, 2, F): phase s along the 4th axis
    return jnp.stack(rows, axis=2).reshape(-1, 2 * h, 2 * w, kernel.shape[2])  # (N, H, 2, W, 2, F) -> (N, 2H, 2W, F)
