"""Numbers and text from untrusted input, parsed by routines that cannot crash the process.

pandas 2.3's own float parser (``pd.to_numeric``, and ``pd.read_csv`` with its default
``float_precision``) dies with a segmentation fault on strings such as
``"1e77904855641443592"``, a decimal exponent too large for it; real exports hold such
strings (hexadecimal transaction ids like ``44e77904855641443592ded5...``). So no text
from outside reaches it: every entry point (schema validation, column-type guessing, the
service's CSV body, the batch job, Spark) parses numbers here.

A number is text matching :data:`NUMBER_PATTERN` (surrounding white space allowed), checked
with arrow's RE2 engine (linear time, whatever the length) and then converted by arrow's
float parser, which rounds correctly and saturates to +/-inf on overflow; ``true``/``false``
in any case are 1/0 (CSV booleans). Anything else, ``"nan"`` and ``"inf"`` included, is not
a number. Text must be valid Unicode: a string with a lone surrogate (from JSON's
``"\\ud800"`` or from undecodable bytes) cannot be encoded back, so it is refused where it
arrives instead of failing later while a response is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "NUMBER_PATTERN",
    "decode_column",
    "encodes_utf8",
    "invalid_text_mask",
    "parse_numbers",
    "printable",
]

#: Decimal notation: optional sign, digits with an optional fraction, optional exponent.
NUMBER_PATTERN = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


def printable(value: Any, limit: int = 60) -> str:
    """A short, ASCII-safe rendering of any value for an error message.

    ``repr`` escapes NUL bytes, control characters and lone surrogates, so the result can
    always be written as JSON or CSV; long values are cut to ``limit`` characters.
    """
    if isinstance(value, np.generic):
        value = value.item()
    try:
        text = repr(value)
    except Exception:  # a hostile object's __repr__; never let it escape
        text = f"<{type(value).__name__}>"
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_numbers(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column of mixed values as float64.

    Returns ``(numbers, unparsable)``: missing values (None, NaN, NaT) are NaN and not
    unparsable; numbers and booleans convert; text converts when it is a decimal number or
    ``true``/``false``; everything else is NaN with ``unparsable`` set. Overflowing
    numbers are +/-inf (the caller decides whether that is acceptable).
    """
    obj = np.asarray(values, dtype=object)
    if obj.ndim != 1:
        obj = obj.ravel()
    n = len(obj)
    if n and pd.api.types.infer_dtype(obj, skipna=True) in ("string", "empty"):
        try:
            arr = pa.array(obj, type=pa.string(), from_pandas=True)
        except (pa.ArrowException, UnicodeEncodeError):
            pass  # a lone surrogate: the per-value path below refuses that value only
        else:
            return _parse_text(arr)
    out = np.full(n, np.nan)
    bad = np.zeros(n, dtype=bool)
    for i, v in enumerate(obj):
        out[i], bad[i] = _parse_one(v)
    return out, bad


def _parse_text(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    text = pc.utf8_trim_whitespace(arr)
    number = pc.fill_null(pc.match_substring_regex(text, NUMBER_PATTERN), False)
    lowered = pc.utf8_lower(text)
    is_true = pc.fill_null(pc.equal(lowered, "true"), False)
    is_false = pc.fill_null(pc.equal(lowered, "false"), False)
    numbers = pc.cast(pc.if_else(number, text, pa.scalar(None, pa.string())), pa.float64())
    out = numbers.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    t, f = is_true.to_numpy(zero_copy_only=False), is_false.to_numpy(zero_copy_only=False)
    out[t], out[f] = 1.0, 0.0
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    bad = ~(number.to_numpy(zero_copy_only=False) | t | f | missing)
    out[bad] = np.nan
    return out, bad


def _parse_one(v: Any) -> tuple[float, bool]:
    if v is None or v is pd.NaT or v is pd.NA:
        return math.nan, False
    if isinstance(v, bool | np.bool_):
        return float(v), False
    if isinstance(v, int | np.integer):
        try:
            return float(v), False
        except OverflowError:  # a Python int beyond float's range
            return (math.inf if v > 0 else -math.inf), False
    if isinstance(v, float | np.floating):
        return float(v), False  # NaN stays missing
    if isinstance(v, str):
        try:
            arr = pa.array([v], type=pa.string())
        except (pa.ArrowException, UnicodeEncodeError):
            return math.nan, True
        num, bad = _parse_text(arr)
        return float(num[0]), bool(bad[0])
    return math.nan, True


def invalid_text_mask(values: Iterable[Any]) -> np.ndarray:
    """True where a string cannot be encoded as UTF-8 (it holds a lone surrogate)."""
    obj = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object)
    try:
        # One C pass over the whole column in the common case: everything encodes.
        pa.array(obj, type=pa.string(), from_pandas=True)
        return np.zeros(len(obj), dtype=bool)
    except (pa.ArrowException, UnicodeEncodeError, TypeError):
        pass
    return np.fromiter((isinstance(v, str) and not encodes_utf8(v) for v in obj), dtype=bool, count=len(obj))


def encodes_utf8(text: str) -> bool:
    """False for a string with a lone surrogate (it cannot be written as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_column(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array | pd.Series:
    """Bytes read from a file as text.

    Valid UTF-8 (the common case, checked by arrow in one pass) becomes an arrow string
    column. A column with undecodable bytes becomes Python strings in which those bytes
    are lone surrogates (``surrogateescape``): nothing is lost, the file's other rows are
    still read, and schema validation rejects exactly the rows that hold them.
    """
    if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        return col
    try:
        return col.cast(pa.string())
    except pa.ArrowInvalid:
        raw = col.to_pylist()
        return pd.Series(
            [None if v is None else v.decode("utf-8", "surrogateescape") for v in raw],
            dtype=object,
        )
