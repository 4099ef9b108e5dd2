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

A spec with ``[[label_risk]]`` keeps each key's recent events with their ids; an event's stored
entry names the label-risk records that hold it, so :meth:`OnlineScorer.apply_labels` (what
``POST /feedback`` calls) finds them from the event id alone and sets its label there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fraudvae.detection.detector import VAEDetector
from fraudvae.exceptions import ConfigurationError
from fraudvae.features.behaviour import model_spec, with_features
from fraudvae.features.online import RISK, apply_labels, entity_records, spec_fingerprint, update_events
from fraudvae.features.spec import FeatureSpec, window_seconds
from fraudvae.state.store import Seen, StateStore, Written

__all__ = ["Online", "OnlineScorer", "event_ttl_for"]


def event_ttl_for(spec: FeatureSpec | None, ttl: float) -> float:
    """How long the store keeps event ids: at least each label-risk key's delay + longest window,
    so a label that arrives that late still finds its event."""
    if spec is None:
        return ttl
    needed = [window_seconds(r.delay) + max(map(window_seconds, r.windows)) for r in spec.label_risk]
    return max([ttl, *needed])


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
            rows = np.flatnonzero(fresh).tolist()
            part = frame if fresh.all() else frame[fresh]  # (a boolean selection copies the frame)
            update = update_events(part, self.spec, records, ids=[event_ids[i] for i in rows])
            values = update.features.to_numpy(dtype=np.float64)
            events = {
                event_ids[i]: _features_json(
                    values[j], bool(update.late[j]), [r for r in per_row[i] if r is not None and r.startswith(RISK)]
                )
                for j, i in enumerate(rows)
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

    def apply_labels(self, labels: dict[str, bool]) -> dict[str, int]:
        """Set analysts' labels (event id -> fraud) in the label-risk records that hold the events.

        ``applied``: events found in a record; ``not_in_state``: unknown ids, events recorded
        before ids were kept (a warm start), or events already older than every window
        (their label can no longer count). Idempotent: the same labels again change nothing.
        """
        if not self.spec.label_risk or not labels:
            return {"applied": 0, "not_in_state": len(labels) if self.spec.label_risk else 0}
        seen = self.store.seen(sorted(labels))
        record_ids = sorted({r for got in seen.values() for r in json.loads(got.features).get("risk", [])})
        found: set[str] = set()

        def work(records: dict[str, str | None], _: dict[str, Seen]) -> Written:
            nonlocal found
            changed, found = apply_labels(records, {e: 1.0 if fraud else 0.0 for e, fraud in labels.items()})
            return Written(changed)

        if record_ids:
            self.store.transact(record_ids, [], work)
        return {"applied": len(found), "not_in_state": len(labels) - len(found)}

    def remember(self, answers: dict[str, str]) -> None:
        """Store the answers given for newly recorded events (a retry gets the same answer)."""
        self.store.put_results(answers)


def _features_json(values: np.ndarray, late: bool, risk: list[str]) -> str:
    return json.dumps({"f": values.tolist(), "late": late} | ({"risk": risk} if risk else {}), allow_nan=True)


def _read_features(text: str, n: int) -> tuple[np.ndarray, bool]:
    doc = json.loads(text)
    values = np.asarray(doc["f"], dtype=np.float64)
    if values.shape != (n,):
        raise ConfigurationError("the state store holds features of another spec for this event id.")
    return values, bool(doc["late"])
