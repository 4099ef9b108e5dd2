"""``fraudvae state load|info|reset``: fill an online state store from history, show it, empty it.

``load`` reads the history file with the batch job's own reader (the one ``fraudvae score
--history`` uses) and records its events chunk by chunk through
:class:`~fraudvae.state.online.OnlineScorer`, so the store then holds exactly the history the
batch job would carry into the first scored event. Each chunk is one transaction that also
writes how far the load got: a load that is killed keeps its whole chunks, and the same
command run again resumes after them (nothing counted twice).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from fraudvae.detection.detector import VAEDetector
from fraudvae.exceptions import ConfigurationError, DataFileError, EventOrderError
from fraudvae.features.behaviour import model_spec
from fraudvae.features.columns import Columns
from fraudvae.jobs.batch import _chunks, _label_columns
from fraudvae.state import DEFAULT_EVENT_TTL, default_state_url, open_store
from fraudvae.state.online import OnlineScorer
from fraudvae.state.store import StateStore

__all__ = ["load_state", "reset_state", "state_info"]

#: Events per store transaction: a chunk is recorded in slices, so that one transaction never
#: holds the records of tens of thousands of entities (Redis answers each within its timeout).
_PER_TRANSACTION = 2000


def _open(model_dir: str | Path, url: str | None, event_ttl: float = DEFAULT_EVENT_TTL) -> StateStore:
    return open_store(url or default_state_url(model_dir), event_ttl=event_ttl)


def load_state(
    model_dir: str | Path,
    history: str | Path,
    url: str | None = None,
    *,
    chunk_rows: int = 20_000,
    log: Any = None,
) -> dict[str, Any]:
    """Record the events of ``history`` (in time order) into the model's state store."""
    if chunk_rows < 1:
        raise ConfigurationError(f"--chunk-rows {chunk_rows} is invalid; expected a positive number of rows.")
    det = VAEDetector.load(str(model_dir))
    spec = model_spec(det.extra_documents_)
    if spec is None:
        raise ConfigurationError(
            f"state load fills the behavioural features' history of a model trained with --features; "
            f"{str(model_dir)!r} has no feature spec."
        )
    src = Path(history)
    if not src.exists():
        raise DataFileError(f"History {str(src)!r} does not exist; check the path.")
    store = _open(model_dir, url)
    try:
        scorer = OnlineScorer(det, store)
        checkpoint = f"load:{_digest(src)}"
        done_line = int(store.get_meta(checkpoint) or 0)
        kinds = {c.name: c.kind for c in det.schema_.columns}
        latest, loaded, skipped = -math.inf, 0, 0
        used = sorted(spec.columns_used())  # and the label-risk labels the history has
        for part in _chunks(src, used + _label_columns(src, spec, used), kinds, chunk_rows):
            latest = _check_order(part.frame, part.lines, spec, latest, src)
            for start in range(0, len(part.frame), _PER_TRANSACTION):
                rows, lines = (
                    part.frame.iloc[start : start + _PER_TRANSACTION],
                    part.lines[start : start + _PER_TRANSACTION],
                )
                if int(lines[-1]) <= done_line:
                    skipped += len(rows)
                    continue
                scorer.record_history(rows, (checkpoint, str(int(lines[-1]))))
                loaded += len(rows)
            if log is not None:
                log(f"recorded {loaded} events (through line {int(part.lines[-1])})")
        return {"loaded": loaded, "skipped_already_loaded": skipped, **store.stats()}
    finally:
        store.close()


def state_info(model_dir: str | Path, url: str | None = None) -> dict[str, Any]:
    store = _open(model_dir, url)
    try:
        store.ping()
        return store.stats()
    finally:
        store.close()


def reset_state(model_dir: str | Path, url: str | None = None) -> dict[str, Any]:
    store = _open(model_dir, url)
    try:
        store.clear()
        return store.stats()
    finally:
        store.close()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:24]


def _check_order(frame: Any, lines: np.ndarray, spec: Any, latest: float, path: Path) -> float:
    """History must be in time order, as for ``fraudvae score --history`` (the same message)."""
    if not spec.time:
        return latest
    t = Columns(frame, spec).seconds(spec.time)
    known = np.flatnonzero(~np.isnan(t))
    if not len(known):
        return latest
    before = np.maximum.accumulate(np.r_[latest, t[known]])[:-1]
    late = t[known] < before
    if late.any():
        i = int(known[np.argmax(late)])
        raise EventOrderError(
            f"{str(path)!r}: {spec.time!r} of the event at line {int(lines[i])} is earlier than an event before it; "
            f"history must come in time order: sort the file by {spec.time!r}.",
            position=i,
        )
    return max(latest, float(t[known].max()))
