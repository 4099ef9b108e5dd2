"""Recalibration from analysts' labels: a new threshold, its expected precision and recall, and the audit entry.

Only the threshold of the model's scoring plan changes (with its goal and realized rates);
the network, the p-value reference and the explanation baseline stay as fitted. A precision
target is stated for the *next* period: the threshold flags the most rows whose projected
next-period precision has a 95% prediction interval starting at the target or above
(:mod:`fraudvae.monitor.projection`: the labelled period's level, carried by its trend over
time, with the next period's own noise). Two earlier rules over-promised on BankSim, measured
forward in time: the threshold whose point precision just reached the target (the best of
many cuts looks better than it is), and the one whose Wilson lower bound on the labelled
month reached it (the traffic drifts: 9 of 20 next months fell below the stated interval).
Expected precision and recall on the labelled period carry 95% Wilson intervals over the
labelled alerts and frauds they are measured on. A recalibration on too few labelled alerts
or frauds is refused, saying how many are needed.
"""

from __future__ import annotations

import copy
import datetime as dt
import getpass
import math
from typing import Any

import numpy as np

from fraudvae.detection.calibration import threshold_for_fpr, threshold_from_labels
from fraudvae.exceptions import ConfigurationError, InsufficientDataError
from fraudvae.monitor.projection import Trends, project_precision, trends

__all__ = ["MIN_LABELLED_ALERTS", "MIN_LABELLED_FRAUDS", "new_calibration", "wilson"]

#: Labelled alerts (at the new threshold) a precision or recall target needs: below this,
#: the interval on the expected precision is wider than +-0.15 at any precision.
MIN_LABELLED_ALERTS = 30
#: Labelled frauds a precision or recall target needs.
MIN_LABELLED_FRAUDS = 10
#: Rows an FPR target on unlabelled traffic needs (1 / FPR rows at least, as at fit).
_Z = 1.959963984540054  # two-sided 95%


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + _Z**2 / n
    centre = (p + _Z**2 / (2 * n)) / denom
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _expected(scores: np.ndarray, labels: np.ndarray, threshold: float, trend: Trends) -> dict[str, Any]:
    alerts = scores > threshold
    tp, n_alerts, n_fraud = int((alerts & labels).sum()), int(alerts.sum()), int(labels.sum())
    precision = tp / n_alerts if n_alerts else None
    recall = tp / n_fraud if n_fraud else None
    return {
        "labelled_rows": int(labels.size),
        "labelled_alerts": n_alerts,
        "labelled_frauds": n_fraud,
        "precision": precision,
        "precision_ci95": list(wilson(tp, n_alerts)) if n_alerts else None,
        "recall": recall,
        "recall_ci95": list(wilson(tp, n_fraud)) if n_fraud else None,
        "alert_rate": n_alerts / labels.size if labels.size else None,
        "next_period": _next_period(tp, n_alerts - tp, int(labels.size), trend),
    }


def _next_period(tp: int, fp: int, rows: int, trend: Trends) -> dict[str, Any]:
    projection = project_precision(tp, fp, rows, trend)
    return {
        "what": "the next period as long as the labelled one, right after it, with as many rows",
        "precision": projection.precision,
        "precision_pi95": [projection.low, projection.high],
        "trend": "measured over time" if trend != Trends() else "none (no event times: assumed not to drift)",
        **trend.as_dict(),
    }


def new_calibration(
    calibration: dict[str, Any],
    scores: np.ndarray,
    labels: np.ndarray | None,
    *,
    target_precision: float | None = None,
    target_recall: float | None = None,
    target_fpr: float | None = None,
    source: dict[str, Any],
    who: str | None = None,
    times: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(calibration with the new threshold, audit entry)`` for the scores of labelled (or unlabelled) rows.

    ``labels`` (1 = fraud) go with ``target_precision`` or ``target_recall``; ``target_fpr``
    takes unlabelled recent traffic (``labels`` None), all of it counted as normal. ``times``
    (numbers in time order, one per row) let the next period's precision follow the trend.
    """
    if sum(t is not None for t in (target_precision, target_recall, target_fpr)) != 1:
        raise ConfigurationError("Pass exactly one of --target-precision, --target-recall and --target-fpr.")
    for name, value in (
        ("target_precision", target_precision),
        ("target_recall", target_recall),
        ("target_fpr", target_fpr),
    ):
        if value is not None and not 0 < value < 1:
            raise ConfigurationError(f"{name} is {value}; expected a number strictly between 0 and 1.")
    scores = np.asarray(scores, dtype=np.float64)
    expected: dict[str, Any]
    if target_fpr is not None:
        if labels is not None:
            raise ConfigurationError("--target-fpr recalibrates on unlabelled recent traffic: pass no labels.")
        threshold = threshold_for_fpr(scores, target_fpr)  # refuses too few rows, saying how many
        goal: dict[str, Any] = {"target_fpr": target_fpr, "conformal_guarantee": True}
        expected = {"rows": int(scores.size), "alert_rate": float(np.mean(scores > threshold))}
    else:
        if labels is None:
            raise ConfigurationError("A precision or recall target needs labels.")
        y = np.asarray(labels).astype(bool)
        n_fraud = int(y.sum())
        if n_fraud < MIN_LABELLED_FRAUDS:
            raise InsufficientDataError(
                f"The labels hold {n_fraud} fraud(s); a {'precision' if target_precision else 'recall'} target needs "
                f"at least {MIN_LABELLED_FRAUDS} labelled frauds (and {MIN_LABELLED_ALERTS} labelled alerts at the "
                "new threshold). Wait for more labels, or recalibrate with --target-fpr on recent traffic."
            )
        trend = trends(scores, y, None if times is None else np.asarray(times, dtype=np.float64))
        if target_precision is not None:
            threshold = _threshold_for_next_period(scores, y, trend, target_precision)
            goal = {"target_precision": target_precision, "confidence": 0.95, "over": "the next period"}
        else:
            threshold, goal = threshold_from_labels(scores, y, target_recall=target_recall)
        expected = _expected(scores, y, threshold, trend)
        if expected["labelled_alerts"] < MIN_LABELLED_ALERTS:
            raise InsufficientDataError(
                f"The new threshold ({threshold:.6g}) flags {expected['labelled_alerts']} labelled row(s); a "
                f"recalibration needs at least {MIN_LABELLED_ALERTS} labelled alerts to state its precision "
                f"within about +-0.15. Label at least {MIN_LABELLED_ALERTS - expected['labelled_alerts']} more "
                "alerted events, or lower the target."
            )
    doc = copy.deepcopy(calibration)  # an engine's calibration: always one entry per plan
    plan = doc["plan"]
    old = float(doc["plans"][plan]["threshold"])
    realized = {"source": "recalibrate", **expected}
    for target in (doc, doc["plans"][plan]):
        target["threshold"], target["goal"], target["realized"] = float(threshold), goal, realized
    doc["source"] = "recalibrate"
    entry = {
        "who": who or _user(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "labels": source,
        "plan": plan,
        "old_threshold": old,
        "new_threshold": float(threshold),
        "goal": goal,
        "expected": expected,
    }
    return doc, entry


def _threshold_for_next_period(scores: np.ndarray, y: np.ndarray, trend: Trends, target: float) -> float:
    """The lowest threshold (most alerts, from a geometric grid of alert counts) whose projected
    next-period precision has a 95% lower bound of at least ``target``."""
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], y[order]
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # a cut after each distinct score
    tp = np.cumsum(lab)[last]
    flagged = last + 1
    grid = np.unique(np.geomspace(min(MIN_LABELLED_ALERTS, s.size), s.size, 160).astype(np.int64))
    cuts = np.unique(np.minimum(np.searchsorted(flagged, grid), last.size - 1))
    best, best_low = None, -1.0
    for i in cuts:
        low = project_precision(int(tp[i]), int(flagged[i] - tp[i]), int(s.size), trend).low
        best_low = max(best_low, low)
        if low >= target:
            best = i
    if best is None:
        raise InsufficientDataError(
            f"No threshold's next-period precision is at least {target} with 95% confidence on these labels (the "
            f"best lower bound is {best_low:.3f}); lower the target or label more alerts."
        )
    cut = s[last[best]]
    below = s[s < cut]
    return float((below.max() + cut) / 2) if below.size else float(np.nextafter(cut, -np.inf))


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"
