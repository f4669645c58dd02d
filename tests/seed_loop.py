"""The seed's own Keras loop beside the harness's train step, under $KERAS_BACKEND, from the same weights
on the same real half-batches and latent points.

The reference uses public Keras calls only, on stock layers, as the seed writes them: D ends in a
sigmoid and is compiled with binary cross-entropy; fakes come from `G.predict`; D learns with
`train_on_batch` on the stacked real and fake images; G learns with `train_on_batch` on
`Sequential([G, D])`, compiled while D's `trainable` is False. Keras 3 traces each train function
at its first call, so D's `trainable` is toggled around its own update (as `harness bench`'s classic
loop does) with no extra update.

python tests/seed_loop.py OUT.npz: every case of CASES, arrays named CASE/SIDE/WHAT (tests/test_fidelity.py).
"""
from __future__ import annotations

import sys

import keras
import numpy as np

import harness  # noqa: F401
from harness import loop, models, registry
from harness.data import Dataset

# (label, experiment, --set values): every registered experiment and each sweep value whose model differs.
CASES = [("base", "base", []), ("smoothing", "smoothing", []), ("tanh", "tanh", []), ("batchnorm", "batchnorm", []),
         *[(f"latent{n}", "latent", [f"model.latent_dim={n}"]) for n in (32, 64, 128, 256)]]
STEPS = 3


def config_for(experiment: str, sets: list[str], dropout: float, jit: bool = True):
    return registry.resolve(experiment, smoke=True, sets=[*sets, f"model.dropout={dropout}",
                                                          f"train.jit_compile={'null' if jit else 'false'}"])[1]


def inputs(config, steps: int = STEPS):
    """Per step: (real half-batch in G's range, latent points for D's fakes, latent points for G)."""
    rng = np.random.default_rng(0)
    low, high = models.pixel_range(config.model.output_activation)
    half, batch, latent = config.train.batch_size // 2, config.train.batch_size, config.model.latent_dim
    return [(low + (high - low) * rng.random((half, 28, 28, 1), dtype=np.float32),
             rng.standard_normal((half, latent)).astype(np.float32),
             rng.standard_normal((batch, latent)).astype(np.float32)) for _ in range(steps)]


class SeedLoop:
    """The seed's loop: predict, D.train_on_batch, gan.train_on_batch through a frozen D. nudge: every
    initial weight moved by one float32 ulp in a random direction, to measure what round-off alone does."""

    def __init__(self, config, nudge: bool = False):
        t = config.train
        keras.utils.set_random_seed(0)  # the harness's loop.build draws the same initial weights
        self.generator = models.build_generator(config.model, t.precision, fast_kernels=False)
        logits = models.build_discriminator(config.model, t.precision, fast_kernels=False)
        if nudge:
            rng = np.random.default_rng(1)
            for model in (self.generator, logits):
                model.set_weights([np.nextafter(w, np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf).astype(w.dtype))
                                   for w in model.get_weights()])
        self.discriminator = keras.Sequential([logits, keras.layers.Activation("sigmoid")], name="d_model")
        jit = "auto" if t.jit_compile is None else t.jit_compile  # the harness step's choice, on both sides
        self.discriminator.compile(keras.optimizers.Adam(t.lr_d, beta_1=t.beta_1), keras.losses.BinaryCrossentropy(),
                                   jit_compile=jit)
        self.discriminator.trainable = False
        self.gan = keras.Sequential([self.generator, self.discriminator], name="gan_model")
        self.gan.compile(keras.optimizers.Adam(t.lr_g, beta_1=t.beta_1), keras.losses.BinaryCrossentropy(),
                         jit_compile=jit)
        self.real_label, self.logits = t.real_label, logits

    def step(self, real, z_d, z_g) -> tuple[float, float]:
        fake = self.generator.predict(z_d, verbose=0)
        x = np.concatenate([real, fake])
        y = np.concatenate([np.full((len(real), 1), self.real_label), np.zeros((len(fake), 1))]).astype(np.float32)
        self.discriminator.trainable = True
        d_loss = self.discriminator.train_on_batch(x, y)
        self.discriminator.trainable = False
        g_loss = self.gan.train_on_batch(z_g, np.ones((len(z_g), 1), np.float32))
        return float(np.ravel(d_loss)[0]), float(np.ravel(g_loss)[0])

    def arrays(self) -> dict:
        return _arrays(self.generator, self.logits, self.gan.optimizer, self.discriminator.optimizer)


def _arrays(generator, discriminator, g_optimizer, d_optimizer) -> dict:
    """Float variables by role: weights, BatchNorm statistics, Adam moments (m, v), in model order."""
    out = {}
    for net, model in (("g", generator), ("d", discriminator)):
        for i, v in enumerate(model.variables):  # all of them: a frozen D lists no trainable variables
            if "seed_generator" not in v.path:  # dropout's RNG state: equal by construction, not compared
                out[f"{net}.{'bn' if 'moving' in v.path else 'weight'}.{i:02d}.{v.path}"] = np.asarray(v.value)
    for net, optimizer in (("g", g_optimizer), ("d", d_optimizer)):
        if not optimizer.built:  # Keras builds the seed's optimizers at their first train_on_batch
            continue
        for kind, moments in (("m", optimizer._momentums), ("v", optimizer._velocities)):
            for i, v in enumerate(moments):  # named after their variable: adam/down1_kernel_momentum
                out[f"{net}.{kind}.{i:02d}.{v.path.split('/')[-1]}"] = np.asarray(v.value)
    return out


def harness_step(config, fast: bool):
    x = np.zeros((64, 28, 28), np.uint8)  # unused: the test hands each phase its real images directly
    generator, discriminator, step = loop.build(config, Dataset("mnist-5k", "test", x, np.zeros(64, int), x,
                                                                np.zeros(64, int)), seed=0, fast_kernels=fast)
    return generator, discriminator, step


def roundoff_case(config, steps: int = STEPS) -> dict:
    """The seed's loop against itself from weights one float32 ulp apart: how far round-off alone carries
    the arrays in `steps` steps, in the same process, on this CPU and backend (tests/test_fidelity.py sets
    its tolerances from it). (Compiling one side the other way is no round-off measure: under TensorFlow,
    XLA draws other dropout masks.)"""
    seed_loop, nudged = SeedLoop(config), SeedLoop(config, nudge=True)
    out = {}
    for i, (real, z_d, z_g) in enumerate(inputs(config, steps), start=1):
        out[f"seed/loss.{i}"], out[f"harness/loss.{i}"] = np.array(seed_loop.step(real, z_d, z_g)), np.array(
            nudged.step(real, z_d, z_g))
        if i in (1, steps):
            when = "after1" if i == 1 else "after"
            out.update({f"seed/{when}/{k}": a for k, a in seed_loop.arrays().items()})
            out.update({f"harness/{when}/{k}": a for k, a in nudged.arrays().items()})
    return out


def run_case(config, fast: bool, steps: int = STEPS, harness_config=None, real_for_harness=None,
             step_for_harness=None) -> dict:
    """Arrays after step 1 and after `steps` steps of both loops, and their losses. harness_config,
    real_for_harness (real images -> what the harness gets) and step_for_harness (the harness step ->
    a changed one) inject bugs into the harness side, to show that the comparison fails."""
    seed_loop = SeedLoop(config)
    generator, discriminator, step = harness_step(harness_config or config, fast)
    initial = seed_loop.arrays()
    mine = _arrays(generator, discriminator, step.g_optimizer, step.d_optimizer)
    assert all(np.array_equal(initial[k], mine[k]) for k in initial), "the two sides start from other weights"
    step = step_for_harness(step) if step_for_harness else step
    out = {}
    for i, (real, z_d, z_g) in enumerate(inputs(config, steps), start=1):
        ref_losses = seed_loop.step(real, z_d, z_g)
        d_out = step.discriminator_phase(real_for_harness(real) if real_for_harness else real, z_d)
        g_loss = step.generator_phase(z_g)
        out[f"seed/loss.{i}"] = np.array(ref_losses)
        out[f"harness/loss.{i}"] = np.array([float(d_out["d_loss"]), float(g_loss)])
        if i in (1, steps):
            when = "after1" if i == 1 else "after"
            out.update({f"seed/{when}/{k}": a for k, a in seed_loop.arrays().items()})
            step.sync_models()
            out.update({f"harness/{when}/{k}": a
                        for k, a in _arrays(generator, discriminator, step.g_optimizer, step.d_optimizer).items()})
    return out


def all_cases(dropout: float = 0.4, jit: bool = True) -> dict:
    """Per case: the harness against the seed's loop with stock layers and with the fast kernels, and
    the seed's loop against itself one ulp apart (the round-off scale), as CASE/{stock,fast,roundoff}/..."""
    arrays = {}
    for label, experiment, sets in CASES:
        config = config_for(experiment, sets, dropout, jit)
        for side, arrays_of in (("stock", lambda: run_case(config, False)), ("fast", lambda: run_case(config, True)),
                                ("roundoff", lambda: roundoff_case(config))):
            arrays.update({f"{label}/{side}/{key}": value for key, value in arrays_of().items()})
    return arrays


if __name__ == "__main__":
    np.savez(sys.argv[1], **all_cases(jit="--eager" not in sys.argv))
