"""BatchNormalization over conv feature maps as one fused TensorFlow kernel in training.

Keras 3's BatchNormalization computes the moments and the normalisation as separate elementwise
TensorFlow ops, each a pass over the (N, H, W, C) activations, forward and backward: on the 2-core
CPU that made the batchnorm variant's step 29% slower than base. TensorFlow's FusedBatchNormV3 does
the same maths in one kernel per direction (about 3x faster on a (256, 28, 28, 128) map).

Variables, moving-statistics update and results are Keras's (tests compare them): the fused kernel
returns the batch variance with Bessel's correction, which Keras's moving variance does not use, so
it is undone here. A (N, C) input is normalised as (N, 1, 1, C). Other cases (JAX, inference, masks,
renorm) run Keras's own code.
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="harness")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization with a fused training path for channels-last inputs."""

    stock = keras.layers.BatchNormalization  # what `models.stock_copy` saves in its place

    def call(self, inputs, training=None, mask=None):
        fusable = (keras.backend.backend() == "tensorflow" and training and self.trainable and mask is None
                   and len(inputs.shape) in (2, 4) and self.axis in (-1, len(inputs.shape) - 1) and not self.renorm
                   and not self.synchronized and self.center and self.scale)
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf
        x = tf.cast(inputs, "float32")  # as Keras does: statistics in float32 under mixed precision
        if len(inputs.shape) == 2:
            x = x[:, None, None, :]  # (N, C) -> (N, 1, 1, C)
        y, mean, corrected_variance = tf.compat.v1.nn.fused_batch_norm(
            x, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta), epsilon=self.epsilon,
            data_format="NHWC", is_training=True)
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")  # values per channel: N * H * W
        variance = corrected_variance * (n - 1.0) / n
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        y = tf.reshape(y, tf.shape(inputs))
        return tf.cast(y, self.compute_dtype)
