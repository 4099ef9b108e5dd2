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

Records are JSON (floats written with ``repr`` read back to the same bits); nothing is
unpickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.features.columns import SEP, Columns, row_feature
from fraudvae.features.spec import FeatureSpec
from fraudvae.features.stream import _EntityStream

__all__ = ["Update", "entity_records", "spec_fingerprint", "update_events"]

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
    return out


def update_events(
    frame: pd.DataFrame, spec: FeatureSpec, stored: dict[str, str | None], *, record: bool = True
) -> Update:
    """The features of ``frame``'s events (in row order) given the stored records of their entities.

    ``stored`` maps every record id of :func:`entity_records` to its JSON, or ``None`` for an
    entity never seen. Events of one entity inside ``frame`` count in row order; one older
    than its entity's newest event before it is late (see the module docstring). With
    ``record=False`` nothing is returned to write (a what-if).
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
        t_e = t.copy()
        for i, (k, ti) in enumerate(zip(keys.tolist(), t.tolist(), strict=True)):
            if k is None or math.isnan(ti):
                continue
            before = newest.get(k, -math.inf)
            if ti < before:
                update.late[i], t_e[i] = True, np.nextafter(before, math.inf)
                newest[k] = t_e[i]
            else:
                newest[k] = ti
        out |= stream.update(cols, t_e, -math.inf)
        if record:
            touched = sorted({k for k in keys.tolist() if k is not None and k in newest})
            for k, (text, expired) in _export(stream, touched, newest, span).items():
                update.records[f"{e.name}{SEP}{k}"] = text
                update.expired += expired
    for r in spec.rows:
        out[r.name] = row_feature(cols, r)
    update.features = pd.DataFrame(out, index=frame.index, columns=spec.feature_names())
    return update


def _load(stream: _EntityStream, name: str, keys: np.ndarray, stored: dict[str, str | None]) -> dict[str, float]:
    """Put the stored records of ``keys`` into ``stream``; each stored entity's newest event time."""
    newest: dict[str, float] = {}
    tails: list[dict[str, np.ndarray]] = []
    index: list[str] = []
    totals: dict[str, list[float]] = {n: [] for n in stream.totals}
    for k in sorted({k for k in keys.tolist() if k is not None}):
        text = stored.get(f"{name}{SEP}{k}")
        if text is None:
            continue
        doc = json.loads(text)
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
    stream.index = pd.Index(index, dtype=object)
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
    positions = stream.index.get_indexer(keys)
    out = {}
    for k, at in zip(keys, positions.tolist(), strict=True):
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
