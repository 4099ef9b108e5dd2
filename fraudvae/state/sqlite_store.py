"""The embedded state store: one SQLite file in WAL mode, shared by every worker on one machine.

``sqlite:///relative/path.sqlite`` or ``sqlite:////absolute/path.sqlite`` (SQLAlchemy's
spelling). Each thread has its own connection; a transaction takes the database's write lock
with ``BEGIN IMMEDIATE`` (other workers wait up to ``busy_timeout``), so requests for one
entity, from any worker, run one after the other. WAL with ``synchronous=NORMAL``: a
committed transaction survives the process being killed (SIGKILL included); a power loss
may lose the last transactions before the next checkpoint.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fraudvae.exceptions import ConfigurationError, StateUnavailableError
from fraudvae.state.store import DEFAULT_EVENT_TTL, Seen, StateStore, Work

__all__ = ["SQLiteStore", "sqlite_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entity (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS event (id TEXT PRIMARY KEY, features TEXT NOT NULL, result TEXT, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS event_at ON event (at);
"""
#: Expired event ids are purged every this many transactions of a connection.
_PURGE_EVERY = 500
_IN = 500  # ids per IN (...) query


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///...`` URL (three slashes: relative; four: absolute)."""
    if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
        raise ConfigurationError(
            f"state URL {url!r} is not a SQLite URL; expected sqlite:///relative/path.sqlite or "
            "sqlite:////absolute/path.sqlite."
        )
    return Path(url[len("sqlite:///") :])


class SQLiteStore(StateStore):
    kind = "sqlite"

    def __init__(self, url: str, *, event_ttl: float = DEFAULT_EVENT_TTL, busy_timeout: float = 30.0) -> None:
        super().__init__(url, event_ttl=event_ttl)
        self.path = sqlite_path(url)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        with self._guard("open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn().executescript(_SCHEMA)

    # ------------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            self._local.conn, self._local.transactions = conn, 0
        return conn

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise StateUnavailableError(
                f"the SQLite state store {str(self.path)!r} failed to {what}: {exc}. Check that the file's folder "
                "exists and is writable, and that the disk is not full; nothing was scored or recorded."
            ) from exc

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._guard(what):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------ the interface
    def ping(self) -> None:
        with self._guard("answer"):
            self._conn().execute("SELECT 1 FROM meta LIMIT 1").fetchall()

    def get_meta(self, name: str) -> str | None:
        with self._guard("read its metadata"):
            row = self._conn().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        with self._transaction("write its metadata") as conn:
            conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def read(self, record_ids: list[str]) -> dict[str, str | None]:
        with self._guard("read entity records"), self._timed("read"):
            return self._records(self._conn(), record_ids)

    def seen(self, event_ids: list[str]) -> dict[str, Seen]:
        with self._guard("read events"):
            return self._seen(self._conn(), event_ids)

    def transact(self, record_ids: list[str], event_ids: list[str], work: Work) -> dict[str, Seen]:
        with self._transaction("record events") as conn:
            with self._timed("read"):
                seen = self._seen(conn, event_ids)
                records = self._records(conn, record_ids)
            written = work(records, seen)
            with self._timed("write"):
                new = [k for k in written.records if records.get(k) is None]
                conn.executemany(
                    "INSERT OR REPLACE INTO entity (id, record) VALUES (?, ?)", list(written.records.items())
                )
                now = time.time()
                conn.executemany(
                    "INSERT OR REPLACE INTO event (id, features, result, at) VALUES (?, ?, NULL, ?)",
                    [(i, f, now) for i, f in written.events.items()],
                )
                conn.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", list(written.meta.items()))
                self._add(conn, {"entities": len(new), "events": len(written.events), "expiries": written.expired})
                self._local.transactions += 1
                if self._local.transactions % _PURGE_EVERY == 0:
                    conn.execute("DELETE FROM event WHERE at < ?", (now - self.event_ttl,))
        return seen

    def put_results(self, results: dict[str, str]) -> None:
        if not results:
            return
        with self._transaction("store answers") as conn, self._timed("write"):
            conn.executemany(
                "UPDATE event SET result = ? WHERE id = ? AND result IS NULL", [(r, i) for i, r in results.items()]
            )

    def counts(self) -> dict[str, int]:
        with self._guard("count"):
            rows = dict(self._conn().execute("SELECT name, n FROM counter").fetchall())
        return {name: int(rows.get(name, 0)) for name in ("entities", "events", "expiries")}

    def clear(self) -> None:
        with self._transaction("clear") as conn:
            for table in ("meta", "counter", "entity", "event"):
                conn.execute(f"DELETE FROM {table}")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _chunks(ids: list[str]) -> Iterable[list[str]]:
        for start in range(0, len(ids), _IN):
            yield ids[start : start + _IN]

    def _records(self, conn: sqlite3.Connection, ids: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = dict.fromkeys(ids)
        for part in self._chunks(ids):
            marks = ",".join("?" * len(part))
            out.update(conn.execute(f"SELECT id, record FROM entity WHERE id IN ({marks})", part).fetchall())
        return out

    def _seen(self, conn: sqlite3.Connection, ids: list[str]) -> dict[str, Seen]:
        out: dict[str, Seen] = {}
        cutoff = time.time() - self.event_ttl
        for part in self._chunks(sorted(set(ids))):
            marks = ",".join("?" * len(part))
            query = f"SELECT id, features, result FROM event WHERE at >= ? AND id IN ({marks})"
            for i, f, r in conn.execute(query, [cutoff, *part]).fetchall():
                out[i] = Seen(f, r)
        return out

    @staticmethod
    def _add(conn: sqlite3.Connection, amounts: dict[str, Any]) -> None:
        conn.executemany(
            "INSERT INTO counter (name, n) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET n = n + excluded.n",
            [(k, int(v)) for k, v in amounts.items() if v],
        )
