"""Where a TensorFlow train step spends its time: per layer and pass, from TensorFlow's own profiler.

The profiler writes an XSpace protobuf; each TensorFlow op is an event named "<op name>:<op type>"
on an executor thread. Op names carry the model and layer ("generator_3/up2_1/conv_transpose") and
"gradient_tape/" marks the backward pass. Durations of ops that run side by side on the two executor
threads overlap, so the summed op time can exceed the wall time; shares are of the summed time.
"""
from __future__ import annotations

import collections
import glob
import re
import tempfile


def op_times(step_fn, start: int, steps: int) -> dict[tuple[str, str], float]:
    """{(op name, op type): ms per step} for steps start .. start+steps-1 of a TensorFlow step."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for i in range(start, start + steps):
                float(step_fn(i)["d_loss"])  # wait for the step to finish
        finally:
            tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    times: dict[tuple[str, str], float] = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # executor threads; the others are Python and Eigen's pool
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:  # "<op name>:<op type>"; not the executor's own events
                    op, kind = name.rsplit(":", 1)
                    times[(op, kind)] += event.duration_ps / 1e9 / steps  # picoseconds -> ms per step
    return dict(times)


def by_layer(times: dict[tuple[str, str], float]) -> list[tuple[str, float, float]]:
    """[(model/layer, forward ms, backward ms)] per step, the most expensive layer first."""
    table: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for (op, _), ms in times.items():
        backward = op.startswith("gradient_tape/")
        parts = op.removeprefix("gradient_tape/").split("/")
        model, layer = (re.sub(r"_\d+$", "", part) for part in (parts + [""])[:2])  # "up2_1" -> "up2"
        layer = f"{model}/{layer}" if model in ("generator", "discriminator") and len(parts) > 2 \
            else "other (data, losses, optimizers)"
        table[layer][backward] += ms
    return sorted(((k, f, b) for k, (f, b) in table.items()), key=lambda row: -(row[1] + row[2]))


def by_kind(times: dict[tuple[str, str], float]) -> list[tuple[str, float]]:
    """[(op type, ms per step)], the most expensive first."""
    kinds: dict[str, float] = collections.Counter()
    for (_, kind), ms in times.items():
        kinds[kind] += ms
    return sorted(kinds.items(), key=lambda kv: -kv[1])
