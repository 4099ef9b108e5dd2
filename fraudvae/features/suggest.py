"""``fraudvae features suggest``: a first feature spec from the data's shape, each choice explained.

Rules, from the columns' shapes (names only break ties and say what a number is):

* **date-time columns**: text or date-time columns that parse as date-times (at least 95%
  of a sample). The event time is the one that is latest on median (events follow the
  sign-up or birth they refer to); each other one gives a within-row time difference (or
  an age, when it spans decades, like a date of birth).
* **entities**: text columns (or integer columns whose name says id) whose values repeat
  (at least 1% of rows repeat an earlier value) with many distinct values (at least 50 and
  at least the square root of the row count): cards, devices, customers, IPs. A column
  unique on every row has no past and is left out, as is a low-cardinality category.
* **amounts**: numeric columns with at least 20 distinct values that are not ids or times.
* **windows**: from 10 min, 1 h, 24 h, 7 d and 30 d, the (at most three) shortest that are
  at least a 200th of the median gap between an entity's events and at most half the
  data's time span, plus the whole past.
* **new values**: the two category columns with the fewest levels among those with 3 to 1000
  (country, channel, merchant category).
* **label risk**: with a label column whose values read as fraud/legit (1/0, true/false,
  yes/no), an entity also gets its confirmed frauds over those of 1, 7 and 28 days (at most
  half the span) ending 7 days before the event where frauds repeat on it: at least 5% of
  the frauds, and twice the share of legitimate rows, have a confirmed fraud in the window.
  The 7-day delay is a guess the user must confirm (a comment in the spec says so): a delay
  shorter than the real one leaks the future.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.io import atomic_path
from fraudvae.exceptions import DataError
from fraudvae.features.columns import canonical_text, event_seconds, numbers
from fraudvae.features.label_risk import fraud_flags
from fraudvae.features.spec import FeatureSpec, parse_spec
from fraudvae.features.stream import compute_features

__all__ = ["suggest_spec", "write_spec"]

_LADDER = [("10min", 600.0), ("1h", 3600.0), ("24h", 86400.0), ("7d", 7 * 86400.0), ("30d", 30 * 86400.0)]
_ID_NAME = re.compile(r"(^|[_\W])(id|ids|ip|key|no|number|uuid|hash|code)($|[_\W])|id$", re.IGNORECASE)
_AMOUNT_NAME = re.compile(r"amount|value|price|sum|total|amt|spend|balance", re.IGNORECASE)
_SAMPLE = 5000
_RISK_LADDER = [("1d", 86400.0), ("7d", 7 * 86400.0), ("28d", 28 * 86400.0)]
_DELAY_NOTE = (
    "# CONFIRM the delay: how long after an event its fraud label is known in your operation. 7d is a guess;\n"
    "# a delay shorter than the real one lets training see labels production will not have yet."
)


def suggest_spec(frame: pd.DataFrame, *, label_column: str | None = None) -> tuple[str, list[str]]:
    """A TOML spec for ``frame`` and one line per choice saying why (``DataError``: nothing to derive)."""
    reasons: list[str] = []
    columns = [str(c) for c in frame.columns if str(c) != label_column]
    n = len(frame)
    parsed = {c: _times(frame[c]) for c in columns}
    times = {c: t for c, t in parsed.items() if t is not None}
    ids, amounts, categories = [], [], []
    levels: dict[str, int] = {}
    for c in columns:
        if c in times:
            continue
        kind, why = _judge(frame[c], c, n)
        if kind:
            reasons.append(why)
        if kind == "entity":
            ids.append(c)
        elif kind == "amount":
            amounts.append(c)
        elif kind == "category":
            categories.append(c)
            levels[c] = int(frame[c].nunique())
    doc: dict[str, Any] = {"entity": [], "row": []}
    if not times:
        reasons.append("no date-time column: per-entity windows need an event time, so the spec has none.")
    else:
        event = max(times, key=lambda c: float(np.nanmedian(times[c])))
        doc["time"] = {"column": event}
        reasons.append(
            f"time: {event!r} is the event time (the latest of {sorted(times)} on median)."
            if len(times) > 1
            else f"time: {event!r} is the only date-time column, so it is the event time."
        )
        for other in sorted(set(times) - {event}):
            span_years = (np.nanmax(times[other]) - np.nanmin(times[other])) / (365.2425 * 86400)
            if span_years >= 10 and np.nanmedian(times[other]) < np.nanmedian(times[event]):
                doc["row"].append({"name": f"age_at_event_from_{other}", "op": "age", "columns": [other, event]})
                reasons.append(f"row: years from {other!r} to the event ({other!r} spans decades, like a birth date).")
            else:
                name = f"seconds_from_{other}_to_{event}"
                doc["row"].append({"name": name, "op": "time_difference", "columns": [event, other]})
                reasons.append(f"row: {name} (sign-up-to-purchase style delays are a classic fraud signal).")
        span = float(np.nanmax(times[event]) - np.nanmin(times[event])) if n else 0.0
        amount = sorted(amounts, key=lambda c: (not _AMOUNT_NAME.search(c), c))[:2]
        for key in ids:
            windows = _windows(frame[key], times[event], span)
            entity: dict[str, Any] = {"keys": [key], "windows": [*windows, "all"], "count": True}
            entity["time_since_previous"] = True
            if amount:
                entity |= {"sum": amount[:1], "ratio_to_past_mean": amount[:1]}
            others = sorted((c for c in categories if c != key), key=lambda c: levels[c])[:2]
            if others:
                entity["new_value"] = others
            doc["entity"].append(entity)
            reasons.append(
                f"entity {key!r}: counts over {', '.join(windows) or 'no window'} and the whole past, time since "
                f"its previous event{', sum and ratio to its past mean of ' + repr(amount[0]) if amount else ''}"
                f"{', whether ' + ' / '.join(map(repr, others)) + ' is new for it' if others else ''}."
            )
        if ids and label_column is not None and label_column in frame.columns:
            _label_risk(doc, ids, frame, label_column, span, reasons)
    if not doc["entity"] and not doc["row"]:
        raise DataError(
            "features suggest found nothing to derive: no repeated id-like column with an event time and no second "
            "date-time column (" + " ".join(reasons)[:500] + "). Write a spec by hand if the file has entities."
        )
    return _toml(doc), reasons


def write_spec(path: str | Path, text: str) -> None:
    """Write the spec so that ``path`` appears complete or not at all."""
    tmp = atomic_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _times(col: pd.Series) -> np.ndarray | None:
    """Seconds when the column is date-times (or text that parses as such in >= 95% of a sample)."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        pass
    elif col.dtype != object or pd.api.types.infer_dtype(col, skipna=True) != "string":
        return None
    sample = col.dropna().head(_SAMPLE)
    if not len(sample):
        return None
    probe = FeatureSpec(time=str(col.name), time_unit=None)
    parsed = event_seconds(sample.to_frame(), probe, str(col.name))
    if np.mean(~np.isnan(parsed)) < 0.95:
        return None
    return event_seconds(col.to_frame(), probe, str(col.name))


def _judge(col: pd.Series, name: str, n: int) -> tuple[str | None, str]:
    text = canonical_text(col)
    known = text[~pd.isna(text)]
    distinct = len(set(known.tolist()))
    numeric = pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
    repeats = (len(known) - distinct) / max(n, 1)
    integral = numeric and bool(np.all(np.mod(numbers(col.to_frame(), name)[~col.isna().to_numpy()], 1) == 0))
    id_like = (not numeric) or (integral and bool(_ID_NAME.search(name)))
    if id_like and distinct >= max(50, math.sqrt(n)) and repeats >= 0.01:
        return "entity", (
            f"{name!r} looks like an id that repeats ({distinct} distinct values over {n} rows, "
            f"{repeats:.0%} of rows repeat an earlier one): an entity with a history."
        )
    if numeric and not id_like and distinct >= 20:
        return "amount", f"{name!r} is a number with {distinct} distinct values: an amount to aggregate."
    if not numeric and 3 <= distinct <= 1000:
        return "category", f"{name!r} is a category with {distinct} levels: 'new for this entity' is informative."
    return None, ""


def _label_risk(
    doc: dict[str, Any], ids: list[str], frame: pd.DataFrame, label_column: str, span: float, reasons: list[str]
) -> None:
    labels = frame[label_column]
    flags = fraud_flags(canonical_text(labels))
    if labels.isna().all() or np.isnan(flags).any():
        reasons.append(f"no label risk: {label_column!r} does not read as fraud/legit, 1/0, true/false or yes/no.")
        return
    fraud = flags == 1.0
    windows = [w for w, seconds in _RISK_LADDER if seconds <= span / 2] or ["1d"]
    for key in ids:
        entry = {"keys": [key], "label": label_column, "windows": windows, "delay": "7d"}
        used = frame[list(dict.fromkeys([doc["time"]["column"], key, label_column]))]
        features = compute_features(used, parse_spec({"time": doc["time"], "label_risk": [entry]}))
        useful = []
        for w in windows:
            seen = features[f"{key}:frauds_{w}_to_7d_ago"].to_numpy() > 0
            if seen[fraud].mean() >= 0.05 and seen[fraud].mean() >= 2 * seen[~fraud].mean():
                useful.append(w)
        if not useful:
            continue
        doc.setdefault("label_risk", []).append(entry | {"windows": useful})
        reasons.append(
            f"label_risk {key!r}: frauds repeat on it, so its events confirmed as fraud ({label_column!r}) over "
            f"{', '.join(useful)}, ending 7d before each event; confirm the 7d delay (how long labels take to arrive)."
        )


def _windows(keys: pd.Series, t: np.ndarray, span: float) -> list[str]:
    """Windows from the ladder between a 200th of the median gap of an entity's events and half the span."""
    frame = pd.DataFrame({"k": canonical_text(keys), "t": t}).dropna().sort_values(["k", "t"])
    gaps = frame.groupby("k")["t"].diff().dropna()
    gaps = gaps[gaps > 0]
    typical = float(gaps.median()) if len(gaps) else math.inf
    chosen = [w for w, seconds in _LADDER if seconds <= span / 2 and seconds >= typical / 200]
    return chosen[:3] if chosen else [w for w, seconds in _LADDER if seconds <= span / 2][:1]


def _toml(doc: dict[str, Any]) -> str:
    """The document as TOML (strings, booleans and lists of strings only), checked by re-parsing."""
    parse_spec(doc)  # a suggestion is always a valid spec

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))  # JSON's escapes are TOML's

    lines = ["# Proposed by 'fraudvae features suggest'; edit freely (see 'fraudvae train --help').", ""]
    if "time" in doc:
        lines += ["[time]", f"column = {value(doc['time']['column'])}", ""]
    for section, items in (("entity", doc["entity"]), ("label_risk", doc.get("label_risk", [])), ("row", doc["row"])):
        for item in items:
            lines.append(f"[[{section}]]")
            lines += [(_DELAY_NOTE + "\n" if k == "delay" else "") + f"{k} = {value(v)}" for k, v in item.items()]
            lines.append("")
    return "\n".join(lines)
