"""Turn a validated frame into the arrays the network sees, and back into units.

Numeric features are robust-scaled (median, IQR), after a change of scale where the
column's shape asks for one: a signed ``log1p`` for heavy right tails such as amounts,
so one huge training value does not squash all the others, and a ratio (log) scale for
positive columns spanning orders of magnitude above their floor, such as delays, whose
anomalies are orders of magnitude rather than deviations (see :func:`_scale_of`); missing values are imputed at the median and flagged by an indicator that is
itself modelled. Categorical features get a vocabulary of the frequent training
values plus two reserved buckets: ``<other>`` for rare and unseen values (a new
merchant is scored, not refused) and ``<missing>``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.schema import DAYS_PER_YEAR, FREQUENCY, YEARS, Schema

__all__ = ["MISSING", "OTHER", "Encoded", "Preprocessor"]

OTHER = "<other>"
MISSING = "<missing>"
_SKEW_FOR_LOG = 2.0
#: A positive column whose 99th percentile is at least this many times its smallest
#: training value spans orders of magnitude above a floor: it is modelled on a ratio scale.
RATIO_SPAN = 100.0
#: ... and whose median lies within this many robust standard deviations (IQR / 1.349) of
#: zero: linearly, a value at zero would look ordinary there.
RATIO_ZERO_SDS = 2.0
#: On the ratio scale zero lies this many times below the floor (one decade).
_RATIO_ZERO = 0.1
_CLIP = 1e6


@dataclass
class Encoded:
    """Model inputs for ``n`` rows, one array per feature kind (internal order)."""

    num: np.ndarray  # (n, n_num) float64, standardized, missing imputed with 0
    num_obs: np.ndarray  # (n, n_num) float64, 1 = observed
    bin: np.ndarray  # (n, n_bin) float64, 0/1 (other values stay on the same line; missing: the mode)
    cat: np.ndarray  # (n, n_cat) int64 codes into each vocabulary
    #: (n, n_features) bool, internal order: a value missing in a feature that was never
    #: missing in training. Scored as evidence of its own (see ``VAEDetector``), not refused.
    unexpected_missing: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.num.shape[0])

    def take(self, idx: np.ndarray | slice) -> Encoded:
        missing = self.unexpected_missing[idx] if self.unexpected_missing is not None else None
        return Encoded(self.num[idx], self.num_obs[idx], self.bin[idx], self.cat[idx], missing)

    @staticmethod
    def stack(first: Encoded, second: Encoded) -> Encoded:
        """The rows of ``first``, then those of ``second``."""
        missing = None
        if first.unexpected_missing is not None or second.unexpected_missing is not None:
            missing = np.concatenate([e.missing_mask() for e in (first, second)])
        num, obs, binary, cat = (np.concatenate([a, b]) for a, b in zip(first.arrays(), second.arrays(), strict=True))
        return Encoded(num, obs, binary, cat, missing)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.num, self.num_obs, self.bin, self.cat

    def missing_mask(self) -> np.ndarray:
        """``unexpected_missing`` as an array even when nothing is missing."""
        if self.unexpected_missing is not None:
            return self.unexpected_missing
        width = self.num.shape[1] + self.bin.shape[1] + self.cat.shape[1]
        return np.zeros((len(self), width), dtype=bool)

    def copy(self) -> Encoded:
        missing = self.unexpected_missing.copy() if self.unexpected_missing is not None else None
        return Encoded(self.num.copy(), self.num_obs.copy(), self.bin.copy(), self.cat.copy(), missing)


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _signed_expm1(x: np.ndarray) -> np.ndarray:
    # exp(700) is near float64's limit; a decoder extrapolating further means "huge" anyway.
    return np.sign(x) * np.expm1(np.minimum(np.abs(x), 700.0))


def _ratio_log(x: np.ndarray, offset: float) -> np.ndarray:
    """``log(x + offset)``, continued below zero as its mirror image (monotone, smooth at 0).

    Zero maps to ``log(offset)``, a decade below the training floor; a negative value,
    which a positive column never had, lies further down instead of becoming NaN.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        up = np.log(np.maximum(x, 0.0) + offset)
        down = 2.0 * np.log(offset) - np.log(offset - np.minimum(x, 0.0))
    return np.where(x >= 0, up, down)


def _ratio_exp(t: np.ndarray, offset: float) -> np.ndarray:
    """The inverse of :func:`_ratio_log` (``exp`` bounded as in :func:`_signed_expm1`)."""
    log_offset = np.log(offset)
    up = np.exp(np.minimum(t, 700.0)) - offset
    down = offset - np.exp(np.minimum(2.0 * log_offset - t, 700.0))
    return np.where(t >= log_offset, up, down)


def _scale_of(obs: np.ndarray) -> tuple[str, float]:
    """``(transform, shift or offset)`` of a numeric column from its observed training values.

    - ``"ratio"``: every value positive, the 99th percentile at least ``RATIO_SPAN`` times
      the smallest, and zero within ``RATIO_ZERO_SDS`` robust standard deviations of the
      median, so that linearly a value at or near zero would look ordinary. Seconds from
      sign-up to purchase spread evenly over 10 minutes to 120 days are such a column:
      linearly, a purchase 30 seconds after sign-up sits 1.3 deviations below the median,
      beside the 10-minute floor; on a ratio scale it lies more than a decade below the
      floor. A column whose bulk sits far from zero (0.40 +- 0.1 with one value at 0.007) is
      not: there, linear already puts zero far out. Modelled as ``log(x + offset)`` with the
      offset a tenth of the floor, so zero and near-zero values stay finite and far
      (docs/experiments/2026-12-05-held-out-halves.md).
    - ``"log1p"``: a heavy right tail (skew above ``_SKEW_FOR_LOG``) with no negative
      values, zeros included: ``log1p(x - min)``.
    - ``"none"``: everything else (symmetric columns, signed ones, scores in [0, 1]).
    """
    if obs.size <= 2 or not np.std(obs) > 0:
        return "none", 0.0
    lowest = float(np.min(obs))
    q25, median, q75, q99 = np.percentile(obs, [25, 50, 75, 99])
    if lowest > 0 and q99 >= RATIO_SPAN * lowest and median * 1.349 <= RATIO_ZERO_SDS * (q75 - q25):
        return "ratio", _RATIO_ZERO * lowest
    skew = float(pd.Series(obs).skew())  # type: ignore[arg-type]
    if skew > _SKEW_FOR_LOG and lowest >= 0:
        return "log1p", lowest
    return "none", 0.0


def _forward(v: np.ndarray, transform: str, shift: float) -> np.ndarray:
    if transform == "log1p":
        return _signed_log1p(v - shift)
    if transform == "ratio":
        return _ratio_log(v, shift)
    return v


def _robust_center_scale(v: np.ndarray) -> tuple[float, float]:
    if v.size == 0:
        return 0.0, 1.0
    median = float(np.median(v))
    q75, q25 = np.percentile(v, [75, 25])
    scale = float(q75 - q25) / 1.349
    if not scale > 1e-12:
        # Sparse columns (mostly one value) have IQR 0: fall back to the spread of all values.
        scale = float(np.std(v))
    if not scale > 1e-12:
        scale = 1.0
    return median, scale


def _quantization_step(v: np.ndarray) -> float:
    """Median gap between consecutive distinct values: the resolution the data is recorded at.

    Counts, ratings and rounded amounts sit on a grid; a Gaussian fitted to them can put
    a spike on each grid point. The decoder's variance floor of a feature is the variance
    of uniform dequantization noise over one step, ``step**2 / 12``; for continuous
    columns the step is tiny and the floor vanishes.
    """
    u = np.unique(v)
    return float(np.median(np.diff(u))) if u.size > 1 else 0.0


class Preprocessor:
    """Fitted per-feature statistics; plain JSON in and out, so artifacts need no pickle."""

    def __init__(self, schema: Schema, stats: dict[str, dict[str, Any]]) -> None:
        self.schema = schema
        self.stats = stats
        feats = schema.features()
        self.num_features = [n for n, k in feats if k == "numeric"]
        self.bin_features = [n for n, k in feats if k == "binary"]
        self.cat_features = [n for n, k in feats if k == "categorical"]
        #: Features in internal order (numeric, binary, categorical).
        self.internal_order = self.num_features + self.bin_features + self.cat_features
        #: Features in schema order, which is how contributions are reported.
        self.feature_names = [n for n, _ in feats]
        pos = {n: i for i, n in enumerate(self.internal_order)}
        self.to_schema_order = np.array([pos[n] for n in self.feature_names], dtype=np.int64)
        self.nullable_num = [i for i, n in enumerate(self.num_features) if stats[n]["nullable"]]
        self.num_min_variance = [stats[n]["step"] ** 2 / 12.0 for n in self.num_features]
        self.cat_cardinalities = [len(stats[n]["vocabulary"]) for n in self.cat_features]
        # Features that were never missing in training (internal order): a missing value
        # there is scored as evidence instead of through the network's likelihood.
        column_nullable = {f: c.nullable for c in schema.columns for f, _ in c.features()}
        self.never_missing = np.array(
            [not stats[n]["nullable"] for n in self.num_features]
            + [True for _ in self.bin_features]
            + [not column_nullable[n] for n in self.cat_features],
            dtype=bool,
        )
        #: Training counts of each value of the frequency-encoded columns, as lookups.
        self.frequencies = {n: frequency_lookup(st["counts"]) for n, st in stats.items() if "counts" in st}
        # Level -> code lookups as (keys, codes), so a whole column is encoded in one vectorised call.
        self._cat_index: list[tuple[pd.Index, np.ndarray]] = []
        for n in self.cat_features:
            lookup = {v: i for i, v in enumerate(stats[n]["vocabulary"])}
            self._cat_index.append((pd.Index(list(lookup), dtype=object), np.array([*lookup.values(), 0])))

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, frame: pd.DataFrame, schema: Schema, *, max_categories: int, min_category_count: int) -> Preprocessor:
        """Learn the statistics from a validated training frame."""
        value_counts = {
            f"{c.name}.frequency": {
                str(k): int(v) for k, v in pd.Series(frame[c.name]).value_counts(dropna=True).items()
            }
            for c in schema.modelled
            if c.encoding == FREQUENCY
        }
        derived = expand_features(frame, schema, {n: frequency_lookup(c) for n, c in value_counts.items()})
        stats: dict[str, dict[str, Any]] = {}
        for name, kind in schema.features():
            col = derived[name]
            if kind == "numeric":
                v = np.asarray(col, dtype=np.float64)
                obs = v[~np.isnan(v)]
                transform, shift = _scale_of(obs)
                t = _forward(obs, transform, shift)
                center, scale = _robust_center_scale(t)
                stats[name] = {
                    "kind": kind,
                    "transform": transform,
                    "shift": shift,
                    "center": center,
                    "scale": scale,
                    "nullable": bool(np.isnan(v).any()),
                    "step": _quantization_step(t) / scale,
                }
                if name in value_counts:
                    stats[name]["counts"] = value_counts[name]
            elif kind == "binary":
                stats[name] = {"kind": kind, "mode": float(np.nanmean(np.asarray(col, dtype=np.float64)) > 0.5)}
            else:
                counts = pd.Series(col).value_counts(dropna=True)
                frequent = [str(k) for k, c in counts.items() if c >= min_category_count][:max_categories]
                vocabulary = [OTHER, MISSING, *sorted(frequent)]
                mode = vocabulary.index(frequent[0]) if frequent else 0
                stats[name] = {"kind": kind, "vocabulary": vocabulary, "mode": mode}
        return cls(schema, stats)

    # ------------------------------------------------------------------ transform
    def transform(self, frame: pd.DataFrame) -> Encoded:
        """Encode a frame returned by :meth:`Schema.validate_frame`."""
        derived = expand_features(frame, self.schema, self.frequencies)
        n = len(frame)
        num = np.zeros((n, len(self.num_features)))
        obs = np.ones((n, len(self.num_features)))
        for j, name in enumerate(self.num_features):
            s = self.stats[name]
            v = np.asarray(derived[name], dtype=np.float64)
            # Beyond a million robust deviations a value is anomalous whatever it is;
            # clipping keeps every score finite (JSON has no Infinity). A value near the
            # float64 limit overflows to infinity on the way, which the clip absorbs.
            with np.errstate(over="ignore"):
                v = _forward(v, s["transform"], s["shift"])
                z = np.clip((v - s["center"]) / s["scale"], -_CLIP, _CLIP)
            missing = np.isnan(z)
            obs[:, j] = ~missing
            num[:, j] = np.where(missing, 0.0, z)
        binary = (
            np.column_stack([np.asarray(derived[n], dtype=np.float64) for n in self.bin_features])
            if self.bin_features
            else np.zeros((n, 0))
        )
        binary = np.clip(binary, -_CLIP, _CLIP)
        bin_missing = np.isnan(binary)
        if bin_missing.any():  # binary columns are never missing in training: impute the mode
            modes = np.array([self.stats[n]["mode"] for n in self.bin_features], dtype=np.float64)
            binary = np.where(bin_missing, modes, binary)
        cat = np.zeros((n, len(self.cat_features)), dtype=np.int64)
        for j, name in enumerate(self.cat_features):
            values = derived[name]
            keys, codes = self._cat_index[j]
            cat[:, j] = codes[positions(keys, values)]  # position -1 (unseen level) is code 0
            cat[pd.isna(values), j] = 1
        missing = np.concatenate([obs == 0, bin_missing, cat == 1], axis=1) & self.never_missing
        return Encoded(num, obs, binary, cat, missing if missing.any() else None)

    def typical_row_values(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Encoded typical value of every feature: the median, the more frequent level, the mode.

        Used to ask "how unusual would this row be if only this feature were ordinary?".
        """
        num = np.zeros(len(self.num_features))
        binary = np.array([self.stats[n]["mode"] for n in self.bin_features], dtype=np.float64)
        cat = np.array([self.stats[n]["mode"] for n in self.cat_features], dtype=np.int64)
        return num, binary, cat

    def inverse_numeric(self, name: str, z: np.ndarray) -> np.ndarray:
        """Map standardized values of a numeric feature back to the caller's units."""
        s = self.stats[name]
        v = z * s["scale"] + s["center"]
        if s["transform"] == "log1p":
            return _signed_expm1(v) + s["shift"]
        return _ratio_exp(v, s["shift"]) if s["transform"] == "ratio" else v

    def to_json(self) -> dict[str, Any]:
        return {"stats": self.stats}

    @classmethod
    def from_json(cls, schema: Schema, data: dict[str, Any]) -> Preprocessor:
        return cls(schema, data["stats"])


def positions(keys: pd.Index, values: np.ndarray) -> np.ndarray:
    """Each value's position in ``keys`` (unique), -1 when absent: ``keys.get_indexer(values)``, value
    by value for a few rows (the service's), where one ``get_indexer`` call costs ~0.05 ms."""
    if len(values) > 16:
        return keys.get_indexer(values)
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values.tolist()):
        with contextlib.suppress(KeyError, TypeError):
            out[i] = keys.get_loc(v)
    return out


def frequency_lookup(counts: dict[str, int]) -> tuple[pd.Index, np.ndarray]:
    """(values, counts with a trailing 0) so that ``counts[index.get_indexer(v)]`` is 0 when unseen."""
    return pd.Index(list(counts), dtype=object), np.array([*counts.values(), 0], dtype=np.float64)


def expand_features(
    frame: pd.DataFrame, schema: Schema, frequencies: dict[str, tuple[pd.Index, np.ndarray]] | None = None
) -> dict[str, Any]:
    """Columns of a validated frame keyed by model feature (datetimes split into parts).

    A frequency-encoded column becomes the training count of each row's value (0 for a
    value never seen; missing stays missing); ``frequencies`` holds those counts.
    """
    out: dict[str, Any] = {}
    for spec in schema.modelled:
        values = frame[spec.name].to_numpy()
        if spec.encoding == FREQUENCY:
            name = f"{spec.name}.frequency"
            keys, table = (frequencies or {})[name]
            found = table[positions(keys, values)]
            found[pd.isna(values)] = np.nan
            out[name] = found
            continue
        if spec.encoding == YEARS:
            name, when = spec.features()[0][0], values.astype("datetime64[ns]")
            if spec.reference:
                days = (frame[spec.reference].to_numpy().astype("datetime64[ns]") - when) / np.timedelta64(1, "D")
                out[name] = (days / DAYS_PER_YEAR).astype(np.float64)
            else:
                out[name] = 1970.0 + (when - np.datetime64(0, "D")) / np.timedelta64(1, "D") / DAYS_PER_YEAR
            continue
        if spec.kind != "datetime":
            out[spec.name] = values
            continue
        hour, dow = _clock_parts(values.astype("datetime64[ns]"))
        out[f"{spec.name}.hour"] = hour
        out[f"{spec.name}.dayofweek"] = dow
    return out


_WEEKDAYS = np.array([str(d) for d in range(7)], dtype=object)


def _clock_parts(when: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day (hours plus minutes / 60, seconds dropped) and weekday text ("0" = Monday).

    numpy, not pandas accessors (which cost a fixed ~0.1 ms per column, the bulk of
    scoring one row); the same values as ``DatetimeIndex.hour + minute / 60`` and
    ``dayofweek``. ``NaT`` gives NaN and ``None``.
    """
    missing = np.isnat(when)
    days = when.astype("datetime64[D]")
    with np.errstate(invalid="ignore"):  # NaT // 1 minute
        minutes = ((when - days) // np.timedelta64(1, "m")).astype(np.int64)
    hour = (minutes // 60).astype(np.float64) + (minutes % 60) / 60.0
    weekday = _WEEKDAYS[(days.astype(np.int64) + 3) % 7]  # 1970-01-01 was a Thursday (3)
    hour[missing] = np.nan
    weekday[missing] = None
    return hour, weekday
