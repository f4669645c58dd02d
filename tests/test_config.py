"""Strict config: defaults, merge order, and one-sentence errors that name the key and the source."""
from __future__ import annotations

import subprocess
import sys

import pytest

from harness import config as cfg
from harness import registry
from harness.__main__ import main
from harness.config import ConfigError

from conftest import one_error


def test_defaults_are_the_recipe():
    c = cfg.Config()
    assert (c.model.latent_dim, c.model.g_filters, c.model.d_filters) == (100, 128, 64)
    assert (c.train.batch_size, c.train.epochs, c.train.lr_g, c.train.lr_d, c.train.beta_1) == (256, 100, 2e-4, 2e-4, 0.5)
    assert (c.model.output_activation, c.model.batchnorm, c.train.real_label) == ("sigmoid", False, 1.0)
    assert c.eval.every_epochs == 10


def test_every_default_has_a_comment():
    import inspect
    from harness import config as module
    source = inspect.getsource(module)
    for section in (cfg.DataConfig, cfg.ModelConfig, cfg.TrainConfig, cfg.EvalConfig, cfg.SearchConfig):
        for name in section.__dataclass_fields__:
            line = next(l for l in source.splitlines() if l.strip().startswith(f"{name}:"))
            assert "#" in line, f"{section.__name__}.{name} has no comment"


def test_merge_order_base_experiment_smoke_flags_set():
    _, c = registry.resolve("smoothing", smoke=True, flags={"train.steps": 9}, sets=["train.steps=11", "train.lr_g=1e-3"])
    assert c.train.real_label == 0.9  # experiment file
    assert c.model.g_filters == cfg.SMOKE["model"]["g_filters"]  # smoke
    assert c.train.steps == 11  # --set beats the flag
    assert c.train.lr_g == 1e-3  # YAML 1.1 reads 1e-3 as a string: coerced for float keys
    assert c.search.space  # base.yaml's default search space


def test_variants_change_only_their_keys():
    _, base = registry.resolve("base")
    for name, key, value in (("tanh", "model.output_activation", "tanh"), ("batchnorm", "model.batchnorm", True),
                             ("smoothing", "train.real_label", 0.9)):
        _, c = registry.resolve(name)
        diff = {k: v for k, v in cfg.flat(c).items() if cfg.flat(base)[k] != v and not k.startswith("search.")}
        assert diff == {key: value}, name
    latent = registry.load("latent")
    values = latent.sweep["model.latent_dim"]
    assert 100 in values and max(values) <= 256 and len(values) >= 3
    assert len(latent.sweep_values()) == len(values)
    assert latent.sweep_values(fixed=("model.latent_dim",)) == [{}]
    assert latent.sweep_values(only={"model.latent_dim": [256, 32]}) == [{"model.latent_dim": 32},
                                                                          {"model.latent_dim": 256}]


@pytest.mark.parametrize("args, words", [
    (["latent", "--sweep", "model.latent_dim=48"], ["--sweep model.latent_dim", "48", "--set"]),
    (["tanh", "--sweep", "model.latent_dim=32"], ["--sweep model.latent_dim", "sweeps it", "tanh)"]),
    (["latent", "--sweep", "model.latent_dim"], ["KEY=V1,V2"]),
])
@pytest.mark.slow
def test_compare_sweep_subset_errors_in_one_sentence(args, words, capsys):
    assert main(["compare", "--smoke", *args]) == 2
    one_error(capsys.readouterr().err, *words, alone=False)  # after the data and classifier it loaded


@pytest.mark.parametrize("sets, words", [
    (["train.lr_gg=1"], ["train.lr_gg", "--set", "lr_g"]),
    (["trian.lr_g=1"], ["trian", "--set", "train"]),
    (["train.batch_size=big"], ["train.batch_size", "integer"]),
    (["model.batchnorm=3"], ["model.batchnorm", "true or false"]),
    (["model.output_activation=relu"], ["relu", "sigmoid, tanh"]),
    (["model.latent_dim=0"], ["model.latent_dim", "at least 1"]),
    (["train.steps=-5"], ["train.steps", "at least 1"]),
    (["lr=1"], ["section.key"]),
    (["train.lr_g"], ["key=value"]),
])
def test_bad_set_values_name_key_and_source(sets, words):
    with pytest.raises(ConfigError) as e:
        registry.resolve("base", sets=sets)
    for word in words:
        assert word in str(e.value)


def test_unknown_experiment_suggests(capsys):
    assert main(["show", "smothing"]) == 2
    one_error(capsys.readouterr().err, "'smothing'", "'smoothing'")  # the name given, and the one meant


def test_local_experiment_wins_and_bad_files_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "smoothing.yaml").write_text("# my smoothing\ntrain:\n  real_label: 0.8\n")
    (tmp_path / "experiments" / "notyaml.yaml").write_text("# broken\ntrain: [unclosed\n")
    (tmp_path / "experiments" / "badkey.yaml").write_text("# bad\nmodel:\n  latnt_dim: 3\n")
    (tmp_path / "experiments" / "badtype.yaml").write_text("# bad\nmodel:\n  latent_dim: many\n")
    (tmp_path / "experiments" / "zero.yaml").write_text("# bad\ntrain:\n  batch_size: 0\n")
    _, c = registry.resolve("smoothing")
    assert c.train.real_label == 0.8
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "my smoothing" in out and "local" in out and "package" in out  # base still comes from the package
    for name, words in (("notyaml", ["notyaml.yaml", "not valid YAML"]), ("badkey", ["model.latnt_dim", "badkey.yaml", "latent_dim"]),
                        ("badtype", ["model.latent_dim", "badtype.yaml", "integer"]), ("zero", ["train.batch_size", "at least"])):
        assert main(["show", name]) == 2
        one_error(capsys.readouterr().err, *words)


def test_cli_error_is_one_line_exit_2_in_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, "-m", "harness", "run", "base", "--set", "train.lr_g=fast"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2
    one_error(p.stderr, "train.lr_g", "fast")
    assert not (tmp_path / "mlflow.db").exists()  # nothing written to a store


def test_show_prints_resolved_yaml(capsys):
    import yaml
    assert main(["show", "tanh", "--smoke", "--set", "train.seed=3"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["output_activation"] == "tanh" and resolved["train"]["seed"] == 3
    assert resolved["model"]["g_filters"] == cfg.SMOKE["model"]["g_filters"]


def test_a_population_under_tensorflow_is_refused_in_one_sentence(store, capsys):
    from harness.__main__ import main
    assert main(["run", "base", "--smoke", "--seeds", "2", "--set", "train.population=true"]) == 2
    one_error(capsys.readouterr().err, "train.population", "JAX")
    assert not (store / "mlflow.db").exists()
