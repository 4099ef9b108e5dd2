"""Thresholds from held-out data: a target false-positive rate, precision or recall.

Pure numpy functions; the detector stores what they return.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fraudvae.detection.evaluation import evaluate_scores
from fraudvae.exceptions import ConfigurationError, InsufficientDataError

__all__ = [
    "SUMMARY_OMITS",
    "calibrate_scores",
    "calibration_summary",
    "conformal_p_values",
    "threshold_for_fpr",
    "threshold_from_labels",
]

#: Bulky calibration fields left out of summaries (GET /model, the report, train output).
SUMMARY_OMITS = ("reference_scores", "feature_baseline")


def conformal_p_values(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(1 + #{reference >= s}) / (n + 1)``: valid p-values for exchangeable normal rows.

    ``reference`` must be sorted ascending.
    """
    n = reference.shape[0]
    greater_equal = n - np.searchsorted(reference, scores, side="left")
    return (1.0 + greater_equal) / (n + 1.0)


def threshold_for_fpr(normal_scores: np.ndarray, target_fpr: float) -> float:
    """The smallest threshold whose conformal false-positive rate is at most ``target_fpr``.

    Flagging ``score > t`` where ``t`` is the ``ceil((n+1)(1-alpha))``-th smallest
    normal score keeps the false-positive rate on new normal rows at most ``alpha``
    (split-conformal guarantee), instead of the optimistic in-sample quantile.
    """
    if not 0.0 < target_fpr < 1.0:
        raise ConfigurationError(f"target_fpr={target_fpr!r} is invalid; expected a rate strictly between 0 and 1.")
    s = np.sort(normal_scores)
    n = s.shape[0]
    rank = int(np.ceil((n + 1) * (1.0 - target_fpr)))
    if rank > n:
        raise InsufficientDataError(
            f"{n} normal rows cannot certify target_fpr={target_fpr}; expected at least "
            f"{int(np.ceil(1.0 / target_fpr)) - 1}. Calibrate on more rows or raise the target."
        )
    return float(s[rank - 1])


def threshold_from_labels(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    target_precision: float | None = None,
    target_recall: float | None = None,
) -> tuple[float, dict[str, Any]]:
    """A threshold chosen with labels; best F1 when neither target is given.

    With ``target_precision`` the threshold with the highest recall among those that
    reach the precision; with ``target_recall`` the highest threshold that reaches the
    recall (fewest alerts).
    """
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise InsufficientDataError(
            f"Calibration labels hold {n_pos} anomalies among {y.size} rows; expected both classes. "
            "Pass held-out rows that include known frauds, or use target_fpr."
        )
    # Candidate cut after each distinct score: flag the first i rows.
    last_of_value = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_value]
    fp = np.cumsum(~y)[last_of_value]
    cut = s[last_of_value]
    precision = tp / (tp + fp)
    recall = tp / n_pos
    if target_precision is not None:
        ok = np.flatnonzero(precision >= target_precision)
        if ok.size == 0:
            raise InsufficientDataError(
                f"No threshold reaches target_precision={target_precision} (best is {precision.max():.3f}); "
                "lower the target."
            )
        i = int(ok[np.argmax(recall[ok])])
        goal: dict[str, Any] = {"target_precision": target_precision}
    elif target_recall is not None:
        i = int(np.flatnonzero(recall >= target_recall)[0])
        goal = {"target_recall": target_recall}
    else:
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        i = int(np.argmax(f1))
        goal = {"objective": "best_f1"}
    # Flag rows strictly above the threshold: put it just below the i-th cut value.
    below = s[s < cut[i]]
    threshold = float(below.max()) if below.size else float(np.nextafter(cut[i], -np.inf))
    threshold = float((threshold + cut[i]) / 2) if below.size else threshold
    return threshold, goal


def calibrate_scores(
    scores: np.ndarray,
    contributions: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    target_fpr: float | None = None,
    target_precision: float | None = None,
    target_recall: float | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """One scoring plan's calibration: threshold, goal, realized rates, p-value reference, explanation baseline.

    Without ``labels`` (or with ``target_fpr``) the threshold meets ``target_fpr`` on the
    normal rows with the split-conformal guarantee; when the rows are too few to certify
    it, ``strict`` refuses and otherwise the highest normal score is used (recorded as
    ``conformal_guarantee: false``). With ``labels`` (1 = anomaly) it meets
    ``target_precision`` or ``target_recall``, or maximizes F1. Normal rows become the
    p-value reference, and their per-feature median contributions the baseline that
    explanations measure excess against.
    """
    normal = np.ones(scores.shape[0], dtype=bool) if labels is None else ~labels
    normal_scores = scores[normal]
    if normal_scores.size == 0:
        raise InsufficientDataError("Calibration needs normal rows; got none.")
    goal: dict[str, Any]
    if labels is None or target_fpr is not None:
        fpr = float(target_fpr if target_fpr is not None else 0.01)
        try:
            threshold, guaranteed = threshold_for_fpr(normal_scores, fpr), True
        except InsufficientDataError:
            if strict:
                raise
            threshold, guaranteed = float(np.max(normal_scores)), False
        goal = {"target_fpr": fpr, "conformal_guarantee": guaranteed}
    else:
        threshold, goal = threshold_from_labels(
            scores, labels, target_precision=target_precision, target_recall=target_recall
        )
    realized: dict[str, Any] = {
        "n_normal": int(normal_scores.size),
        "false_positive_rate": float(np.mean(normal_scores > threshold)),
    }
    if labels is not None:
        at = evaluate_scores(labels.astype(int), scores, threshold)["at_threshold"]
        realized.update(
            n_anomalies=int(labels.sum()), precision=at["precision"], recall=at["recall"], alert_rate=at["alert_rate"]
        )
    return {
        "goal": goal,
        "threshold": float(threshold),
        "realized": realized,
        "reference_scores": np.sort(normal_scores).tolist(),
        "feature_baseline": np.median(contributions[normal], axis=0).tolist(),
    }


def calibration_summary(calibration: dict[str, Any]) -> dict[str, Any]:
    """A stored calibration without its bulky arrays (per plan too), for people to read."""
    out = {k: v for k, v in calibration.items() if k not in SUMMARY_OMITS}
    if "plans" in out:
        out["plans"] = {
            key: {k: v for k, v in plan.items() if k not in SUMMARY_OMITS} for key, plan in out["plans"].items()
        }
    return out
