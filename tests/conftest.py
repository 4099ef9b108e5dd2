"""Shared fixtures: the built-in demo data, a small fitted detector, the real data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudvae import VAEDetector
from fraudvae.datasets import LABEL_COLUMN, example_transaction, make_transactions

ROOT = Path(__file__).resolve().parents[1]
#: Real labelled data lives beside the project, never inside it.
SHARED_DATA = ROOT.parent / "shared" / "data"


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
