"""The online state store's small interface, chosen by URL: SQLite on one machine, Redis for a fleet.

A store keeps two things for the online service:

* **entity records**: each entity's history as :mod:`fraudvae.features.online` writes it
  (one JSON text per ``"name\\x1fkey"``), and
* **events**: for every recorded event id, its features and (once scored) its answer, kept
  ``event_ttl`` seconds so that a retried request is answered from the store and counted once.

:meth:`StateStore.transact` is the one step that matters: under the store's lock (SQLite's
write lock, Redis' optimistic ``WATCH``/``MULTI``) it reads the events and records a batch
touches, lets the caller compute, and writes the new records and events atomically, so
concurrent requests for one entity serialize (no lost update, no double count) and a crash
leaves either all of a request's writes or none.

Every failure to reach or use the store is :class:`~fraudvae.exceptions.StateUnavailableError`;
a store that holds another spec's history is refused with
:class:`~fraudvae.exceptions.StateIncompatibleError` by :meth:`StateStore.bind`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fraudvae.exceptions import ConfigurationError, StateIncompatibleError

__all__ = ["DEFAULT_EVENT_TTL", "Seen", "StateStore", "Written", "redacted"]

#: How long a recorded event id is remembered (retries are answered from the store): 7 days.
DEFAULT_EVENT_TTL = 7 * 86400.0
FINGERPRINT = "spec_fingerprint"


@dataclass(frozen=True)
class Seen:
    """An event id the store already holds: its features and, once scored, its answer."""

    features: str
    result: str | None


@dataclass
class Written:
    """What a transaction's work hands back to be written: new entity records and events."""

    records: dict[str, str] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)  # event id -> features (JSON)
    expired: int = 0
    meta: dict[str, str] = field(default_factory=dict)  # written in the same transaction


Work = Callable[[dict[str, str | None], dict[str, Seen]], Written]


def redacted(url: str) -> str:
    """A store URL without its password."""
    head, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return head + sep + rest


class StateStore(ABC):
    """A state store; open one with :func:`fraudvae.state.open_store`."""

    kind: ClassVar[str]

    def __init__(self, url: str, *, event_ttl: float = DEFAULT_EVENT_TTL) -> None:
        if not event_ttl > 0:
            raise ConfigurationError(f"the state's event retention {event_ttl!r} is invalid; expected seconds > 0.")
        self.url = url
        self.event_ttl = float(event_ttl)
        self._latency: dict[str, deque[float]] = {"read": deque(maxlen=2048), "write": deque(maxlen=2048)}

    # ------------------------------------------------------------------ the interface
    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`StateUnavailableError` unless the store answers."""

    @abstractmethod
    def get_meta(self, name: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, name: str, value: str) -> None: ...

    @abstractmethod
    def read(self, record_ids: list[str]) -> dict[str, str | None]:
        """Entity records as they are now, without taking the lock (a what-if reads only)."""

    @abstractmethod
    def seen(self, event_ids: list[str]) -> dict[str, Seen]:
        """The events of ``event_ids`` the store holds."""

    @abstractmethod
    def transact(self, record_ids: list[str], event_ids: list[str], work: Work) -> dict[str, Seen]:
        """Read, compute (``work``), write, atomically; returns the events that were already held."""

    @abstractmethod
    def put_results(self, results: dict[str, str]) -> None:
        """Store the answers of recorded events (a retry of the same id gets them back)."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """``entities``, ``events`` (recorded, counted once) and ``expiries`` (events that left a window)."""

    @abstractmethod
    def clear(self) -> None:
        """Remove everything this store holds (entity records, events, counters, the bound spec)."""

    def close(self) -> None:  # noqa: B027 (optional)
        """Release connections."""

    # ------------------------------------------------------------------ shared behaviour
    def bind(self, fingerprint: str) -> None:
        """Tie the store to a spec: an empty store takes it, the same spec reuses it, another is refused."""
        held = self.get_meta(FINGERPRINT)
        if held is None:
            self.set_meta(FINGERPRINT, fingerprint)
        elif held != fingerprint:
            raise StateIncompatibleError(
                f"the state store {self.redacted_url()} holds the history of another feature spec (or record "
                "format) than this model's; its entity windows would be misread. Point the model at a new state "
                "(FRAUDVAE_STATE_URL / --state), or empty this one with `fraudvae state reset --state URL` and "
                "fill it again with `fraudvae state load`."
            )

    def redacted_url(self) -> str:
        """The URL without a password."""
        return redacted(self.url)

    def stats(self) -> dict[str, Any]:
        """What ``GET /model`` and ``/metrics`` show: kind, counts, read and write latency."""
        out: dict[str, Any] = {"kind": self.kind, "url": self.redacted_url(), **self.counts()}
        for what, values in self._latency.items():
            ms = np.asarray(values, dtype=np.float64) * 1000
            out[f"{what}_ms_p50"] = float(np.percentile(ms, 50)) if len(ms) else None
            out[f"{what}_ms_p99"] = float(np.percentile(ms, 99)) if len(ms) else None
        return out

    @contextmanager
    def _timed(self, what: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self._latency[what].append(time.perf_counter() - started)
