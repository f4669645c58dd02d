"""Tests that need an optional extra. Outside CI they skip, saying which; under .ci/run (CI=true) the test
extra installs JAX, so they run, and fail loudly if JAX is missing instead of skipping in silence."""
from __future__ import annotations

import importlib.util
import os

import pytest

HAS_JAX = importlib.util.find_spec("jax") is not None
requires_jax = pytest.mark.skipif(not HAS_JAX and os.environ.get("CI") != "true",
                                  reason="needs the jax extra (pip install -e '.[jax]'); under CI=true it fails instead")
