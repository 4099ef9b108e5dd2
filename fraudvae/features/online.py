"""The stream's computation against stored state, entity by entity: what the online service runs.

A :class:`~fraudvae.features.stream.FeatureStream` holds every entity's history in one set of
arrays. Online, that history lives in a store, one record per entity (``"card\\x1f42"``:
the ``[[entity]]``'s name and the key). :func:`update_events` loads the records of the
entities a batch of events touches into the same ``_EntityStream`` the batch job uses, runs
the same update, and hands back each touched entity's new record. The features are the bits
the batch job computes over the whole file in time order: the running values continue from
each entity's carried totals exactly as they continue from chunk to chunk, and an entity
keeps every event its windows and ties can still reach.

**Order is per entity.** The batch job needs the whole file in time order; online, events of
different entities may arrive in any order. An event's past is what the store had recorded
for its entity when it arrived. An event older than its entity's newest recorded event is
*late*: it is treated as arriving just after that newest event (for that entity its time
becomes the next float after the newest, so every recorded event is in its past and its
windows end there; its row features keep its real times), recorded so, and the events
already scored are never rescored; the caller says so in its answer (:attr:`Update.late`).
One at the same instant as the newest is a tie, as offline: not each other's past.

**Bounded.** A record keeps its entity's events inside the longest finite window before the
entity's newest event, a fixed summary (running sums, counts, the last time, the shift of
the standard deviations) and the values that ``new_value`` and whole-past ``distinct``
need. Events older than that expire (:attr:`Update.expired` counts them).

**Label risk.** A ``[[label_risk]]`` key keeps its own record (``"\x1e"`` + name + key): its
events of the last ``delay`` + longest window, each with its event id and whether it is
confirmed fraud (0 until a label says otherwise); times and labels as base64 of their bytes. :func:`apply_labels` sets the labels that
arrive later; an event's label-risk features read the record as it is when it is scored, so a
label counts from when it arrives or from its event's time + ``delay``, whichever is later
(offline, the label column is known at event time + ``delay``: a replay that posts labels
before they fall due gives the batch job's bits).

Records are JSON (floats written with ``repr`` read back to the same bits); nothing is
unpickled.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.features import windows
from fraudvae.features.columns import SEP, Columns, row_feature
from fraudvae.features.label_risk import LabelRiskStream
from fraudvae.features.spec import FeatureSpec
from fraudvae.features.stream import _EntityStream

__all__ = ["RISK", "Update", "apply_labels", "entity_records", "spec_fingerprint", "update_events"]

#: Label-risk record ids start with this (entity record ids start with the entity's name).
RISK = "\x1e"

#: A record's format; a store holding another version is refused, not misread.
RECORD_VERSION = 1


@dataclass
class Update:
    """What scoring a batch of events did: their features, and the entity records to write."""

    features: pd.DataFrame
    records: dict[str, str] = field(default_factory=dict)  # record id -> JSON (the touched entities)
    late: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per event
    expired: int = 0  # events that left a record's windows in this update


def spec_fingerprint(spec: FeatureSpec) -> str:
    """A stable text of what the state depends on: a store built for one spec refuses another."""
    return json.dumps({"record_version": RECORD_VERSION, "spec": spec.to_doc()}, sort_keys=True)


def entity_records(frame: pd.DataFrame, spec: FeatureSpec) -> list[list[str | None]]:
    """Each event's record ids, one per ``[[entity]]`` (``None`` where a key is missing)."""
    cols = Columns(frame, spec)
    out: list[list[str | None]] = [[] for _ in range(len(frame))]
    for e in spec.entities:
        keys = cols.keys(e.keys)
        for i, k in enumerate(keys.tolist()):
            out[i].append(None if k is None else f"{e.name}{SEP}{k}")
    for r in spec.label_risk:
        keys = cols.keys(r.keys)
        for i, k in enumerate(keys.tolist()):
            out[i].append(None if k is None else f"{RISK}{r.name}{SEP}{k}")
    return out


def update_events(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    stored: dict[str, str | None],
    *,
    record: bool = True,
    ids: list[str] | None = None,
) -> Update:
    """The features of ``frame``'s events (in row order) given the stored records of their entities.

    ``stored`` maps every record id of :func:`entity_records` to its JSON, or ``None`` for an
    entity never seen. Events of one entity inside ``frame`` count in row order; one older
    than its entity's newest event before it is late (see the module docstring). With
    ``record=False`` nothing is returned to write (a what-if). ``ids`` (one per row) are kept in
    the label-risk records, for the labels that arrive later.
    """
    cols = Columns(frame, spec)
    t = cols.seconds(spec.time) if spec.time else np.zeros(len(frame))
    update = Update(features=pd.DataFrame(), late=np.zeros(len(frame), dtype=bool))
    out: dict[str, np.ndarray] = {}
    for e in spec.entities:
        keys = cols.keys(e.keys)
        stream = _EntityStream(e)
        span, stream.keep = stream.keep, math.inf  # expiry is per entity, below
        newest = _load(stream, e.name, keys, stored)
        out |= stream.update(cols, _in_order(keys, t, newest, update.late), -math.inf)
        if record:
            touched = sorted({k for k in keys.tolist() if k is not None and k in newest})
            for k, (text, expired) in _export(stream, touched, newest, span).items():
                update.records[f"{e.name}{SEP}{k}"] = text
                update.expired += expired
    for lr in spec.label_risk:
        keys = cols.keys(lr.keys)
        risk = LabelRiskStream(lr)
        span, risk.keep = risk.keep, math.inf  # expiry is per key, below
        newest = _load_risk(risk, lr.name, keys, stored)
        event_ids = None if ids is None else np.asarray(ids, dtype=object)
        out |= risk.update(cols, _in_order(keys, t, newest, update.late), -math.inf, event_ids)
        if record:
            for k, (text, expired) in _export_risk(risk, keys, newest, span).items():
                update.records[f"{RISK}{lr.name}{SEP}{k}"] = text
                update.expired += expired
    for r in spec.rows:
        out[r.name] = row_feature(cols, r)
    update.features = windows.feature_frame(out, spec.feature_names(), frame.index)
    return update


def _in_order(keys: np.ndarray, t: np.ndarray, newest: dict[str, float], late: np.ndarray) -> np.ndarray:
    """Event times for one entity kind: a late event (older than its entity's newest) moves to just
    after the newest (``late`` marks it); ``newest`` follows the events."""
    t_e = t.copy()
    for i, (k, ti) in enumerate(zip(keys.tolist(), t.tolist(), strict=True)):
        if k is None or math.isnan(ti):
            continue
        before = newest.get(k, -math.inf)
        if ti < before:
            late[i], t_e[i] = True, np.nextafter(before, math.inf)
            newest[k] = t_e[i]
        else:
            newest[k] = ti
    return t_e


def apply_labels(stored: dict[str, str | None], labels: dict[str, float]) -> tuple[dict[str, str], set[str]]:
    """Label-risk records with the labels of their events set (1.0 fraud, 0.0 legit): the records
    that changed, and the event ids found (an event no record holds any more can no longer count)."""
    changed, found = {}, set()
    for record_id, text in stored.items():
        if text is None:
            continue
        doc = json.loads(text)
        fraud = _unpack(doc["fraud"], np.uint8).copy()
        dirty = False
        for j, event in enumerate(doc["id"]):
            if event is not None and event in labels:
                found.add(event)
                if fraud[j] != labels[event]:
                    fraud[j], dirty = labels[event], True
        if dirty:
            changed[record_id] = json.dumps(doc | {"fraud": _pack(fraud.astype(np.uint8))})
    return changed, found


def _pack(values: np.ndarray) -> str:
    """An array as base64 of its little-endian bytes: the same bits back, and no float printed as text
    (as JSON lists, a busy key's 35,000 times and labels cost ~36 ms an event to write and read)."""
    return base64.b64encode(values.astype(values.dtype.newbyteorder("<")).tobytes()).decode("ascii")


def _unpack(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<"))


def _load_risk(stream: LabelRiskStream, name: str, keys: np.ndarray, stored: dict[str, str | None]) -> dict[str, float]:
    newest: dict[str, float] = {}
    tails = []
    for k, doc in _records(f"{RISK}{name}", keys, stored):
        newest[k] = float(doc["newest"])
        n = len(doc["id"])
        tails.append(
            {
                "key": np.full(n, k, dtype=object),
                "t": _unpack(doc["t"], np.float64).astype(np.float64),
                "fraud": _unpack(doc["fraud"], np.uint8).astype(np.float64),
                "id": np.asarray(doc["id"] + [None], dtype=object)[:n],  # stays object even when empty
            }
        )
    if tails:
        stream.tail = {c: np.concatenate([tl[c] for tl in tails]) for c in stream.tail}
    return newest


def _export_risk(
    stream: LabelRiskStream, keys: np.ndarray, newest: dict[str, float], span: float
) -> dict[str, tuple[str, int]]:
    """Each touched key's record: its events at or after its newest time minus delay + longest window."""
    tail = stream.tail
    codes, uniques = pd.factorize(tail["key"])
    where = pd.Series(np.arange(len(codes))).groupby(codes).indices
    at = {k: where[i] for i, k in enumerate(uniques.tolist())}
    out = {}
    for k in sorted({k for k in keys.tolist() if k is not None and k in newest}):
        mine = at.get(k, np.zeros(0, dtype=np.int64))
        kept = mine[tail["t"][mine] >= newest[k] - span]
        doc = {
            "newest": newest[k],
            "t": _pack(tail["t"][kept].astype(np.float64)),
            "fraud": _pack(tail["fraud"][kept].astype(np.uint8)),
            "id": tail["id"][kept].tolist(),
        }
        out[k] = (json.dumps(doc), len(mine) - len(kept))
    return out


def _records(prefix: str, keys: np.ndarray, stored: dict[str, str | None]) -> Iterator[tuple[str, Any]]:
    """Each key (in sorted order) that has a stored record under ``prefix``, with the record parsed."""
    for k in sorted({k for k in keys.tolist() if k is not None}):
        text = stored.get(f"{prefix}{SEP}{k}")
        if text is not None:
            yield k, json.loads(text)


def _load(stream: _EntityStream, name: str, keys: np.ndarray, stored: dict[str, str | None]) -> dict[str, float]:
    """Put the stored records of ``keys`` into ``stream``; each stored entity's newest event time."""
    newest: dict[str, float] = {}
    tails: list[dict[str, np.ndarray]] = []
    index: list[str] = []
    totals: dict[str, list[float]] = {n: [] for n in stream.totals}
    for k, doc in _records(name, keys, stored):
        newest[k] = float(doc["newest"])
        if doc["tail"]["t"]:
            n = len(doc["tail"]["t"])
            tail = {
                col: np.asarray(v, dtype=object if col.startswith("q:") else np.float64)
                for col, v in doc["tail"].items()
            }
            tail["key"] = np.full(n, k, dtype=object)
            tails.append(tail)
        index.append(k)
        for total, v in doc["totals"].items():
            totals[total].append(float(v))
        for c, pairs in doc["seen"].items():
            stream.seen[c].update({f"{k}{SEP}{value}": float(first) for value, first in pairs.items()})
    if tails:
        stream.tail = {col: np.concatenate([tl[col] for tl in tails]) for col in tails[0]}
    stream.index = {k: i for i, k in enumerate(index)}
    stream.totals = {n: np.asarray(v, dtype=np.float64) for n, v in totals.items()}
    return newest


def _export(
    stream: _EntityStream, keys: list[str], newest: dict[str, float], span: float
) -> dict[str, tuple[str, int]]:
    """Each entity's record after an update, and how many of its events expired from it.

    An entity keeps its events at or after its newest time minus the longest finite window
    (``span``): every later event's windows and ties reach no further back.
    """
    wanted = set(keys)
    rows: dict[str, np.ndarray] = {}
    if stream.tail:
        tkeys = stream.tail["key"]
        order = np.argsort(tkeys.astype(str), kind="stable")
        sorted_keys = tkeys[order]
        bounds = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            if sorted_keys[a] in wanted:
                rows[sorted_keys[a]] = order[a:b]
    seen: dict[str, dict[str, dict[str, float]]] = {k: {c: {} for c in stream.seen} for k in keys}
    for c, pairs in stream.seen.items():
        for pair, first in pairs.items():
            k, _, value = pair.rpartition(SEP)
            if k in wanted:
                seen[k][c][value] = first
    positions = [stream.index[k] for k in keys]
    out = {}
    for k, at in zip(keys, positions, strict=True):
        mine = rows.get(k, np.zeros(0, dtype=np.int64))
        tail: dict[str, Any] = {"t": []}
        expired = 0
        if len(mine):
            kept = mine[stream.tail["t"][mine] >= newest[k] - span]
            expired = len(mine) - len(kept)
            tail = {col: v[kept].tolist() for col, v in stream.tail.items() if col != "key"}
        doc = {
            "newest": newest[k],
            "tail": tail,
            "totals": {n: float(v[at]) for n, v in stream.totals.items()},
            "seen": seen[k],
        }
        out[k] = (json.dumps(doc, allow_nan=True), expired)
    return out
