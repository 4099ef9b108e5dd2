"""Concurrent ``/score`` requests of one worker scored as one batch.

A request's cost is mostly fixed: pandas' per-call cost to build, validate and encode its
frame, a store transaction for its entities' history (a spec model), and a whole padded
chunk of the network (:data:`fraudvae.model.scoring.CHUNK_ROWS` rows and guards) for its one
row. A worker that answers sixteen waiting requests one at a time pays all of it sixteen
times. Here a request hands its validated rows over and waits; once every request the event
loop has ready has handed its own over, their rows are scored as one ``/batch_score`` would
score them (one frame, one store transaction, one network pass), and each request gets its
own rows back.

The answers are the ones each request gets alone. A row's scores do not depend on the rows
beside it (the scoring module's contract). A spec model's events count in arrival order, the
order sequential requests would have; events of one entity that arrive together count as
events of one batch do, as the batch job counts them (the online = offline replays with 16
concurrent clients check this). Alone (one client), a request waits one turn of the event loop.

If the batch fails (a row the detector refuses), each request is scored alone, so each gets
its own error, not a neighbour's, and each event is recorded once (:func:`fraudvae_service.
events.score_batch`). A store that is down fails every request of the batch with its 503 at
once. Requests that differ in ``record`` or ``explain_top_k`` are not batched together; a
model reloaded in between is batched apart.

Scoring stays inline on the event loop, as ``/score`` did before: the pass is a few
milliseconds, and a hop to a thread and back cost more than it saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fraudvae.detection.results import ScoreResult

__all__ = ["MAX_ROWS", "Coalescer", "Scored"]

#: Turns of the event loop a batch waits while more requests keep arriving (each ~0.05 ms).
_MAX_WAITS = 4
#: Rows in one batch at most; the rest wait for the next.
MAX_ROWS = 1024

#: What a request gets back: its rows as a frame, one answer per row, the detector's result.
Scored = tuple[pd.DataFrame, list[dict[str, Any]], ScoreResult]
#: Scores several requests of one model as one batch, each request its outcome (or its own
#: error): ``run(model, [(records, ids), ...], record, top_k)``. What it raises fails them all.
Run = Callable[[Any, list[tuple[list[dict[str, Any]], list[Any] | None]], bool, int], list[Scored | Exception]]


@dataclass
class _Waiting:
    model: Any
    records: list[dict[str, Any]]
    ids: list[Any] | None
    record: bool
    top_k: int
    done: asyncio.Future[Scored]
    on_pass: Callable[[int], None] | None


@dataclass
class Coalescer:
    """The scoring of the requests that wait at the same time (one per worker)."""

    run: Run
    _waiting: list[_Waiting] = field(default_factory=list)
    _scheduled: bool = False

    async def score(
        self,
        model: Any,
        records: list[dict[str, Any]],
        ids: list[Any] | None,
        record: bool,
        top_k: int,
        *,
        on_pass: Callable[[int], None] | None = None,
    ) -> Scored:
        """``run(model, records, ids, record, top_k)``, batched with whatever else waits for ``model``.

        ``on_pass(n)`` is called once for each batch this request leads, with the number of
        requests it answered (``/metrics``' requests per pass).
        """
        loop = asyncio.get_running_loop()
        waiting = _Waiting(model, records, ids, record, top_k, loop.create_future(), on_pass)
        self._waiting.append(waiting)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run, 0, len(self._waiting))
        return await waiting.done

    def _run(self, waits: int, seen: int) -> None:
        loop = asyncio.get_running_loop()
        if len(self._waiting) > seen and waits < _MAX_WAITS:  # still arriving: one more turn
            loop.call_soon(self._run, waits + 1, len(self._waiting))
            return
        batch: list[_Waiting] = []
        rows = 0
        while self._waiting and (not batch or rows + len(self._waiting[0].records) <= MAX_ROWS):
            batch.append(self._waiting.pop(0))
            rows += len(batch[-1].records)
        if self._waiting:
            loop.call_soon(self._run, _MAX_WAITS, len(self._waiting))
        else:
            self._scheduled = False
        groups: dict[tuple[int, bool, int, bool], list[_Waiting]] = {}
        for w in batch:
            if not w.done.cancelled():  # a client that went away
                groups.setdefault((id(w.model), w.record, w.top_k, w.ids is None), []).append(w)
        for group in groups.values():
            self._score(group)

    def _score(self, batch: list[_Waiting]) -> None:
        first = batch[0]
        try:
            outcomes = self.run(first.model, [(w.records, w.ids) for w in batch], first.record, first.top_k)
        except Exception as exc:  # the store is down (503), or worse: every request of the batch
            for w in batch:
                w.done.set_exception(exc)
            return
        if first.on_pass is not None:
            first.on_pass(len(batch))
        for w, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                w.done.set_exception(outcome)
            else:
                w.done.set_result(outcome)
