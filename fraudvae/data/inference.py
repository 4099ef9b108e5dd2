"""Schema inference: what each training column is (kind) and whether it carries learnable signal (role).

Rules follow from a column's shape (rows, distinct values, types), never from a dataset's
name: identifiers and free text are excluded, high-cardinality labels frequency-encoded,
label-like columns refused. The result is a :class:`~fraudvae.data.schema.Schema`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.schema import (
    DAYS_PER_YEAR,
    EXCLUDED,
    FREQUENCY,
    OVERRIDES,
    YEARS,
    ColumnSpec,
    Kind,
    Schema,
    normalize_column,
)
from fraudvae.data.textparse import parse_numbers, printable
from fraudvae.exceptions import ConfigurationError, DataError, DataWarning

__all__ = ["check_training_frame", "infer_schema"]

_describe = printable

#: A text column whose values are distinct in at least this share of rows is an
#: identifier or free text: no level recurs often enough to learn what is normal for it.
NEAR_UNIQUE = 0.5
#: Unique integers spanning less than this many times their count are a counter or id.
ID_SPAN = 20
#: Rows needed before a column is judged by its shape (fewer: every column is kept).
MIN_ROWS_FOR_ROLES = 50
#: A date-time column spanning at least this many years is an age-like date (a date of birth).
LONG_SPAN_YEARS = 10.0

#: Column names that usually hold the label rather than a feature (compared after
#: lower-casing and removing everything but letters and digits).
_LABEL_LIKE = {
    "label",
    "labels",
    "class",
    "target",
    "y",
    "isfraud",
    "fraud",
    "fraudfound",
    "fraudflag",
    "isanomaly",
    "anomaly",
    "outlier",
    "isoutlier",
    "attack",
    "ground_truth",
    "groundtruth",
}


def _norm_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", name.lower()).replace("_", "")


def infer_schema(
    frame: pd.DataFrame, column_types: Mapping[str, str] | None = None, *, max_categories: int | None = None
) -> Schema:
    """Infer each column's kind from a training frame, and whether to model it as given.

    Bool and two-valued numeric columns are binary; other numbers are numeric;
    ``datetime64`` columns are datetimes; strings and pandas categoricals are
    categorical (unless every value parses as a number).

    Raw exports carry columns with nothing to learn, which drown the score in noise. By
    their shape (with at least 50 rows): a text column whose values are distinct in half
    the rows or more (ids, names per row, streets, free text), a column of consecutive
    unique integers (a row counter) and a column with no values are excluded; a text
    column with more than ``max_categories`` levels is frequency-encoded (modelled by how
    often its value occurred in training, so a rare merchant still stands out).
    ``column_types`` overrides the guess for the columns it names: a kind, or
    ``"frequency"`` or ``"exclude"``.

    Raises
    ------
    ConfigurationError
        If ``column_types`` names an unknown column or kind.
    DataError
        If a column holds infinite values.
    """
    overrides = dict(column_types or {})
    unknown = [c for c in overrides if c not in frame.columns]
    if unknown:
        raise ConfigurationError(
            f"column_types names column(s) {unknown} that are not in the frame; "
            f"expected some of {list(frame.columns)[:30]}."
        )
    bad_kinds = {c: k for c, k in overrides.items() if k not in OVERRIDES}
    if bad_kinds:
        raise ConfigurationError(f"column_types has unknown kind(s) {bad_kinds}; expected one of {list(OVERRIDES)}.")
    specs = []
    for name in frame.columns:
        col = frame[name]
        override = overrides.get(name)
        if override == "years":
            specs.append(ColumnSpec(str(name), "datetime", bool(col.isna().any()), (), str(col.dtype), YEARS))
            continue
        if override in ("frequency", "exclude"):
            encoding = FREQUENCY if override == "frequency" else EXCLUDED
            kind: Any = "categorical" if override == "frequency" else _guess_kind(col)
            reason = f"column_types says {override!r}"
            specs.append(ColumnSpec(str(name), kind, bool(col.isna().any()), (), str(col.dtype), encoding, reason))
            continue
        kind = override or _guess_kind(col)
        if override is None:
            encoding, reason = _role(col, kind, max_categories)
            if encoding:
                specs.append(ColumnSpec(str(name), kind, bool(col.isna().any()), (), str(col.dtype), encoding, reason))
                continue
        nullable = bool(col.isna().any())
        levels: tuple[Any, ...] = ()
        if kind in ("numeric", "binary"):
            num = _to_float(col, name)
            inf = np.isinf(num)
            if inf.any():
                raise DataError(
                    f"Column {name!r} holds {int(inf.sum())} infinite value(s) (first at row "
                    f"{int(np.flatnonzero(inf)[0])}); expected finite numbers. Replace them with NaN "
                    "(treated as missing) or a finite value."
                )
            if kind == "binary":
                uniq = np.unique(num[~np.isnan(num)])
                if len(uniq) != 2 or nullable:
                    raise ConfigurationError(
                        f"Column {name!r} cannot be binary: it has {len(uniq)} distinct value(s)"
                        + (" and missing values" if nullable else "")
                        + "; expected exactly two values and none missing. Use 'categorical' instead."
                    )
                levels = (_json_scalar(uniq[0]), _json_scalar(uniq[1]))
                if pd.api.types.is_bool_dtype(col.dtype):
                    levels = (False, True)
        specs.append(ColumnSpec(str(name), kind, nullable, levels, str(col.dtype)))  # type: ignore[arg-type]
    return Schema(tuple(_date_spans(frame, specs, overrides)))


def _date_spans(frame: pd.DataFrame, specs: list[ColumnSpec], overrides: Mapping[str, str]) -> list[ColumnSpec]:
    """Date-times spanning decades (dates of birth, account openings) become years.

    Their hour and weekday say nothing; what matters is how long before the event they
    lie. Such a column is modelled by the years from it to the row's event time (the
    first datetime column with a shorter span), or by its calendar year if there is none.
    ``column_types={col: "years"}`` asks for this, ``"datetime"`` keeps the calendar parts.
    """
    spans = {
        s.name: _span_years(frame[s.name], s)
        for s in specs
        if s.kind == "datetime" and s.encoding in ("", YEARS) and (len(frame) >= MIN_ROWS_FOR_ROLES or s.encoding)
    }
    long = {n for n, y in spans.items() if (y >= LONG_SPAN_YEARS and n not in overrides) or overrides.get(n) == "years"}
    clocks = [n for n in spans if n not in long]
    out = []
    for s in specs:
        if s.name not in long:
            out.append(s)
            continue
        ref = clocks[0] if clocks else ""
        span = (
            f"dates spanning {spans[s.name]:.0f} years"
            if overrides.get(s.name) != "years"
            else "column_types says 'years'"
        )
        target = f"the years from it to {ref!r} (age at the event)" if ref else "its calendar year"
        nullable = s.nullable or (bool(frame[ref].isna().any()) if ref else False)
        reason = f"{span}, like a date of birth: modelled by {target}; its hour and weekday say nothing"
        out.append(ColumnSpec(s.name, "datetime", nullable, (), s.dtype, YEARS, reason, ref))
    return out


def _span_years(col: pd.Series, spec: ColumnSpec) -> float:
    """Years between a datetime column's first and last value (parsed as scoring parses it)."""
    values = normalize_column(col, spec)[0]
    values = values[~np.isnat(values)]
    if not values.size:
        return 0.0
    return float((values.max() - values.min()) / np.timedelta64(1, "D")) / DAYS_PER_YEAR


def _role(col: pd.Series, kind: str, max_categories: int | None) -> tuple[str, str]:
    """``(encoding, reason)`` for a column without learnable identity, ``("", "")`` otherwise."""
    n = len(col)
    if n < MIN_ROWS_FOR_ROLES:
        return "", ""
    nonnull = col.dropna()
    if nonnull.empty:
        return EXCLUDED, "it has no values in the training rows"
    if kind == "categorical":
        distinct = int(nonnull.astype(str).nunique())
        if distinct >= NEAR_UNIQUE * len(nonnull):
            return EXCLUDED, (
                f"a different value in {distinct / len(nonnull):.0%} of rows, like an identifier or free text: "
                "no value recurs enough to learn what is normal"
            )
        if max_categories is not None and distinct > max_categories:
            return FREQUENCY, (
                f"{distinct} distinct values, more than max_categories={max_categories}: modelled by how often "
                "each value occurred in training (unseen values count 0)"
            )
    if kind == "numeric" and pd.api.types.is_integer_dtype(col.dtype) and nonnull.is_unique:
        # A row counter or sequential id: every value distinct and densely packed (a
        # random sample of the rows of 1..N spans a few times its size).
        values = nonnull.to_numpy()
        if int(values.max()) - int(values.min()) < ID_SPAN * len(values):
            return EXCLUDED, "unique integers packed densely, like a row counter or sequential id"
    return "", ""


def _to_float(col: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    num, bad = parse_numbers(col.to_numpy(dtype=object))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"Column {name!r} was declared numeric but row {i} holds {_describe(col.iloc[i])}; "
            "expected numbers. Declare it 'categorical' or clean the value."
        )
    return num


def _json_scalar(v: Any) -> Any:
    f = float(v)
    return int(f) if f.is_integer() else f


def _guess_kind(col: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(col.dtype):
        return "binary" if not col.isna().any() else "categorical"
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(col.dtype):
        values = col.dropna().unique()
        return "binary" if len(values) == 2 and not col.isna().any() else "numeric"
    nonnull = col.dropna()
    if len(nonnull) and not parse_numbers(nonnull.to_numpy(dtype=object))[1].any():
        return "numeric"
    if len(nonnull) and _looks_like_datetimes(nonnull):
        return "datetime"
    return "categorical"


def _looks_like_datetimes(values: pd.Series) -> bool:
    """ISO 8601 date-time strings (what CSV files hold after a round trip) are datetimes."""
    sample = values.astype(str).iloc[:200]
    if (sample.str.len() > 64).any() or not sample.str.match(
        r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
    ).all():
        return False
    return bool(pd.to_datetime(sample, errors="coerce", format="ISO8601").notna().all())


def check_training_frame(frame: pd.DataFrame, schema: Schema) -> None:
    """Warn about columns that are probably mistakes; fail when nothing is learnable."""
    label_like = [c for c in frame.columns if _norm_name(str(c)) in _LABEL_LIKE]
    if label_like:
        warnings.warn(
            f"Column(s) {label_like} look like a label, not a feature. The detector learns from "
            f"every column it is given; if they are labels, pass --label-column (fraudvae train) or drop them "
            f"(X.drop(columns={label_like}) in Python).",
            DataWarning,
            stacklevel=3,
        )
    for spec in schema.columns:
        if spec.encoding and not spec.reason.startswith("column_types"):
            what = {EXCLUDED: "left out of the model", FREQUENCY: "frequency-encoded", YEARS: "modelled in years"}[
                spec.encoding
            ]
            keep = "categorical" if spec.kind == "categorical" else spec.kind
            warnings.warn(
                f"Column {spec.name!r} is {what}: {spec.reason}. To model it as a {keep} anyway, pass "
                f"--column-types {spec.name}={keep} (column_types={{{spec.name!r}: {keep!r}}} in Python)"
                + ("; keep it only to join results back (--keep-columns)." if spec.encoding == EXCLUDED else "."),
                DataWarning,
                stacklevel=3,
            )
    modelled = set(schema.names)
    if not modelled:
        raise DataError(
            f"Every column was left out of the model ({schema.roles()}); expected at least one column with "
            "values that recur. Name the columns to model with column_types (--column-types)."
        )
    constant = [c for c in frame.columns if c in modelled and frame[c].nunique(dropna=False) <= 1]
    if len(constant) == len(modelled):
        raise DataError(
            f"Every column is constant ({constant[:20]}); expected at least one column whose values "
            "vary across the training rows. A detector cannot learn 'normal' from identical rows."
        )
    if constant:
        warnings.warn(
            f"Column(s) {constant} are constant in the training data: any other value will be "
            "scored as anomalous. Drop them if that is not intended.",
            DataWarning,
            stacklevel=3,
        )
