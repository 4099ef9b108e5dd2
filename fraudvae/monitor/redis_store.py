"""The monitor store for a fleet of scoring servers: the score log, labels and recent rows in Redis.

``redis://[:password@]host:port/db[?prefix=NAME]`` (``rediss://`` for TLS), the URL form of the
state store; every key starts with ``PREFIX:monitor:``. The same contract as the SQLite
:class:`~fraudvae.monitor.store.MonitorStore` (its tests run against both), so every server of a
fleet logs into one place, ``POST /feedback`` on any of them reaches the same labels, and
``GET /monitor`` on any of them sees all the traffic:

- ``scores``: a sorted set by scoring time; each member is the logged row as JSON behind a
  fixed-width key (nanoseconds, process id, call, row: unique across servers, and ties keep
  each server's logging order), written in one round trip. Bounded like SQLite's: beyond
  ``max_rows`` the oldest go, and rows older than ``max_age``; ``seen`` maps each logged event
  id to its newest row (unknown label ids are those not in it);
- ``labels``: per event, its current label per source (JSON); ``history``: every label ever
  received with its outcome, in arrival order. Labels are written in one ``WATCH``/``MULTI``
  transaction (retried when another server wrote meanwhile), so a label sent twice is stored
  once and concurrent servers lose none;
- ``traffic``: the most recent ``traffic_rows`` rows' values, for drift.

A Redis that cannot be reached raises :class:`~fraudvae.exceptions.StateUnavailableError`
(HTTP 503: nothing was stored, the client retries).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.exceptions import StateUnavailableError
from fraudvae.monitor.store import (
    _PURGE_EVERY,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_ROWS,
    DEFAULT_TRAFFIC_ROWS,
    Label,
    ScoredEvent,
    live_window,
)
from fraudvae.state.redis_store import redis_client
from fraudvae.state.store import redacted

__all__ = ["RedisMonitorStore"]

_SCORE_COLUMNS = ["seq", "event_id", "scored_at", "model_version", "score", "flagged", "top_features"]
#: A member's key: 20 digits of nanoseconds, 7 of process id, 3 of the call, 6 of the row in it.
_KEY = 36
_calls = itertools.count()


class RedisMonitorStore:
    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_age: float = DEFAULT_MAX_AGE,
        traffic_rows: int = DEFAULT_TRAFFIC_ROWS,
        timeout: float = 10.0,
    ) -> None:
        self.url, self.max_rows, self.max_age, self.traffic_rows = url, max_rows, max_age, traffic_rows
        self.client, prefix, self._errors, _ = redis_client(url, timeout, "monitor")
        self.prefix = f"{prefix}:monitor"
        self._writes = 0

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise StateUnavailableError(
                f"the Redis monitor store {redacted(self.url)} failed to {what}: {exc}. Check that Redis is running "
                "and reachable; nothing was stored, so the request can be retried."
            ) from exc

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ writes
    def log_scores(
        self, events: Iterable[ScoredEvent], model_version: str, rows: list[dict[str, Any]] | None = None
    ) -> int:
        """Record scored events (and, for drift, their feature values) in one transaction."""
        now = time.time()
        events = list(events)
        stamp = f"{time.time_ns():020d}{os.getpid() % 10_000_000:07d}{next(_calls) % 1000:03d}"
        with self._guard("log scores"):
            pipe = self.client.pipeline(transaction=True)
            members: dict[str, float] = {}
            for i, e in enumerate(events):
                seq = f"{stamp}{i:06d}"
                at = e.scored_at if e.scored_at is not None else now
                score = float(e.score) if math.isfinite(e.score) else 1e300
                row = [e.event_id, at, model_version, score, int(bool(e.flagged)), json.dumps(list(e.top_features))]
                members[seq + json.dumps(row)] = at
                if e.event_id is not None:
                    pipe.hset(self._k("seen"), e.event_id, seq)
            if members:
                pipe.zadd(self._k("scores"), members)
            if rows:
                pipe.rpush(self._k("traffic"), *[json.dumps(r, default=str) for r in rows])
                pipe.ltrim(self._k("traffic"), -self.traffic_rows, -1)
            pipe.execute()
        self._writes += len(events)
        if self._writes >= _PURGE_EVERY:
            self._writes = 0
            self.purge()
        return len(events)

    def purge(self) -> None:
        """Apply the bounds now (they are applied every 1,000 logged events anyway)."""
        with self._guard("purge its log"):
            key = self._k("scores")
            gone: list[bytes] = list(self.client.zrangebyscore(key, "-inf", f"({time.time() - self.max_age}"))  # type: ignore[arg-type]
            extra = int(self.client.zcard(key)) - len(gone) - self.max_rows
            if extra > 0:
                gone += list(self.client.zrange(key, len(gone), len(gone) + extra - 1))  # type: ignore[arg-type]
            if not gone:
                return
            pipe = self.client.pipeline(transaction=True)
            pipe.zrem(key, *gone)
            for member in gone:
                seq, row = _row(member)
                if row[0] is not None:  # forget the id unless a newer row logged it again
                    pipe.eval(_FORGET, 1, self._k("seen"), row[0], seq)
            pipe.execute()

    def add_labels(self, labels: Sequence[Label]) -> dict[str, Any]:
        """Record labels; returns counts: stored, replaced, unchanged, older (kept in history only), unknown ids."""
        ids = sorted({lab.event_id for lab in labels})
        counts: dict[str, int] = {"stored": 0, "replaced": 0, "unchanged": 0, "older": 0}
        if not ids:
            return {**counts, "unknown_event_ids": [], "unknown": 0}

        def work(pipe: Any) -> None:
            now = time.time()
            current = {
                i: json.loads(v) if v else {} for i, v in zip(ids, pipe.hmget(self._k("labels"), ids), strict=True)
            }
            counts.clear()
            counts.update(stored=0, replaced=0, unchanged=0, older=0)
            history = []
            for lab in labels:
                held = current[lab.event_id].get(lab.source)
                if held is not None and held[0] == lab.label and held[1] == lab.labelled_at:
                    counts["unchanged"] += 1
                    continue
                outcome = "stored" if held is None else "replaced" if lab.labelled_at >= held[1] else "older"
                if outcome != "older":
                    current[lab.event_id][lab.source] = [lab.label, lab.labelled_at, now]
                history.append(json.dumps([lab.event_id, lab.source, lab.label, lab.labelled_at, now, outcome]))
                counts[outcome] += 1
            pipe.multi()
            if history:
                pipe.hset(self._k("labels"), mapping={i: json.dumps(v) for i, v in current.items() if v})
                pipe.rpush(self._k("history"), *history)

        with self._guard("store labels"):
            self.client.transaction(work, self._k("labels"))
            seen = self.client.hmget(self._k("seen"), ids) if ids else []
        unknown = [i for i, s in zip(ids, seen, strict=True) if s is None]
        return {**counts, "unknown_event_ids": unknown[:100], "unknown": len(unknown)}

    # ------------------------------------------------------------------ reads
    def labels(self) -> pd.DataFrame:
        """The current label per (event, source)."""
        with self._guard("read labels"):
            held = self.client.hgetall(self._k("labels"))
        rows = [[_text(e), source, v[0], v[1], v[2]] for e, by in held.items() for source, v in json.loads(by).items()]
        frame = pd.DataFrame(rows, columns=["event_id", "source", "label", "labelled_at", "received_at"])
        return frame.sort_values(["event_id", "source"], kind="stable").reset_index(drop=True)

    def label_history(self) -> pd.DataFrame:
        with self._guard("read the label history"):
            rows = [json.loads(r) for r in self.client.lrange(self._k("history"), 0, -1)]
        frame = pd.DataFrame(rows, columns=["event_id", "source", "label", "labelled_at", "received_at", "outcome"])
        frame.insert(0, "seq", np.arange(1, len(frame) + 1))
        return frame

    def scores(self) -> pd.DataFrame:
        return self._scores(self._members("-inf", "+inf"))

    def recent_scores(self, n: int) -> np.ndarray:
        """The scores of the ``n`` most recently logged events (in logging order)."""
        with self._guard("read recent scores"):
            members: list[bytes] = list(self.client.zrange(self._k("scores"), -n, -1)) if n > 0 else []  # type: ignore[arg-type]
        return np.array([_row(m)[1][3] for m in members], dtype=np.float64)

    def traffic(self) -> pd.DataFrame:
        with self._guard("read recent rows"):
            return pd.DataFrame([json.loads(r) for r in self.client.lrange(self._k("traffic"), 0, -1)])

    def window(self, seconds: float, *, now: float | None = None, target_fpr: float | None = None) -> dict[str, Any]:
        """Live performance of the events scored in the last ``seconds`` (as :meth:`MonitorStore.window`)."""
        now = time.time() if now is None else now
        scored = self._scores(self._members(now - seconds, "+inf"))
        events = (
            scored.dropna(subset=["event_id"])
            .groupby("event_id")
            .agg(flagged=("flagged", "max"), scored_at=("scored_at", "min"))
        )
        ids = events.index.tolist()
        with self._guard("read labels"):
            held = self.client.hmget(self._k("labels"), ids) if ids else []
        joined = []
        for event, by in zip(ids, held, strict=True):
            if by is None:
                continue
            label, labelled_at, _ = max(json.loads(by).values(), key=lambda v: (v[1], v[2]))
            joined.append((int(events.at[event, "flagged"]), label, labelled_at - events.at[event, "scored_at"]))
        return live_window(seconds, len(scored), int(scored["flagged"].sum()), joined, target_fpr)

    def summary(self) -> dict[str, Any]:
        with self._guard("count its contents"):
            held = self.client.hgetall(self._k("labels"))
            ids = [_text(e) for e in held]
            seen = self.client.hmget(self._k("seen"), ids) if ids else []
            return {
                "scored_events": int(self.client.zcard(self._k("scores"))),
                "labels": sum(len(json.loads(v)) for v in held.values()),
                "label_history": int(self.client.llen(self._k("history"))),
                "unknown_labelled_events": sum(s is None for s in seen),
            }

    def _members(self, low: float | str, high: float | str) -> list[bytes]:
        with self._guard("read the score log"):
            return list(self.client.zrangebyscore(self._k("scores"), low, high))  # type: ignore[arg-type]

    @staticmethod
    def _scores(members: list[bytes]) -> pd.DataFrame:
        """Rows in the log's order (by time, ties by key); ``seq`` numbers them from 1."""
        rows = [[i + 1, *row] for i, (_, row) in enumerate(map(_row, members))]
        return pd.DataFrame(rows, columns=_SCORE_COLUMNS)


#: Drop an event id from ``seen`` only when it still points at the purged row.
_FORGET = (
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0"
)


def _row(member: bytes) -> tuple[str, list[Any]]:
    text = _text(member)
    return text[:_KEY], json.loads(text[_KEY:])


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
