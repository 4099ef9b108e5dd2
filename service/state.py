"""What the service holds between requests: the loaded model (swapped atomically) and its metrics."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, TypeAdapter

from fraudvae import VAEDetector
from fraudvae.detection.artifact import MANIFEST
from fraudvae.detection.results import ScoreResult

from .errors import NotReady
from .schemas import transaction_model

__all__ = ["LoadedModel", "Metrics", "ModelHolder", "load_model"]


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


def load_model(model_dir: Path) -> LoadedModel:
    """Load and verify a model directory, and build its request schema."""
    detector = VAEDetector.load(str(model_dir))
    digest = hashlib.sha256((model_dir / MANIFEST).read_bytes()).hexdigest()[:12]
    row_model = transaction_model(detector.schema_)
    return LoadedModel(
        detector=detector,
        model_dir=model_dir,
        version=f"{digest}",
        row_model=row_model,
        row_adapter=TypeAdapter(row_model),
        batch_adapter=TypeAdapter(list[row_model]),  # type: ignore[valid-type]
        expected={c.name: c.expected for c in detector.schema_.columns},
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
        self._rows_total = 0
        self._flagged_total = 0
        self.reloads = Counter(
            "fraudvae_model_reloads_total", "Model reloads by outcome.", ["outcome"], registry=self.registry
        )

    def observe_scores(self, result: ScoreResult) -> None:
        self.rows.inc(len(result))
        self.flagged.inc(int(result.is_anomaly.sum()))
        self._rows_total += len(result)
        self._flagged_total += int(result.is_anomaly.sum())
        self.flag_rate.set(self._flagged_total / self._rows_total if self._rows_total else 0.0)
        for s in result.anomaly_score:
            self.scores.observe(float(s))
