"""Behavioural features, computed point-in-time, over a whole file or as a stream of chunks.

The spec (:mod:`fraudvae.features.spec`) says what to compute; this module computes it.

**Point in time.** An event's features use only events of its entity *strictly earlier*
in time: never the event itself, never later events, and never events at the same
instant (ties are not each other's past, whatever their order in the file). A window
``w`` holds the past events with ``t - w <= t_past < t``. Empty windows give count 0,
sum 0, distinct 0 and missing (NaN) mean, max and std; the first event of an entity has
no time since the previous one and its values are all new (1.0). A missing entity key or
time gives missing features. Standard deviations are population (``ddof=0``). Keys and
values are compared as text in one canonical form (7, 7.0, "7" and "007" are one id), so
every reader's typing of a column gives the same entities.

**One computation everywhere.** :func:`compute_features` is a :class:`FeatureStream` fed
one chunk. The batch job feeds its chunks, in time order, to one stream, which carries
each entity's history from chunk to chunk; Spark runs a stream per partition of entities.
An event's values depend only on its own entity's events, in time order (ties in input
order), so all of them give the same bits:

* counts, maxima, distinct counts and "new value" are exact;
* sums over the past are running sums in time order started at the entity's first event
  and carried across chunks; a window's sum is the difference of two of them;
* standard deviations come from running sums of (value - the entity's first value) and
  its square: the shift keeps the difference of squares from cancelling on large amounts
  with a small spread (a window of one event has std 0 exactly).

**Memory.** A stream keeps each entity's events inside the longest finite window, a fixed
summary per entity (running sums, counts, last time) and the (entity, value) pairs that
``new_value`` and whole-past ``distinct`` need: bounded by the entities, not the file.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.textparse import printable
from fraudvae.exceptions import DataError, EventOrderError
from fraudvae.features import windows
from fraudvae.features.columns import SEP, Columns, row_feature
from fraudvae.features.label_risk import LabelRiskStream
from fraudvae.features.spec import EntitySpec, FeatureSpec, load_spec, parse_spec, window_seconds

__all__ = ["FeatureSpec", "FeatureStream", "compute_features", "load_spec", "parse_spec"]


def compute_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The spec's features for every row of ``frame``, in its row order (a new frame, same index)."""
    return FeatureStream(spec).update(frame)


class FeatureStream:
    """Computes a spec's features chunk by chunk, carrying each entity's history.

    Every chunk after the first must hold no event earlier than the latest event seen so
    far (else :class:`~fraudvae.exceptions.EventOrderError`): the past of an event is then
    complete when it arrives. With ``in_time_order`` the rows inside each chunk must be in
    time order too, so whether a file is accepted does not depend on how it is chunked.
    """

    def __init__(self, spec: FeatureSpec, *, in_time_order: bool = False) -> None:
        self.spec = spec
        self.in_time_order = in_time_order
        self.rows_seen = 0
        self.latest = -math.inf
        self._entities: list[_EntityStream | LabelRiskStream] = [_EntityStream(e) for e in spec.entities]
        self._entities += [LabelRiskStream(r) for r in spec.label_risk]

    def update(self, frame: pd.DataFrame, *, lines: np.ndarray | None = None) -> pd.DataFrame:
        """The features of ``frame``'s rows, given every earlier chunk as their past.

        ``lines`` (the file line of each row) only makes an order error name the line.
        """
        spec = self.spec
        missing = sorted(spec.columns_used() - set(map(str, frame.columns)))
        if missing:
            raise DataError(
                f"the feature spec uses column(s) {missing} that the data does not have; add them or edit the spec."
            )
        cols = Columns(frame, spec)
        t = cols.seconds(spec.time) if spec.time else np.zeros(len(frame))
        self._check_order(frame, t, lines)
        out: dict[str, np.ndarray] = {}
        for entity in self._entities:
            out.update(entity.update(cols, t, self.latest))
        for r in spec.rows:
            out[r.name] = row_feature(cols, r)
        self.rows_seen += len(frame)
        known = t[~np.isnan(t)]
        if len(known):
            self.latest = max(self.latest, float(known.max()))
        return windows.feature_frame(out, spec.feature_names(), frame.index)

    def memory_rows(self) -> int:
        """Events and per-entity summaries held (what bounds the stream's memory)."""
        return sum(entity.held() for entity in self._entities)

    def _check_order(self, frame: pd.DataFrame, t: np.ndarray, lines: np.ndarray | None) -> None:
        known = np.flatnonzero(~np.isnan(t))
        if not len(known):
            return
        before = np.full(len(known), self.latest)
        if self.in_time_order:
            before = np.maximum.accumulate(np.r_[self.latest, t[known]])[:-1]
        late = t[known] < before
        if late.any():
            i = int(known[np.argmax(late)])
            previous = float(before[np.argmax(late)])
            column = self.spec.time or "time"
            where = f"line {int(lines[i])}" if lines is not None else f"row {self.rows_seen + i + 1}"
            raise EventOrderError(
                f"{column!r} of the event at {where} ({printable(frame[column].iloc[i])}) "
                f"is earlier than an event before it ({_when(previous, self.spec)}); events must come in time "
                f"order so that each one's past is complete when it is scored: sort the file by {column!r} "
                "(and give earlier events as history, not after).",
                position=i,
            )


def _when(seconds: float, spec: FeatureSpec) -> str:
    if spec.time_unit is not None:
        return f"{seconds / spec.time_unit:g}"
    return str(np.datetime64(int(seconds * 1e9), "ns"))


class _EntityStream:
    """One ``[[entity]]``'s running state: the recent events (``tail``) and a summary per entity."""

    def __init__(self, e: EntitySpec) -> None:
        self.e = e
        spans = [window_seconds(w) for w in e.windows]
        self.keep = max([s for s in spans if not math.isinf(s)], default=0.0)  # seconds of raw events kept
        stats = e.stats
        self.summed = sorted(
            set(stats.get("sum", ()))
            | set(stats.get("mean", ()))
            | set(stats.get("std", ()))
            | set(e.ratio_to_past_mean)
        )
        self.maxed = sorted(set(stats.get("max", ())))
        self.spread = sorted(set(stats.get("std", ())))
        self.valued = sorted(set(e.distinct) | set(e.new_value))
        # Running (exclusive) accumulators: name -> (ufunc, seed of a new entity).
        self.acc: dict[str, tuple[Any, float]] = {"n": (np.add, 0.0), "last": (np.maximum, -math.inf)}
        for c in self.summed:
            self.acc |= {f"p:{c}": (np.add, 0.0), f"c:{c}": (np.add, 0.0)}
        for c in self.maxed:
            self.acc[f"mx:{c}"] = (np.maximum, -math.inf)
        for c in self.spread:
            self.acc |= {f"s1:{c}": (np.add, 0.0), f"s2:{c}": (np.add, 0.0)}
        for c in e.distinct:
            self.acc[f"f:{c}"] = (np.add, 0.0)
        self.tail: dict[str, np.ndarray] = {}
        self.index: dict[str, int] = {}  # entity key -> its position in the totals
        self.totals: dict[str, np.ndarray] = {
            name: np.zeros(0) for name in [*self.acc, *(f"k:{c}" for c in self.spread)]
        }
        self.seen: dict[str, dict[str, float]] = {c: {} for c in self.valued}  # "key\x1fvalue" -> first time

    def held(self) -> int:
        return len(self.tail.get("t", ())) + len(self.index) + sum(len(s) for s in self.seen.values())

    def update(self, cols: Columns, t: np.ndarray, latest: float) -> dict[str, np.ndarray]:
        e, n = self.e, len(t)
        keys = cols.keys(e.keys)
        rows = np.flatnonzero(~pd.isna(keys) & ~np.isnan(t))
        new: dict[str, np.ndarray] = {"key": keys[rows], "t": t[rows]}
        for c in sorted(set(self.summed) | set(self.maxed)):
            new[f"x:{c}"] = cols.numbers(c)[rows]
        for c in self.valued:
            new[f"q:{c}"] = cols.text(c)[rows]
        n_old = len(self.tail.get("t", ()))
        both = {k: np.concatenate([self.tail[k], v]) if n_old else v for k, v in new.items()}
        codes = pd.factorize(both["key"])[0]
        order = np.lexsort((np.arange(len(codes)), both["t"], codes))  # entity, time, input order
        both = {k: v[order] for k, v in both.items()}
        is_new = order >= n_old
        row_of = rows[order[is_new] - n_old]  # the frame row of each new event, in sorted order
        seg = np.r_[0, np.cumsum(codes[order][1:] != codes[order][:-1])] if len(order) else np.zeros(0, np.int64)
        excl = self._scan(both, is_new, seg, n_old)
        features = self._features(both, excl, seg, is_new)
        result = {}
        for name, values in features.items():
            full = np.full(n, np.nan)
            full[row_of] = values
            result[name] = full
        self._keep(both, excl, max(latest, float(both["t"].max()) if len(order) else latest))
        return result

    def _scan(self, both: dict[str, np.ndarray], is_new: np.ndarray, seg: np.ndarray, n_old: int) -> dict[str, Any]:
        """Exclusive running values at every position: stored for old events, seeded scans for new ones."""
        pos = np.flatnonzero(is_new)  # new events sit at the end of their entity's run
        starts = np.r_[0, np.flatnonzero(np.diff(seg[pos])) + 1] if len(pos) else np.zeros(0, np.int64)
        lengths = np.diff(np.r_[starts, len(pos)])
        at = windows.positions(self.index, both["key"][pos[starts]])
        known = at >= 0
        inputs = self._inputs(both, pos, starts, lengths, at, known)
        excl: dict[str, Any] = {"new_totals": {}, "run_keys": both["key"][pos[starts]] if len(pos) else np.zeros(0)}
        for name, (op, seed) in self.acc.items():
            seeds = np.where(known, self.totals[name][np.maximum(at, 0)] if len(self.index) else seed, seed)
            values, totals = windows.seeded_scan(op, inputs[name], starts, lengths, seeds)
            full = np.empty(len(is_new))
            if n_old:
                full[~is_new] = self.tail[name]
            full[pos] = values
            excl[name] = full
            excl["new_totals"][name] = totals
        for c in self.spread:
            excl["new_totals"][f"k:{c}"] = inputs[f"k:{c}"]
        excl |= {k: v for k, v in inputs.items() if k.startswith("new:")}
        return excl

    def _inputs(
        self,
        both: dict[str, np.ndarray],
        pos: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
        at: np.ndarray,
        known: np.ndarray,
    ) -> dict[str, np.ndarray]:
        run = np.repeat(np.arange(len(starts)), lengths)  # each new event's run (entity)
        t = both["t"][pos]
        inputs: dict[str, np.ndarray] = {"n": np.ones(len(pos)), "last": t}
        for c in self.summed:
            x = both[f"x:{c}"][pos]
            observed = ~np.isnan(x)
            inputs |= {f"p:{c}": np.where(observed, x, 0.0), f"c:{c}": observed.astype(np.float64)}
        for c in self.maxed:
            x = both[f"x:{c}"][pos]
            inputs[f"mx:{c}"] = np.where(np.isnan(x), -math.inf, x)
        for c in self.spread:
            x = both[f"x:{c}"][pos]
            carried = self.totals[f"k:{c}"][np.maximum(at, 0)] if len(self.index) else np.full(len(at), np.nan)
            first = windows.first_observed(x, run, len(starts))
            k = np.where(known & ~np.isnan(carried), carried, first)
            y = np.where(np.isnan(x), 0.0, x - k[run])
            inputs |= {f"s1:{c}": y, f"s2:{c}": y * y, f"k:{c}": k}
        for c in self.valued:
            q = both[f"q:{c}"][pos]
            has = np.asarray(~pd.isna(q), dtype=bool)
            pair = np.where(has, both["key"][pos].astype(object) + SEP + np.where(has, q, "").astype(object), None)
            seen = self.seen[c]
            before = np.array([seen.get(str(p), math.nan) if h else math.nan for p, h in zip(pair, has, strict=True)])
            first_here, since = windows.first_here(pair, has, before, t)
            first_seen = np.where(np.isnan(before), since, before)
            inputs[f"new:{c}"] = np.where(has, (first_seen >= t).astype(np.float64), np.nan)
            if f"f:{c}" in self.acc:
                inputs[f"f:{c}"] = first_here.astype(np.float64)
            seen.update(zip(pair[first_here].tolist(), t[first_here].tolist(), strict=True))
        return inputs

    def _features(
        self, both: dict[str, np.ndarray], x: dict[str, Any], seg: np.ndarray, is_new: np.ndarray
    ) -> dict[str, np.ndarray]:
        e = self.e
        pos = np.flatnonzero(is_new)
        t = both["t"]
        times, rank = np.unique(t, return_inverse=True)
        width = len(times) + 1
        composite = seg * width + rank
        hi = np.searchsorted(composite, composite[pos], side="left")
        out: dict[str, np.ndarray] = {}
        for w in e.windows:
            span = window_seconds(w)
            finite = not math.isinf(span)
            lo = hi
            if finite:
                lo = np.searchsorted(composite, seg[pos] * width + np.searchsorted(times, t[pos] - span), side="left")

            window = functools.partial(windows.window, x, hi, lo if finite else None)

            if e.count:
                out[f"{e.name}:count_{w}"] = (hi - lo).astype(np.float64) if finite else x["n"][hi]
            for stat, columns in e.stats.items():
                for c in columns:
                    out[f"{e.name}:{stat}_{c}_{w}"] = self._stat(stat, c, both, x, window, hi, lo if finite else None)
            for c in e.distinct:
                out[f"{e.name}:distinct_{c}_{w}"] = (
                    windows.window_distinct(both[f"q:{c}"], seg, lo, hi, pos) if finite else x[f"f:{c}"][hi]
                )
        with np.errstate(invalid="ignore", divide="ignore"):
            if e.time_since_previous:
                out[f"{e.name}:seconds_since_previous"] = np.where(x["n"][hi] > 0, t[pos] - x["last"][hi], np.nan)
            for c in e.ratio_to_past_mean:
                mean = np.where(x[f"c:{c}"][hi] > 0, x[f"p:{c}"][hi] / x[f"c:{c}"][hi], np.nan)
                out[f"{e.name}:{c}_over_past_mean"] = np.where(mean != 0, both[f"x:{c}"][pos] / mean, np.nan)
        for c in e.new_value:
            out[f"{e.name}:new_{c}"] = x[f"new:{c}"]
        return out

    def _stat(
        self,
        stat: str,
        c: str,
        both: dict[str, np.ndarray],
        x: dict[str, Any],
        window: Any,
        hi: np.ndarray,
        lo: np.ndarray | None,
    ) -> np.ndarray:
        k: np.ndarray = window(f"c:{c}")
        with np.errstate(invalid="ignore", divide="ignore"):
            if stat == "sum":
                return window(f"p:{c}")
            if stat == "mean":
                return np.where(k > 0, window(f"p:{c}") / k, np.nan)
            if stat == "std":
                s1, s2 = window(f"s1:{c}"), window(f"s2:{c}")
                var = np.where(k > 1, np.maximum(s2 / k - (s1 / k) ** 2, 0.0), 0.0)
                return np.where(k > 0, np.sqrt(var), np.nan)
        v = np.where(np.isnan(both[f"x:{c}"]), -math.inf, both[f"x:{c}"])
        best = windows.window_max(v, lo, hi) if lo is not None else x[f"mx:{c}"][hi]
        return np.where(np.isinf(best), np.nan, best)

    def _keep(self, both: dict[str, np.ndarray], x: dict[str, Any], latest: float) -> None:
        """Keep the events a later chunk's windows and ties can reach, and the entities' new totals."""
        keep = both["t"] >= latest - self.keep
        self.tail = {k: v[keep] for k, v in both.items()} | {name: x[name][keep] for name in self.acc}
        runs = x["run_keys"]
        if not len(runs):
            return
        at = windows.positions(self.index, runs)
        fresh = at < 0
        self.index.update({k: i for i, k in enumerate(runs[fresh].tolist(), start=len(self.index))})
        for name, totals in x["new_totals"].items():
            grown = np.concatenate([self.totals[name], totals[fresh]])
            grown[at[~fresh]] = totals[~fresh]
            self.totals[name] = grown
