"""The state store for a fleet of scoring servers: Redis, through redis-py.

``redis://[:password@]host:port/db[?prefix=NAME]`` (``rediss://`` for TLS); every key starts
with ``prefix`` (default ``fraudvae``), so several models can share one Redis under different
prefixes. A transaction watches the entity records and event ids it reads (``WATCH``), computes,
and writes them in one ``MULTI``/``EXEC``; when another server changed one of them meanwhile,
``EXEC`` fails and the transaction runs again from the fresh values: no lost update, no double
count, and no lock left behind by a server that dies. Event ids expire with Redis' own TTL.

Durability is Redis' own: run it with ``appendonly yes`` (the README's compose file does) so
that a Redis restart keeps what was acknowledged.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fraudvae.exceptions import ConfigurationError, StateUnavailableError
from fraudvae.state.store import DEFAULT_EVENT_TTL, Seen, StateStore, Work, redacted

__all__ = ["RedisStore", "redis_client"]

#: A transaction that keeps losing its race gives up after this many attempts (503, nothing written).
_MAX_ATTEMPTS = 200


def redis_client(url: str, timeout: float, what: str) -> tuple[Any, str, tuple[type[BaseException], ...], Any]:
    """``(client, key prefix, the errors that mean "unreachable", WatchError)`` for a ``redis://``
    URL with an optional ``?prefix=NAME``; ``what`` ("state", "monitor") names the setting in errors."""
    try:
        import redis
    except ImportError as exc:  # the library's core install has no Redis client
        raise ConfigurationError(
            f"a redis:// {what} store needs the Redis client: pip install 'fraudvae[service]'"
        ) from exc
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", "fraudvae")
    if not prefix or any(c in prefix for c in "{}*?[] \n"):
        raise ConfigurationError(f"{what} URL prefix {prefix!r} is invalid; expected a plain name.")
    plain = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        client = redis.Redis.from_url(
            plain, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
    except ValueError as exc:
        raise ConfigurationError(f"{what} URL {redacted(url)} is not a Redis URL: {exc}") from exc
    return client, prefix, (redis.exceptions.RedisError, OSError), redis.exceptions.WatchError


class RedisStore(StateStore):
    kind = "redis"

    def __init__(self, url: str, *, event_ttl: float = DEFAULT_EVENT_TTL, timeout: float = 10.0) -> None:
        super().__init__(url, event_ttl=event_ttl)
        self.client, self.prefix, self._errors, self._watch_error = redis_client(url, timeout, "state")

    def _k(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}:{kind}:{name}" if name else f"{self.prefix}:{kind}"

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise StateUnavailableError(
                f"the Redis state store {self.redacted_url()} failed to {what}: {exc}. Check that Redis is "
                "running and reachable; nothing was scored or recorded."
            ) from exc

    # ------------------------------------------------------------------ the interface
    def ping(self) -> None:
        with self._guard("answer"):
            self.client.ping()

    def get_meta(self, name: str) -> str | None:
        with self._guard("read its metadata"):
            value = self.client.hget(self._k("meta"), name)
        return None if value is None else _text(value)

    def set_meta(self, name: str, value: str) -> None:
        with self._guard("write its metadata"):
            self.client.hset(self._k("meta"), name, value)

    def read(self, record_ids: list[str]) -> dict[str, str | None]:
        if not record_ids:
            return {}
        with self._guard("read entity records"), self._timed("read"):
            values = self.client.mget([self._k("e", r) for r in record_ids])
        return {r: None if v is None else _text(v) for r, v in zip(record_ids, values, strict=True)}

    def seen(self, event_ids: list[str]) -> dict[str, Seen]:
        with self._guard("read events"):
            return self._seen(self.client, sorted(set(event_ids)))

    def transact(self, record_ids: list[str], event_ids: list[str], work: Work) -> dict[str, Seen]:
        ids = sorted(set(event_ids))
        rkeys = [self._k("e", r) for r in record_ids]
        with self._guard("record events"), self.client.pipeline() as pipe:
            for attempt in range(_MAX_ATTEMPTS):
                try:
                    watched = rkeys + [self._k("ev", i) for i in ids]
                    if watched:
                        pipe.watch(*watched)
                    with self._timed("read"):  # one round trip: the events' features and answers, the records
                        keys = [self._k("ev", i) for i in ids] + [self._k("res", i) for i in ids] + rkeys
                        got = pipe.mget(keys) if keys else []
                    seen = _seen_of(ids, got[: len(ids)], got[len(ids) : 2 * len(ids)])
                    values = got[2 * len(ids) :]
                    records = {r: None if v is None else _text(v) for r, v in zip(record_ids, values, strict=True)}
                    written = work(records, seen)
                    with self._timed("write"):
                        pipe.multi()
                        if written.records:
                            pipe.mset({self._k("e", r): text for r, text in written.records.items()})
                        if written.meta:
                            pipe.hset(self._k("meta"), mapping=dict[Any, Any](written.meta))
                        ttl = max(1, round(self.event_ttl))
                        for i, features in written.events.items():
                            pipe.set(self._k("ev", i), features, ex=ttl)
                        new = sum(1 for r in written.records if records.get(r) is None)
                        for name, n in (
                            ("entities", new),
                            ("events", len(written.events)),
                            ("expiries", written.expired),
                        ):
                            if n:
                                pipe.hincrby(self._k("counter"), name, n)
                        pipe.execute()
                    return seen
                except self._watch_error:
                    time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
                finally:
                    pipe.reset()
        raise StateUnavailableError(
            f"the Redis state store {self.redacted_url()} was changed by other servers during {_MAX_ATTEMPTS} "
            "attempts to record these events; nothing was recorded. Retry the request."
        )

    def put_results(self, results: dict[str, str]) -> None:
        if not results:
            return
        ttl = max(1, round(self.event_ttl))
        with self._guard("store answers"), self._timed("write"), self.client.pipeline(transaction=True) as pipe:
            for i, r in results.items():
                pipe.set(self._k("res", i), r, ex=ttl, nx=True)
            pipe.execute()

    def counts(self) -> dict[str, int]:
        with self._guard("count"):
            raw = self.client.hgetall(self._k("counter"))
        found = {_text(k): int(v) for k, v in raw.items()}
        return {name: found.get(name, 0) for name in ("entities", "events", "expiries")}

    def clear(self) -> None:
        with self._guard("clear"):
            batch: list[Any] = []
            for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self.client.delete(*batch)
                    batch = []
            if batch:
                self.client.delete(*batch)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ helpers
    def _seen(self, conn: Any, ids: list[str]) -> dict[str, Seen]:
        if not ids:
            return {}
        got = conn.mget([self._k("ev", i) for i in ids] + [self._k("res", i) for i in ids])
        return _seen_of(ids, got[: len(ids)], got[len(ids) :])


def _seen_of(ids: list[str], features: list[Any], results: list[Any]) -> dict[str, Seen]:
    """The ids Redis holds features for, with their stored answers (None: not given yet)."""
    return {
        i: Seen(_text(f), None if r is None else _text(r))
        for i, f, r in zip(ids, features, results, strict=True)
        if f is not None
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
