"""Both networks for every variant: parameter counts, shapes, ranges; the train step's two phases."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness import config as cfg
from harness import loop, models, registry
from harness.data import Dataset

VARIANTS = ["base", "tanh", "batchnorm", "smoothing", "latent"]


def test_full_width_parameter_counts():
    m = cfg.ModelConfig()
    assert models.build_generator(m).count_params() == 1_164_289
    assert models.build_discriminator(m).count_params() == 40_705


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_and_pixel_range(name):
    _, c = registry.resolve(name, smoke=True)
    g, d = models.build_generator(c.model), models.build_discriminator(c.model)
    z = np.random.default_rng(0).standard_normal((16, c.model.latent_dim)).astype(np.float32) * 5
    raw = keras.ops.convert_to_numpy(g(z, training=False))
    assert raw.shape == (16, 28, 28, 1) and raw.dtype == np.float32
    low, high = models.pixel_range(c.model.output_activation)
    assert raw.min() >= low and raw.max() <= high
    if c.model.output_activation == "tanh":
        assert raw.min() < 0  # really tanh, not sigmoid
    unit = loop.to_unit_range(raw, c.model.output_activation)
    assert unit.min() >= 0.0 and unit.max() <= 1.0 and unit.dtype == np.float32
    assert keras.ops.convert_to_numpy(d(raw, training=False)).shape == (16, 1)
    has_bn = any(isinstance(l, keras.layers.BatchNormalization) for l in g.layers + d.layers)
    assert has_bn == c.model.batchnorm


def _tiny_dataset(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    return Dataset("mnist-5k", "test", x, y, x[:16], y[:16])


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _changed(before, model):
    return any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.trainable_variables))


@pytest.mark.parametrize("name", ["base", "batchnorm"])
def test_each_phase_moves_only_its_network(name):
    _, c = registry.resolve(name, smoke=True, sets=["train.batch_size=8"])
    g, d, step = loop.build(c, _tiny_dataset(), seed=0)
    z_d = tf.random.normal([4, c.model.latent_dim])
    z_g = tf.random.normal([8, c.model.latent_dim])
    real = tf.constant(np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32))

    g_before, d_before = _weights(g), _weights(d)
    step.discriminator_phase(real, z_d)
    assert _changed(d_before, d) and not _changed(g_before, g)

    g_before, d_before = _weights(g), _weights(d)
    step.generator_phase(z_g)
    assert _changed(g_before, g) and not _changed(d_before, d)


def test_same_seed_same_losses_other_seed_differs():
    _, c = registry.resolve("base", smoke=True, sets=["train.batch_size=8"])
    data = _tiny_dataset()

    def losses(seed):
        _, _, step = loop.build(c, data, seed)
        return [float(step(i)["d_loss"]) for i in range(3)] + [float(step(3)["g_loss"])]

    a, b, other = losses(5), losses(5), losses(6)
    assert a == b
    assert a != other


def test_label_smoothing_acts_in_the_d_phase():
    """With real_label 0.9 a discriminator that calls everything real by a wide margin still pays a loss."""
    data = _tiny_dataset()
    results = {}
    for label in (1.0, 0.9):
        _, c = registry.resolve("base", smoke=True, sets=["train.batch_size=8", f"train.real_label={label}"])
        _, d, step = loop.build(c, data, 0)
        for v in d.trainable_variables:  # D outputs a logit of +50 for every image
            v.assign(tf.zeros_like(v))
        d.get_layer("logit").bias.assign([50.0])
        real = tf.ones([4, 28, 28, 1])
        results[label] = float(step.discriminator_phase(real, tf.zeros([4, c.model.latent_dim]))["d_loss"])
    # Real half: label 1 costs ~0, label 0.9 costs 0.1 * 50 = 5 per image; fake half costs 50 either way.
    assert results[0.9] - results[1.0] == pytest.approx(0.5 * 0.1 * 50, rel=1e-3)


def test_eval_schedule():
    assert loop.eval_steps(1500, 15, 10, 3) == list(range(150, 1501, 150))  # every 10 epochs, 100 epochs
    assert loop.eval_steps(6, 15, 10, 3) == [2, 4, 6]  # too short: three evenly spaced, the last at the end
    assert loop.eval_steps(400, 15, 10, 3)[-1] == 400
    assert len(loop.eval_steps(400, 15, 10, 3)) >= 3
    assert loop.eval_steps(1, 15, 10, 3) == [1]


def _grads(model, x):
    """Training-mode output and gradients of a fixed, uneven loss w.r.t. every trainable variable."""
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        weights = tf.reshape(tf.range(tf.size(out), dtype=tf.float32) % 7 - 3.0, tf.shape(out))
        loss = tf.reduce_sum(out * weights)
    return out, tape.gradient(loss, model.trainable_variables)


@pytest.mark.parametrize("name", ["base", "batchnorm"])
def test_fast_layers_compute_what_stock_keras_layers_compute(name):
    """OneFilterConv2D and FusedBatchNormalization: same weights, outputs, gradients and BN statistics."""
    _, c = registry.resolve(name, smoke=True)
    z = tf.constant(np.random.default_rng(1).standard_normal((32, c.model.latent_dim)).astype(np.float32))
    for build, x in ((models.build_generator, z), (models.build_discriminator, None)):
        keras.utils.set_random_seed(0)
        fast = build(c.model)
        keras.utils.set_random_seed(0)
        stock = build(c.model, fast_kernels=False)
        assert all(np.array_equal(a, b) for a, b in zip(fast.get_weights(), stock.get_weights()))
        if x is None:  # the discriminator sees images
            x = tf.random.uniform([32, 28, 28, 1], seed=2)
        out_fast, grads_fast = _grads(fast, x)
        out_stock, grads_stock = _grads(stock, x)
        np.testing.assert_allclose(out_fast, out_stock, rtol=1e-4, atol=1e-5)
        scale = max(float(np.abs(b).max()) for b in grads_stock)
        for v, a, b in zip(stock.trainable_variables, grads_fast, grads_stock):
            # A bias right before BatchNorm has a true gradient of 0, only round-off: hence atol.
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5 * scale, err_msg=v.path)
        for a, b in zip(fast.non_trainable_variables, stock.non_trainable_variables):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
        if c.model.batchnorm:
            assert not np.allclose(stock.non_trainable_variables[0].numpy(), 0.0)  # the moving mean moved


def test_fast_kernels_are_what_the_tensorflow_graph_runs():
    _, c = registry.resolve("batchnorm", smoke=True)
    g = models.build_generator(c.model)
    graph = tf.function(lambda z: g(z, training=True)).get_concrete_function(
        tf.TensorSpec([None, c.model.latent_dim], tf.float32)).graph
    kinds = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in kinds
    one_channel_convs = [op for op in graph.get_operations() if op.type == "Conv2D"]
    assert not one_channel_convs  # the 7x7 image layer runs as matrix products


def test_saved_generator_holds_only_stock_layers(tmp_path):
    _, c = registry.resolve("batchnorm", smoke=True)
    g = models.build_generator(c.model)
    path = tmp_path / "g.keras"
    models.stock_copy(g).save(path)
    loaded = keras.models.load_model(path)
    stock = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.BatchNormalization)
    assert {type(l) for l in loaded.layers if isinstance(l, stock)} == set(stock)  # exactly the stock classes
    z = np.random.default_rng(0).standard_normal((4, c.model.latent_dim)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(z)), keras.ops.convert_to_numpy(g(z)), atol=1e-5)


def test_fast_layers_refuse_what_they_cannot_compute():
    from harness.kernels.one_filter_conv import OneFilterConv2D
    with pytest.raises(ValueError, match="odd square kernel"):
        OneFilterConv2D(kernel_size=4)
    with pytest.raises(ValueError, match="one filter"):
        OneFilterConv2D(kernel_size=7, strides=2)
    from harness.kernels.phase_conv_transpose import PhaseConv2DTranspose
    with pytest.raises(ValueError, match="4x4 kernel, stride 2"):
        PhaseConv2DTranspose(8, kernel_size=3)


def test_real_images_are_drawn_as_the_config_says():
    """replacement (the seed's randint): uniform indices, repeats within an epoch, the same draw for the
    same step; epoch_shuffle: every epoch's half-batches are disjoint slices of one permutation."""
    data = _tiny_dataset(n=64)
    for sampling in ("replacement", "epoch_shuffle"):
        _, c = registry.resolve("base", smoke=True, sets=["train.batch_size=8", f"data.sampling={sampling}"])
        _, _, step = loop.build(c, data, seed=0)
        per_epoch = 64 // 8
        draws = [step.real_indices(tf.constant(64, tf.int64), tf.constant(i, tf.int64)).numpy() for i in range(800)]
        assert all(len(d) == 4 and d.min() >= 0 and d.max() < 64 for d in draws)
        epoch = np.concatenate(draws[:per_epoch])  # half a batch a step: an epoch shows 32 of the 64 images
        if sampling == "replacement":
            assert len(set(epoch.tolist())) < len(epoch)  # drawn with replacement: 32 draws of 64 repeat
            counts = np.bincount(np.concatenate(draws), minlength=64)
            assert counts.min() > 25 and counts.max() < 75  # about 50 each over 3,200 draws
        else:
            assert len(set(epoch.tolist())) == len(epoch)
        again = step.real_indices(tf.constant(64, tf.int64), tf.constant(5, tf.int64)).numpy()
        assert np.array_equal(again, draws[5])
