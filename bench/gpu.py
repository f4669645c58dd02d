"""GPU measurements for docs/performance.md, in priority order, so a run cut short still yields the first:

  (a) the full-width base at batch 256 under the JAX backend, the classic Keras loop beside it
      (harness bench), plus the step run k at a time in one dispatch (lax.scan);
  (b) the full recipe's length, 23,400 steps (100 epochs of the 60,000-image set), on the mnist-5k
      digits, scored every 2,340 steps (the recipe's "every 10 epochs" of that set) and at the end;
  (c) mixed precision (bfloat16): step time and final FID against float32 after the same steps;
  (d) run right after (a), being quick: `harness bench --profile`'s table of device time per layer;
  (e) also quick: the step with G's upsampling as four phase convolutions against XLA's transposed one.

A GPU machine with JAX may lack MLflow, so this script drives the harness's own train step and metric
family directly and writes JSON; the numbers are the same code paths `harness run` uses.
Usage: KERAS_BACKEND=jax python bench/gpu.py OUT_DIR [--quick]   (--quick: tiny, for a CPU check)
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import harness  # noqa: E402,F401
from harness import bench, loop, plan, registry  # noqa: E402
from harness import data  # noqa: E402


def log(out: Path, record: dict) -> None:
    """Append one result and print it: whatever finished survives a timeout."""
    print(json.dumps(record), flush=True)
    with open(out / "gpu_results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def sync(outs: dict) -> None:
    np.asarray(next(iter(outs.values())))


def time_chunks(step, chunk: int, total: int) -> float:
    """Seconds per step when `chunk` steps run per dispatch, after one untimed chunk (compilation)."""
    sync(step.many(0, chunk))
    start = time.perf_counter()
    done = chunk
    while done < chunk + total:
        sync(step.many(done, chunk))
        done += chunk
    return (time.perf_counter() - start) / (done - chunk)


def train_and_score(config, dataset, scorer, steps: int, eval_every: int, chunk: int) -> dict:
    """The run loop's work without MLflow: train in chunks, score at every eval point and at the end."""
    _, _, step = loop.build(config, dataset, seed=0)
    z = np.random.default_rng(0).standard_normal((scorer.n_images, config.model.latent_dim)).astype(np.float32)
    evals, train_seconds, eval_seconds = [], 0.0, 0.0
    done = 0
    sync(step.many(0, chunk))  # compile outside the clock; the weights moved by one chunk, counted below
    done = chunk
    while done < steps:
        n = min(chunk, steps - done, eval_every - done % eval_every)
        start = time.perf_counter()
        outs = step.many(done, n)
        sync(outs)
        train_seconds += time.perf_counter() - start
        done += n
        losses = {k: float(np.asarray(v)[-1]) for k, v in outs.items()}
        if not all(np.isfinite(list(losses.values()))):
            return {"diverged_at": done, "losses": losses}
        if done % eval_every == 0 or done == steps:
            start = time.perf_counter()
            images = loop.generated(step, z, config.model.output_activation)
            metrics = scorer.score(images)
            eval_seconds += time.perf_counter() - start
            evals.append({"step": done, **{k: round(v, 4) for k, v in metrics.items()}, **losses})
            print(f"  step {done}: fid {metrics['fid']:.2f} is {metrics['is']:.2f} modes {metrics['modes']:.0f}",
                  flush=True)
    return {"steps": steps, "train_seconds": train_seconds, "eval_seconds": eval_seconds,
            "ms_per_step": 1000 * train_seconds / (steps - chunk), "evals": evals, "final": evals[-1]}


def main(out: Path, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    import jax
    import keras
    sets = ["model.g_filters=8", "model.d_filters=4", "train.batch_size=32"] if quick else []
    _, config = registry.resolve("base", sets=sets)
    dataset = data.for_config(config)
    log(out, {"device": str(jax.devices()[0].device_kind), "backend": keras.backend.backend(),
              "jax": jax.__version__, "keras": keras.__version__, "dataset": dataset.name})

    # (a) harness bench under JAX: classic loop and harness step, one process, medians of 50 steps.
    lines: list[str] = []
    started = time.perf_counter()
    timings = bench.bench(config, steps=5 if quick else 50, variants=False, score=not quick,
                          out=lambda s: (print(s, flush=True), lines.append(s)))
    log(out, {"item": "a", "bench": lines, "ratio": timings.ratio, "classic_s": timings.classic,
              "harness_s": timings.harness, "scoring_s": timings.scoring, "seconds": time.perf_counter() - started})
    generator, discriminator, step = loop.build(config, dataset, seed=0)
    try:  # (d), cheap and the next thing needed toward 3 ms: device time per layer and pass
        lines = []
        wall = float(np.median(plan.time_steps(step, 5 if quick else 50)))  # compiles it, too
        times = bench.print_profile(step, (generator, discriminator), 5 if quick else 20, wall,
                                    out=lambda s: (print(s, flush=True), lines.append(s)))
        # JSON keys are strings: each op as "name (kind)", ms a step
        log(out, {"item": "d", "profile": lines,
                  "op_ms": {f"{name} ({kind})": round(ms, 4) for (name, kind), ms in times.items()}})
    except Exception as e:  # a profiler problem must not cost the items below
        log(out, {"item": "d", "error": repr(e)})
    try:  # (e) G's upsampling as four phase convolutions (JAX's CPU form) against XLA's own, on this device
        from harness.kernels.phase_conv_transpose import PhaseConv2DTranspose
        by_form = {}
        for form, phases in (("stock", False), ("phases", True)):
            PhaseConv2DTranspose.use_phases = phases
            by_form[form] = 1000 * time_chunks(loop.build(config, dataset, seed=0)[2], 10, 20 if quick else 500)
        log(out, {"item": "e", "ms_per_step_by_upsampling_form": by_form})
    except Exception as e:
        log(out, {"item": "e", "error": repr(e)})
    finally:
        PhaseConv2DTranspose.use_phases = None
    chunks = {}
    for chunk in (1, 10, 100):
        chunks[chunk] = 1000 * time_chunks(step, chunk, 20 if quick else 1000)
    log(out, {"item": "a", "ms_per_step_by_steps_per_dispatch": chunks})

    # (b) the full recipe's length on mnist-5k, with evaluation.
    from metrics.scorer import Scorer
    started = time.perf_counter()
    scorer = Scorer(dataset)
    log(out, {"item": "b", "classifier_accuracy": scorer.classifier_info["accuracy"],
              "classifier_seconds": time.perf_counter() - started, "floor": scorer.floor})
    steps, eval_every = (60, 20) if quick else (23_400, 2_340)
    started = time.perf_counter()
    result = train_and_score(config, dataset, scorer, steps, eval_every, chunk=10 if quick else 100)
    log(out, {"item": "b", "wall_seconds": time.perf_counter() - started, **result})

    # (c) bfloat16 against float32: speed, and FID after the same number of steps.
    steps = 40 if quick else 4_680  # 20 epochs of the 60,000-image set
    for precision in ("float32", "mixed_bfloat16"):
        _, c = registry.resolve("base", sets=sets + [f"train.precision={precision}"])
        started = time.perf_counter()
        result = train_and_score(c, dataset, scorer, steps, steps, chunk=10 if quick else 100)
        log(out, {"item": "c", "precision": precision, "wall_seconds": time.perf_counter() - started, **result})


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--quick" in sys.argv)
