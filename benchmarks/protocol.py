"""The detection protocol of ../shared/BENCHMARK.md, shared by the benchmark and the tests.

Normal-only training on fixed splits; the peers get one-hot encoding of string columns
with at most 50 levels (others dropped) and median imputation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from fraudvae.detection.evaluation import one_hot_baseline

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: CSV sets: file, label column, how to turn it into 1 = anomaly, columns that are not features.
CSV_SETS: dict[str, tuple[str, str, object, list[str]]] = {
    "ulb_creditcard": ("fraud/ulb_creditcard_fraud_subset.csv.gz", "Class", 1, []),
    "carclaims": ("fraud/carclaims.csv.gz", "FraudFound", "Yes", []),
    # The data README: `difficulty` is not a feature (it grades how hard the label was).
    "nsl_kdd_train20": ("fraud/nsl_kdd_KDDTrain+_20Percent.csv.gz", "attack", "!normal", ["difficulty"]),
}
#: The ADBench files of the first rounds: the quality tests pin floors on these, measured
#: over five seeds (``benchmarks/seed_spread.py``).
ADBENCH = ["2_annthyroid", "5_campaign", "6_cardio", "23_mammography", "29_Pima", "32_shuttle", "38_thyroid", "44_Wilt"]
#: Every ADBench file in ../shared/data/adbench: those eight and the twelve added for issue
#: 13, where plain KNN led (``benchmarks/ablation.py``).
ADBENCH_ALL = [
    *ADBENCH,
    *("7_Cardiotocography", "10_cover", "12_fault", "14_glass", "19_landsat", "20_letter", "22_magic.gamma"),
    *("26_optdigits", "27_PageBlocks", "33_skin", "35_SpamBase", "39_vertebral"),
]
SEEDS = (0, 1, 2)
MAX_TRAIN_NORMAL = 20_000
MAX_TEST = 50_000


def dataset_names(root: Path = SHARED_DATA) -> list[str]:
    names = [n for n in ADBENCH_ALL if (root / "adbench" / f"{n}.npz").exists()]
    names += [n for n, (f, *_) in CSV_SETS.items() if (root / f).exists()]
    return names


def load(name: str, root: Path = SHARED_DATA) -> tuple[pd.DataFrame, np.ndarray]:
    """Features as a frame (as they come) and labels (1 = anomaly)."""
    if name in CSV_SETS:
        file, label, positive, not_features = CSV_SETS[name]
        df = pd.read_csv(root / file)
        raw = df.pop(label)
        y = (raw != "normal") if positive == "!normal" else (raw == positive)
        return df.drop(columns=not_features), y.to_numpy().astype(int)
    data = np.load(root / "adbench" / f"{name}.npz", allow_pickle=True)
    X = np.asarray(data["X"], dtype=np.float64)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), np.asarray(data["y"]).astype(int)


@dataclass
class Split:
    name: str
    seed: int
    X_train: pd.DataFrame  # normal rows only
    X_test: pd.DataFrame
    y_test: np.ndarray


def split(name: str, X: pd.DataFrame, y: np.ndarray, seed: int, max_train: int = MAX_TRAIN_NORMAL) -> Split:
    """The protocol's split; ``max_train`` other than the protocol's cap only for measurements beyond it."""
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, stratify=y, random_state=seed)
    normal = X_tr[y_tr == 0]
    if len(normal) > max_train:
        normal = normal.iloc[np.random.default_rng(seed).choice(len(normal), max_train, replace=False)]
    if len(X_te) > MAX_TEST:
        X_te, _, y_te, _ = train_test_split(X_te, y_te, train_size=MAX_TEST, stratify=y_te, random_state=seed)
    return Split(name, seed, normal.reset_index(drop=True), X_te.reset_index(drop=True), np.asarray(y_te))


def splits(names: list[str], seeds: tuple[int, ...] = SEEDS, root: Path = SHARED_DATA) -> Iterator[Split]:
    for name in names:
        X, y = load(name, root)
        for seed in seeds:
            yield split(name, X, y, seed)


def peer_matrices(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """What the peers get (see :func:`fraudvae.detection.evaluation.one_hot_baseline`)."""
    return one_hot_baseline(train, test)


def auc_pair(y: np.ndarray, score: np.ndarray) -> list[float]:
    """``[AUROC, AUPRC]`` of ``score`` (higher = more anomalous); NaN as 0 and +inf as the largest finite."""
    score = np.nan_to_num(score, nan=0.0, posinf=1e300)
    return [float(roc_auc_score(y, score)), float(average_precision_score(y, score))]
