"""Thresholds: conformal FPR targets, label-based targets, and the recorded realized rates."""

from __future__ import annotations

import numpy as np
import pytest

from fraudvae import ConfigurationError, InsufficientDataError, VAEDetector
from fraudvae.detection.calibration import conformal_p_values, threshold_for_fpr, threshold_from_labels


def test_threshold_for_fpr_is_conformal() -> None:
    scores = np.arange(1, 1000, dtype=float)  # 999 normal scores
    t = threshold_for_fpr(scores, 0.01)
    assert t == 990.0  # ceil(1000 * 0.99) = 990th smallest
    assert np.mean(scores > t) <= 0.01


def test_fpr_holds_on_new_normal_rows() -> None:
    rng = np.random.default_rng(0)
    misses = []
    for _ in range(200):
        t = threshold_for_fpr(rng.normal(size=500), 0.05)
        misses.append(np.mean(rng.normal(size=2000) > t))
    assert np.mean(misses) <= 0.05 + 0.005


def test_fpr_target_needs_enough_rows() -> None:
    with pytest.raises(InsufficientDataError, match=r"cannot certify target_fpr=0.001; expected at least 999"):
        threshold_for_fpr(np.arange(100.0), 0.001)
    with pytest.raises(ConfigurationError, match=r"target_fpr=1.5"):
        threshold_for_fpr(np.arange(100.0), 1.5)


def test_label_targets() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    labels = np.array([0, 0, 0, 0, 1, 0, 1, 0, 1, 1])
    t, goal = threshold_from_labels(scores, labels, target_precision=0.75)
    flagged = scores > t
    assert labels[flagged].mean() >= 0.75 and flagged.sum() == 4
    t, _ = threshold_from_labels(scores, labels, target_recall=1.0)
    assert (scores > t)[labels == 1].all() and (scores > t).sum() == 6
    t, goal = threshold_from_labels(scores, labels)
    assert goal == {"objective": "best_f1"}


def test_p_values() -> None:
    ref = np.sort(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(conformal_p_values(np.array([0.0, 2.5, 9.0]), ref), [1.0, 3 / 5, 1 / 5])


def test_calibrate_records_realized_rates(fitted: VAEDetector, holdout) -> None:
    X, y = holdout
    det = VAEDetector(**fitted.get_params())
    det.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_") or k.startswith("_")})
    det.calibrate(X, y, target_precision=0.8)
    realized = det.calibration_["realized"]
    flags = det.flag(X)
    assert realized["precision"] == pytest.approx(y[flags].mean()) and realized["precision"] >= 0.8
    assert realized["recall"] == pytest.approx(flags[y == 1].mean())
    assert det.calibration_["goal"] == {"target_precision": 0.8}
    det.calibrate(X[y == 0], target_fpr=0.02)
    assert det.calibration_["realized"]["false_positive_rate"] <= 0.02
    assert det.calibration_["goal"]["conformal_guarantee"] is True


def test_fit_calibrates_on_its_validation_split(fitted: VAEDetector) -> None:
    cal = fitted.calibration_
    assert cal["source"] == "fit validation split"
    assert cal["goal"]["target_fpr"] == fitted.target_fpr
    assert cal["realized"]["n_normal"] == fitted.n_validation_rows_
    assert np.isfinite(fitted.threshold_)
