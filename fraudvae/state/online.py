"""Scoring raw events online: an event's features from its entities' stored history, then the model.

:class:`OnlineScorer` is what the HTTP service (and ``fraudvae state load``) call for a model
trained with a feature spec. In one store transaction it reads the history of the entities a
request's events touch, computes their features with :func:`fraudvae.features.online.update_events`
(the batch job's computation, entity by entity), and records the events and the entities' new
history; the caller then scores the raw columns plus the features with the detector, as the
batch job does (:func:`fraudvae.features.behaviour.with_features`).

Every event recorded carries an id. A retried request with an id the store holds is not
counted again: its stored features come back (and its stored answer, once one was given).
``record=False`` computes the features from the history as it stands and writes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudvae.detection.detector import VAEDetector
from fraudvae.exceptions import ConfigurationError
from fraudvae.features.behaviour import model_spec, with_features
from fraudvae.features.online import entity_records, spec_fingerprint, update_events
from fraudvae.features.spec import FeatureSpec
from fraudvae.state.store import Seen, StateStore, Written

__all__ = ["Online", "OnlineScorer"]


@dataclass
class Online:
    """The features of a request's events, and what the store said about them."""

    frame: pd.DataFrame  # the raw columns plus the derived ones: what the detector scores
    late: np.ndarray  # per row: older than its entity's newest event when it arrived
    replayed: dict[int, str | None] = field(default_factory=dict)  # row -> stored answer (None: not yet)
    recorded: bool = True


class OnlineScorer:
    """A spec model's online feature state: one per loaded model and store."""

    def __init__(self, detector: VAEDetector, store: StateStore) -> None:
        spec = model_spec(detector.extra_documents_)
        if spec is None:
            raise ConfigurationError("online state is for a model trained with a feature spec (--features).")
        if spec.label_risk:
            raise ConfigurationError(
                "the model's spec has [[label_risk]] features, which the online service cannot compute yet (it "
                "keeps no labels in its state): score this model with the batch job (fraudvae score --history) or "
                "train one without [[label_risk]] for /score."
            )
        self.spec: FeatureSpec = spec
        self.store = store
        self.names = spec.feature_names()
        store.bind(spec_fingerprint(spec))

    def features(self, frame: pd.DataFrame, event_ids: list[str] | None, *, record: bool = True) -> Online:
        """Each event's features (rows in order; events of one entity count in row order).

        ``event_ids`` (one per row, text) are required to record; duplicates inside one
        request count once (later copies get the first one's features).
        """
        per_row = entity_records(frame, self.spec)
        record_ids = sorted({r for row in per_row for r in row if r is not None})
        if not record:
            update = update_events(frame, self.spec, self.store.read(record_ids), record=False)
            return Online(with_features(frame, update.features), update.late, recorded=False)
        if event_ids is None or len(event_ids) != len(frame):
            raise ConfigurationError("recording events needs one event id per row.")
        first: dict[str, int] = {}
        for i, e in enumerate(event_ids):
            first.setdefault(e, i)

        written = Written()

        def work(records: dict[str, str | None], seen: dict[str, Seen]) -> Written:
            nonlocal written  # the last call is the one the store committed (Redis may retry)
            fresh = np.array([first[e] == i and e not in seen for i, e in enumerate(event_ids)], dtype=bool)
            if not fresh.any():
                written = Written()
                return written
            update = update_events(frame[fresh], self.spec, records)
            values = update.features.to_numpy(dtype=np.float64)
            events = {
                event_ids[i]: _features_json(values[j], bool(update.late[j]))
                for j, i in enumerate(np.flatnonzero(fresh).tolist())
            }
            written = Written(update.records, events, update.expired)
            return written

        seen = self.store.transact(record_ids, sorted(first), work)
        # What the store now holds for every id: the ones it had, and the ones just written.
        held = seen | {e: Seen(features, None) for e, features in written.events.items()}
        values = np.empty((len(frame), len(self.names)))
        late = np.zeros(len(frame), dtype=bool)
        replayed: dict[int, str | None] = {}
        for i, e in enumerate(event_ids):
            got = held[e]
            values[i], late[i] = _read_features(got.features, len(self.names))
            if e in seen or first[e] != i:
                replayed[i] = got.result if e in seen else None
        features = pd.DataFrame(values, index=frame.index, columns=self.names)
        return Online(with_features(frame, features), late, replayed)

    def record_history(self, frame: pd.DataFrame, checkpoint: tuple[str, str]) -> int:
        """Record past events without ids (a warm start), with ``checkpoint`` written in the same
        transaction (a load killed midway resumes after its last whole chunk); expiries returned."""

        def work(records: dict[str, str | None], seen: dict[str, Seen]) -> Written:
            update = update_events(frame, self.spec, records)
            return Written(update.records, {}, update.expired, meta=dict([checkpoint]))

        per_row = entity_records(frame, self.spec)
        record_ids = sorted({r for row in per_row for r in row if r is not None})
        self.store.transact(record_ids, [], work)
        return len(frame)

    def remember(self, answers: dict[str, str]) -> None:
        """Store the answers given for newly recorded events (a retry gets the same answer)."""
        self.store.put_results(answers)


def _features_json(values: np.ndarray, late: bool) -> str:
    return json.dumps({"f": values.tolist(), "late": late}, allow_nan=True)


def _read_features(text: str, n: int) -> tuple[np.ndarray, bool]:
    doc = json.loads(text)
    values = np.asarray(doc["f"], dtype=np.float64)
    if values.shape != (n,):
        raise ConfigurationError("the state store holds features of another spec for this event id.")
    return values, bool(doc["late"])
