"""The monitor store a setting names: SQLite for one machine, Redis for a fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudvae.monitor.store import MonitorLog, MonitorStore

__all__ = ["open_monitor_store"]


def open_monitor_store(where: str | Path, **bounds: Any) -> MonitorLog:
    """The monitor store ``where`` names: a ``redis://`` / ``rediss://`` URL (a fleet), else a SQLite file."""
    text = str(where)
    if text.partition("://")[0].lower() in ("redis", "rediss"):
        from fraudvae.monitor.redis_store import RedisMonitorStore

        return RedisMonitorStore(text, **bounds)
    return MonitorStore(text.removeprefix("sqlite:///"), **bounds)
