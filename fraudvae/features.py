"""Behavioural features declared once in a spec, computed point-in-time.

A feature spec (TOML, read with the standard library) names the event-time column, the
entities (one key column or several) and what to compute for each entity over sliding
time windows and over its whole past, plus features within a row::

    [time]
    column = "timestamp"          # a date-time column, or numbers with a unit ("s", "min", "h", "d")

    [[entity]]
    keys = ["card_id"]            # name defaults to the keys joined by "+"
    windows = ["10min", "1h", "24h", "7d", "all"]
    count = true
    sum = ["amount"]
    mean = ["amount"]
    max = ["amount"]
    std = ["amount"]
    distinct = ["merchant"]
    time_since_previous = true
    ratio_to_past_mean = ["amount"]
    new_value = ["merchant", "country"]

    [[row]]
    name = "seconds_since_signup"
    op = "time_difference"        # also: distance (km), age (years), ratio, difference
    columns = ["purchase_time", "signup_time"]

**Point in time.** An event's features use only events of its entity *strictly earlier*
in time: never the event itself, never later events, and never events at the same
instant (ties are not each other's past, whatever their order in the file). A window
``w`` holds the past events with ``t - w <= t_past < t``. Empty windows give count 0,
sum 0, distinct 0 and missing (NaN) mean, max and std; the first event of an entity has
no time since the previous one and its values are all new (1.0). A missing entity key or
time gives missing features. Standard deviations are population (``ddof=0``).

This module is the computation; it is pure pandas/numpy and knows nothing of models.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.exceptions import ConfigurationError, DataError
from fraudvae.schema import DAYS_PER_YEAR, ColumnSpec, normalize_column

__all__ = ["EntitySpec", "FeatureSpec", "RowFeature", "compute_features", "load_spec", "parse_spec"]

_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|min|h|d)$")
_STATS = ("sum", "mean", "max", "std")
_ROW_OPS = {"time_difference": 2, "distance": 4, "age": 2, "ratio": 2, "difference": 2}
_EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class EntitySpec:
    keys: tuple[str, ...]
    name: str
    windows: tuple[str, ...] = ("all",)
    count: bool = False
    stats: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "sum" -> columns, ...
    distinct: tuple[str, ...] = ()
    time_since_previous: bool = False
    ratio_to_past_mean: tuple[str, ...] = ()
    new_value: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowFeature:
    name: str
    op: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class FeatureSpec:
    time: str | None
    time_unit: float | None  # seconds per unit of a numeric time column; None: date-time
    entities: tuple[EntitySpec, ...] = ()
    rows: tuple[RowFeature, ...] = ()

    def feature_names(self) -> list[str]:
        """Names of the derived columns, in the order :func:`compute_features` adds them."""
        names: list[str] = []
        for e in self.entities:
            for w in e.windows:
                if e.count:
                    names.append(f"{e.name}:count_{w}")
                for stat, columns in e.stats.items():
                    names += [f"{e.name}:{stat}_{c}_{w}" for c in columns]
                names += [f"{e.name}:distinct_{c}_{w}" for c in e.distinct]
            if e.time_since_previous:
                names.append(f"{e.name}:seconds_since_previous")
            names += [f"{e.name}:{c}_over_past_mean" for c in e.ratio_to_past_mean]
            names += [f"{e.name}:new_{c}" for c in e.new_value]
        return names + [r.name for r in self.rows]

    def columns_used(self) -> set[str]:
        used = {self.time} if self.time else set()
        for e in self.entities:
            used |= set(e.keys) | set(e.distinct) | set(e.ratio_to_past_mean) | set(e.new_value)
            for columns in e.stats.values():
                used |= set(columns)
        for r in self.rows:
            used |= set(r.columns)
        return used


def _seconds(text: str, where: str) -> float:
    found = _DURATION.match(text)
    if text != "all" and not found:
        raise ConfigurationError(
            f"{where}: window {text!r} is not a duration; expected a number and a unit (s, min, h, d), "
            'like "10min" or "7d", or "all" for the whole past.'
        )
    return math.inf if found is None else float(found.group(1)) * _UNITS[found.group(2)]


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f'{where}: {value!r} is not a list of column names; expected e.g. ["amount"].')
    return tuple(value)


def parse_spec(doc: dict[str, Any]) -> FeatureSpec:
    """A :class:`FeatureSpec` from a parsed TOML document; every mistake names its place."""
    unknown = set(doc) - {"time", "entity", "row"}
    if unknown:
        raise ConfigurationError(f"feature spec: unknown section(s) {sorted(unknown)}; expected time, entity, row.")
    time_doc = doc.get("time", {})
    time = time_doc.get("column")
    unit_text = time_doc.get("unit")
    if unit_text is not None and unit_text not in _UNITS:
        raise ConfigurationError(f"[time] unit {unit_text!r}: expected one of {sorted(_UNITS)}.")
    entities = []
    for i, e in enumerate(doc.get("entity", [])):
        where = f"[[entity]] #{i + 1}"
        allowed = {"keys", "name", "windows", "count", *_STATS, "distinct", "time_since_previous"}
        extra = set(e) - allowed - {"ratio_to_past_mean", "new_value"}
        if extra:
            raise ConfigurationError(f"{where}: unknown option(s) {sorted(extra)}; expected {sorted(allowed)}.")
        if "keys" not in e:
            raise ConfigurationError(f'{where}: no keys; expected keys = ["card_id"] (one column or several).')
        keys = _names(e["keys"], f"{where} keys")
        windows = tuple(e.get("windows", ["all"]))
        for w in windows:
            _seconds(str(w), where)
        if time is None:
            raise ConfigurationError(f'{where}: per-entity features need [time] column = "...", the event time.')
        entities.append(
            EntitySpec(
                keys=keys,
                name=str(e.get("name", "+".join(keys))),
                windows=windows,
                count=bool(e.get("count", False)),
                stats={s: _names(e[s], f"{where} {s}") for s in _STATS if s in e},
                distinct=_names(e.get("distinct", []), f"{where} distinct"),
                time_since_previous=bool(e.get("time_since_previous", False)),
                ratio_to_past_mean=_names(e.get("ratio_to_past_mean", []), f"{where} ratio_to_past_mean"),
                new_value=_names(e.get("new_value", []), f"{where} new_value"),
            )
        )
    rows = []
    for i, r in enumerate(doc.get("row", [])):
        where = f"[[row]] #{i + 1}"
        op = r.get("op")
        if op not in _ROW_OPS:
            raise ConfigurationError(f"{where}: op {op!r}; expected one of {sorted(_ROW_OPS)}.")
        columns = _names(r.get("columns", []), f"{where} columns")
        if len(columns) != _ROW_OPS[op]:
            raise ConfigurationError(f"{where}: op {op!r} takes {_ROW_OPS[op]} columns, got {len(columns)}.")
        rows.append(RowFeature(str(r.get("name", f"{op}({','.join(columns)})")), op, columns))
    spec = FeatureSpec(time, _UNITS[unit_text] if unit_text else None, tuple(entities), tuple(rows))
    names = spec.feature_names()
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"feature spec: feature name(s) {duplicates} defined twice; give each a name.")
    return spec


def load_spec(path: str | Path) -> FeatureSpec:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the feature spec {str(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"the feature spec {str(path)!r} is not valid TOML: {exc}") from exc
    return parse_spec(doc)


# ---------------------------------------------------------------------- computation
def _event_seconds(frame: pd.DataFrame, spec: FeatureSpec, column: str) -> np.ndarray:
    """Event times in seconds (date-times read by the schema's parser, which refuses hostile text)."""
    values = frame[column]
    if spec.time_unit is not None or pd.api.types.is_numeric_dtype(values.dtype):
        return _numbers(frame, column) * (spec.time_unit or 1.0)
    when, _ = normalize_column(values, ColumnSpec(name=column, kind="datetime", nullable=True))
    return np.where(np.isnat(when), np.nan, (when - np.datetime64(0, "ns")) / np.timedelta64(1, "s"))


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 by the schema's parser; text that is not a number, or overflows, is missing."""
    out, _ = normalize_column(frame[column], ColumnSpec(name=column, kind="numeric", nullable=True))
    return np.where(np.isfinite(out), out, np.nan)


def compute_features(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The spec's features for every row of ``frame``, in its row order (a new frame, same index)."""
    missing = sorted(spec.columns_used() - set(map(str, frame.columns)))
    if missing:
        raise DataError(
            f"the feature spec uses column(s) {missing} that the data does not have; add them or edit the spec."
        )
    out: dict[str, np.ndarray] = {}
    t = _event_seconds(frame, spec, spec.time) if spec.time else np.zeros(len(frame))
    for e in spec.entities:
        out.update(_entity_features(frame, e, t))
    for r in spec.rows:
        out[r.name] = _row_feature(frame, spec, r)
    return pd.DataFrame(out, index=frame.index, columns=spec.feature_names())


def _entity_features(frame: pd.DataFrame, e: EntitySpec, t: np.ndarray) -> dict[str, np.ndarray]:
    n = len(frame)
    keys = frame[list(e.keys)]
    valid = ~keys.isna().any(axis=1).to_numpy() & ~np.isnan(t)
    group = np.full(n, -1, dtype=np.int64)
    if valid.any():
        group[valid] = keys[valid].astype(str).agg("\x1f".join, axis=1).factorize()[0]
    order = np.lexsort((t, group))  # by entity, then time (stable)
    order = order[valid[order]]
    g, ts = group[order], t[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1] if len(order) else np.zeros(0, dtype=np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))  # each sorted event's group start
    # hi: first event of the group at the same time or later (ties are not each other's past)
    hi = np.empty(len(order), dtype=np.int64)
    bounds = np.r_[starts, len(order)]
    for a, b in itertools.pairwise(bounds.tolist()):
        hi[a:b] = a + np.searchsorted(ts[a:b], ts[a:b], side="left")
    result: dict[str, np.ndarray] = {}

    def put(name: str, sorted_values: np.ndarray) -> None:
        full = np.full(n, np.nan)
        full[order] = sorted_values
        result[name] = full

    for w in e.windows:
        span = _seconds(str(w), e.name)
        if math.isinf(span):
            lo = first
        else:
            lo = np.empty(len(order), dtype=np.int64)
            for a, b in itertools.pairwise(bounds.tolist()):
                lo[a:b] = a + np.searchsorted(ts[a:b], ts[a:b] - span, side="left")
        count = (hi - lo).astype(np.float64)
        if e.count:
            put(f"{e.name}:count_{w}", count)
        for stat, columns in e.stats.items():
            for c in columns:
                put(f"{e.name}:{stat}_{c}_{w}", _window_stat(stat, _numbers(frame, c)[order], lo, hi, first))
        for c in e.distinct:
            put(f"{e.name}:distinct_{c}_{w}", _window_distinct(frame[c].to_numpy(dtype=object)[order], lo, hi, first))
    if e.time_since_previous:
        has_past = hi > first
        previous = np.where(has_past, ts[np.maximum(hi - 1, 0)], np.nan)
        put(f"{e.name}:seconds_since_previous", np.where(has_past, ts - previous, np.nan))
    for c in e.ratio_to_past_mean:
        v = _numbers(frame, c)[order]
        mean = _window_stat("mean", v, first, hi, first)
        with np.errstate(divide="ignore", invalid="ignore"):
            put(f"{e.name}:{c}_over_past_mean", np.where(mean != 0, v / mean, np.nan))
    for c in e.new_value:
        put(f"{e.name}:new_{c}", _new_values(frame[c].to_numpy(dtype=object)[order], g, ts))
    return result


def _window_stat(stat: str, v: np.ndarray, lo: np.ndarray, hi: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``stat`` of the observed values at sorted positions ``[lo, hi)`` of each event (entities start at ``first``)."""
    observed = ~np.isnan(v)
    x = np.where(observed, v, 0.0)
    cnt = np.r_[0, np.cumsum(observed)]
    k = (cnt[hi] - cnt[lo]).astype(np.float64)
    if stat == "max":
        return _window_max(np.where(observed, v, -np.inf), lo, hi, k, first)
    s1 = np.r_[0.0, np.cumsum(x)]
    total = s1[hi] - s1[lo]
    if stat == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(k > 0, total / k, np.nan)
        if stat == "mean":
            return mean
        # Summed directly over the window (prefix sums of squares cancel catastrophically
        # on large amounts with a small spread).
        out = np.full(len(v), np.nan)
        for i in np.flatnonzero(k > 0):
            seg = v[lo[i] : hi[i]]
            out[i] = float(np.std(seg[~np.isnan(seg)]))
        return out


def _window_max(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, k: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Sliding maximum over ``[lo, hi)`` (both non-decreasing within an entity): a monotone deque."""
    out = np.full(len(v), np.nan)
    window: deque[int] = deque()
    right = 0
    for i in range(len(v)):
        if i == 0 or first[i] != first[i - 1]:  # a new entity
            window.clear()
            right = lo[i]
        while right < hi[i]:
            while window and v[window[-1]] <= v[right]:
                window.pop()
            window.append(right)
            right += 1
        while window and window[0] < lo[i]:
            window.popleft()
        if k[i] > 0:
            out[i] = v[window[0]]
    return out


def _window_distinct(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Distinct non-missing values at ``[lo, hi)``: two pointers and a count per value."""
    out = np.zeros(len(values))
    counts: dict[Any, int] = {}
    left = right = 0
    for i in range(len(values)):
        if i == 0 or first[i] != first[i - 1]:  # a new entity
            counts.clear()
            left = right = lo[i]
        while right < hi[i]:
            if not pd.isna(values[right]):
                counts[values[right]] = counts.get(values[right], 0) + 1
            right += 1
        while left < lo[i]:
            if not pd.isna(values[left]):
                counts[values[left]] -= 1
                if counts[values[left]] == 0:
                    del counts[values[left]]
            left += 1
        out[i] = len(counts)
    return out


def _new_values(values: np.ndarray, group: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """1.0 when the entity never had this value strictly earlier, 0.0 when it had, NaN when missing."""
    missing = pd.isna(values)
    key = pd.Series(values.astype(str)).where(~missing, None)
    first_seen = pd.Series(ts).groupby([group, key.to_numpy()], dropna=False).transform("min").to_numpy()
    return np.where(missing, np.nan, (first_seen >= ts).astype(np.float64))


def _row_feature(frame: pd.DataFrame, spec: FeatureSpec, r: RowFeature) -> np.ndarray:
    if r.op == "time_difference":
        return _event_seconds(frame, spec, r.columns[0]) - _event_seconds(frame, spec, r.columns[1])
    if r.op == "age":
        seconds = _event_seconds(frame, spec, r.columns[1]) - _event_seconds(frame, spec, r.columns[0])
        return seconds / (DAYS_PER_YEAR * 86400.0)
    if r.op == "distance":
        lat1, lon1, lat2, lon2 = (np.radians(_numbers(frame, c)) for c in r.columns)
        a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        return 2 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    a, b = _numbers(frame, r.columns[0]), _numbers(frame, r.columns[1])
    if r.op == "difference":
        return a - b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / b, np.nan)
