"""The monitor store: scored events, analysts' labels (with history) and live performance, in SQLite.

One file, WAL mode, correct with several uvicorn workers on one machine (every write is one
``BEGIN IMMEDIATE`` transaction). Three tables:

- ``scores``: one row per scored event (id, time, model version, score, flag, top features),
  bounded: beyond ``max_rows`` the oldest are deleted, and rows older than ``max_age`` go too;
- ``labels``: the current label per ``(event_id, source)``; ``label_history``: every label
  ever received, in arrival order. A label equal to the stored one is a no-op (idempotent);
  a later ``labelled_at`` from the same source replaces it; an older one is kept in the
  history only. A label for an event the log never saw is kept and counted as unknown;
- ``traffic``: the feature values of the most recent ``traffic_rows`` scored rows, for
  drift against the model's reference sample.

Live performance over a window (last hour, day, week) joins the score log to the latest
label of each event (:meth:`MonitorStore.window`).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from fraudvae.exceptions import DataFileError

__all__ = [
    "DEFAULT_MAX_ROWS",
    "WINDOWS",
    "Label",
    "MonitorLog",
    "MonitorStore",
    "ScoredEvent",
    "default_monitor_path",
    "live_window",
    "parse_labels",
]

#: Scored events kept (the oldest go first).
DEFAULT_MAX_ROWS = 1_000_000
#: Scored events older than this are dropped (seconds; 90 days).
DEFAULT_MAX_AGE = 90 * 86_400.0
#: Recent rows kept for drift.
DEFAULT_TRAFFIC_ROWS = 5_000
#: The sliding windows of live performance (name, seconds).
WINDOWS = (("hour", 3_600.0), ("day", 86_400.0), ("week", 7 * 86_400.0))
_PURGE_EVERY = 1_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT,
    scored_at REAL NOT NULL,
    model_version TEXT NOT NULL,
    score REAL NOT NULL,
    flagged INTEGER NOT NULL,
    top_features TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_event ON scores(event_id);
CREATE INDEX IF NOT EXISTS scores_time ON scores(scored_at);
CREATE TABLE IF NOT EXISTS labels (
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    label INTEGER NOT NULL,
    labelled_at REAL NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (event_id, source)
);
CREATE TABLE IF NOT EXISTS label_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    source TEXT NOT NULL,
    label INTEGER NOT NULL,
    labelled_at REAL NOT NULL,
    received_at REAL NOT NULL,
    outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS traffic (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    row TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ScoredEvent:
    event_id: str | None
    score: float
    flagged: bool
    top_features: Sequence[str] = ()
    scored_at: float | None = None


@dataclass(frozen=True)
class Label:
    """``label``: 1 = fraud, 0 = legit. ``labelled_at``: when the analyst decided (unix seconds)."""

    event_id: str
    label: int
    source: str
    labelled_at: float


class MonitorStore:
    def __init__(
        self,
        path: str | Path,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_age: float = DEFAULT_MAX_AGE,
        traffic_rows: int = DEFAULT_TRAFFIC_ROWS,
    ) -> None:
        self.path = Path(path)
        self.max_rows, self.max_age, self.traffic_rows = max_rows, max_age, traffic_rows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writes = 0
        self._db().executescript(_SCHEMA)  # idempotent; executescript commits on its own

    # ------------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, kind: object, *_: object) -> None:
            self.db.execute("ROLLBACK" if kind is not None else "COMMIT")

    def _tx(self) -> MonitorStore._Tx:
        return MonitorStore._Tx(self._db())

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ------------------------------------------------------------------ writes
    def log_scores(
        self, events: Iterable[ScoredEvent], model_version: str, rows: list[dict[str, Any]] | None = None
    ) -> int:
        """Record scored events (and, for drift, their feature values) in one transaction."""
        now = time.time()
        values = [
            (
                e.event_id,
                e.scored_at if e.scored_at is not None else now,
                model_version,
                float(e.score) if math.isfinite(e.score) else 1e300,
                int(bool(e.flagged)),
                json.dumps(list(e.top_features)),
            )
            for e in events
        ]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO scores (event_id, scored_at, model_version, score, flagged, top_features) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                values,
            )
            if rows:
                db.executemany("INSERT INTO traffic (row) VALUES (?)", [(json.dumps(r, default=str),) for r in rows])
            self._writes += len(values)
            if self._writes >= _PURGE_EVERY:
                self._writes = 0
                self._purge(db, now)
        return len(values)

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM scores WHERE scored_at < ?", (now - self.max_age,))
        db.execute("DELETE FROM scores WHERE seq <= (SELECT MAX(seq) FROM scores) - ?", (self.max_rows,))
        db.execute("DELETE FROM traffic WHERE seq <= (SELECT MAX(seq) FROM traffic) - ?", (self.traffic_rows,))

    def purge(self) -> None:
        """Apply the bounds now (they are applied every 1,000 logged events anyway)."""
        with self._tx() as db:
            self._purge(db, time.time())

    def add_labels(self, labels: Sequence[Label]) -> dict[str, Any]:
        """Record labels; returns counts: stored, replaced, unchanged, older (kept in history only), unknown ids."""
        now = time.time()
        counts = {"stored": 0, "replaced": 0, "unchanged": 0, "older": 0}
        with self._tx() as db:
            for lab in labels:
                row = db.execute(
                    "SELECT label, labelled_at FROM labels WHERE event_id = ? AND source = ?",
                    (lab.event_id, lab.source),
                ).fetchone()
                if row is not None and row[0] == lab.label and row[1] == lab.labelled_at:
                    counts["unchanged"] += 1
                    continue
                if row is None:
                    outcome = "stored"
                elif lab.labelled_at >= row[1]:
                    outcome = "replaced"
                else:
                    outcome = "older"
                if outcome != "older":
                    db.execute(
                        "INSERT OR REPLACE INTO labels (event_id, source, label, labelled_at, received_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (lab.event_id, lab.source, lab.label, lab.labelled_at, now),
                    )
                db.execute(
                    "INSERT INTO label_history (event_id, source, label, labelled_at, received_at, outcome) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (lab.event_id, lab.source, lab.label, lab.labelled_at, now, outcome),
                )
                counts[outcome] += 1
            ids = sorted({lab.event_id for lab in labels})
            unknown = [
                i for i in ids if db.execute("SELECT 1 FROM scores WHERE event_id = ? LIMIT 1", (i,)).fetchone() is None
            ]
        return {**counts, "unknown_event_ids": unknown[:100], "unknown": len(unknown)}

    # ------------------------------------------------------------------ reads
    def labels(self) -> pd.DataFrame:
        """The current label per (event, source)."""
        return pd.read_sql_query("SELECT * FROM labels ORDER BY event_id, source", self._db())

    def label_history(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM label_history ORDER BY seq", self._db())

    def scores(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM scores ORDER BY seq", self._db())

    def recent_scores(self, n: int) -> np.ndarray:
        """The scores of the ``n`` most recently logged events (one indexed read, not the whole log)."""
        got = self._db().execute("SELECT score FROM scores ORDER BY seq DESC LIMIT ?", (n,)).fetchall()
        return np.array([r[0] for r in reversed(got)], dtype=np.float64)

    def traffic(self) -> pd.DataFrame:
        rows = [json.loads(r[0]) for r in self._db().execute("SELECT row FROM traffic ORDER BY seq").fetchall()]
        return pd.DataFrame(rows)

    def window(self, seconds: float, *, now: float | None = None, target_fpr: float | None = None) -> dict[str, Any]:
        """Live performance of the events scored in the last ``seconds``.

        An event's label is its latest (by ``labelled_at``) across sources. Precision is over
        labelled alerts, recall over labelled frauds; the label delay runs from scoring to
        the analyst's decision.
        """
        now = time.time() if now is None else now
        db = self._db()
        scored = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(flagged), 0) FROM scores WHERE scored_at >= ?", (now - seconds,)
        ).fetchone()
        joined = db.execute(
            """
            SELECT s.flagged, l.label, l.labelled_at - s.scored_at
            FROM (SELECT event_id, MAX(flagged) AS flagged, MIN(scored_at) AS scored_at
                  FROM scores WHERE scored_at >= ? AND event_id IS NOT NULL GROUP BY event_id) AS s
            JOIN (SELECT event_id, label, labelled_at,
                         ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY labelled_at DESC, received_at DESC) AS k
                  FROM labels) AS l
              ON l.event_id = s.event_id AND l.k = 1
            """,
            (now - seconds,),
        ).fetchall()
        return live_window(seconds, int(scored[0]), int(scored[1]), joined, target_fpr)

    def summary(self) -> dict[str, Any]:
        db = self._db()
        return {
            "scored_events": int(db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]),
            "labels": int(db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]),
            "label_history": int(db.execute("SELECT COUNT(*) FROM label_history").fetchone()[0]),
            "unknown_labelled_events": int(
                db.execute(
                    "SELECT COUNT(DISTINCT event_id) FROM labels WHERE event_id NOT IN "
                    "(SELECT event_id FROM scores WHERE event_id IS NOT NULL)"
                ).fetchone()[0]
            ),
        }


class MonitorLog(Protocol):
    """What the service, ``fraudvae feedback import`` and ``GET /monitor`` use of a monitor store
    (SQLite: :class:`MonitorStore`; Redis: :class:`~fraudvae.monitor.redis_store.RedisMonitorStore`)."""

    def log_scores(
        self, events: Iterable[ScoredEvent], model_version: str, rows: list[dict[str, Any]] | None = None
    ) -> int: ...

    def add_labels(self, labels: Sequence[Label]) -> dict[str, Any]: ...

    def recent_scores(self, n: int) -> np.ndarray: ...

    def traffic(self) -> pd.DataFrame: ...

    def window(
        self, seconds: float, *, now: float | None = None, target_fpr: float | None = None
    ) -> dict[str, Any]: ...

    def summary(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def live_window(
    seconds: float, rows: int, alerts: int, joined: Sequence[tuple[Any, Any, Any]], target_fpr: float | None
) -> dict[str, Any]:
    """A window's live figures from its counts and its labelled events' (flagged, label, label delay)."""
    flagged = np.array([r[0] for r in joined], dtype=bool)
    fraud = np.array([r[1] for r in joined], dtype=bool)
    delay = np.array([r[2] for r in joined], dtype=np.float64)
    return {
        "seconds": seconds,
        "scored": rows,
        "alerts": alerts,
        "alert_rate": alerts / rows if rows else None,
        "target_fpr": target_fpr,
        "labelled": len(joined),
        "labelled_alerts": int(flagged.sum()),
        "precision": float(fraud[flagged].mean()) if flagged.any() else None,
        "labelled_frauds": int(fraud.sum()),
        "recall": float(flagged[fraud].mean()) if fraud.any() else None,
        "label_delay_seconds": {
            "median": float(np.median(delay)) if delay.size else None,
            "p90": float(np.percentile(delay, 90)) if delay.size else None,
        },
    }


def default_monitor_path(model_dir: str | Path) -> Path:
    """Where a model's monitor store lives unless configured: beside its directory."""
    path = Path(model_dir)
    return path.with_name(path.name + ".monitor.sqlite")


def parse_labels(frame: pd.DataFrame, *, received: float | None = None) -> list[Label]:
    """Labels from a table (event_id, label, [source], [labelled_at]); a bad cell is refused by row and column."""
    missing = [c for c in ("event_id", "label") if c not in frame.columns]
    if missing:
        raise DataFileError(
            f"The labels file has no column(s) {missing}; expected event_id, label (fraud or legit), and optionally "
            f"source and labelled_at. Its columns are {list(frame.columns)[:30]}."
        )
    now = time.time() if received is None else received
    out = []
    for i, row in enumerate(frame.to_dict("records")):
        event_id = row["event_id"]
        if event_id is None or (isinstance(event_id, float) and math.isnan(event_id)) or not str(event_id).strip():
            raise DataFileError(f"Row {i}: event_id is empty; expected the id the event was scored with.")
        event_id = str(event_id).strip()
        if len(event_id) > 200:
            raise DataFileError(
                f"Row {i}: event_id {event_id[:40]!r}... is {len(event_id)} characters; expected at most 200."
            )
        label = str(row["label"]).strip().lower()
        if label not in ("fraud", "legit"):
            raise DataFileError(f"Row {i}: label {row['label']!r} for event {event_id!r}; expected 'fraud' or 'legit'.")
        source = row.get("source")
        source = (
            "analyst" if source is None or (isinstance(source, float) and math.isnan(source)) else str(source).strip()
        )
        if not source or len(source) > 100:
            raise DataFileError(f"Row {i}: source {source!r}; expected 1 to 100 characters.")
        when = row.get("labelled_at")
        if when is None or (isinstance(when, float) and math.isnan(when)):
            seconds = now
        else:
            try:
                seconds = float(when)
            except (TypeError, ValueError):
                stamp = pd.to_datetime(str(when), errors="coerce", utc=True)
                if pd.isna(stamp):
                    raise DataFileError(
                        f"Row {i}: labelled_at {when!r}; expected an ISO 8601 date-time or unix seconds."
                    ) from None
                seconds = stamp.timestamp()
            if not (math.isfinite(seconds) and 0 <= seconds < 1e11):
                raise DataFileError(
                    f"Row {i}: labelled_at {when!r}; expected unix seconds between 1970 and the year 5000."
                )
        out.append(Label(event_id, 1 if label == "fraud" else 0, source, seconds))
    return out


def score_log_table(result: Any, ids: np.ndarray | None, model_version: str, top_k: int) -> Any:
    """The batch job's score log as an Arrow table: the service's columns (``result`` None: empty).

    Built column by column in Arrow (no Python loop over rows but the top features'), so the
    log costs the batch job little (``benchmarks/score_log.py``).
    """
    n = 0 if result is None else len(result)
    zeros = pa.array(np.zeros(n, dtype=np.int64))
    if ids is not None:
        event_id = pa.array(np.asarray(ids, dtype=object), from_pandas=True)
        event_id = event_id if pa.types.is_string(event_id.type) else event_id.cast(pa.string())
    else:
        event_id = pa.nulls(n, pa.string())
    tops = result.top_features(top_k) if result is not None and top_k else None
    features = (
        pa.array([json.dumps([t["feature"] for t in row]) for row in tops], pa.string())
        if tops
        else pa.array(["[]"], pa.string()).take(zeros)
    )
    now = np.datetime64(pd.Timestamp.now(tz="UTC").tz_localize(None).to_datetime64(), "us")
    return pa.table(
        {
            "event_id": event_id,
            "scored_at": pa.array(np.full(n, now), pa.timestamp("us", tz="UTC")),
            "model_version": pa.array([model_version], pa.string()).take(zeros),
            "score": pa.array(np.zeros(0) if result is None else np.asarray(result.anomaly_score), pa.float64()),
            "flagged": pa.array(
                np.zeros(0, bool) if result is None else np.asarray(result.is_anomaly, bool), pa.bool_()
            ),
            "top_features": features,
        }
    )
