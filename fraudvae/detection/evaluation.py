"""Offline evaluation: the numbers a fraud team reads, computed from scores and labels only.

Pure functions, so a report can always be recomputed from its ``scores.csv``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve

__all__ = ["FPR_POINTS", "PRECISION_AT_K", "evaluate_scores", "one_hot_baseline"]

FPR_POINTS = (0.001, 0.005, 0.01)
PRECISION_AT_K = (50, 100, 500)


def _recall_at_fpr(y: np.ndarray, s: np.ndarray, fpr_max: float) -> float:
    fpr, tpr, _ = roc_curve(y, s)
    return float(tpr[fpr <= fpr_max].max()) if np.any(fpr <= fpr_max) else 0.0


def evaluate_scores(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Metrics at ``threshold`` (flag ``score > threshold``), threshold-free metrics, alert budgets.

    ``y`` is 1 for fraud. Precision@k counts frauds among the ``k`` highest scores
    (ties broken by row order); it is ``None`` when there are fewer than ``k`` rows.
    """
    y = np.asarray(y).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    flagged = s > threshold
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, flagged, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    both_classes = 0 < y.sum() < y.size
    order = np.argsort(-s, kind="stable")
    return {
        "n_rows": int(y.size),
        "n_fraud": int(y.sum()),
        "threshold": float(threshold),
        "at_threshold": {
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
            "alert_rate": float(flagged.mean()),
            "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        },
        "auroc": float(roc_auc_score(y, s)) if both_classes else None,
        "auprc": float(average_precision_score(y, s)) if both_classes else None,
        "recall_at_fpr": {str(f): (_recall_at_fpr(y, s, f) if both_classes else None) for f in FPR_POINTS},
        "precision_at_k": {str(k): (float(y[order[:k]].mean()) if y.size >= k else None) for k in PRECISION_AT_K},
    }


def curves(y: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """ROC and precision-recall curves for the plots."""
    fpr, tpr, _ = roc_curve(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall}


def one_hot_baseline(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """What a hand-rolled baseline gets (and ../shared/BENCHMARK.md gives the peers): numbers
    as they are, string columns one-hot when they have at most 50 levels (others dropped),
    and median imputation learned on ``train``.
    """
    strings = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c].dtype)]
    keep = [c for c in strings if train[c].nunique() <= 50]
    numeric = [c for c in train.columns if c not in strings]
    both = pd.concat([train, test], keys=["train", "test"])
    encoded = pd.get_dummies(both[numeric + keep], columns=keep, dtype=float)
    tr, te = encoded.loc["train"], encoded.loc["test"]
    median = tr.median()
    return tr.fillna(median).to_numpy(dtype=np.float64), te.fillna(median).to_numpy(dtype=np.float64)
