"""The service's side of monitoring: the score log written per request, labels in, live figures out.

Storage and the figures are the library's (:mod:`fraudvae.monitor`); this module only maps
requests onto them. The store is one SQLite file for every worker (``FRAUDVAE_MONITOR_PATH``,
by default beside the model directory).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fraudvae.detection.results import ScoreResult
from fraudvae.monitor.drift import Reference, compare
from fraudvae.monitor.store import (
    WINDOWS,
    Label,
    MonitorLog,
    MonitorStore,
    ScoredEvent,
    default_monitor_path,
)
from fraudvae.monitor.stores import open_monitor_store

from .settings import Settings
from .state import LoadedModel

__all__ = ["FeedbackItem", "log_scored", "monitor_document", "open_monitor"]

#: Recent scores compared with the calibration scores (score drift).
_RECENT_SCORES = 5_000


def open_monitor(settings: Settings) -> MonitorLog | None:
    """The score log: FRAUDVAE_MONITOR_URL, else a Redis state URL (a fleet shares one log), else SQLite."""
    if not settings.score_log:
        return None
    state = (
        settings.state_url if settings.state_url and settings.state_url.startswith(("redis://", "rediss://")) else None
    )
    url = settings.monitor_url or state
    if url:
        return open_monitor_store(url, max_rows=settings.score_log_max_rows)
    path = settings.monitor_path or default_monitor_path(settings.model_dir)
    return MonitorStore(path, max_rows=settings.score_log_max_rows)


class FeedbackItem(BaseModel):
    """One analyst's verdict on one scored event."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = Field(min_length=1, max_length=200, description="The id the event was scored with.")
    label: Literal["fraud", "legit"]
    source: str = Field(
        "analyst", min_length=1, max_length=100, description="Who labelled it: one current label per source."
    )
    labelled_at: dt.datetime | Annotated[float, Field(ge=0, lt=1e11, allow_inf_nan=False)] | None = Field(
        None, description="When the label was decided: ISO 8601 or unix seconds (default: when received)."
    )

    def to_label(self, received: float) -> Label:
        when = self.labelled_at
        if when is None:
            seconds = received
        elif isinstance(when, dt.datetime):
            seconds = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
        else:
            seconds = float(when)
        return Label(self.event_id, 1 if self.label == "fraud" else 0, self.source, seconds)


#: The recent rows' values kept for drift: those of one scored request in this many (the
#: others log their scores only). 5,000 rows then span the last ~50,000 events, and the
#: score log costs a request less (benchmarks/score_log.py).
TRAFFIC_EVERY = 10
_requests = itertools.count()


def log_scored(
    monitor: MonitorLog,
    model: LoadedModel,
    result: ScoreResult,
    frame: pd.DataFrame,
    ids: list[str | None],
    skip: list[bool] | None = None,
) -> None:
    """Log every scored row not marked in ``skip`` (a replayed event was logged the first time)."""
    ranking = result.ranking
    names = result.feature_names
    keep_values = next(_requests) % TRAFFIC_EVERY == 0
    columns = (
        [c for c in (model.detector.reference_ or {}).get("kinds", {}) if c in frame.columns] if keep_values else []
    )
    values = {c: frame[c].to_numpy() for c in columns}
    events, rows = [], []
    for i in range(len(result)):
        if skip is not None and skip[i]:
            continue
        top = [names[j] for j in ranking[i, :3]] if ranking is not None else []
        events.append(ScoredEvent(ids[i], float(result.anomaly_score[i]), bool(result.is_anomaly[i]), top))
        if columns:
            rows.append({c: _plain(values[c][i]) for c in columns})
    monitor.log_scores(events, model.version, rows or None)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.isoformat()
    return value


def monitor_document(monitor: MonitorLog, model: LoadedModel) -> dict[str, Any]:
    """Live performance over the last hour, day and week, drift of the recent rows, the store's counts."""
    calibration = model.detector.calibration_
    target = calibration.get("goal", {}).get("target_fpr")
    now = time.time()
    windows = {name: monitor.window(seconds, now=now, target_fpr=target) for name, seconds in WINDOWS}
    drift: list[dict[str, Any]] = []
    reference = model.detector.reference_
    if reference is not None:
        plan = calibration["plans"][calibration["plan"]]
        ref = Reference.from_json({**reference, "scores": plan["reference_scores"]})
        traffic = monitor.traffic()
        recent = monitor.recent_scores(_RECENT_SCORES)
        scores = recent if recent.size else None
        if len(traffic) or scores is not None:
            drift = [d.to_json() for d in compare(ref, traffic, scores=scores)]
    return {
        "model_version": model.version,
        "windows": windows,
        "drift": drift,
        "drifted_columns": [d["column"] for d in drift if d["drifted"] and d["kind"] != "score"],
        "store": monitor.summary(),
    }
