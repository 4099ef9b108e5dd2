"""Reading the columns a feature spec uses, the same way for every reader of a file.

Keys and values become text in one canonical form (a CSV reader that types an id column as
numbers and one that keeps text must see the same entity); numbers and date-times go
through the schema's parsers, which refuse hostile text (never ``pd.to_numeric``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.schema import DAYS_PER_YEAR, ColumnSpec, normalize_column
from fraudvae.features.spec import FeatureSpec, RowFeature

__all__ = ["Columns", "canonical_text", "event_seconds", "numbers", "row_feature"]

_EARTH_RADIUS_KM = 6371.0088
SEP = "\x1f"
_INTEGER = re.compile(r"[+-]?\d{1,40}")
_DECIMAL = re.compile(r"[+-]?(?:\d{1,40}\.?\d{0,40}|\.\d{1,40})(?:[eE][+-]?\d{1,4})?")


def canonical_text(col: pd.Series) -> np.ndarray:
    """Values as text in one form (``None`` when missing): 7, 7.0, "7" and "007" are one value."""
    if len(col) <= _FEW and col.dtype.kind in "Ofiub":  # online: factorize costs ~0.05 ms a call
        return np.array([None if _missing(v) else _canonical_one(v) for v in col.tolist()] + [None], dtype=object)[:-1]
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    text = np.array([_canonical_one(v) for v in np.asarray(uniques, dtype=object)] + [None], dtype=object)
    return text[codes]  # code -1 (missing) takes the trailing None


_FEW = 16  #: up to this many values, one by one beats factorizing (same text: each value's own)


def _missing(v: Any) -> bool:
    """What factorize counts as missing: None, NaN, NaT and pd.NA."""
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _canonical_one(v: Any) -> str | None:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return None if math.isnan(v) else repr(v)
        return str(int(v)) if v.is_integer() and abs(v) < 2.0**63 else repr(v)
    text = str(v)
    if len(text) <= 90:
        if _INTEGER.fullmatch(text):
            return str(int(text))
        if _DECIMAL.fullmatch(text):
            return _canonical_one(float(text))
        if text.lower() in ("true", "false"):
            return text.lower()
    return text


class Columns:
    """One chunk's columns as the features read them, each parsed once however many features use it.

    The event time is often also a row feature's operand, and an entity's key another
    entity's value: parsing them again would double the stream's cost on those columns.
    """

    def __init__(self, frame: pd.DataFrame, spec: FeatureSpec) -> None:
        self.frame, self.spec = frame, spec
        self._memo: dict[tuple[str, str], np.ndarray] = {}

    def seconds(self, column: str) -> np.ndarray:
        return self._read("seconds", column, lambda: event_seconds(self.frame, self.spec, column))

    def numbers(self, column: str) -> np.ndarray:
        return self._read("numbers", column, lambda: numbers(self.frame, column))

    def text(self, column: str) -> np.ndarray:
        return self._read("text", column, lambda: canonical_text(self.frame[column]))

    def keys(self, columns: tuple[str, ...]) -> np.ndarray:
        """Each row's entity key as canonical text (``None`` when any key column is missing)."""
        parts = [self.text(c) for c in columns]
        if len(parts) == 1:
            return parts[0]
        joined = pd.Series(parts[0], dtype=object)
        for p in parts[1:]:
            joined = joined + SEP + pd.Series(p, dtype=object)
        return joined.to_numpy(dtype=object)

    def _read(self, kind: str, column: str, parse: Any) -> np.ndarray:
        found = self._memo.get((kind, column))
        if found is None:
            found = self._memo[(kind, column)] = parse()
        return found


def event_seconds(frame: pd.DataFrame, spec: FeatureSpec, column: str) -> np.ndarray:
    """Event times in seconds (date-times read by the schema's parser, which refuses hostile text)."""
    values = frame[column]
    if spec.time_unit is not None or pd.api.types.is_numeric_dtype(values.dtype):
        return numbers(frame, column) * (spec.time_unit or 1.0)
    when, _ = normalize_column(values, ColumnSpec(name=column, kind="datetime", nullable=True))
    return np.where(np.isnat(when), np.nan, (when - np.datetime64(0, "ns")) / np.timedelta64(1, "s"))


def numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 by the schema's parser; text that is not a number, or overflows, is missing."""
    out, _ = normalize_column(frame[column], ColumnSpec(name=column, kind="numeric", nullable=True))
    return np.where(np.isfinite(out), out, np.nan)


def row_feature(cols: Columns, r: RowFeature) -> np.ndarray:
    if r.op == "time_difference":
        return cols.seconds(r.columns[0]) - cols.seconds(r.columns[1])
    if r.op == "age":
        return (cols.seconds(r.columns[1]) - cols.seconds(r.columns[0])) / (DAYS_PER_YEAR * 86400.0)
    if r.op == "distance":
        lat1, lon1, lat2, lon2 = (np.radians(cols.numbers(c)) for c in r.columns)
        a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        return 2 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    a, b = cols.numbers(r.columns[0]), cols.numbers(r.columns[1])
    if r.op == "difference":
        return a - b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / b, np.nan)
