"""``fraudvae feedback import``: analysts' labels from a file into a model's monitor store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudvae.data.io import read_table
from fraudvae.monitor.store import default_monitor_path, parse_labels
from fraudvae.monitor.stores import open_monitor_store
from fraudvae.state.store import redacted

__all__ = ["import_feedback"]


def import_feedback(file: str | Path, model_dir: str | Path, monitor_path: str | Path | None = None) -> dict[str, Any]:
    """Validate every row first (nothing is stored from a file with a bad row), then store in one transaction."""
    labels = parse_labels(read_table(file))
    where = str(monitor_path) if monitor_path else str(default_monitor_path(model_dir))
    store = open_monitor_store(where)  # a SQLite file, or a fleet's redis:// URL
    try:
        shown = redacted(where)  # no password in the answer
        return {"file": str(file), "store": shown, "received": len(labels), **store.add_labels(labels)}
    finally:
        store.close()
