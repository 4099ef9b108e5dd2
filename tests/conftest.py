"""Shared fixtures: the built-in demo data, a small fitted detector, the real data folder."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudvae import VAEDetector
from fraudvae.datasets import LABEL_COLUMN, example_transaction, make_transactions

ROOT = Path(__file__).resolve().parents[1]
#: Real labelled data lives beside the project, never inside it.
SHARED_DATA = ROOT.parent / "shared" / "data"


# Spark's JVM (local mode, in this process or in a CLI's) compiles with its first tier only: a
# test's Spark job is too short for the second tier to pay for its compiling, which took a
# third of a session's CPU (24 s -> 16 s a session here; results do not depend on it, and
# each of the suite's Spark jobs starts a JVM). Users' jobs keep the JVM's defaults.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1")

#: The longest test files, measured (CONTRIBUTING.md, "The test suite's time"): collected first,
#: so that ``pytest -n 2 --dist loadfile`` (make test) starts them at once on its two workers
#: instead of leaving one of them for last.
LONGEST_FIRST = (
    "test_readme.py",
    "test_state_service.py",
    "test_quality_real_data.py",
    "test_architecture.py",
    "test_behaviour.py",
    "test_spark.py",
    "test_notebook.py",
    "test_load.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"expected the real data at {SHARED_DATA} (see DEVELOPERS.md)"
    return SHARED_DATA


@pytest.fixture(scope="session")
def transactions() -> pd.DataFrame:
    return make_transactions(6000, fraud_rate=0.01, random_state=0)


@pytest.fixture(scope="session")
def normal_train(transactions: pd.DataFrame) -> pd.DataFrame:
    normal = transactions[transactions[LABEL_COLUMN] == 0]
    return normal.drop(columns=[LABEL_COLUMN, "transaction_id"]).iloc[:4000].reset_index(drop=True)


@pytest.fixture(scope="session")
def holdout(transactions: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows not used for fitting (normal and fraud), with labels."""
    normal_idx = transactions.index[transactions[LABEL_COLUMN] == 0][4000:]
    fraud_idx = transactions.index[transactions[LABEL_COLUMN] == 1]
    rows = transactions.loc[normal_idx.union(fraud_idx)]
    return rows.drop(columns=[LABEL_COLUMN, "transaction_id"]).reset_index(drop=True), rows[LABEL_COLUMN].to_numpy()


@pytest.fixture(scope="session")
def fitted(normal_train: pd.DataFrame) -> VAEDetector:
    return VAEDetector(random_state=0, max_epochs=25).fit(normal_train)


def load_adbench(shared: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(shared / "adbench" / f"{name}.npz", allow_pickle=True)
    return np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"]).astype(int)


def load_ulb(shared: Path) -> tuple[pd.DataFrame, np.ndarray]:
    df = pd.read_csv(shared / "fraud" / "ulb_creditcard_fraud_subset.csv.gz")
    y = df.pop("Class").to_numpy().astype(int)
    return df, y


@pytest.fixture(scope="session")
def model_dir(fitted: VAEDetector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fitted demo-data detector saved as an artifact (read-only for tests)."""
    path = tmp_path_factory.mktemp("model") / "model"
    fitted.save(str(path))
    return path


@pytest.fixture(scope="session")
def other_model_dir(normal_train: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different model with the same schema (for reloads)."""
    path = tmp_path_factory.mktemp("model2") / "model"
    VAEDetector(random_state=1, max_epochs=3).fit(normal_train.iloc[:1500]).save(str(path))
    return path


def a_transaction() -> dict[str, object]:
    return example_transaction()


# ---------------------------------------------------------------------- online state
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` (Debian's, installed by scripts/install-system-deps.sh) on a free port."""
    import shutil
    import time

    import redis

    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    assert Path(exe).exists(), "redis-server is installed by scripts/install-system-deps.sh (make test runs it)"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of the kind the test is parametrized with (``sqlite`` or ``redis``)."""
    import uuid

    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    return f"{request.getfixturevalue('redis_url')}?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def card_events() -> pd.DataFrame:
    """The demo's raw card events, in time order (ties kept in generation order)."""
    from fraudvae.datasets.events import make_card_events

    return make_card_events(6000, random_state=0).sort_values("timestamp", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="session")
def spec_model_dir(card_events: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained with the demo's feature spec on the first 4,000 events (read-only)."""
    from fraudvae.datasets.events import DEMO_FEATURE_SPEC
    from fraudvae.jobs.workflows import train_file

    root = tmp_path_factory.mktemp("spec_model")
    card_events.iloc[:4000].to_csv(root / "events.csv", index=False)
    (root / "features.toml").write_text(DEMO_FEATURE_SPEC, encoding="utf-8")
    train_file(
        root / "events.csv",
        root / "model",
        label_column="is_fraud",
        normal_value="0",
        time_column="timestamp",
        drop_columns=["transaction_id"],
        features=root / "features.toml",
        compare=False,
        max_epochs=4,
        random_state=0,
        log=lambda line: None,
    )
    return root / "model"


# ---------------------------------------------------------------------- the CLI, in this process
def fraudvae_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``fraudvae ARGS`` run by the CLI's own ``main`` in this process: its exit status, stdout
    and stderr, as ``subprocess.run`` would return them.

    A new process spends ~3 s importing torch, pandas and scikit-learn before the command runs
    (about 80 such processes were a fifth of the suite's CPU), and what a test of a command
    checks (its argv, output, files and exit status) is ``main``'s work. Tests of the process
    itself (the console script, startup time, signals, a terminal) still start one. ``env``
    is set for the call and restored, as are the torch threads and ``os.environ`` that a
    command may set.
    """
    import contextlib
    import io

    import torch

    from fraudvae.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, threads = dict(os.environ), torch.get_num_threads()
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["fraudvae", *args], code, out.getvalue(), err.getvalue())
