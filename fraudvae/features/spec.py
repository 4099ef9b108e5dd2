"""The behavioural feature spec: what to compute, declared once (TOML, read with the standard library).

A spec names the event-time column, the entities (one key column or several) and what to
compute for each entity over sliding time windows and over its whole past, plus features
within a row::

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

    [[label_risk]]                # risk from confirmed fraud (fraudvae.features.label_risk)
    keys = ["terminal_id"]
    label = "is_fraud"            # fraud/legit, 1/0, true/false, yes/no; missing = not confirmed
    windows = ["1d", "7d", "28d"]
    delay = "7d"                  # required: a label counts from its event's time + delay

    [[row]]
    name = "seconds_since_signup"
    op = "time_difference"        # also: distance (km), age (years), ratio, difference
    columns = ["purchase_time", "signup_time"]

The model directory stores the parsed spec (:meth:`FeatureSpec.to_doc`, JSON under the
hash manifest); :func:`parse_spec` reads it back. What the features mean, point in time,
is documented in :mod:`fraudvae.features.stream`.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudvae.exceptions import ConfigurationError

__all__ = ["EntitySpec", "FeatureSpec", "LabelRiskSpec", "RowFeature", "load_spec", "parse_spec", "window_seconds"]

_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|min|h|d)$")
_STATS = ("sum", "mean", "max", "std")
_ROW_OPS = {"time_difference": 2, "distance": 4, "age": 2, "ratio": 2, "difference": 2}


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

    def feature_names(self) -> list[str]:
        """This entity's feature names, in the order they are computed."""
        e, names = self, []
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
        return names


@dataclass(frozen=True)
class LabelRiskSpec:
    keys: tuple[str, ...]
    name: str
    label: str
    windows: tuple[str, ...]
    delay: str

    def feature_names(self) -> list[str]:
        """Per window: confirmed frauds among the key's events in the window ending ``delay`` ago, and their share."""
        names = []
        for w in self.windows:
            names += [f"{self.name}:frauds_{w}_to_{self.delay}_ago", f"{self.name}:fraud_share_{w}_to_{self.delay}_ago"]
        return names


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
    label_risk: tuple[LabelRiskSpec, ...] = ()

    def feature_names(self) -> list[str]:
        """Names of the derived columns, in the order :func:`compute_features` adds them."""
        names = [n for e in self.entities for n in e.feature_names()]
        names += [n for r in self.label_risk for n in r.feature_names()]
        return names + [r.name for r in self.rows]

    def label_columns(self) -> set[str]:
        """Label columns the label-risk features read when a file has them (a file without one: nothing confirmed)."""
        return {r.label for r in self.label_risk}

    def to_doc(self) -> dict[str, Any]:
        """The spec as a TOML-shaped document (stored in the model directory; :func:`parse_spec` reads it)."""
        unit = next((k for k, v in _UNITS.items() if v == self.time_unit), None)
        time = {"column": self.time} | ({"unit": unit} if unit else {})
        entities = []
        for e in self.entities:
            doc: dict[str, Any] = {"keys": list(e.keys), "name": e.name, "windows": list(e.windows)}
            doc |= {"count": e.count, "time_since_previous": e.time_since_previous}
            doc |= {s: list(c) for s, c in e.stats.items()}
            for option in ("distinct", "ratio_to_past_mean", "new_value"):
                if getattr(e, option):
                    doc[option] = list(getattr(e, option))
            entities.append(doc)
        rows = [{"name": r.name, "op": r.op, "columns": list(r.columns)} for r in self.rows]
        risk = [
            {"keys": list(r.keys), "name": r.name, "label": r.label, "windows": list(r.windows), "delay": r.delay}
            for r in self.label_risk
        ]
        return (
            ({"time": time} if self.time else {})
            | {"entity": entities, "row": rows}
            | ({"label_risk": risk} if risk else {})
        )

    def columns_used(self) -> set[str]:
        used = {self.time} if self.time else set()
        for e in self.entities:
            used |= set(e.keys) | set(e.distinct) | set(e.ratio_to_past_mean) | set(e.new_value)
            for columns in e.stats.values():
                used |= set(columns)
        for r in self.rows:
            used |= set(r.columns)
        for lr in self.label_risk:
            used |= set(lr.keys)
        return used


def window_seconds(text: str, where: str = "window") -> float:
    """A window's length in seconds (``inf`` for "all"); a mistake names ``where``."""
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
    unknown = set(doc) - {"time", "entity", "row", "label_risk"}
    if unknown:
        raise ConfigurationError(
            f"feature spec: unknown section(s) {sorted(unknown)}; expected time, entity, label_risk, row."
        )
    time_doc = doc.get("time", {})
    if not isinstance(time_doc, dict) or not isinstance(doc.get("entity", []), list):
        raise ConfigurationError("feature spec: expected a [time] table and [[entity]] / [[row]] arrays of tables.")
    time = time_doc.get("column")
    if time is not None and not (isinstance(time, str) and time):
        raise ConfigurationError(f'[time] column {time!r}: expected a column name, like column = "timestamp".')
    unit_text = time_doc.get("unit")
    if unit_text is not None and unit_text not in _UNITS:
        raise ConfigurationError(f"[time] unit {unit_text!r}: expected one of {sorted(_UNITS)}.")
    entities = []
    for i, e in enumerate(doc.get("entity", [])):
        where = f"[[entity]] #{i + 1}"
        if not isinstance(e, dict):
            raise ConfigurationError(f"{where}: expected a table of options, got {e!r}.")
        allowed = {"keys", "name", "windows", "count", *_STATS, "distinct", "time_since_previous"}
        extra = set(e) - allowed - {"ratio_to_past_mean", "new_value"}
        if extra:
            raise ConfigurationError(f"{where}: unknown option(s) {sorted(extra)}; expected {sorted(allowed)}.")
        if "keys" not in e:
            raise ConfigurationError(f'{where}: no keys; expected keys = ["card_id"] (one column or several).')
        keys = _names(e["keys"], f"{where} keys")
        windows = _names(e.get("windows", ["all"]), f"{where} windows")
        for w in windows:
            window_seconds(str(w), where)
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
        if not isinstance(r, dict):
            raise ConfigurationError(f"{where}: expected a table of options, got {r!r}.")
        op = r.get("op")
        if op not in _ROW_OPS:
            raise ConfigurationError(f"{where}: op {op!r}; expected one of {sorted(_ROW_OPS)}.")
        columns = _names(r.get("columns", []), f"{where} columns")
        if len(columns) != _ROW_OPS[op]:
            raise ConfigurationError(f"{where}: op {op!r} takes {_ROW_OPS[op]} columns, got {len(columns)}.")
        rows.append(RowFeature(str(r.get("name", f"{op}({','.join(columns)})")), op, columns))
    risk = tuple(_label_risk(r, i, time) for i, r in enumerate(doc.get("label_risk", [])))
    spec = FeatureSpec(time, _UNITS[unit_text] if unit_text else None, tuple(entities), tuple(rows), risk)
    for i, entity in enumerate(spec.entities):
        if not entity.feature_names():
            raise ConfigurationError(
                f"[[entity]] #{i + 1} ({entity.name}) computes nothing; add count = true, sum = [...], "
                "time_since_previous = true or another feature."
            )
    names = spec.feature_names()
    if not names:
        raise ConfigurationError("feature spec: it declares no feature; add an [[entity]] or a [[row]].")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"feature spec: feature name(s) {duplicates} defined twice; give each a name.")
    return spec


def _label_risk(r: Any, i: int, time: str | None) -> LabelRiskSpec:
    where = f"[[label_risk]] #{i + 1}"
    if not isinstance(r, dict):
        raise ConfigurationError(f"{where}: expected a table of options, got {r!r}.")
    allowed = {"keys", "name", "label", "windows", "delay"}
    if set(r) - allowed:
        raise ConfigurationError(f"{where}: unknown option(s) {sorted(set(r) - allowed)}; expected {sorted(allowed)}.")
    if time is None:
        raise ConfigurationError(f'{where}: label risk needs [time] column = "...", the event time.')
    for option, example in (("keys", '["terminal_id"]'), ("label", '"is_fraud"'), ("windows", '["1d", "7d", "28d"]')):
        if option not in r:
            raise ConfigurationError(f"{where}: no {option}; expected {option} = {example}.")
    if "delay" not in r:
        raise ConfigurationError(
            f'{where}: no delay; expected delay = "7d": how long after an event its label is known. It has no '
            "default: a delay shorter than the real one leaks the future into training and overstates the model."
        )
    label = r["label"]
    if not (isinstance(label, str) and label):
        raise ConfigurationError(f'{where}: label {label!r}; expected a column name, like label = "is_fraud".')
    windows = _names(r["windows"], f"{where} windows")
    for w in [*windows, r["delay"]]:
        if math.isinf(window_seconds(str(w), where)):
            raise ConfigurationError(f'{where}: {w!r} must be a finite duration (like "28d"), not "all".')
    keys = _names(r["keys"], f"{where} keys")
    return LabelRiskSpec(keys, str(r.get("name", "+".join(keys))), label, windows, str(r["delay"]))


def load_spec(path: str | Path) -> FeatureSpec:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the feature spec {str(path)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"the feature spec {str(path)!r} is not valid TOML: {exc}") from exc
    return parse_spec(doc)
