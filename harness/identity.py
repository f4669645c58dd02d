"""Run identity: what must be equal for two runs to count as the same experiment, in one place.

Two runs of one seed are the same run, and runs of several seeds may be pooled into one arm, only when
all of these are equal:
- the config keys that change what a run computes, written as the keys that differ from their defaults
  in harness/config.py (so adding a key at a default that reproduces the old behaviour changes no
  identity; a new default that changes behaviour bumps NUMERICS_VERSION instead);
- the data actually used, as a content fingerprint of its training and reference arrays (not its name
  or path: a fallback to mnist-5k and an explicit mnist-5k are the same data);
- the Keras backend (TensorFlow and JAX draw different random streams) and the device platform;
- the precision policy;
- NUMERICS_VERSION, bumped by any change to what a training step computes, and METRICS_VERSION,
  bumped by any change to scoring;
- the metric classifier, as the digest of its weight arrays: runs scored by different classifiers are
  kept apart (one tracking store shares one classifier: harness/tracking.py ClassifierShare).
Library versions are tags, shown in reports, never identity. Runs made before identities were
recorded carry no `identity` tag: they are "identity v1", listed and left out by `compare`.
"""
from __future__ import annotations

import hashlib
import json

import metrics
from harness import config as cfg
from harness import machine
from harness.config import Config

SCHEMA = 2  # v1: the old config hash (whole config + dataset name); v2: this module
NUMERICS_VERSION = 3  # v3: real images drawn with replacement; BatchNorm with the seed's (classic) semantics
# v2: identity v2 itself; the train step computed what v1's did
# How steps are dispatched is not numerics: since v3's golden fingerprints were made (tests/golden_step.py),
# JAX on CPUs runs a chunk as single jitted steps instead of one lax.scan (step_jax.py). The same function,
# compiled apart, rounds differently: base's JAX fingerprint moved 3e-8 (relative L1), batchnorm's 2e-5,
# inside the test's tolerance.
METRICS_VERSION = metrics.VERSION  # bumped by any change to scoring; its history is in metrics/__init__.py

# Numerics versions whose train step, with LEGACY values for the keys they lack, computes what this
# version's step computes: their interrupted runs may be resumed by this code.
SAME_STEP = (1, 2, 3)

# Keys that never change what a run computes: the seed is matched on its own, the rest is logging,
# the search space, when checkpoints are written (a resume continues exactly), the collapse judgement
# (made again from the final metrics by every reader), when evaluations happen and how many images the
# ones before the last score (the final one is at the end, at eval.n_images, either way; evaluation
# draws its own latents, never the training stream), and population training (its members agree with
# their solo runs to round-off).
NOT_IDENTITY = ("train.seed", "train.seeds", "train.print_every_steps", "train.log_every_steps",
                "train.checkpoint_minutes", "eval.collapse_modes", "eval.collapse_recall", "eval.every_epochs", "eval.min_evals",
                "eval.interim_images", "train.population")  # a population member is its solo run (test_population.py)
# Keys that only choose the data: the content fingerprint stands for them.
DATA_KEYS = ("data.name", "data.path", "data.split_seed")
# Keys added after identity v1, with the value that reproduces v1's behaviour: a v1 checkpoint that
# lacks them reads them so. A key whose default already reproduces v1 needs no entry.
LEGACY = {"data.sampling": "epoch_shuffle", "model.batchnorm_mode": "train"}

def _counts(key: str) -> bool:
    return not (key in NOT_IDENTITY or key in DATA_KEYS or key.startswith(("search.", "compare.")))


def _idle(flat: dict) -> set:
    """Keys that another key's value makes idle: BatchNorm's mode without BatchNorm, epochs when steps is set."""
    return ({"model.batchnorm_mode"} if not flat["model.batchnorm"] else set()) | \
        ({"train.epochs"} if flat["train.steps"] is not None else set())


def config_part(config: Config) -> dict:
    """Dotted key -> value for the keys that change a run and differ from their defaults."""
    defaults, flat = cfg.flat(Config()), cfg.flat(config)
    idle = _idle(flat)
    return {k: v for k, v in sorted(flat.items()) if _counts(k) and k not in idle and v != defaults[k]}


def of(config: Config, data_fingerprint: str, backend: str | None = None, device: str | None = None, *,
       classifier: str) -> dict:
    """The identity of a run of this config on this data, scored by the classifier whose weights have
    this digest, here (or on the backend and platform given)."""
    import keras
    return {"schema": SCHEMA, "config": config_part(config), "data": data_fingerprint,
            "backend": backend or keras.backend.backend(), "platform": device or machine.platform(),
            "precision": config.train.precision, "numerics": NUMERICS_VERSION, "metrics": METRICS_VERSION,
            "classifier": classifier}


def digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def tags(identity: dict) -> dict:
    """MLflow tags of a run: the digest that compare matches on, and each part, for people and reports."""
    return {"identity": digest(identity), "identity.schema": identity["schema"], "backend": identity["backend"],
            "platform": identity["platform"], "precision": identity["precision"],
            "numerics.version": identity["numerics"], "metrics.version": identity["metrics"],
            "data.fingerprint": identity["data"], "identity.classifier": identity["classifier"]}


def differences(identity: dict, run_tags: dict, run_params: dict) -> list[str]:
    """Why a run's identity is not this one, part by part, from the run's tags and params."""
    if "identity" not in run_tags:
        return ["identity v1 (made before run identities were recorded)"]
    out = []
    for part, tag in (("backend", "backend"), ("platform", "platform"), ("precision", "precision"),
                      ("numerics", "numerics.version"), ("metrics", "metrics.version"), ("data", "data.fingerprint"),
                      ("classifier", "identity.classifier")):
        theirs = run_tags.get(tag)
        if str(theirs) != str(identity[part]):
            out.append(f"{part} {theirs} (wanted {identity[part]})")
    defaults = cfg.flat(Config())
    idle = _idle({**defaults, **identity["config"]})
    for key in sorted(set(defaults) | set(identity["config"])):
        if not _counts(key) or key not in defaults or key in idle:
            continue
        wanted = identity["config"].get(key, defaults[key])
        theirs = run_params.get(key, str(LEGACY.get(key, defaults[key])))
        if theirs != str(wanted):
            out.append(f"{key} {theirs} (wanted {wanted})")
    return out or ["identity differs"]


def read_old(section_key: str, old: dict):
    """A key's value in a config dict saved by older code: absent keys read as their v1 behaviour."""
    section, _, key = section_key.partition(".")
    values = old.get(section, {})
    if key in values:
        return values[key]
    if section_key in LEGACY:
        return LEGACY[section_key]
    return cfg.flat(Config()).get(section_key)


def resume_differences(saved: dict | None, run_tags: dict, identity: dict) -> list[str]:
    """Why a checkpoint cannot be continued here. saved: the identity in the checkpoint (None for runs
    from before identities, which are checked on what their tags recorded: backend and platform)."""
    if saved is None:
        saved = {"backend": run_tags.get("backend", identity["backend"]),
                 "platform": "cpu" if run_tags.get("hardware.gpu", "none") == "none" else "gpu",
                 "numerics": 1}
        parts = ("backend", "platform")
    else:
        parts = ("backend", "platform", "precision", "data", "metrics", "classifier")
    out = [f"{part}: {saved.get(part)} -> {identity[part]}" for part in parts if saved.get(part) != identity[part]]
    if saved["numerics"] != identity["numerics"] and saved["numerics"] not in SAME_STEP:
        out.append(f"train step numerics v{saved['numerics']} -> v{identity['numerics']}")
    return out
