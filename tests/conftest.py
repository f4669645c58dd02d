"""Shared fixtures: one classifier cache per session (trained once, ~75 s on 2 cores; reused when
HARNESS_CACHE is already set) and real MLflow stores in temporary folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")


@pytest.fixture(scope="session", autouse=True)
def classifier_cache(tmp_path_factory) -> Path:
    """Classifiers and reference statistics are cached here for the whole session."""
    if "HARNESS_CACHE" not in os.environ:
        os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("harness-cache"))
    return Path(os.environ["HARNESS_CACHE"])


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A fresh working folder with its own SQLite MLflow store; artifacts land in ./mlruns there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory) -> Path:
    """One store shared by the tests that only add runs and read their own back."""
    return tmp_path_factory.mktemp("shared-store")


@pytest.fixture
def in_shared_store(shared_store, monkeypatch) -> Path:
    monkeypatch.chdir(shared_store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{shared_store / 'mlflow.db'}")
    return shared_store


@pytest.fixture(scope="session")
def mnist_5k():
    from harness.data import load_mnist_5k
    return load_mnist_5k()


@pytest.fixture(scope="session")
def scorer_5k(mnist_5k):
    """The real cached classifier and reference set of mnist-5k, N = 1,000."""
    from metrics.scorer import Scorer
    return Scorer(mnist_5k, quiet=True)
