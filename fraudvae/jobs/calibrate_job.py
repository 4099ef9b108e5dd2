"""``fraudvae calibrate``: a new model version in which only the threshold changes, from labels or recent traffic.

Labels come as a file of scored events with their label column (the events' columns, as
``evaluate`` takes them; a missing label = not labelled, left out). With a precision or
recall target the threshold is chosen on the labelled rows; with ``--target-fpr`` the file
is recent unlabelled traffic, all counted as normal. The model directory (or ``--out``) is
replaced atomically; its ``versions.json`` keeps every recalibration: who, when, which
labels (file, SHA-256, rows), the old and new threshold, and the expected precision and
recall with 95% intervals. A running service picks the version up on ``POST /model/reload``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.io import read_table
from fraudvae.detection.artifact import file_sha256
from fraudvae.detection.detector import VAEDetector
from fraudvae.exceptions import ConfigurationError, DataFileError
from fraudvae.features.columns import numbers
from fraudvae.jobs.monitor_job import model_input, partial_labels
from fraudvae.monitor.recalibrate import new_calibration

__all__ = ["recalibrate_file"]


def recalibrate_file(
    model_dir: str | Path,
    data: str | Path,
    *,
    label_column: str | None = None,
    normal_value: str | None = None,
    target_precision: float | None = None,
    target_recall: float | None = None,
    target_fpr: float | None = None,
    out: str | Path | None = None,
    who: str | None = None,
    time_column: str | None = None,
) -> dict[str, Any]:
    """Recalibrate and save; returns the audit entry."""
    if (target_fpr is None) == (label_column is None):
        raise ConfigurationError(
            "Pass --label-column with --target-precision or --target-recall (labelled events), or "
            "--target-fpr alone (recent unlabelled traffic)."
        )
    det = VAEDetector.load(str(model_dir))
    frame = read_table(data)
    labels = None
    if label_column is not None:
        if label_column not in frame.columns:
            raise DataFileError(
                f"Label column {label_column!r} is not in the data; the columns are {list(frame.columns)[:30]}."
            )
        labels = partial_labels(frame[label_column], label_column, normal_value)
    time_column = time_column or det.extra_documents_.get("training_summary", {}).get("time_column")
    times = _event_times(frame, time_column) if time_column is not None and labels is not None else None
    prepared = det.prepare(model_input(det, frame, label_column), errors="collect", warn_extra=False)
    scores = det.score_prepared(prepared, sampled=False).anomaly_score
    kept = np.asarray(prepared.row_positions, dtype=np.int64)
    y = None
    if labels is not None:
        known = labels[kept] >= 0
        scores, y = scores[known], labels[kept][known] == 1
        times = None if times is None else times[kept][known]
    source = {
        "file": str(data),
        "sha256": file_sha256(data),
        "rows": len(frame),
        "used_rows": int(scores.size),
        "rejected_rows": int(len(frame) - kept.size),
        **({"label_column": label_column, "frauds": int(y.sum())} if y is not None else {}),
        **({"time_column": time_column} if times is not None else {}),
    }
    doc, entry = new_calibration(
        det.engine_.calibration,
        scores,
        y,
        target_precision=target_precision,
        target_recall=target_recall,
        target_fpr=target_fpr,
        source=source,
        who=who,
        times=times,
    )
    det.engine_ = det.engine_.with_calibration(doc)
    det.recalibrations_ = [*getattr(det, "recalibrations_", []), entry]
    det.save(str(out or model_dir))
    return entry


def _event_times(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The time column as numbers in time order: numbers as they are, date-times as seconds."""
    if column not in frame.columns:
        raise DataFileError(f"Time column {column!r} is not in the data; the columns are {list(frame.columns)[:30]}.")
    values = frame[column]
    as_numbers = numbers(frame, column)  # the schema's parser: hostile text is missing, never slow
    if np.isfinite(as_numbers).all():
        return as_numbers
    when = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = when.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFileError(
            f"Time column {column!r} holds {str(values.iloc[row])[:60]!r} at row {row + 1}; expected a number or a "
            "date-time in every labelled row (or pass --time-column with another column)."
        )
    return (when - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
