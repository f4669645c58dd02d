"""Where a train step spends its time, per layer and pass, from the backend's own profiler.

Both profilers write an XSpace protobuf of timed events. TensorFlow names each op event
"<op name>:<op type>", where the op name carries model and layer ("generator_3/up2_1/conv_transpose")
and "gradient_tape/" marks the backward pass. XLA (JAX) names each event by its HLO instruction
("fusion.12"); the compiled HLO maps that to the op_name JAX traced ("jit(train_step)/transpose(jvp(up2))/...",
transpose(...) being the backward pass). Both are brought to "[gradient_tape/]<model>/<layer>/<op>".
Ops that run side by side overlap (TensorFlow's two executor threads), so the summed op time can exceed
the wall time; on a GPU the sum is the device's busy time, and wall minus busy is launch overhead.
"""
from __future__ import annotations

import collections
import glob
import re
import tempfile

Times = dict[tuple[str, str], float]  # {(op name, op kind): ms per step}
NO_LAYER = "no layer in XLA's metadata"


def op_times(step_fn, start: int, steps: int, models) -> Times:
    """Profile steps start .. start+steps-1 of a compiled step; `models` gives the layer names."""
    import keras
    layers = {layer.name: model.name for model in models for layer in model.layers
              if not isinstance(layer, keras.layers.InputLayer)}  # D's input is also called "image"
    if keras.backend.backend() == "jax":
        return _jax_op_times(step_fn, start, steps, layers)
    return _tensorflow_op_times(step_fn, start, steps)


def _events(logdir: str):
    """(plane name, line name, event name, {stat: value}, duration ms) of the trace's xplane file."""
    from jax.profiler import ProfileData
    path = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            for event in line.events:
                yield plane.name, line.name, event.name, dict(event.stats), event.duration_ns / 1e6


def _tensorflow_op_times(step_fn, start: int, steps: int) -> Times:
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
    times: Times = collections.Counter()
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


def _hlo_text(step_fn) -> str:
    """The compiled HLO of one JaxStep step, compiled as the step compiles it (the same fusion names);
    each instruction's op_name carries its layer."""
    import jax
    import jax.numpy as jnp
    return jax.jit(step_fn.train_step, donate_argnums=0).lower(
        step_fn.live, step_fn.images, jnp.asarray(0, jnp.int32)).compile().as_text()


def _jax_op_times(step_fn, start: int, steps: int, layers: dict[str, str]) -> Times:
    import jax
    import numpy as np

    op_names = _hlo_op_names(_hlo_text(step_fn))
    with tempfile.TemporaryDirectory() as logdir:
        jax.profiler.start_trace(logdir)
        try:
            for i in range(start, start + steps):
                np.asarray(step_fn(i)["d_loss"])  # wait for the step to finish
        finally:
            jax.profiler.stop_trace()
        events = list(_events(logdir))
    ours = [(plane, stats, ms) for plane, _, _, stats, ms in events
            if stats.get("hlo_op") and "train_step" in str(stats.get("hlo_module", ""))]
    if any(plane.startswith("/device:") for plane, _, _ in ours):  # a GPU: its kernels, not the host's launches
        ours = [event for event in ours if event[0].startswith("/device:")]
    times: Times = collections.Counter()
    for _, stats, ms in ours:
        hlo_op = str(stats["hlo_op"])
        times[(_jax_op_name(op_names.get(hlo_op, ""), hlo_op, layers), re.sub(r"\.\d+$", "", hlo_op))] += ms / steps
    return dict(times)


def _hlo_op_names(hlo: str) -> dict[str, str]:
    """HLO instruction -> the op_name JAX traced ("" where XLA kept none, as for the rewritten weight
    gradients of transposed convolutions: those are reported as having no layer)."""
    names = {}
    for name, rest in re.findall(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*)$", hlo, flags=re.MULTILINE):
        found = re.search(r'op_name="([^"]+)"', rest)
        names[name] = found.group(1) if found else ""
    return names


def _jax_op_name(op_name: str, hlo_op: str, layers: dict[str, str]) -> str:
    """'jit(train_step)/transpose(jvp(up2))/rev' -> 'gradient_tape/generator/up2/<hlo_op>'."""
    for part in op_name.split("/"):
        layer = re.sub(r"^(?:transpose\()?(?:jvp\()?([\w.]*)\)*$", r"\1", part)
        if layer in layers:
            return f"{'gradient_tape/' if part.startswith('transpose(') else ''}{layers[layer]}/{layer}/{hlo_op}"
    return f"{NO_LAYER}/{hlo_op}" if not op_name else hlo_op


def by_layer(times: Times) -> list[tuple[str, float, float]]:
    """[(model/layer, forward ms, backward ms)] per step, the most expensive layer first."""
    table: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for (op, _), ms in times.items():
        backward = op.startswith("gradient_tape/")
        parts = op.removeprefix("gradient_tape/").split("/")
        model, layer = (re.sub(r"_\d+$", "", part) for part in (parts + [""])[:2])  # "up2_1" -> "up2"
        if model in ("generator", "discriminator") and len(parts) > 2:
            layer = f"{model}/{layer}"
        else:
            layer = NO_LAYER if parts[0] == NO_LAYER else "other (data, losses, optimizers)"
        table[layer][backward] += ms
    return sorted(((k, f, b) for k, (f, b) in table.items()), key=lambda row: -(row[1] + row[2]))


def by_kind(times: Times) -> list[tuple[str, float]]:
    """[(op type, ms per step)], the most expensive first."""
    kinds: dict[str, float] = collections.Counter()
    for (_, kind), ms in times.items():
        kinds[kind] += ms
    return sorted(kinds.items(), key=lambda kv: -kv[1])
