"""A reference sample of the training rows, kept with the model for drift checks after deployment.

Plain JSON: per compared column, the observed numbers (a random sample of at most
``REFERENCE_ROWS`` rows) or the level counts, and the missing rate. Which columns are
compared follows from the schema (:func:`reference_kinds`); the comparison itself is
:mod:`fraudvae.monitor.drift`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.schema import Schema

__all__ = ["REFERENCE_ROWS", "canonical_level", "reference_kinds", "reference_sample"]

#: Training rows kept (at random) for drift checks.
REFERENCE_ROWS = 2000


def canonical_level(value: Any) -> str:
    """A category's text, the same whichever way it arrived: ``1``, ``1.0`` and ``"1"`` are ``"1"``."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def reference_kinds(schema: Schema) -> dict[str, str]:
    """The columns drift compares, by kind: numbers, and categories (binary ones included).

    Identifiers, free text and frequency-encoded columns are left out (a new window always
    holds values training never saw), and so are date-times (time always moves on).
    """
    out = {}
    for column in schema.modelled:
        if column.encoding:
            continue
        if column.kind == "numeric":
            out[column.name] = "numeric"
        elif column.kind in ("categorical", "binary"):
            out[column.name] = "categorical"
    return out


def reference_sample(
    frame: pd.DataFrame, kinds: dict[str, str], *, rows: int = REFERENCE_ROWS, seed: int = 0
) -> dict[str, Any]:
    """The JSON document: ``rows``, ``kinds``, ``numeric`` values, ``levels`` counts, ``missing`` rates."""
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(frame), min(len(frame), rows), replace=False))
    sample = frame.iloc[take]
    numeric: dict[str, list[float]] = {}
    levels: dict[str, dict[str, int]] = {}
    missing: dict[str, float] = {}
    for name, kind in kinds.items():
        col = sample[name]
        missing[name] = float(col.isna().mean()) if len(col) else 0.0
        if kind == "numeric":
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
            numeric[name] = [float(v) for v in values[np.isfinite(values)]]
        else:
            counts = col.dropna().map(canonical_level).value_counts()
            levels[name] = {str(k): int(v) for k, v in counts.items()}
    return {"rows": len(sample), "kinds": dict(kinds), "numeric": numeric, "levels": levels, "missing": missing}
