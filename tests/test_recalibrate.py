"""``fraudvae calibrate`` and ``fraudvae feedback import``: thresholds from labels, with an audit trail."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudvae import VAEDetector
from fraudvae.cli import main
from fraudvae.exceptions import DataFileError, InsufficientDataError
from fraudvae.jobs.calibrate_job import recalibrate_file
from fraudvae.jobs.feedback_job import import_feedback
from fraudvae.monitor.recalibrate import MIN_LABELLED_ALERTS, wilson
from fraudvae.monitor.store import MonitorStore


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "model"
    shutil.copytree(model_dir, path)
    return path


@pytest.fixture(scope="module")
def labelled(holdout, tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = holdout
    path = tmp_path_factory.mktemp("labels") / "labelled.csv"
    X.assign(label=np.where(y == 1, "fraud", "legit")).to_csv(path, index=False)
    return path


def test_only_the_threshold_changes_and_the_audit_entry_says_why(
    model_copy: Path, labelled: Path, holdout, capsys: pytest.CaptureFixture[str]
) -> None:
    before = VAEDetector.load(str(model_copy))
    args = ["--labels", str(labelled), "--label-column", "label", "--target-recall", "0.8", "--who", "tester"]
    code = main(["calibrate", "--model", str(model_copy), *args])
    assert code == 0 and "Expected precision" in capsys.readouterr().out
    after = VAEDetector.load(str(model_copy))
    X, y = holdout
    old, new = before.calibration_, after.calibration_
    assert new["threshold"] != old["threshold"]
    plan = old["plan"]
    assert new["plans"][plan]["reference_scores"] == old["plans"][plan]["reference_scores"], "p-values unchanged"
    np.testing.assert_array_equal(after.anomaly_score(X), before.anomaly_score(X))
    (entry,) = json.loads((model_copy / "versions.json").read_text())["recalibrations"]
    assert entry["who"] == "tester" and entry["old_threshold"] == old["threshold"]
    assert entry["new_threshold"] == new["threshold"] and entry["goal"] == {"target_recall": 0.8}
    flags = after.anomaly_score(X) > new["threshold"]
    assert entry["expected"]["recall"] == pytest.approx(flags[y == 1].mean()) and entry["expected"]["recall"] >= 0.8
    lo, hi = entry["expected"]["precision_ci95"]
    assert lo <= entry["expected"]["precision"] <= hi
    assert entry["labels"]["rows"] == len(X) and len(entry["labels"]["sha256"]) == 64


def test_a_second_recalibration_keeps_the_first_in_the_trail(model_copy: Path, labelled: Path) -> None:
    recalibrate_file(model_copy, labelled, label_column="label", target_recall=0.8)
    recalibrate_file(model_copy, labelled, label_column="label", target_recall=0.6)
    trail = VAEDetector.load(str(model_copy)).recalibrations_
    assert [e["goal"] for e in trail] == [{"target_recall": 0.8}, {"target_recall": 0.6}]


def test_too_few_labelled_alerts_are_refused_with_how_many_are_needed(
    model_copy: Path, holdout, tmp_path: Path
) -> None:
    X, y = holdout
    few = pd.concat([X[y == 1].iloc[:12], X[y == 0].iloc[:200]]).assign(label=["fraud"] * 12 + ["legit"] * 200)
    few.to_csv(tmp_path / "few.csv", index=False)
    before = (model_copy / "calibration.json").read_bytes()
    with pytest.raises(InsufficientDataError, match=f"at least {MIN_LABELLED_ALERTS} labelled alerts"):
        recalibrate_file(model_copy, tmp_path / "few.csv", label_column="label", target_recall=0.5)
    assert (model_copy / "calibration.json").read_bytes() == before, "a refused recalibration writes nothing"


def test_fpr_on_unlabelled_traffic(model_copy: Path, holdout, tmp_path: Path) -> None:
    X, y = holdout
    X[y == 0].to_csv(tmp_path / "traffic.csv", index=False)
    entry = recalibrate_file(model_copy, tmp_path / "traffic.csv", target_fpr=0.02)
    assert entry["goal"] == {"target_fpr": 0.02, "conformal_guarantee": True}
    assert entry["expected"]["alert_rate"] <= 0.02


def test_wilson_interval() -> None:
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)


def test_feedback_import_from_a_file(tmp_path: Path, model_dir: Path) -> None:
    pd.DataFrame(
        {
            "event_id": ["a", "b", "a"],
            "label": ["fraud", "legit", "fraud"],
            "labelled_at": ["2026-12-01T10:00:00Z", "1764583200", "2026-12-01T10:00:00Z"],
        }
    ).to_csv(tmp_path / "labels.csv", index=False)
    out = import_feedback(tmp_path / "labels.csv", model_dir, tmp_path / "m.sqlite")
    assert (out["stored"], out["unchanged"], out["unknown"]) == (2, 1, 2)
    assert len(MonitorStore(tmp_path / "m.sqlite").labels()) == 2


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ({"event_id": ["a"], "label": ["maybe"]}, "label 'maybe' for event 'a'"),
        ({"event_id": [""], "label": ["fraud"]}, "event_id is empty"),
        ({"event_id": ["a"], "label": ["fraud"], "labelled_at": ["yesterday"]}, "labelled_at 'yesterday'"),
        ({"id": ["a"], "label": ["fraud"]}, "no column(s) ['event_id']"),
    ],
)
def test_a_bad_labels_file_stores_nothing(tmp_path: Path, model_dir: Path, rows: dict, needle: str) -> None:
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataFileError, match=re.escape(needle)):
        import_feedback(tmp_path / "labels.csv", model_dir, tmp_path / "m.sqlite")
    assert not (tmp_path / "m.sqlite").exists() or len(MonitorStore(tmp_path / "m.sqlite").labels()) == 0


def test_a_running_service_takes_the_new_threshold_on_reload(model_copy: Path, labelled: Path) -> None:
    from tests.test_service import make_client

    with make_client(model_copy, admin_key="admin-secret") as client:
        before = client.get("/model").json()["threshold"]
        entry = recalibrate_file(model_copy, labelled, label_column="label", target_recall=0.8)
        assert client.get("/model").json()["threshold"] == before, "nothing changes until the reload"
        r = client.post("/model/reload", json={}, headers={"X-API-Key": "admin-secret"})
        assert r.status_code == 200, r.text
        assert client.get("/model").json()["threshold"] == entry["new_threshold"] != before


def _stream(rng: np.random.Generator, n: int, start: float, fp_growth: float) -> tuple[np.ndarray, ...]:
    """Scores, labels and times of one period of a synthetic stream: frauds ~ N(3, 1); legitimate rows
    ~ N(0, 1), except a share that grows ``fp_growth``-fold per period and scores ~ N(2.5, 1)."""
    times = np.sort(rng.random(n)) + start
    y = rng.random(n) < 0.015
    odd = rng.random(n) < 0.003 * fp_growth**times
    scores = np.where(y, rng.normal(3.0, 1.0, n), np.where(odd, rng.normal(2.5, 1.0, n), rng.normal(size=n)))
    return scores, y, times


def _precision(scores: np.ndarray, y: np.ndarray, threshold: float) -> float:
    return float(y[scores > threshold].mean())


def test_a_precision_target_holds_next_period_on_drifting_traffic() -> None:
    """Regression: the threshold whose Wilson lower bound on the labelled month reached the target
    over-promised on BankSim (9 of 20 next months below the stated interval): false positives at a
    fixed threshold grew up to 2x a month. The threshold is now chosen for the next period."""
    from fraudvae.monitor.recalibrate import new_calibration

    calibration = {"plan": "elbo", "threshold": 1.0, "goal": {}, "realized": {}, "plans": {"elbo": {"threshold": 1.0}}}
    rng = np.random.default_rng(0)
    s1, y1, t1 = _stream(rng, 40_000, 0.0, fp_growth=3.0)
    s2, y2, _ = _stream(rng, 40_000, 1.0, fp_growth=3.0)
    doc, entry = new_calibration(calibration, s1, y1, target_precision=0.5, source={}, times=t1)
    nxt = entry["expected"]["next_period"]
    assert nxt["false_positive_rate_change_per_period"] > 1.2, (
        "the drift is measured (3x in the tail, less at the reference)"
    )
    assert entry["goal"] == {"target_precision": 0.5, "confidence": 0.95, "over": "the next period"}
    realised = _precision(s2, y2, doc["threshold"])
    lo, hi = nxt["precision_pi95"]
    assert realised >= 0.5 and lo <= realised <= hi and lo >= 0.5
    # Without the times, the labelled month is taken to last: the threshold is laxer and next period falls short.
    undrifted, _ = new_calibration(calibration, s1, y1, target_precision=0.5, source={})
    assert undrifted["threshold"] < doc["threshold"] and _precision(s2, y2, undrifted["threshold"]) < 0.5


def test_the_next_period_interval_covers_stationary_traffic() -> None:
    from fraudvae.monitor.recalibrate import new_calibration

    calibration = {"plan": "elbo", "threshold": 1.0, "goal": {}, "realized": {}, "plans": {"elbo": {"threshold": 1.0}}}
    within = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        s1, y1, t1 = _stream(rng, 20_000, 0.0, fp_growth=1.0)
        s2, y2, _ = _stream(rng, 20_000, 1.0, fp_growth=1.0)
        doc, entry = new_calibration(calibration, s1, y1, target_precision=0.6, source={}, times=t1)
        lo, hi = entry["expected"]["next_period"]["precision_pi95"]
        within += lo <= _precision(s2, y2, doc["threshold"]) <= hi
    assert within >= 17, f"a 95% interval covered {within} of 20 next periods"


def test_calibrate_reads_date_times_and_names_a_bad_one(model_copy: Path, holdout, tmp_path: Path) -> None:
    X, y = holdout
    when = pd.date_range("2026-11-01", periods=len(X), freq="min").strftime("%Y-%m-%dT%H:%M:%SZ")
    labelled = X.assign(label=np.where(y == 1, "fraud", "legit"), when=when)
    labelled.to_csv(tmp_path / "timed.csv", index=False)
    entry = recalibrate_file(
        model_copy, tmp_path / "timed.csv", label_column="label", target_recall=0.8, time_column="when"
    )
    assert entry["labels"]["time_column"] == "when"
    assert entry["expected"]["next_period"]["trend"] == "measured over time"
    labelled.loc[labelled.index[3], "when"] = "not a date"
    labelled.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataFileError, match=re.escape("Time column 'when' holds 'not a date' at row 4")):
        recalibrate_file(model_copy, tmp_path / "bad.csv", label_column="label", target_recall=0.8, time_column="when")
