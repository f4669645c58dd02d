"""Generator and discriminator of the classic Keras MNIST DCGAN, as the recipe writes them, with the
variant switches.

At full width (g_filters=128, d_filters=64, latent_dim=100) G has 1,164,289 parameters and D 40,705.
D returns logits (the loss uses from_logits): the same maths as a sigmoid + BCE, more stable.
`fast_kernels` chooses, in one line per network, whether the layer names below are keras.layers or the
same maths as faster kernels (harness/kernels/); the classic-loop benchmark and the fidelity tests'
reference build stock layers, and saved files hold stock layers.
"""
from __future__ import annotations

import contextlib

import keras

from harness import kernels
from harness.config import Config, ModelConfig


def build_generator(m: ModelConfig, precision: str = "float32", fast_kernels: bool = True) -> keras.Model:
    """latent (N, latent_dim) -> image (N, 28, 28, 1) in the output activation's range."""
    layers = kernels.layers(fast_kernels)  # stock Keras layers, or the same maths as faster kernels
    dtype = precision  # hidden layers; the output layer stays float32 so images are float32
    z = keras.Input((m.latent_dim,), name="latent")
    x = layers.Dense(m.g_filters * 7 * 7, dtype=dtype, name="project")(z)
    if m.batchnorm:
        x = layers.BatchNormalization(dtype=dtype, name="project_bn")(x)
    x = layers.LeakyReLU(m.leaky_slope, dtype=dtype, name="project_act")(x)
    x = layers.Reshape((7, 7, m.g_filters), dtype=dtype, name="to_maps")(x)  # (N, 7, 7, g)
    for i in (1, 2):  # 7x7 -> 14x14 -> 28x28
        x = layers.Conv2DTranspose(m.g_filters, 4, strides=2, padding="same", dtype=dtype, name=f"up{i}")(x)
        if m.batchnorm:
            x = layers.BatchNormalization(dtype=dtype, name=f"up{i}_bn")(x)
        x = layers.LeakyReLU(m.leaky_slope, dtype=dtype, name=f"up{i}_act")(x)
    image = layers.Conv2D(1, 7, padding="same", activation=m.output_activation, dtype="float32", name="image")(x)
    return keras.Model(z, image, name="generator")


def build_discriminator(m: ModelConfig, precision: str = "float32", fast_kernels: bool = True) -> keras.Model:
    """image (N, 28, 28, 1) -> real/fake logit (N, 1)."""
    layers = kernels.layers(fast_kernels)  # stock Keras layers, or the same maths as faster kernels
    dtype = precision
    image = keras.Input((28, 28, 1), name="image")
    x = image
    for i in (1, 2):  # 28x28 -> 14x14 -> 7x7
        x = layers.Conv2D(m.d_filters, 3, strides=2, padding="same", dtype=dtype, name=f"down{i}")(x)
        if m.batchnorm and i == 2:
            x = layers.BatchNormalization(dtype=dtype, name="down2_bn")(x)
        x = layers.LeakyReLU(m.leaky_slope, dtype=dtype, name=f"down{i}_act")(x)
        x = layers.Dropout(m.dropout, dtype=dtype, name=f"down{i}_drop")(x)
    x = layers.Flatten(dtype=dtype, name="flatten")(x)
    logit = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(image, logit, name="discriminator")


@contextlib.contextmanager
def frozen(model: keras.Model):
    """The seed's `d_model.trainable = False` inside the composite model, for the calls in this block:
    Keras's BatchNormalization then normalises with its moving statistics and leaves them alone; dropout
    stays on in a training call."""
    model.trainable = False
    try:
        yield model
    finally:
        model.trainable = True


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


def forward_flops(m: ModelConfig) -> tuple[float, float]:
    """Multiply-adds x 2 of one image's forward pass through (G, D), from the layer shapes."""
    g, d, z = m.g_filters, m.d_filters, m.latent_dim
    generator = (2 * z * g * 49  # dense to 7x7xg
                 + 2 * 7 * 7 * 16 * g * g  # 4x4 transposed conv, 7x7 input
                 + 2 * 14 * 14 * 16 * g * g  # 4x4 transposed conv, 14x14 input
                 + 2 * 28 * 28 * 49 * g)  # 7x7 conv to one channel
    discriminator = 2 * 14 * 14 * 9 * d + 2 * 7 * 7 * 9 * d * d + 2 * 49 * d
    return float(generator), float(discriminator)


def step_flops(config: Config) -> float:
    """FLOPs of one training step, counting a backward pass as twice the forward."""
    g, d = forward_flops(config.model)
    b, half = config.train.batch_size, config.train.batch_size // 2
    d_phase = half * g + 3 * b * d  # fakes made, then D forward + backward on real + fake
    g_phase = 3 * b * (g + d)  # G and D forward + backward on a batch of latent points
    return d_phase + g_phase
