"""Risk from confirmed fraud: how many of a key's past events were confirmed fraud, with the labels' delay.

Much card fraud is ordinary for the card and unusual only for the terminal or merchant, where
many payments later turn out to be fraud. A ``[[label_risk]]`` entry of the spec gives, per
window ``w`` and for each event at time ``t``:

* ``{name}:frauds_{w}_to_{delay}_ago``: the key's events with ``t - delay - w <= t_past <
  t - delay`` whose label says fraud;
* ``{name}:fraud_share_{w}_to_{delay}_ago``: those frauds over all the key's events in that
  window (missing when the window holds none).

**Point in time.** A label counts only from its event's time plus ``delay``, so the window
ends ``delay`` before the event, strictly (an event whose label becomes known at the very
instant is not yet known, as ties are not each other's past). The event's own label, and any
label of an event later than ``t - delay``, never reach its features. Labels are read from
the spec's ``label`` column (fraud/legit, 1/0, true/false, yes/no); a missing label, or a
file without the column (new traffic being scored), counts as not confirmed.

**One computation everywhere.** The stream keeps each key's events of the last
``delay + longest window`` and counts with integer differences of running sums, so a file
fed in chunks gives the bits of one pass (:class:`fraudvae.features.stream.FeatureStream`
holds one of these per entry).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fraudvae.data.textparse import printable
from fraudvae.exceptions import DataError
from fraudvae.features.columns import Columns
from fraudvae.features.spec import LabelRiskSpec, window_seconds

__all__ = ["FRAUD_VALUES", "LEGIT_VALUES", "LabelRiskStream", "confirmed_fraud", "fraud_flags"]

FRAUD_VALUES = frozenset({"1", "true", "yes", "fraud"})
LEGIT_VALUES = frozenset({"0", "false", "no", "legit"})


def fraud_flags(text: np.ndarray) -> np.ndarray:
    """Canonical label text as 1.0 (fraud), 0.0 (legit or missing) and NaN (not a label), read once per
    distinct value (a file's label column holds a handful of them)."""
    codes, uniques = pd.factorize(text)  # a missing label is code -1: the trailing 0.0
    verdict = [1.0 if v in FRAUD_VALUES else 0.0 if v in LEGIT_VALUES else np.nan for v in _lowered(uniques)]
    return np.array([*verdict, 0.0])[codes]


def _lowered(uniques: Any) -> list[str]:
    return [str(v).strip().lower() for v in np.asarray(uniques, dtype=object).tolist()]


def confirmed_fraud(cols: Columns, column: str) -> np.ndarray:
    """1.0 where the label says fraud, 0.0 where it says legit or is missing; anything else is refused by name."""
    if column not in cols.frame.columns:
        return np.zeros(len(cols.frame))
    text = cols.text(column)
    flags = fraud_flags(text)
    bad = np.isnan(flags)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"label column {column!r} holds {printable(text[i])} at row {i + 1}; expected fraud/legit, 1/0, "
            "true/false or yes/no (missing = not confirmed)."
        )
    return flags


class LabelRiskStream:
    """One ``[[label_risk]]`` entry's state: the events of the last ``delay + longest window``."""

    def __init__(self, r: LabelRiskSpec) -> None:
        self.r = r
        self.spans = [window_seconds(w) for w in r.windows]
        self.delay = window_seconds(r.delay)
        self.keep = max(self.spans) + self.delay
        self.tail = {
            "key": np.zeros(0, dtype=object),
            "t": np.zeros(0),
            "fraud": np.zeros(0),
            "id": np.zeros(0, dtype=object),  # event ids (online: where a later label lands)
        }

    def held(self) -> int:
        return len(self.tail["t"])

    def update(
        self, cols: Columns, t: np.ndarray, latest: float, ids: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        r, n = self.r, len(t)
        keys = cols.keys(r.keys)
        rows = np.flatnonzero(~pd.isna(keys) & ~np.isnan(t))
        fraud = confirmed_fraud(cols, r.label)
        n_old = len(self.tail["t"])
        both = {
            "key": np.concatenate([self.tail["key"], keys[rows]]),
            "t": np.concatenate([self.tail["t"], t[rows]]),
            "fraud": np.concatenate([self.tail["fraud"], fraud[rows]]),
            "id": np.concatenate([self.tail["id"], ids[rows] if ids is not None else np.full(len(rows), None)]),
        }
        codes = pd.factorize(both["key"])[0]
        order = np.lexsort((np.arange(len(codes)), both["t"], codes))  # key, time, input order
        both = {k: v[order] for k, v in both.items()}
        seg = codes[order].astype(np.int64)
        times, rank = np.unique(both["t"], return_inverse=True)
        width = len(times) + 1
        composite = seg * width + rank
        frauds_before = np.r_[0.0, np.cumsum(both["fraud"])]  # integers: exact however the file is chunked
        pos = np.flatnonzero(order >= n_old)
        row_of = rows[order[pos] - n_old]
        end = both["t"][pos] - self.delay

        def first_at(edge: np.ndarray) -> np.ndarray:  # the first event of the key at or after ``edge``
            return np.searchsorted(composite, seg[pos] * width + np.searchsorted(times, edge), side="left")

        hi = first_at(end)
        out = {}
        names = iter(r.feature_names())
        for span in self.spans:
            lo = first_at(end - span)
            events = (hi - lo).astype(np.float64)
            frauds = frauds_before[hi] - frauds_before[lo]
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(events > 0, frauds / events, np.nan)
            for name, values in ((next(names), frauds), (next(names), share)):
                full = np.full(n, np.nan)
                full[row_of] = values
                out[name] = full
        newest = max(latest, float(both["t"].max())) if len(both["t"]) else latest
        keep = both["t"] >= newest - self.keep
        self.tail = {k: v[keep] for k, v in both.items()}
        return out
