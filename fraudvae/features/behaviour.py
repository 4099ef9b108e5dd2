"""A model's behavioural features: its spec, and the events it reads, for every entry point.

A model trained with ``--features SPEC`` stores the parsed spec in its directory (the
``feature_spec`` document, under the hash manifest). Training, evaluation, the batch job
and Spark all compute the derived columns with :mod:`fraudvae.features.stream` and hand the
detector the raw columns plus the derived ones; the detector itself knows nothing of
entities or time. This module holds what they share: reading the stored spec, which
input columns a model needs, joining the derived columns on, and saying in words what
a derived column is (for explanations and the report).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from fraudvae.exceptions import IncompatibleArtifactError
from fraudvae.features.spec import FeatureSpec, parse_spec

__all__ = ["FEATURE_SPEC", "describe_feature", "input_columns", "model_frame", "model_spec", "with_features"]

#: The model directory's document holding the spec.
FEATURE_SPEC = "feature_spec"

_PATTERNS = [
    (re.compile(r"count_(?P<w>.+)"), "count of events {w}"),
    (re.compile(r"(?P<stat>sum|mean|max|std)_(?P<c>.+)_(?P<w>all|[\d.]+(?:s|min|h|d))"), "{stat} of {c} {w}"),
    (re.compile(r"distinct_(?P<c>.+)_(?P<w>all|[\d.]+(?:s|min|h|d))"), "distinct {c} values {w}"),
    (re.compile(r"seconds_since_previous"), "seconds since its previous event"),
    (re.compile(r"(?P<c>.+)_over_past_mean"), "{c} over its past mean"),
    (re.compile(r"new_(?P<c>.+)"), "{c} never seen before (1 = new)"),
    (re.compile(r"frauds_(?P<w>[\d.]+(?:s|min|h|d))_to_(?P<d>[\d.]+(?:s|min|h|d))_ago"), "{events} confirmed fraud"),
    (
        re.compile(r"fraud_share_(?P<w>[\d.]+(?:s|min|h|d))_to_(?P<d>[\d.]+(?:s|min|h|d))_ago"),
        "{share} confirmed fraud",
    ),
]
_STAT_WORDS = {"sum": "sum", "mean": "mean", "max": "largest", "std": "spread (std)"}


def model_spec(documents: dict[str, Any]) -> FeatureSpec | None:
    """The spec a model was trained with (``None``: the model reads its columns as they are)."""
    doc = documents.get(FEATURE_SPEC)
    if doc is None:
        return None
    try:
        return parse_spec(doc)
    except ValueError as exc:
        raise IncompatibleArtifactError(f"the model's stored feature spec cannot be read: {exc}") from exc


def input_columns(model_columns: list[str], spec: FeatureSpec | None) -> list[str]:
    """Columns an input file must have: the model's raw columns and those the spec reads."""
    if spec is None:
        return list(model_columns)
    derived = set(spec.feature_names())
    return list(dict.fromkeys([*(c for c in model_columns if c not in derived), *sorted(spec.columns_used())]))


def with_features(frame: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the derived columns (replacing same-named input columns: the spec's values win)."""
    overlap = [c for c in features.columns if c in frame.columns]
    kept = frame.drop(columns=overlap) if overlap else frame
    same = features.index.equals(kept.index)  # (set_axis copies: ~0.1 ms of a one-event request)
    return pd.concat([kept, features if same else features.set_axis(kept.index)], axis=1)


def model_frame(X: pd.DataFrame, features: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """What the detector sees: ``X`` without the entity key columns and label-risk labels, plus the derived columns.

    An id says who, not how: an entity is modelled through its behaviour only (its key
    would be an identifier, or a frequency that says how busy it was in training). A label
    column would hand the model each event's own label.
    """
    keys = [k for e in spec.entities for k in e.keys if k in X.columns]
    keys += [k for r in spec.label_risk for k in r.keys if k in X.columns]
    keys += [c for c in spec.label_columns() if c in X.columns]
    return with_features(X.drop(columns=list(dict.fromkeys(keys))), features)


def describe_feature(name: str, row: Mapping[str, Any] | None = None) -> str:
    """A derived column in words: ``card:count_1h`` -> ``card: count of events in the last 1h``;
    ``terminal:frauds_28d_to_7d_ago`` -> ``terminal: how many of its events in the 28d up to 7d ago were confirmed fraud``."""
    entity, sep, rest = name.partition(":")
    if not sep:
        return name
    for pattern, words in _PATTERNS:
        found = pattern.fullmatch(rest)
        if found:
            parts = found.groupdict()
            if "w" in parts:
                parts["w"] = "in its whole past" if parts["w"] == "all" else f"in the last {parts['w']}"
            if "stat" in parts:
                parts["stat"] = _STAT_WORDS[parts["stat"]]
            if "d" in parts:  # label risk: with the row's values, how many events the window held
                held = _risk_events(entity, rest, row)
                span = f"its{held} events in the {parts['w'][len('in the last ') :]} up to {parts['d']} ago"
                parts |= {"events": f"how many of {span} were", "share": f"the share of {span} that were"}
            return f"{entity}: {words.format(**parts)}"
    return name


def _risk_events(entity: str, rest: str, row: Mapping[str, Any] | None) -> str:
    """ " 18" when the row's label-risk count and share of one window say it held 18 events (else "")."""
    if row is None:
        return ""
    suffix = rest.split("_", 1)[1] if rest.startswith("frauds_") else rest[len("fraud_share_") :]
    frauds, share = row.get(f"{entity}:frauds_{suffix}"), row.get(f"{entity}:fraud_share_{suffix}")
    try:
        frauds, share = float(frauds), float(share)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if share != share:  # missing: the window held no event
        return " 0"
    return f" {round(frauds / share)}" if share > 0 else ""
