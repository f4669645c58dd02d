"""The training loop of one run: steps, batched loss logging, evaluations, samples and checkpoints.

run() (harness/runner.py) opens the MLflow run and calls train(); train() calls the backend's step and
writes to each run's sink (harness/sink.py): an MLflow run, or a folder on a machine without MLflow.
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from harness import checkpoint, machine, models, plots, tracking
from harness.stop import Interrupted, StopFlag
from harness.config import Config, to_dict
from harness.data import Dataset, to_unit
from harness.step import steps_per_epoch
from metrics import collapse
from metrics.scorer import HEADLINE


@dataclass
class RunContext:
    """What the loop needs to log one run: its sink (harness/sink.py), its id, and where checkpoints go."""
    sink: object
    run_id: str  # names the member inside a population's checkpoint
    name: str
    on_eval: object = None  # callable(step, metrics) -> None; may raise (stop.Pruned)
    checkpoint_sink: object = None  # artifacts live on a server: each checkpoint is copied there too
    checkpoint_artifact: str = "checkpoint"  # its artifact folder (in the parent's, for a population)
    progress: object = None  # an overall bar over many runs (harness/plan.py), advanced with this run's steps
    identity: dict = field(default_factory=dict)  # harness/identity.py: saved in checkpoints, checked on resume


def total_steps(config: Config, n_train: int) -> int:
    return config.train.steps or config.train.epochs * steps_per_epoch(config, n_train)


def evaluations(config: Config, dataset: Dataset) -> tuple[int, float]:
    """(evaluations a run makes, their scoring cost in evaluations of the last one's size): those before
    the last may score fewer images (eval.interim_images)."""
    n_train = len(dataset.train_images)
    count = len(eval_steps(total_steps(config, n_train), steps_per_epoch(config, n_train),
                           config.eval.every_epochs, config.eval.min_evals))
    final = config.eval.n_images or len(dataset.test_images)
    return count, 1 + (count - 1) * (config.eval.interim_images or final) / final


def eval_steps(total: int, steps_per_epoch: int, every_epochs: int, min_evals: int) -> list[int]:
    """Completed-step counts after which to evaluate: every `every_epochs` epochs, or `min_evals` evenly
    spaced times when the run is too short for that; always at the end."""
    every = every_epochs * steps_per_epoch
    steps = list(range(every, total + 1, every))
    if len(steps) < min_evals:
        steps = [max(1, round(total * i / min_evals)) for i in range(1, min_evals + 1)]
    return sorted(set(steps) | {total})


def make_step(config: Config, generator, discriminator, images: np.ndarray, seed: int):
    """The backend's train step over the same models and data."""
    t = config.train
    g_optimizer = keras.optimizers.Adam(t.lr_g, beta_1=t.beta_1)
    d_optimizer = keras.optimizers.Adam(t.lr_d, beta_1=t.beta_1)
    if keras.backend.backend() == "jax":  # JAX runs op by op without jit: always compile unless told not to
        from harness.step_jax import JaxStep
        jit = t.jit_compile is not False
        return JaxStep(generator, discriminator, g_optimizer, d_optimizer, images, config, seed, jit)
    jit = t.jit_compile if t.jit_compile is not None else machine.gpu_available()
    from harness.step_tf import TensorFlowStep
    return TensorFlowStep(generator, discriminator, g_optimizer, d_optimizer, images, config, seed, jit)


def build(config: Config, dataset: Dataset, seed: int, fast_kernels: bool = True):
    """(generator, discriminator, step) for a seed; same seed, same initial weights and draws."""
    keras.utils.set_random_seed(seed)
    generator = models.build_generator(config.model, config.train.precision, fast_kernels)
    discriminator = models.build_discriminator(config.model, config.train.precision, fast_kernels)
    low, high = models.pixel_range(config.model.output_activation)
    images = to_unit(dataset.train_images) * (high - low) + low  # the data pipeline's one scaling
    return generator, discriminator, make_step(config, generator, discriminator, images, seed)


def to_unit_range(images: np.ndarray, output_activation: str) -> np.ndarray:
    """Generator output -> float32 (N, 28, 28, 1) in [0, 1], whatever the activation."""
    low, high = models.pixel_range(output_activation)
    return np.clip((images - low) / (high - low), 0.0, 1.0).astype(np.float32)


def generated(step_fn, latents: np.ndarray, output_activation: str, member: int = 0, chunk: int = 1000) -> np.ndarray:
    """A member's images for latent points (N, latent_dim), made `chunk` at a time (memory stays flat at
    any N), as float32 (N, 28, 28, 1) in [0, 1]: what the metrics score."""
    return to_unit_range(np.concatenate([step_fn.generate(latents[i:i + chunk], member)
                                         for i in range(0, len(latents), chunk)]), output_activation)


@dataclass
class Member:
    """One seed's run in a training loop: alone, or one member of a population (harness/step_population.py)."""
    seed: int
    ctx: RunContext
    diverged: str = ""  # why its loss became non-finite; from then on it stops updating and logging
    rows: list = field(default_factory=list)  # loss rows not yet sent: the sink gets them in batches of ~1,000
    # What the loop has made of the run so far (a checkpoint saves it; MemberResult returns it):
    history: dict = field(default_factory=lambda: {"d_loss": [], "g_loss": [], "d_acc_real": [], "d_acc_fake": []})
    evals: list = field(default_factory=list)  # [(step, metrics)]
    collapsed_since: int | None = None  # first evaluation step of the current collapsed stretch

    def send_rows(self) -> None:
        if self.rows:
            self.ctx.sink.metrics(self.rows)
        self.rows.clear()

    def log_chunk(self, first: int, values: dict) -> None:
        """A chunk's outputs, each (count,): check them, keep them, queue them for the sink; a non-finite
        value ends the member's logging there (the good steps before it are kept)."""
        for i in range(len(next(iter(values.values())))):
            step = first + i + 1  # metrics are logged at the count of completed steps
            for key, column in values.items():
                if not math.isfinite(column[i]):
                    self.diverged = f"{key} became {column[i]} at step {step}"
                    self.send_rows()
                    return
                self.history[key].append((step, float(column[i])))
                self.rows.append((f"train/{key}", float(column[i]), step))
        if len(self.rows) >= 1000:
            self.send_rows()


def build_population(config: Config, dataset: Dataset, seeds: list[int]):
    """(generator, discriminator, PopulationStep): each member built as its solo seed would be."""
    from harness.step_population import PopulationStep
    built = [build(config, dataset, seed) for seed in seeds]
    return built[0][0], built[0][1], PopulationStep([step for _, _, step in built])


@dataclass
class MemberResult:
    """What training made of one member: the loop's answer to runner.run_members."""
    seed: int
    run_id: str
    evals: list  # [(step, metrics)], the last one at the final step unless it diverged
    history: dict  # loss name -> [(step, value)]
    collapsed_since: int | None  # first evaluation step of the collapsed stretch it ended in; None if not
    diverged: str  # why its loss became non-finite; "" when it trained to the end


def train(config: Config, dataset: Dataset, members: list[Member], scorer, checkpoint_dir: Path,
          resume_from: Path | None = None, stop: StopFlag | None = None, population: bool = False,
          check_claim=None) -> list[MemberResult]:
    """Train one seed, or (population, JAX) several seeds of one config as one compiled program; returns
    one MemberResult per member. A member whose loss becomes non-finite stops there (the others go on).
    Raises Interrupted on a signal, after a checkpoint; re-raises what an on_eval callback raises.
    check_claim(): raises (claims.Lost) when another worker took the members' seeds over; called before
    each chunk and each checkpoint, so that nothing more is written to runs that are no longer ours."""
    if population:
        generator, discriminator, step_fn = build_population(config, dataset, [m.seed for m in members])
    else:
        generator, discriminator, step_fn = build(config, dataset, members[0].seed)
    n_train = len(dataset.train_images)
    per_epoch = steps_per_epoch(config, n_train)
    total = total_steps(config, n_train)
    evals = eval_steps(total, per_epoch, config.eval.every_epochs, config.eval.min_evals)
    # Evaluations before the last may score fewer images (a cheaper curve); the last scores eval.n_images.
    interim = scorer.resized(config.eval.interim_images) if config.eval.interim_images else scorer
    latents = _latents(config, members, max(scorer.n_images, interim.n_images))
    log_every = config.train.log_every_steps
    print_every = config.train.print_every_steps or max(1, total // 10)
    print_every = math.ceil(print_every / log_every) * log_every  # print values already fetched

    start = 0 if resume_from is None else _resume(config, step_fn, resume_from, members, interim.floor, population)
    if population:
        step_fn.set_alive([not m.diverged for m in members])

    def save_checkpoint(step: int) -> None:
        if check_claim is not None:
            check_claim()
        _save_checkpoint(config, step_fn, members, checkpoint_dir, step, population)

    # Chunks end at every log interval and evaluation: the step runs a chunk in one call (one dispatch
    # under JAX), and NaN is caught, and Ctrl-C honoured, at the end of each.
    boundaries = sorted(set(range(log_every, total + 1, log_every)) | set(evals) | {total})
    name = members[0].ctx.name if len(members) == 1 else f"{members[0].ctx.name} +{len(members) - 1}"
    progress = members[0].ctx.progress
    bar = tqdm(total=total, initial=start, desc=name, unit="step", file=sys.stderr, dynamic_ncols=True,
               mininterval=1.0, smoothing=0.1, position=1 if progress is not None else 0, leave=progress is None)
    step = start
    beat = 0.0  # when the members' runs last said they are alive (tracking.heartbeat_tags)
    # Evaluations are 10 epochs apart by default (16-60 min at full width on 2 CPU cores): a checkpoint
    # every train.checkpoint_minutes between them bounds what a killed process (SIGKILL, a lost machine) loses.
    every_s, saved = config.train.checkpoint_minutes * 60.0, time.monotonic()
    try:
        while step < total and not all(m.diverged for m in members):
            if check_claim is not None:
                check_claim()
            beat = _heartbeat(members, step, beat)
            _stop_on_signal(stop, members, step, save_checkpoint)
            chunk = next(b for b in boundaries if b > step) - step
            outputs = step_fn.many(step, chunk)
            if check_claim is not None:  # a chunk computed while the seeds were taken over is dropped, unsent
                check_claim()
            _log_outputs(members, step, outputs, bar, population)
            step += chunk
            bar.update(chunk)
            if progress is not None:
                progress.update(chunk * len(members))
            alive = [m for m in members if not m.diverged]
            if not alive:
                break
            _show(alive, step, total, per_epoch, bar, step % print_every == 0 or step == total)
            if step in evals:
                _evaluate_members(config, members, scorer if step == total else interim, step_fn, step, latents)
                save_checkpoint(step)
                saved = time.monotonic()
                beat = 0.0  # evaluations take long: say alive at the next chunk
                _after_evaluation(alive, step)
            elif every_s and time.monotonic() - saved >= every_s:
                for m in alive:  # the store holds every loss the checkpoint does
                    m.send_rows()
                save_checkpoint(step)
                saved = time.monotonic()
    finally:
        bar.close()
    if check_claim is not None:
        check_claim()
    for i, m in enumerate(members):
        if not m.diverged:
            _save_generator(step_fn, generator, m, i)
    return [MemberResult(m.seed, m.ctx.run_id, list(m.evals), {k: list(v) for k, v in m.history.items()},
                         m.collapsed_since, m.diverged) for m in members]


def _latents(config: Config, members: list[Member], n_scored: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per member, fixed for the whole run: 25 latent points for its sample grids (the same faces at every
    evaluation) and n_scored points for the images scored, (n, latent_dim) float32 each."""
    out = []
    for m in members:
        rng = np.random.default_rng(m.seed)  # rows drawn in order: a smaller N scores the first rows of a larger
        out.append((rng.standard_normal((25, config.model.latent_dim)).astype(np.float32),
                    rng.standard_normal((n_scored, config.model.latent_dim)).astype(np.float32)))
    return out


def _heartbeat(members: list[Member], step: int, last: float) -> float:
    """Tag each training member's run alive at this step (compare and resume read it) when the last
    beat (time.monotonic(), 0 for none) is tracking.HEARTBEAT_S old; returns when the members last beat."""
    if time.monotonic() - last < tracking.HEARTBEAT_S:
        return last
    for m in members:
        if not m.diverged:
            m.ctx.sink.tags(tracking.heartbeat_tags(step))
    return time.monotonic()


def _stop_on_signal(stop: StopFlag | None, members: list[Member], step: int, save_checkpoint) -> None:
    """After Ctrl-C or SIGTERM (stop.signal): send the losses held, checkpoint at this step, and raise
    Interrupted, which the runner turns into a KILLED run that --resume continues."""
    if stop is None or stop.signal is None:
        return
    for m in members:
        m.send_rows()
    save_checkpoint(step)
    raise Interrupted(f"stopped by signal {stop.signal} at step {step}; checkpoint saved")


def _after_evaluation(alive: list[Member], step: int) -> None:
    """Each live member's on_eval callback with its newest metrics, after its checkpoint is written: a
    search's pruner may raise here to stop the trial."""
    for m in alive:
        if m.ctx.on_eval is not None:
            m.ctx.on_eval(step, m.evals[-1][1])


def _log_outputs(members: list[Member], step: int, outputs: dict, bar, population: bool) -> None:
    """A chunk's outputs (name -> (members x chunk) values) into each live member's log; say a divergence."""
    outs = {k: np.asarray(v, dtype=np.float64).reshape(len(members), -1) for k, v in outputs.items()}
    for i, m in enumerate(members):
        if not m.diverged:
            m.log_chunk(step, {k: v[i] for k, v in outs.items()})
            if m.diverged:
                bar.write(f"{m.ctx.name} diverged: {m.diverged}"
                          + ("; the other members go on." if population else "."), file=sys.stderr)


def _show(alive: list[Member], step: int, total: int, steps_per_epoch: int, bar, print_line: bool) -> None:
    """The bar's last losses, and at print steps a line per member with every loss."""
    history = alive[0].history
    bar.set_postfix(d_loss=f"{history['d_loss'][-1][1]:.3f}", g_loss=f"{history['g_loss'][-1][1]:.3f}",
                    refresh=False)
    if print_line:
        for m in alive:
            last = {k: v[-1][1] for k, v in m.history.items() if v}
            bar.write(f"{m.ctx.name} step {step}/{total} epoch {step / steps_per_epoch:.1f}: "
                      + " ".join(f"{k} {v:.3f}" for k, v in last.items()), file=sys.stderr)


def _evaluate_members(config: Config, members: list[Member], scorer, step_fn, step: int, latents: list) -> None:
    """Each live member's losses sent, then its images scored and logged at this step (evaluate), and the
    evaluation and its collapse verdict kept in the member."""
    for i, m in enumerate(members):
        if not m.diverged:
            m.send_rows()
            metrics, m.collapsed_since = evaluate(config, m.ctx, scorer, step_fn, step, *latents[i], i, history=m.history,
                                                  earlier=m.evals, collapsed_since=m.collapsed_since)
            m.evals.append((step, metrics))


def _save_checkpoint(config: Config, step_fn, members: list[Member], folder: Path, step: int,
                     population: bool) -> None:
    """The step's state and each member's history and evaluations, in folder (and on the server too)."""
    meta = {"config": to_dict(config), "identity": members[0].ctx.identity}
    if population:
        meta["members"] = [{"run_id": m.ctx.run_id, "seed": m.seed, "history": m.history,
                            "evals": m.evals, "diverged": m.diverged} for m in members]
    else:
        step_fn.sync_models()
        meta.update(history=members[0].history, evals=members[0].evals)
    path = checkpoint.save(folder, step, step_fn.state(), meta)
    ctx = members[0].ctx
    if ctx.checkpoint_sink is not None:  # artifacts on a server: the population's file goes with its first member
        ctx.checkpoint_sink.artifact(path, ctx.checkpoint_artifact)


def _save_generator(step_fn, generator, member: Member, index: int) -> None:
    """The member's trained generator, as a stock Keras model, into its run (model/generator.keras)."""
    step_fn.sync_models(member=index)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generator.keras"
        models.stock_copy(generator).save(path)
        member.ctx.sink.artifact(path, "model")


def _resume(config: Config, step_fn, path: Path, members: list[Member], floor: dict, population: bool) -> int:
    """Load a checkpoint into the step and the members; returns its step. A population's checkpoint
    holds every member (arrays (K, ...)); a member alone takes its own slice of it."""
    start, arrays, meta = checkpoint.load(path)
    if "members" in meta:
        saved = {info["run_id"]: (i, info) for i, info in enumerate(meta["members"])}
        if population:
            step_fn.set_state(arrays)
        else:
            step_fn.set_state([a[saved[members[0].ctx.run_id][0]] for a in arrays])
        for m in members:
            info = saved[m.ctx.run_id][1]
            m.history.update(info["history"])
            m.evals[:] = [(s, e) for s, e in info["evals"]]
            m.diverged = info.get("diverged", "")
    else:
        step_fn.set_state(arrays)
        members[0].history.update(meta.get("history", {}))
        members[0].evals[:] = [(s, e) for s, e in meta.get("evals", [])]
    for m in members:
        for s, e in m.evals:  # the collapsed stretch the run was in when it stopped
            m.collapsed_since = (m.collapsed_since or s) if _collapse_reason(config, e, floor) else None
        print(f"resumed {m.ctx.name} at step {start}" + (f" (diverged: {m.diverged}; stays frozen)" if m.diverged else ""),
              file=sys.stderr)
        if not m.diverged:
            m.ctx.sink.tags({"resumed.step": start})  # the checkpoint it continued from (its latest resume's)
    return start


def evaluate(config: Config, ctx: RunContext, scorer, step_fn, step: int, grid_latents: np.ndarray,
             score_latents: np.ndarray, member: int, *, history: dict, earlier: list,
             collapsed_since: int | None) -> tuple[dict, int | None]:
    """Score a member's generated images, log the metrics and figures at this step, and judge collapse;
    returns (metrics, the first step of the collapsed stretch this evaluation is in, None if not).
    history: its losses so far (for the loss plot); earlier: its evaluations before this one [(step,
    metrics)]; collapsed_since: the collapsed stretch it was in before this evaluation."""
    activation = config.model.output_activation
    started = time.time()
    score_latents = score_latents[:scorer.n_images]
    images = generated(step_fn, score_latents, activation, member)
    metrics = scorer.score(images)
    metrics["eval_seconds"] = time.time() - started
    ctx.sink.metrics([(f"eval/{k}", v, step) for k, v in metrics.items()])
    floor = scorer.floor
    tqdm.write(f"{ctx.name} eval at step {step}: " + "  ".join(
        f"{k} {metrics[k]:.4g} (real {floor[k]:.4g})" for k in HEADLINE),
        file=sys.stderr)

    since = judge_collapse(config, ctx, floor, step, metrics, collapsed_since)
    grid = to_unit_range(step_fn.generate(grid_latents, member), activation)
    for fig, name in ((plots.sample_grid(grid, f"{ctx.name} step {step}"), f"samples/step_{step:07d}.png"),
                      (plots.loss_curves(history, ctx.name), "plots/losses.png"),
                      (plots.metric_curves([*earlier, (step, metrics)], floor, ctx.name), "plots/metrics.png")):
        ctx.sink.figure(fig, name)
        plots.close(fig)
    return metrics, since


def _collapse_reason(config: Config, metrics: dict, floor: dict) -> str:
    return collapse.judge(metrics, floor, config.eval.collapse_modes, config.eval.collapse_recall)


def judge_collapse(config: Config, ctx: RunContext, floor: dict, step: int, metrics: dict,
                   collapsed_since: int | None = None) -> int | None:
    """Tag the run collapsed (or recovered) from this evaluation's samples, saying so once when it starts;
    returns the first step of the collapsed stretch this evaluation is in (None: not collapsed).
    collapsed_since: the stretch the run was in before this evaluation (None: none)."""
    reason = _collapse_reason(config, metrics, floor)
    if not reason:
        if collapsed_since is not None:
            tqdm.write(f"{ctx.name}: recovered at step {step} (collapsed since step {collapsed_since}).",
                       file=sys.stderr)
        ctx.sink.tags({"collapse": "false"})
        return None
    since = step if collapsed_since is None else collapsed_since
    if collapsed_since is None:
        tqdm.write(f"warning: {ctx.name} collapsed at step {step}: {reason}; {collapse.describe(metrics)}.",
                   file=sys.stderr)
    ctx.sink.tags({"collapse": "true", "collapse.since": since, "collapse.reason": reason,
                   "collapse.samples": collapse.describe(metrics)})
    return since
