"""Shared fixtures: one classifier cache per test run (trained once, 1.5-5 min on 2 cores; reused when
HARNESS_CACHE is already set) and real MLflow stores in temporary folders."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
# The suite never fetches MNIST: tests pin mnist-5k or files they write, and a test that forgot would fall
# back to mnist-5k here instead of downloading 70,000 digits and training their classifier. The one fetch
# test (tests/test_data.py) lifts this for itself.
os.environ["HARNESS_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def classifier_cache(tmp_path_factory) -> Path:
    """Classifiers and reference statistics are cached here for the whole session."""
    if "HARNESS_CACHE" not in os.environ:
        # Under pytest-xdist each worker has its own session: the cache lives beside their temporary
        # folders so that all of them share it (the classifier is trained once, under a file lock).
        base = tmp_path_factory.getbasetemp()
        folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "harness-cache"
        folder.mkdir(exist_ok=True)
        os.environ["HARNESS_CACHE"] = str(folder)
        os.environ.setdefault("KERAS_HOME", str(folder / "keras"))  # a developer's own Keras MNIST cache stays unread
    return Path(os.environ["HARNESS_CACHE"])


def _work_in(folder: Path, monkeypatch) -> Path:
    """Make folder the working folder, with its own SQLite MLflow store; artifacts land in ./mlruns there."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    return folder


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A fresh working folder with its own store."""
    return _work_in(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory) -> Path:
    """One store shared by the tests that only add runs and read their own back."""
    return tmp_path_factory.mktemp("shared-store")


@pytest.fixture
def in_shared_store(shared_store, monkeypatch) -> Path:
    return _work_in(shared_store, monkeypatch)


@pytest.fixture(scope="session")
def mnist_5k():
    from harness.data import load_mnist_5k
    return load_mnist_5k()


@pytest.fixture(scope="session")
def scorer_5k(mnist_5k):
    """The real cached classifier and reference set of mnist-5k, N = 1,000."""
    from metrics.scorer import Scorer
    return Scorer(mnist_5k, quiet=True)


def eventually(condition, seconds: float = 60, every: float = 0.1) -> bool:
    """Whether condition() became true within `seconds`, asked every `every` s: a wait on the condition
    itself, not a fixed sleep that a loaded machine outlasts."""
    end = time.time() + seconds
    while not condition():
        if time.time() > end:
            return False
        time.sleep(every)
    return True


def one_error(err: str, *names: str, alone: bool = True) -> None:
    """The house's contract for bad input, checked without matching its wording: one `error: ...` line
    and no traceback, naming each of `names` (the key, flag, value, file or run at fault); alone: stderr
    is that line and nothing else (False where a plan is printed before the error). Callers assert the
    exit code (2) and an untouched store beside it."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert not alone or len(lines) == 1, err[-2000:]
    assert all(name in errors[0] for name in names), (names, errors[0])


def need(present: bool, what: str) -> None:
    """Outside CI a missing service skips its test, saying why; under .ci/run (CI=true) it fails the run."""
    if present:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing: .ci/run installs and starts it, and under CI a missing one fails the "
                    "run instead of skipping its tests.", pytrace=False)
    pytest.skip(f"{what} is missing (.ci/run installs and starts it)")


@pytest.fixture
def postgres(tmp_path):
    """Fresh PostgreSQL databases on the server HARNESS_TEST_POSTGRES names (credentials from the
    environment, as .ci/run sets them), and a .pgpass file so that no password goes on a command line.
    Yields make(name) -> a password-free postgresql:// URL of a new database; drops them afterwards."""
    url = os.environ.get("HARNESS_TEST_POSTGRES")
    need(url is not None, "a PostgreSQL server (HARNESS_TEST_POSTGRES)")
    import uuid
    from urllib.parse import urlparse
    import psycopg2
    u = urlparse(url)
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text(f"{u.hostname}:{u.port or 5432}:*:{u.username}:{u.password}\n")
    pgpass.chmod(0o600)
    admin = psycopg2.connect(url)
    admin.autocommit = True
    made = []

    def make(name: str) -> str:
        database = f"{name}_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
        made.append(database)
        return f"postgresql://{u.username}@{u.hostname}:{u.port or 5432}/{database}"

    make.pgpass = pgpass
    yield make
    with admin.cursor() as cursor:
        for database in made:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin.close()


def pytest_terminal_summary(terminalreporter):
    """Name the folders tests left files in (the browser tests' screenshots), from every xdist worker."""
    reports = [r for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])]
    for folder in sorted({v for r in reports for k, v in getattr(r, "user_properties", []) if k == "screenshots"}):
        terminalreporter.write_line(f"screenshots: {folder}")
