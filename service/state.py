"""What the service holds between requests: the loaded model (swapped atomically) and its metrics."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, TypeAdapter

from fraudvae import VAEDetector
from fraudvae.detection.artifact import model_version
from fraudvae.detection.results import ScoreResult
from fraudvae.exceptions import StateUnavailableError
from fraudvae.features.behaviour import model_spec
from fraudvae.features.spec import FeatureSpec
from fraudvae.state import DEFAULT_EVENT_TTL, StateStore, default_state_url, open_store
from fraudvae.state.online import OnlineScorer, event_ttl_for

from .errors import NotReady
from .schemas import event_model, transaction_model
from .settings import Settings

__all__ = ["LoadedModel", "Metrics", "ModelHolder", "OnlineState", "load_model"]


@dataclass(frozen=True)
class LoadedModel:
    """Everything a request needs, swapped as one object: a request keeps the one it started with."""

    detector: VAEDetector
    model_dir: Path
    version: str
    row_model: type[BaseModel]
    row_adapter: TypeAdapter[Any]
    batch_adapter: TypeAdapter[Any]
    expected: dict[str, str]
    #: A model trained with a feature spec: its raw event columns (the request's fields, in
    #: frame order), the column naming an event (or None: the request's "event_id"), its store.
    spec: FeatureSpec | None = None
    event_columns: tuple[str, ...] = ()
    id_column: str | None = None
    state: OnlineState | None = None

    @property
    def frame_columns(self) -> list[str]:
        return list(self.event_columns) if self.spec is not None else self.detector.schema_.names


class OnlineState:
    """A spec model's store and its scorer, bound to the model's spec on first use.

    The store may be unreachable when the model loads (Redis still starting): the model
    serves nothing that needs the state until it answers (``/ready`` says so, ``/score`` 503).
    """

    def __init__(self, detector: VAEDetector, store: StateStore) -> None:
        self.detector, self.store = detector, store
        self._scorer: OnlineScorer | None = None
        self._lock = threading.Lock()

    def scorer(self) -> OnlineScorer:
        scorer = self._scorer
        if scorer is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = OnlineScorer(self.detector, self.store)  # binds: may refuse the store
                scorer = self._scorer
        return scorer

    def ready(self) -> None:
        """Raise :class:`StateUnavailableError` unless the store answers and is bound."""
        self.store.ping()
        self.scorer()


def load_model(model_dir: Path, settings: Settings | None = None) -> LoadedModel:
    """Load and verify a model directory, build its request schema, and open its state store."""
    detector = VAEDetector.load(str(model_dir))
    digest = model_version(model_dir)
    spec = model_spec(detector.extra_documents_)
    expected = {c.name: c.expected for c in detector.schema_.columns}
    state = None
    id_column = settings.event_id_column if settings else None
    if spec is None:
        row_model = transaction_model(detector.schema_)
        event_columns: tuple[str, ...] = ()
    else:
        row_model, event_columns = event_model(detector.schema_, spec, id_column)
        expected |= {c: "a value of the raw event (text or number)" for c in event_columns if c not in expected}
        url = (settings.state_url if settings else None) or default_state_url(model_dir)
        ttl = event_ttl_for(spec, settings.state_event_ttl_seconds if settings else DEFAULT_EVENT_TTL)
        state = OnlineState(detector, open_store(url, event_ttl=ttl))
        # A store of another spec is refused now, before this model serves; one that is
        # unreachable for now is not: /ready and /score say so until it answers.
        with contextlib.suppress(StateUnavailableError):
            state.scorer()
    return LoadedModel(
        detector=detector,
        model_dir=model_dir,
        version=f"{digest}",
        row_model=row_model,
        row_adapter=TypeAdapter(row_model),
        batch_adapter=TypeAdapter(list[row_model]),  # type: ignore[valid-type]
        expected=expected,
        spec=spec,
        event_columns=event_columns,
        id_column=id_column,
        state=state,
    )


class ModelHolder:
    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedModel:
        current = self._current
        if current is None:
            raise NotReady("the model is not loaded yet")
        return current

    def swap(self, new: LoadedModel) -> LoadedModel | None:
        with self._lock:
            old, self._current = self._current, new
        return old

    @property
    def ready(self) -> bool:
        return self._current is not None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fraudvae_requests_total",
            "HTTP requests by endpoint and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fraudvae_request_seconds",
            "Request latency by endpoint.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.rows = Counter("fraudvae_rows_scored_total", "Rows scored.", registry=self.registry)
        self.flagged = Counter("fraudvae_rows_flagged_total", "Rows flagged as anomalous.", registry=self.registry)
        self.flag_rate = Gauge(
            "fraudvae_flag_rate", "Share of scored rows flagged since start.", registry=self.registry
        )
        self.scores = Histogram(
            "fraudvae_anomaly_score",
            "Distribution of anomaly scores.",
            buckets=(-50, -20, -10, 0, 5, 10, 20, 30, 50, 75, 100, 200, 500, 1000, 1e4),
            registry=self.registry,
        )
        self.pass_requests = Histogram(
            "fraudvae_score_pass_requests",
            "/score requests answered by one detector pass (concurrent requests are scored together).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self._rows_total = 0
        self._flagged_total = 0
        self.state = Gauge(
            "fraudvae_state",
            "A spec model's state store: entities, events recorded, expiries (whole store), and read/write "
            "latency p50 and p99 in seconds (this worker).",
            ["kind", "measure"],
            registry=self.registry,
        )
        self.state_up = Gauge("fraudvae_state_up", "1 when the state store answers.", registry=self.registry)
        self.score_log_errors = Counter(
            "fraudvae_score_log_errors_total", "Scored requests the score log could not record.", registry=self.registry
        )
        self.live = Gauge(
            "fraudvae_monitor",
            "Live performance from the score log and analysts' labels, per window (hour, day, week): alert_rate, "
            "target_fpr, precision, recall, labelled_alerts, label_delay_seconds_median.",
            ["window", "measure"],
            registry=self.registry,
        )
        self.drift = Gauge(
            "fraudvae_drift",
            "Drift of the recent scored rows against the training reference, per column (and 'score'): the "
            "test's statistic, its threshold, and drifted (1/0).",
            ["column", "measure"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "fraudvae_model_reloads_total", "Model reloads by outcome.", ["outcome"], registry=self.registry
        )

    def observe_state(self, store: StateStore) -> None:
        """Refresh the state gauges (on each scrape)."""
        try:
            stats = store.stats()
        except StateUnavailableError:
            self.state_up.set(0)
            return
        self.state_up.set(1)
        for measure in ("entities", "events", "expiries"):
            self.state.labels(stats["kind"], measure).set(stats[measure])
        for measure in ("read_ms_p50", "read_ms_p99", "write_ms_p50", "write_ms_p99"):
            if stats[measure] is not None:
                self.state.labels(stats["kind"], measure.replace("_ms_", "_seconds_")).set(stats[measure] / 1000)

    def observe_monitor(self, document: dict[str, Any]) -> None:
        """Refresh the live-performance and drift gauges from :func:`service.monitoring.monitor_document`."""
        for name, w in document["windows"].items():
            delay = w["label_delay_seconds"]["median"]
            for measure, value in (
                ("alert_rate", w["alert_rate"]),
                ("target_fpr", w["target_fpr"]),
                ("precision", w["precision"]),
                ("recall", w["recall"]),
                ("labelled_alerts", w["labelled_alerts"]),
                ("label_delay_seconds_median", delay),
            ):
                if value is not None:
                    self.live.labels(name, measure).set(float(value))
        for d in document["drift"]:
            if d["statistic"] is not None:
                self.drift.labels(d["column"], "statistic").set(d["statistic"])
                self.drift.labels(d["column"], "threshold").set(d["threshold"])
            self.drift.labels(d["column"], "drifted").set(1.0 if d["drifted"] else 0.0)

    def observe_scores(self, result: ScoreResult) -> None:
        self.rows.inc(len(result))
        self.flagged.inc(int(result.is_anomaly.sum()))
        self._rows_total += len(result)
        self._flagged_total += int(result.is_anomaly.sum())
        self.flag_rate.set(self._flagged_total / self._rows_total if self._rows_total else 0.0)
        for s in result.anomaly_score:
            self.scores.observe(float(s))
