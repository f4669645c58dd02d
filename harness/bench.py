"""Side-by-side timing of the classic Keras loop and the harness's train step, in one process.

The classic loop is the seed's (harness/classic.py, the same loop the fidelity tests compare the train
step against): numpy batches, G.predict for the fakes, D.train_on_batch on real + fake, then
gan.train_on_batch through a frozen D.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np

from harness import config as cfg
from harness import loop, machine, models, registry
from harness.plan import time_steps
from harness import data, runner, scorers
from harness.classic import ClassicLoop
from harness.step import steps_per_epoch
from harness.config import Config, UserError
from harness.data import to_unit


@dataclass(frozen=True)
class Timings:
    """What `harness bench` measured, each as printed: median seconds a step of the classic loop and of the
    harness step, of each variant's harness step (arm label -> s), scoring 10,000 images (s, generating
    them included), a step of a real short run (s), and the profile's op time (profile.Times: ms a step
    per op). None or empty where not asked."""
    classic: float
    harness: float
    variants: dict = field(default_factory=dict)
    scoring: float | None = None
    whole_run: float | None = None
    profile: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The harness step's time over the classic loop's: the bench's last line."""
        return self.harness / self.classic


@dataclass(frozen=True)
class PopulationTimings:
    """Median seconds a step of one seed alone and of a population of `members` seeds."""
    solo: float
    population: float
    members: int

    @property
    def ratio(self) -> float:
        """Seconds a member-step over a solo step's: under 1, the population trains seeds faster."""
        return self.population / self.members / self.solo


def bench_population(config: Config, members: int, steps: int, out=print, dataset=None) -> PopulationTimings:
    """ms per member-step of a population of `members` against a solo step of the same config, both in
    chunks of train.log_every_steps steps per dispatch as a run makes them; prints ratio= last and returns
    the times."""
    if keras.backend.backend() != "jax":
        raise UserError("bench --population needs the JAX backend (KERAS_BACKEND=jax); TensorFlow trains one seed "
                        "at a time.")
    dataset = dataset or data.for_config(config)
    chunk = config.train.log_every_steps
    _, _, solo = loop.build(config, dataset, seed=0)
    _, _, population = loop.build_population(config, dataset, list(range(members)))
    out(f"config: G {config.model.g_filters} / D {config.model.d_filters} filters, batch {config.train.batch_size}, "
        f"backend jax on {machine.platform()}, chunks of {chunk} steps "
        f"({'one dispatch each' if population.scan else 'one dispatch a step: XLA on CPUs is slower in lax.scan'}), "
        f"{steps} timed chunks after 1 warm-up chunk")
    times = {}
    for label, step in (("solo", solo), ("population", population)):
        chunks = time_steps(lambda i, step=step: step.many(i * chunk, chunk), steps, warmup=1)
        times[label] = float(np.median(chunks)) / chunk
        if label == "solo":  # at once: on a CPU the population's side can take minutes a step
            out(f"solo step                       {times['solo'] * 1000:9.2f} ms/step")
    timings = PopulationTimings(times["solo"], times["population"], members)
    member_step = times["population"] / members
    out(f"population of {members:<3}               {times['population'] * 1000:9.2f} ms/step for all members, "
        f"{member_step * 1000:.2f} ms per member-step ({times['population'] / times['solo']:.2f}x one solo step)")
    out(f"ratio={timings.ratio:.3f}")
    return timings


def bench_whole_run(config: Config, steps: int, bare_seconds: float, out=print) -> float:
    """Seconds a step of a real short run takes (loop.train through run(), a temporary MLflow store,
    evaluations at the recipe's cadence, logging and checkpoints) beside the bare step's."""
    import os
    import tempfile
    from harness import tracking
    run_config = cfg.replace(config, {"train.steps": steps, "train.seeds": 1})
    dataset = data.for_config(run_config, quiet=True)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        cwd = os.getcwd()
        os.chdir(tmp)  # artifacts under tmp/mlruns
        try:
            scorer = scorers.make(run_config, dataset, quiet=True)  # its classifier shared in tmp's store
            started = time.perf_counter()
            runner.run("bench", run_config, 0, dataset, scorer, tracking.Store())
            seconds = (time.perf_counter() - started) / steps
        finally:
            os.chdir(cwd)
            if previous is None:
                os.environ.pop("MLFLOW_TRACKING_URI")
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous
    n_evals = len(loop.eval_steps(steps, steps_per_epoch(config, len(dataset.train_images)),
                                  config.eval.every_epochs, config.eval.min_evals))
    out(f"whole run of {steps} steps ({n_evals} evaluations, logging, checkpoints, its first compile): "
        f"{seconds * 1000:.1f} ms/step against the bare step's {bare_seconds * 1000:.1f}: "
        f"{seconds / bare_seconds:.2f}x")
    return seconds


def bench(config: Config, steps: int, variants: bool, score: bool, profile: bool = False, out=print,
          run_steps: int = 0) -> Timings:
    """The classic loop against the harness step, side by side in this process (and, as asked, every
    variant, scoring, a profile and a whole short run); prints each as measured, ratio= last, and returns
    the times."""
    dataset = data.for_config(config)
    low, high = models.pixel_range(config.model.output_activation)
    images = to_unit(dataset.train_images) * (high - low) + low
    flops = models.step_flops(config)
    b = config.train.batch_size
    backend = keras.backend.backend()
    jit = config.train.jit_compile
    out(f"config: G {config.model.g_filters} / D {config.model.d_filters} filters, latent {config.model.latent_dim}, "
        f"batch {b}, {config.train.precision}, backend {backend}, XLA {'auto' if jit is None else jit}, "
        f"{dataset.name} ({len(images)} images), {steps} timed steps after 2 warm-up steps")
    out(f"step FLOPs (backward = 2x forward): {flops / 1e9:.1f} GFLOP")

    classic = ClassicLoop(config, dataset.train_images, seed=0)
    d_before = [w.copy() for w in classic.discriminator.get_weights()]
    classic_times = time_steps(classic, steps)
    d_trains = any(not np.array_equal(a, w) for a, w in zip(d_before, classic.discriminator.get_weights()))

    generator, discriminator, harness_step = loop.build(config, dataset, seed=0)
    harness_times = time_steps(harness_step, steps)

    rows = (("classic loop (predict + 2 x train_on_batch)", classic_times), ("harness train step", harness_times))
    for label, times in rows:
        median = float(np.median(times))
        out(f"{label:<44} median {median * 1000:9.1f} ms/step  {b / median:8.0f} images/s  "
            f"{flops / median / 1e9:7.1f} GFLOP/s")
    out(f"classic loop's discriminator trained during timing: {'yes' if d_trains else 'NO'}")
    op_times = {}
    if profile:
        op_times = print_profile(harness_step, (generator, discriminator), steps, float(np.median(harness_times)),
                                 out)

    variant_times = {}
    if variants:
        base_median = float(np.median(harness_times))
        for name in sorted(registry.files()):
            experiment, variant = registry.resolve(name)
            for sweep_value in experiment.sweep_values():
                v = cfg.replace(variant, sweep_value) if sweep_value else variant
                v = cfg.replace(v, {k: v2 for k, v2 in _length_and_widths(config).items()})
                _, _, step = loop.build(v, dataset, seed=0)
                median = float(np.median(time_steps(step, steps)))
                label = registry.arm_label(name, sweep_value)
                variant_times[label] = median
                out(f"variant {label:<28} median {median * 1000:9.1f} ms/step  {median / base_median:5.2f} x base")

    evaluation = None
    if score:
        from metrics.scorer import Scorer
        scorer = Scorer(dataset, n_images=10_000, quiet=True)
        z = np.random.default_rng(0).standard_normal((10_000, config.model.latent_dim)).astype(np.float32)
        start = time.perf_counter()
        generated = loop.generated(harness_step, z, config.model.output_activation)
        generated_at = time.perf_counter()
        scorer.score(generated)
        evaluation = time.perf_counter() - start
        out(f"scoring 10,000 generated images: {evaluation:.1f} s "
            f"(generating {generated_at - start:.1f} s, metrics against the {dataset.name} reference): "
            f"{evaluation / float(np.median(harness_times)):.0f} harness steps")

    whole_run = bench_whole_run(config, run_steps, float(np.median(harness_times)), out) if run_steps else None
    timings = Timings(float(np.median(classic_times)), float(np.median(harness_times)), variant_times, evaluation,
                      whole_run, op_times)
    out(f"ratio={timings.ratio:.3f}")
    return timings


def print_profile(step_fn, networks, steps: int, wall_s: float, out=print) -> dict:
    """Per-layer forward/backward op time of the harness step, then the costliest op types; returns the
    op times printed (profile.Times: {(op name, op kind): ms a step})."""
    from harness import profile
    times = profile.op_times(step_fn, start=100, steps=steps, models=networks)
    total = sum(times.values())
    if not total:
        out("profile: the profiler recorded no ops of the step")
        return times
    overlap = " (ops on parallel threads overlap)" if total > 1.05 * wall_s * 1000 else ""
    out(f"profile of {steps} harness steps: {total:.0f} ms of op time per step against {wall_s * 1000:.0f} ms wall"
        + overlap)
    out(f"  {'layer':<36} {'forward ms':>10} {'backward ms':>11} {'total ms':>9} {'share':>6}")
    for layer, forward, backward in profile.by_layer(times):
        passes = f"{'':>10} {'':>11}" if layer == profile.NO_LAYER else f"{forward:10.1f} {backward:11.1f}"
        out(f"  {layer:<36} {passes} {forward + backward:9.1f} {(forward + backward) / total:6.1%}")
    kinds = profile.by_kind(times)[:8]
    out("  costliest op types: " + ", ".join(f"{kind} {ms:.0f} ms" for kind, ms in kinds))
    return times


def _length_and_widths(config: Config) -> dict:
    """What a bench --set changed that variants should share (widths, batch, backend switches)."""
    base = registry.resolve("base")[1]
    keep = ("model.g_filters", "model.d_filters", "train.batch_size", "train.jit_compile", "train.precision")
    return {k: v for k, v in cfg.flat(config).items() if k in keep and cfg.flat(base)[k] != v}
