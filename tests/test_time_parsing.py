"""The numpy shortcuts for date-times give exactly what the pandas paths they replace give.

``_plain_iso_times`` reads plain ISO text without ``pd.to_datetime`` and ``_clock_parts``
splits date-times without pandas accessors (each cost a fixed ~0.1-0.4 ms per call, most
of what validating one row cost). A value the shortcut cannot read takes the general path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudvae.data.preprocessing import _clock_parts
from fraudvae.data.schema import ColumnSpec, _plain_iso_times, normalize_column

SPEC = ColumnSpec(name="t", kind="datetime", nullable=True)


def _pandas_times(values: list[object]) -> np.ndarray:
    parsed = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


@pytest.mark.parametrize(
    "values",
    [
        ["2024-01-01T10:00:00", "2024-01-01 23:59:59.999999999", "1999-12-31", "2099-02-28T00:00"],
        ["2024-02-29T12:30:00.5", None, "1900-01-01T00:00:00"],
        [None, None],
    ],
)
def test_plain_iso_text_is_read_by_numpy_as_pandas_reads_it(values: list[object]) -> None:
    raw = np.array(values, dtype=object)
    got = _plain_iso_times(raw, pd.isna(raw))
    assert got is not None
    np.testing.assert_array_equal(got, _pandas_times(values))


@pytest.mark.parametrize(
    "value",
    [
        "2024-02-30T10:00:00",  # no such day
        "2024-01-01T10:00:00+02:00",  # an offset: converted to UTC by pandas
        "2024-01-01T10:00:00Z",
        "01/02/2024 10:00",
        "3000-01-01",  # beyond the nanosecond range
        "2024-01-01T25:00",
        1700000000,
    ],
)
def test_other_values_take_the_general_path(value: object) -> None:
    raw = np.array(["2024-01-01T10:00:00", value], dtype=object)
    assert _plain_iso_times(raw, pd.isna(raw)) is None
    got, problems = normalize_column(pd.Series(raw, dtype=object), SPEC)
    expected = _pandas_times(list(raw))
    np.testing.assert_array_equal(got, expected)
    assert [row for row, _ in problems] == ([1] if pd.isna(expected[1]) else [])


def test_clock_parts_equal_the_pandas_accessors() -> None:
    rng = np.random.default_rng(0)
    seconds = rng.integers(-3_000_000_000, 7_000_000_000, 50_000)  # 1874 to 2191
    when = (seconds * 10**9 + rng.integers(0, 10**9, seconds.size)).astype("datetime64[ns]")
    when[::37] = np.datetime64("NaT")
    hour, weekday = _clock_parts(when)
    ts = pd.DatetimeIndex(when)
    np.testing.assert_array_equal(hour, (ts.hour + ts.minute / 60.0).to_numpy(dtype=np.float64))
    dow = ts.dayofweek.to_numpy(dtype=np.float64)
    assert weekday.tolist() == [None if np.isnan(d) else str(int(d)) for d in dow]
