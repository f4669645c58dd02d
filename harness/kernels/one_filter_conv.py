"""The generator's last layer, Conv2D(1, 7, same), as matrix products: under TensorFlow and on JAX's CPUs.

oneDNN's convolution kernels work in blocks of 16 output channels, so a convolution to one channel
runs at about 25 GFLOP/s on the 2-core CPU: 7% of a step's FLOPs took 31% of its op time
(`harness bench --profile`). The same maths as matrix products:

    forward   y = W x at every pixel, (49, C) x (C, N*H*W); out = the sum of the 49 planes of y,
              each shifted by its kernel tap
    backward  d = the 49 shifted copies of d_out, (49, N*H*W); dx = d^T W and dW = d x^T

Weights, their layout (k, k, C, 1) and the results are those of `keras.layers.Conv2D` (tests check
forward and gradients against it). Under JAX on CPUs the same form runs in jax.numpy; on GPUs the
stock convolution.
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="harness")
class OneFilterConv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D(1, kernel_size, padding="same") with a fast TensorFlow path."""

    stock = keras.layers.Conv2D  # what `models.stock_copy` saves in its place

    def __init__(self, kernel_size: int, **kwargs):
        kwargs.setdefault("filters", 1)
        kwargs.setdefault("padding", "same")
        super().__init__(kernel_size=kernel_size, **kwargs)
        k = self.kernel_size[0]
        if (self.filters, self.padding, tuple(self.strides), tuple(self.dilation_rate)) != (1, "same", (1, 1), (1, 1)) \
                or self.kernel_size != (k, k) or k % 2 == 0 or self.data_format != "channels_last" or self.groups != 1:
            raise ValueError("OneFilterConv2D is for one filter, an odd square kernel, stride 1 and 'same' padding.")

    def convolution_op(self, inputs, kernel):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            return _conv_one_filter(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))
        if keras.backend.backend() == "jax":
            import jax
            if jax.default_backend() == "cpu":  # XLA's CPU conv to one channel is slow too: 213 ms forward
                return _conv_one_filter_jax(inputs, keras.ops.convert_to_tensor(kernel))
        return super().convolution_op(inputs, kernel)


def _conv_one_filter_jax(x, kernel):
    """The same matrix-product form in jax.numpy; XLA derives the gradient (slices become pads)."""
    import jax.numpy as jnp

    k, channels = kernel.shape[0], kernel.shape[2]
    h, w, p = x.shape[1], x.shape[2], k // 2
    taps = kernel.reshape(k * k, channels)
    planes = (taps @ x.reshape(-1, channels).T).reshape(k * k, -1, h, w)  # (k*k, N, H, W)
    planes = jnp.pad(planes, ((0, 0), (0, 0), (p, p), (p, p)))
    return sum(planes[a * k + b, :, a:a + h, b:b + w] for a in range(k) for b in range(k))[..., None]


def _conv_one_filter(x, kernel):
    """x (N, H, W, C), kernel (k, k, C, 1) -> (N, H, W, 1), with a hand-written gradient."""
    import tensorflow as tf

    @tf.custom_gradient
    def conv(x, kernel):
        k, channels = kernel.shape[0], kernel.shape[2]
        h, w, p = x.shape[1], x.shape[2], k // 2
        taps = tf.reshape(kernel, [k * k, channels])  # row (a, b): the tap at kernel position (a, b)
        pixels = tf.reshape(x, [-1, channels])  # (N*H*W, C)
        planes = tf.reshape(tf.matmul(taps, pixels, transpose_b=True), [k * k, -1, h, w])  # (k*k, N, H, W)
        planes = tf.pad(planes, [[0, 0], [0, 0], [p, p], [p, p]])
        # out[n, i, j] = sum over taps (a, b) of planes[(a, b), n, i + a - p, j + b - p]
        out = tf.add_n([planes[a * k + b, :, a:a + h, b:b + w] for a in range(k) for b in range(k)])
        scope = tf.get_current_name_scope()  # so the profiler files the backward ops under this layer

        def grad(d_out):  # d_out (N, H, W, 1)
            with tf.name_scope(f"gradient_tape/{scope}/" if scope else "gradient_tape/"):
                return _grad(d_out)

        def _grad(d_out):
            padded = tf.pad(d_out[..., 0], [[0, 0], [p, p], [p, p]])
            # shifted[(a, b), n, i, j] = d_out[n, i - a + p, j - b + p]: the adjoint of the sum above
            shifted = tf.stack([padded[:, k - 1 - a:k - 1 - a + h, k - 1 - b:k - 1 - b + w]
                                for a in range(k) for b in range(k)])
            shifted = tf.reshape(shifted, [k * k, -1])  # (k*k, N*H*W)
            d_x = tf.reshape(tf.matmul(shifted, taps, transpose_a=True), tf.shape(x))
            d_kernel = tf.reshape(tf.matmul(shifted, pixels), tf.shape(kernel))
            return d_x, d_kernel

        return out[..., None], grad

    return conv(x, kernel)
