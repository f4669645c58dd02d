"""Generator and discriminator of the classic Keras MNIST DCGAN, with the variant switches.

At full width (g_filters=128, d_filters=64, latent_dim=100) G has 1,164,289 parameters and D 40,705.
D returns logits (the loss uses from_logits): the same maths as a sigmoid + BCE, more stable.
Three layers have faster kernels with Keras's maths and variables: G's last layer is a `OneFilterConv2D`
and BatchNorm a `FusedBatchNormalization` (both for TensorFlow), G's upsampling a `PhaseConv2DTranspose`
(for JAX on CPUs). `fast_kernels=False` builds stock Keras layers instead (the classic-loop benchmark,
to stay the recipe's model); saved files hold stock layers.
"""
from __future__ import annotations

import keras
from keras import layers

from harness.config import ModelConfig
from harness.fused_batch_norm import FusedBatchNormalization
from harness.one_filter_conv import OneFilterConv2D
from harness.phase_conv_transpose import PhaseConv2DTranspose


def build_generator(m: ModelConfig, precision: str = "float32", fast_kernels: bool = True) -> keras.Model:
    """latent (N, latent_dim) -> image (N, 28, 28, 1) in the output activation's range."""
    dtype = precision  # hidden layers; the output layer stays float32 so images are float32
    batch_norm = FusedBatchNormalization if fast_kernels else layers.BatchNormalization
    upsample = PhaseConv2DTranspose if fast_kernels else layers.Conv2DTranspose
    z = keras.Input((m.latent_dim,), name="latent")
    x = layers.Dense(m.g_filters * 7 * 7, dtype=dtype, name="project")(z)
    if m.batchnorm:
        x = batch_norm(dtype=dtype, name="project_bn")(x)
    x = layers.LeakyReLU(m.leaky_slope, dtype=dtype, name="project_act")(x)
    x = layers.Reshape((7, 7, m.g_filters), dtype=dtype, name="to_maps")(x)  # (N, 7, 7, g)
    for i in (1, 2):  # 7x7 -> 14x14 -> 28x28
        x = upsample(m.g_filters, kernel_size=4, strides=2, padding="same", dtype=dtype, name=f"up{i}")(x)
        if m.batchnorm:
            x = batch_norm(dtype=dtype, name=f"up{i}_bn")(x)
        x = layers.LeakyReLU(m.leaky_slope, dtype=dtype, name=f"up{i}_act")(x)
    image_layer = OneFilterConv2D if fast_kernels else layers.Conv2D
    image = image_layer(kernel_size=7, filters=1, padding="same", activation=m.output_activation, dtype="float32",
                        name="image")(x)
    return keras.Model(z, image, name="generator")


def build_discriminator(m: ModelConfig, precision: str = "float32", fast_kernels: bool = True) -> keras.Model:
    """image (N, 28, 28, 1) -> real/fake logit (N, 1)."""
    dtype = precision
    batch_norm = FusedBatchNormalization if fast_kernels else layers.BatchNormalization
    image = keras.Input((28, 28, 1), name="image")
    x = image
    for i in (1, 2):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(m.d_filters, 3, strides=2, padding="same", dtype=dtype, name=f"down{i}")(x)
        if m.batchnorm and i == 2:
            x = batch_norm(dtype=dtype, name="down2_bn")(x)
        x = layers.LeakyReLU(m.leaky_slope, dtype=dtype, name=f"down{i}_act")(x)
        x = layers.Dropout(m.dropout, dtype=dtype, name=f"down{i}_drop")(x)
    x = layers.Flatten(dtype=dtype, name="flatten")(x)
    logit = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(image, logit, name="discriminator")


def stock_copy(model: keras.Model) -> keras.Model:
    """The same model and weights with stock Keras layers only, so its saved file loads anywhere."""
    def clone(layer):
        return getattr(type(layer), "stock", type(layer)).from_config(layer.get_config())
    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def pixel_range(output_activation: str) -> tuple[float, float]:
    """The range real images are scaled to, so they match the generator's output."""
    return (-1.0, 1.0) if output_activation == "tanh" else (0.0, 1.0)
