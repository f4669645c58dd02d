"""The seed's own Keras loop (harness/classic.py, which shares nothing with models.py or step_*.py)
beside the harness's train step as training runs it (`step.many`: the compiled TensorFlow function, or
the jitted JAX step), from the same state, on the same real images and latent points: the harness step
draws them, and the seed's loop scales the chosen uint8 digits itself.

python tests/seed_loop.py OUT.npz: every case of CASES, arrays named CASE/SIDE/WHAT (tests/test_fidelity.py).
"""
from __future__ import annotations

import sys

import numpy as np

import harness  # noqa: F401
from harness import classic, loop, registry
from harness.data import Dataset

# (label, experiment, --set values): every registered experiment and each sweep value whose model differs.
CASES = [("base", "base", []), ("smoothing", "smoothing", []), ("tanh", "tanh", []), ("batchnorm", "batchnorm", []),
         *[(f"latent{n}", "latent", [f"model.latent_dim={n}"]) for n in (32, 64, 128, 256)]]
STEPS = 3
DIGITS = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)  # stand-in uint8 digits


def config_for(experiment: str, sets: list[str], dropout: float):
    """The experiment at tiny width (--smoke), compiled as training compiles it here."""
    return registry.resolve(experiment, smoke=True, sets=[*sets, f"model.dropout={dropout}"])[1]


def dataset() -> Dataset:
    return Dataset("mnist-5k", "test", DIGITS, np.zeros(len(DIGITS), int), DIGITS, np.zeros(len(DIGITS), int))


def inputs(config, steps: int = STEPS):
    """Per step: (real half-batch scaled as the seed scales it, latent points for D's fakes, for G),
    drawn as a harness step of this config draws them."""
    step = loop.build(config, dataset(), seed=0)[2]
    return [(classic.scale(DIGITS[i], config.model.output_activation), z_d, z_g)
            for i, z_d, z_g in (step.draws(s) for s in range(steps))]


def seed_loop(config, generator, discriminator, jit="auto") -> classic.SeedLoop:
    """The seed's loop from these networks' state. jit: "auto" compiles as the harness step does (under
    TensorFlow on a CPU, neither uses XLA, which would draw other dropout masks)."""
    reference = classic.SeedLoop(config, jit)
    reference.load(generator, discriminator)
    return reference


def nudged(reference: classic.SeedLoop) -> None:
    """Every variable moved by one float32 ulp in a random direction (dropout seed states left alone)."""
    rng = np.random.default_rng(1)
    for model in (reference.generator, reference.discriminator):
        for v in model.variables:
            if "seed_generator" not in v.path:
                w = np.asarray(v.value)
                v.assign(np.nextafter(w, np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf).astype(w.dtype)))


def arrays_of(reference: classic.SeedLoop, generator, discriminator) -> dict:
    """The seed's loop's arrays under the harness networks' variable names (the two line up by position)."""
    return _arrays(reference.generator, reference.discriminator, reference.gan.optimizer,
                   reference.discriminator.optimizer, names=(generator, discriminator))


def _arrays(generator, discriminator, g_optimizer, d_optimizer, names=None) -> dict:
    """Float variables by role: weights, BatchNorm statistics, Adam moments (m, v), in model order; keys
    carry the variable names of `names` (a (G, D) pair of the same structure), else of these networks."""
    out = {}
    for net, model, optimizer, named in (("g", generator, g_optimizer, names[0] if names else generator),
                                         ("d", discriminator, d_optimizer, names[1] if names else discriminator)):
        paths = [v.path for v in named.variables]
        for i, v in enumerate(model.variables):  # all of them: a frozen D lists no trainable variables
            if "seed_generator" not in paths[i]:  # dropout's RNG state: the same on both sides, not compared
                out[f"{net}.{'bn' if 'moving' in paths[i] else 'weight'}.{i:02d}.{paths[i]}"] = np.asarray(v.value)
        if not optimizer.built:  # Keras builds the seed's optimizers at their first train_on_batch
            continue
        trainable = [v.path.replace("/", "_") for v in named.variables if v.trainable]
        for kind, moments in (("m", optimizer._momentums), ("v", optimizer._velocities)):
            for i, v in enumerate(moments):  # in the order of the trainable variables
                out[f"{net}.{kind}.{i:02d}.{trainable[i]}_{'momentum' if kind == 'm' else 'velocity'}"] = np.asarray(v.value)
    return out


def roundoff_case(config, steps: int = STEPS, reference_jit="auto") -> dict:
    """The seed's loop against itself from states one float32 ulp apart: how far round-off alone carries
    the arrays in `steps` steps, in the same process, on this CPU and backend (tests/test_fidelity.py sets
    its tolerances from it)."""
    generator, discriminator, _ = loop.build(config, dataset(), seed=0, fast_kernels=False)
    a, b = (seed_loop(config, generator, discriminator, reference_jit) for _ in range(2))
    nudged(b)
    out = {}
    for i, (real, z_d, z_g) in enumerate(inputs(config, steps), start=1):
        out[f"seed/loss.{i}"], out[f"harness/loss.{i}"] = np.array(a.step(real, z_d, z_g)), np.array(b.step(real, z_d, z_g))
        if i in (1, steps):
            when = "after1" if i == 1 else "after"
            out.update({f"seed/{when}/{k}": v for k, v in arrays_of(a, generator, discriminator).items()})
            out.update({f"harness/{when}/{k}": v for k, v in arrays_of(b, generator, discriminator).items()})
    return out


def run_case(config, fast: bool, steps: int = STEPS, harness_config=None, build_for_harness=None,
             step_for_harness=None, reference_jit="auto") -> dict:
    """Arrays after step 1 and after `steps` steps of both loops, and their losses. harness_config,
    build_for_harness (config, dataset -> (G, D, step)) and step_for_harness (the harness step -> a changed
    one) inject bugs into the harness side, to show that the comparison fails."""
    build = build_for_harness or (lambda c, d: loop.build(c, d, seed=0, fast_kernels=fast))
    generator, discriminator, step = build(harness_config or config, dataset())
    reference = seed_loop(config, generator, discriminator, reference_jit)
    step = step_for_harness(step) if step_for_harness else step
    out = {}
    for i, (real, z_d, z_g) in enumerate(inputs(config, steps), start=1):
        out[f"seed/loss.{i}"] = np.array(reference.step(real, z_d, z_g))
        losses = step.many(i - 1, 1)  # step i - 1 draws these inputs, as in training
        out[f"harness/loss.{i}"] = np.array([float(np.ravel(losses["d_loss"])[0]), float(np.ravel(losses["g_loss"])[0])])
        if i in (1, steps):
            when = "after1" if i == 1 else "after"
            out.update({f"seed/{when}/{k}": a for k, a in arrays_of(reference, generator, discriminator).items()})
            step.sync_models()
            out.update({f"harness/{when}/{k}": a
                        for k, a in _arrays(generator, discriminator, step.g_optimizer, step.d_optimizer).items()})
    return out


def all_cases(dropout: float = 0.4, reference_jit="auto") -> dict:
    """Per case: the harness against the seed's loop with stock layers and with the fast kernels, and
    the seed's loop against itself one ulp apart (the round-off scale), as CASE/{stock,fast,roundoff}/...
    reference_jit: how the seed's loop compiles (False: op by op, to spare JAX's compilations)."""
    arrays = {}
    for label, experiment, sets in CASES:
        config = config_for(experiment, sets, dropout)
        for side, make in (("stock", lambda: run_case(config, False, reference_jit=reference_jit)),
                           ("fast", lambda: run_case(config, True, reference_jit=reference_jit)),
                           ("roundoff", lambda: roundoff_case(config, reference_jit=reference_jit))):
            arrays.update({f"{label}/{side}/{key}": value for key, value in make().items()})
    return arrays


if __name__ == "__main__":
    np.savez(sys.argv[1], **all_cases(reference_jit=False if "--eager-reference" in sys.argv else "auto"))
