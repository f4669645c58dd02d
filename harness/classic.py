"""The seed's Keras loop, written apart from the harness: the reference the fidelity tests compare the
train step against (tests/test_fidelity.py) and the baseline `harness bench` times it beside.

It shares nothing with models.py or step_*.py: its own stock layers, in the recipe's order, with D
ending in a sigmoid and compiled with binary cross-entropy; fakes from `G.predict`; D learns with
`train_on_batch` on the stacked real and fake images; G learns with `train_on_batch` on
`Sequential([G, D])`, compiled while D's `trainable` is False; real images scaled as the seed scales
them. Keras 3 traces each train function at its first call, so D's `trainable` is toggled around its
own update with no extra update. A wrong layer, slope, dropout, BatchNorm placement or image scaling on
the harness's side therefore shows as a difference, not as the same mistake on both sides.
"""
from __future__ import annotations

import keras
import numpy as np

from harness.config import Config, ModelConfig


def generator(m: ModelConfig, dtype: str = "float32") -> keras.Model:
    """The recipe's G: dense to 7x7 maps, two stride-2 transposed convolutions, a 7x7 conv to one channel
    (BatchNorm after the dense layer and each transposed conv when on)."""
    layers = [keras.Input((m.latent_dim,)), keras.layers.Dense(m.g_filters * 7 * 7, dtype=dtype, name="project")]
    if m.batchnorm:
        layers.append(keras.layers.BatchNormalization(dtype=dtype, name="project_bn"))
    layers += [keras.layers.LeakyReLU(m.leaky_slope, dtype=dtype), keras.layers.Reshape((7, 7, m.g_filters), dtype=dtype)]
    for i in (1, 2):
        layers.append(keras.layers.Conv2DTranspose(m.g_filters, 4, strides=2, padding="same", dtype=dtype, name=f"up{i}"))
        if m.batchnorm:
            layers.append(keras.layers.BatchNormalization(dtype=dtype, name=f"up{i}_bn"))
        layers.append(keras.layers.LeakyReLU(m.leaky_slope, dtype=dtype))
    layers.append(keras.layers.Conv2D(1, 7, padding="same", activation=m.output_activation, dtype="float32", name="image"))
    return keras.Sequential(layers, name="recipe_generator")


def discriminator(m: ModelConfig, dtype: str = "float32") -> keras.Model:
    """The recipe's D: two stride-2 3x3 convolutions, each with LeakyReLU and dropout (BatchNorm after the
    second when on), and a sigmoid unit."""
    layers = [keras.Input((28, 28, 1))]
    for i in (1, 2):
        layers.append(keras.layers.Conv2D(m.d_filters, 3, strides=2, padding="same", dtype=dtype, name=f"down{i}"))
        if m.batchnorm and i == 2:
            layers.append(keras.layers.BatchNormalization(dtype=dtype, name="down2_bn"))
        layers += [keras.layers.LeakyReLU(m.leaky_slope, dtype=dtype), keras.layers.Dropout(m.dropout, dtype=dtype)]
    layers += [keras.layers.Flatten(dtype=dtype), keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="logit")]
    return keras.Sequential(layers, name="recipe_discriminator")


def scale(images: np.ndarray, output_activation: str) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) as the seed scales them: /255, or to [-1, 1] for tanh."""
    x = images.astype(np.float32)[..., None]
    return (x - 127.5) / 127.5 if output_activation == "tanh" else x / 255.0


class SeedLoop:
    """The seed's loop, one step at a time on the inputs it is given. jit: how Keras compiles the two
    train functions (\"auto\": its own default)."""

    def __init__(self, config: Config, jit="auto"):
        t = config.train
        self.generator = generator(config.model, t.precision)
        self.discriminator = discriminator(config.model, t.precision)
        self.discriminator.compile(keras.optimizers.Adam(t.lr_d, beta_1=t.beta_1), keras.losses.BinaryCrossentropy(),
                                   jit_compile=jit)
        self.discriminator.trainable = False
        self.gan = keras.Sequential([self.generator, self.discriminator], name="recipe_gan")
        self.gan.compile(keras.optimizers.Adam(t.lr_g, beta_1=t.beta_1), keras.losses.BinaryCrossentropy(),
                         jit_compile=jit)
        self.real_label = t.real_label

    def load(self, generator: keras.Model, discriminator: keras.Model) -> None:
        """Start from another pair's state: every variable (weights, BatchNorm statistics, dropout seed
        states), in order; a network of another structure is an error naming where it differs."""
        for mine, theirs in ((self.generator, generator), (self.discriminator, discriminator)):
            a, b = mine.variables, theirs.variables
            shapes = [tuple(v.shape) for v in a], [tuple(v.shape) for v in b]
            if shapes[0] != shapes[1]:
                raise ValueError(f"{theirs.name} holds variables of shapes {shapes[1]}; the recipe's "
                                 f"{mine.name} holds {shapes[0]}")
            for v, w in zip(a, b):
                v.assign(np.asarray(w.value))

    def step(self, real: np.ndarray, z_d: np.ndarray, z_g: np.ndarray) -> tuple[float, float]:
        """One step on a real half-batch (in G's range) and latent points: returns (d_loss, g_loss)."""
        fake = self.generator.predict(z_d, verbose=0)
        x = np.concatenate([real, fake])
        y = np.concatenate([np.full((len(real), 1), self.real_label), np.zeros((len(fake), 1))]).astype(np.float32)
        self.discriminator.trainable = True
        d_loss = self.discriminator.train_on_batch(x, y)
        self.discriminator.trainable = False
        g_loss = self.gan.train_on_batch(z_g, np.ones((len(z_g), 1), np.float32))
        return float(np.ravel(d_loss)[0]), float(np.ravel(g_loss)[0])


class ClassicLoop:
    """The seed's loop as the recipe runs it, for timing: numpy draws of real images and latent points,
    then SeedLoop.step. images: uint8 (N, 28, 28)."""

    def __init__(self, config: Config, images: np.ndarray, seed: int):
        keras.utils.set_random_seed(seed)
        self.loop = SeedLoop(config)
        self.images = scale(images, config.model.output_activation)
        self.rng = np.random.default_rng(seed)
        self.half, self.batch, self.latent = config.train.batch_size // 2, config.train.batch_size, config.model.latent_dim

    @property
    def discriminator(self) -> keras.Model:
        return self.loop.discriminator

    def __call__(self, step: int) -> float:
        real = self.images[self.rng.integers(0, len(self.images), self.half)]
        z_d = self.rng.standard_normal((self.half, self.latent)).astype(np.float32)
        z_g = self.rng.standard_normal((self.batch, self.latent)).astype(np.float32)
        return sum(self.loop.step(real, z_d, z_g))
