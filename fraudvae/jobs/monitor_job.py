"""``fraudvae monitor``: how a file of recent traffic differs from the training rows, and how the alerts fare.

Scores the file with the saved model (through the same scoring and feature code as every
other way in), compares each column with the reference sample kept at fit and the score
with the calibration scores (:mod:`fraudvae.monitor.drift`), and reports the alert rate
against the target false-positive rate, over time when the model has a time column. With
a label column (missing = not yet labelled) it adds the precision of labelled alerts and
the recall among labelled frauds. Writes ``monitor.json`` and ``monitor.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudvae._version import __version__
from fraudvae.data.io import read_table
from fraudvae.detection.detector import VAEDetector
from fraudvae.exceptions import ConfigurationError, DataFileError, IncompatibleArtifactError
from fraudvae.features.behaviour import model_frame, model_spec
from fraudvae.features.stream import compute_features
from fraudvae.monitor.drift import Reference, compare

__all__ = ["MonitorResult", "model_input", "monitor_file", "partial_labels"]

_FRAUD = {"1", "1.0", "true", "yes", "fraud"}
_LEGIT = {"0", "0.0", "false", "no", "legit", "normal"}


@dataclass
class MonitorResult:
    document: dict[str, Any]
    out_dir: Path


def partial_labels(raw: pd.Series, column: str, normal_value: str | None) -> np.ndarray:
    """1 = fraud, 0 = legit, -1 = not labelled (missing). Unknown values are refused by name."""
    out = np.full(len(raw), -1, dtype=np.int64)
    present = raw.notna().to_numpy()
    text = raw[present].astype(str).str.strip()
    if normal_value is not None:
        out[present] = (text != str(normal_value)).to_numpy().astype(np.int64)
        return out
    lowered = text.str.lower()
    unknown = sorted(set(lowered.unique()) - _FRAUD - _LEGIT)
    if unknown:
        raise DataFileError(
            f"Label column {column!r} holds {unknown[:5]}; expected fraud/legit, 1/0, true/false or yes/no "
            "(missing = not labelled yet). Pass --normal-value to say which value is normal."
        )
    out[present] = lowered.isin(_FRAUD).to_numpy().astype(np.int64)
    return out


def model_input(det: VAEDetector, frame: pd.DataFrame, label_column: str | None) -> pd.DataFrame:
    """What the model scores from a file of events: without the label and the columns training
    dropped, with a spec model's features computed over the whole file (as ``evaluate`` does)."""
    summary = det.extra_documents_.get("training_summary", {})
    X = frame.drop(columns=[c for c in [label_column, *summary.get("drop_columns", [])] if c and c in frame.columns])
    spec = model_spec(det.extra_documents_)
    return X if spec is None else model_frame(X, compute_features(frame, spec), spec)


def _rates(flag: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": int(flag.size), "alerts": int(flag.sum())}
    out["alert_rate"] = float(flag.mean()) if flag.size else 0.0
    if labels is not None:
        labelled_alerts = flag & (labels >= 0)
        frauds = labels == 1
        out["labelled_alerts"] = int(labelled_alerts.sum())
        out["precision"] = float((labels[labelled_alerts] == 1).mean()) if labelled_alerts.any() else None
        out["labelled_frauds"] = int(frauds.sum())
        out["recall"] = float(flag[frauds].mean()) if frauds.any() else None
    return out


def monitor_file(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    label_column: str | None = None,
    normal_value: str | None = None,
    time_column: str | None = None,
    period: str = "D",
) -> MonitorResult:
    det = VAEDetector.load(str(model_dir))
    if det.reference_ is None:
        raise IncompatibleArtifactError(
            f"The model at {str(model_dir)!r} was saved before fraudvae kept a reference sample of its training "
            "rows, which drift is measured against; re-fit it with this version."
        )
    summary = det.extra_documents_.get("training_summary", {})
    frame = read_table(data)
    if label_column is not None and label_column not in frame.columns:
        raise DataFileError(
            f"Label column {label_column!r} is not in the data; the columns are {list(frame.columns)[:30]}."
        )
    time_column = time_column or summary.get("time_column")
    if time_column is not None and time_column not in frame.columns:
        raise DataFileError(
            f"Time column {time_column!r} is not in the data; the columns are {list(frame.columns)[:30]}."
        )
    labels = partial_labels(frame[label_column], label_column, normal_value) if label_column else None
    prepared = det.prepare(model_input(det, frame, label_column), errors="collect", warn_extra=False)
    result = det.score_prepared(prepared)
    kept = np.asarray(prepared.row_positions, dtype=np.int64)
    flag = np.asarray(result.is_anomaly, dtype=bool)
    rows = prepared.clean
    calibration = det.calibration_
    plan = calibration["plans"][calibration["plan"]]
    reference = Reference.from_json({**det.reference_, "scores": plan["reference_scores"]})
    drift = compare(reference, rows, scores=result.anomaly_score)
    kept_labels = labels[kept] if labels is not None else None
    document: dict[str, Any] = {
        "model_dir": str(model_dir),
        "version": __version__,
        "data": str(data),
        "rows": int(kept.size),
        "rejected": int(len(frame) - kept.size),
        "threshold": float(result.threshold),
        "target_fpr": calibration.get("goal", {}).get("target_fpr"),
        **{k: v for k, v in _rates(flag, kept_labels).items() if k in ("alerts", "alert_rate")},
        "labels": _rates(flag, kept_labels) if kept_labels is not None else None,
        "drift": [d.to_json() for d in drift],
        "drifted_columns": [d.column for d in drift if d.drifted and d.kind != "score"],
        "score_drifted": any(d.drifted for d in drift if d.kind == "score"),
        "alerts_over_time": _over_time(frame, time_column, kept, flag, kept_labels, period) if time_column else [],
    }
    try:
        from fraudvae.monitor.report import write_monitor_report
    except ImportError as exc:  # matplotlib and jinja2 come with the extra
        raise ConfigurationError(
            f"The monitor report needs the 'report' extra ({exc.name} is not installed): pip install 'fraudvae[report]'"
        ) from exc
    out_dir = write_monitor_report(
        out,
        document=document,
        reference=reference,
        current=rows,
        drift=drift,
        scores=result.anomaly_score,
        threshold=float(result.threshold),
    )
    return MonitorResult(document, out_dir)


def _over_time(
    frame: pd.DataFrame,
    time_column: str,
    kept: np.ndarray,
    flag: np.ndarray,
    labels: np.ndarray | None,
    period: str,
) -> list[dict[str, Any]]:
    when = pd.to_datetime(frame[time_column].iloc[kept], errors="coerce", utc=True)
    if when.isna().all():
        raise DataFileError(f"Time column {time_column!r} holds no date-time the monitor can read.")
    bucket = when.dt.tz_localize(None).dt.to_period(period).astype(str).to_numpy()
    out = []
    for key in sorted({b for b in bucket if b != "NaT"}):
        rows = bucket == key
        out.append({"period": key, **_rates(flag[rows], labels[rows] if labels is not None else None)})
    return out
