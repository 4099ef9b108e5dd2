"""Online state: each entity's history for the behavioural features, kept in a store chosen by URL.

``sqlite:///path`` (the embedded default, one machine, any number of workers) or
``redis://host:port/db`` (a fleet of servers). :class:`~fraudvae.state.online.OnlineScorer`
scores raw events against it with the same feature code (:mod:`fraudvae.features.online`)
and the same detector as every other way in.
"""

from __future__ import annotations

from pathlib import Path

from fraudvae.exceptions import ConfigurationError
from fraudvae.state.store import DEFAULT_EVENT_TTL, StateStore

__all__ = ["DEFAULT_EVENT_TTL", "StateStore", "default_state_url", "open_store"]


def default_state_url(model_dir: str | Path) -> str:
    """A model's embedded store: a SQLite file beside its directory (the directory itself is read-only)."""
    path = Path(model_dir).resolve()
    return f"sqlite:///{path.with_name(path.name + '.state.sqlite')}"


def open_store(url: str, *, event_ttl: float = DEFAULT_EVENT_TTL) -> StateStore:
    """The store a URL names: ``sqlite:///...`` or ``redis://...`` / ``rediss://...``."""
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        from fraudvae.state.sqlite_store import SQLiteStore

        return SQLiteStore(url, event_ttl=event_ttl)
    if scheme in ("redis", "rediss", "unix"):
        from fraudvae.state.redis_store import RedisStore

        return RedisStore(url, event_ttl=event_ttl)
    raise ConfigurationError(
        f"state URL {url.split('@')[-1]!r} has an unknown scheme {scheme!r}; expected sqlite:///path.sqlite "
        "or redis://host:port/db."
    )
