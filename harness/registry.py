"""The experiment registry: the YAML files in the packaged experiments/ folder and in ./experiments/.

The folder is the registry: no decorators, no name tables. A local file wins over a packaged one
of the same name, so users can add or change experiments after a normal install.
"""
from __future__ import annotations

import difflib
import importlib.util
import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness import config as cfg
from harness.config import ConfigError

EXPERIMENT_KEYS = ("data", "model", "train", "eval", "search", "compare", "sweep")


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str  # the file's first comment line
    path: Path
    source: str  # "package" or "local"
    layer: dict  # checked config delta
    sweep: dict  # dotted key -> list of values; each combination is a child run

    def sweep_values(self, fixed: tuple = (), only: dict | None = None) -> list[dict]:
        """[{}] without a sweep, else one dict of dotted key -> value per combination.
        Keys in `fixed` (pinned by --set) are left out of the sweep; `only` (key -> values) keeps those
        values of a key, which must be among the sweep's own."""
        for key, values in (only or {}).items():
            if key in self.sweep and not set(values) <= set(self.sweep[key]):
                extra = [v for v in values if v not in self.sweep[key]]
                raise ConfigError(f"--sweep {key}: {extra} not among {self.name}'s values {self.sweep[key]} "
                                  "(pin another value with --set).")
        sweep = {k: [v for v in vs if k not in (only or {}) or v in only[k]]
                 for k, vs in self.sweep.items() if k not in fixed}
        if not sweep:
            return [{}]
        return [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())]


def arm_label(experiment: str, sweep_value: dict) -> str:
    """An experiment at one sweep value as reports and tables name it: latent[latent_dim=32]."""
    if not sweep_value:
        return experiment
    return experiment + "[" + ",".join(f"{k.split('.')[-1]}={v}" for k, v in sweep_value.items()) + "]"


def run_name(experiment: str, seed: int, sweep_value: dict | None = None) -> str:
    """A seed's MLflow run name: latent-latent_dim=32-s0 (no brackets: it is also a folder name)."""
    return experiment + "".join(f"-{k.split('.')[-1]}={v}" for k, v in (sweep_value or {}).items()) + f"-s{seed}"


def group_name(label: str, runs: int) -> str:
    """A parent run's name over `runs` runs of an experiment or arm: smoothing-x3."""
    return f"{label}-x{runs}"


def folders() -> list[tuple[str, Path]]:
    """Packaged folder first, then ./experiments, so local files win when read in order."""
    out = []
    spec = importlib.util.find_spec("experiments")
    if spec and spec.submodule_search_locations:
        out += [("package", Path(p).resolve()) for p in spec.submodule_search_locations]
    local = Path("experiments").resolve()
    if local.is_dir():
        out = [(s, p) for s, p in out if p != local] + [("local", local)]
    return out


def files() -> dict[str, tuple[str, Path]]:
    found: dict[str, tuple[str, Path]] = {}
    for source, folder in folders():
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = (source, path)
    return found


def description(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def read_yaml(path: Path) -> dict:
    """Safe-load a YAML file into a mapping, or raise ConfigError naming the file."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}; fix the file or remove it.") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config sections, got {type(data).__name__}.")
    return data


def load(name: str) -> Experiment:
    """The experiment called name, its file checked against the config schema."""
    found = files()
    if name not in found:
        close = difflib.get_close_matches(name, found, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown experiment '{name}'.{hint} Known: {', '.join(sorted(found))}.")
    source, path = found[name]
    data = read_yaml(path)
    unknown = [k for k in data if k not in EXPERIMENT_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), EXPERIMENT_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown section '{unknown[0]}' in {path}{hint}; valid: {', '.join(EXPERIMENT_KEYS)}.")
    sweep = data.pop("sweep", None) or {}
    layer = cfg.check_layer(data, str(path))
    if not isinstance(sweep, dict):
        raise ConfigError(f"'sweep' in {path} must map config keys to lists of values.")
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep '{key}' in {path} needs a non-empty list of values.")
        for value in values:
            cfg.check_layer(cfg.dotted_to_layer({key: value}), f"{path} (sweep {key})")
    return Experiment(name, description(path), path, source, layer, sweep)


def resolve(name: str, smoke: bool = False, flags: dict | None = None, sets: list[str] | None = None
            ) -> tuple[Experiment, cfg.Config]:
    """The experiment and its config: defaults -> base.yaml -> NAME.yaml -> smoke -> flags -> --set."""
    experiment = load(name)
    layers = [load("base").layer] if name != "base" else []
    layers.append(experiment.layer)
    if smoke:
        layers.append(cfg.SMOKE)
    if flags:
        layers.append(cfg.check_layer(cfg.dotted_to_layer(flags),
                                      "the command-line flags"))
    layers.append(cfg.parse_set(sets or []))
    return experiment, cfg.build(layers)
