"""Drift: how a window of traffic differs from the training rows, per column and for the score.

The reference is a sample of the training rows, kept with the model as plain JSON
(:class:`Reference`). Each column is compared by a test chosen from its kind and the
sizes of the two samples, as Evidently chooses (its defaults, with a stricter p-value):

- numbers: with at most ``SMALL`` values on either side, the two-sample Kolmogorov-Smirnov
  test (drift when ``p < P_VALUE``); beyond, the Wasserstein distance divided by the
  reference's standard deviation (drift at ``WASSERSTEIN`` or more: the window moved a
  tenth of a spread, a size a p-value on 10,000 rows would call significant long before
  anyone should care);
- categories: with few values, the chi-square test of the level counts (``p < P_VALUE``);
  beyond, the Jensen-Shannon distance (base 2, drift at ``JENSEN_SHANNON``); and on any
  size, levels never seen in training taking ``UNSEEN`` of the rows or more;
- every column: the missing rate moving by ``MISSING`` or more (absolute), and
  significantly (a two-proportion z-test at ``P_VALUE``);
- the score: as a number, against the calibration scores.

Thresholds and their false-flag rate on resamples of one distribution:
BENCHMARKS.md, "Drift" (``benchmarks/drift.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from fraudvae.data.reference import REFERENCE_ROWS, canonical_level, reference_kinds, reference_sample

__all__ = [
    "JENSEN_SHANNON",
    "MISSING",
    "P_VALUE",
    "SMALL",
    "UNSEEN",
    "WASSERSTEIN",
    "ColumnDrift",
    "Reference",
    "compare",
    "reference_kinds",
]

#: Largest sample (either side) tested by a p-value; larger ones by a distance.
SMALL = 1000
#: Significance of the small-sample tests (Evidently: 0.05, which flags one column in 20
#: of an unchanged stream by construction; the acceptance bound is one in 20).
P_VALUE = 0.01
#: Wasserstein distance, in reference standard deviations, that counts as drift.
WASSERSTEIN = 0.1
#: Jensen-Shannon distance (base 2, between 0 and 1) that counts as drift.
JENSEN_SHANNON = 0.1
#: Share of rows at levels never seen in training that counts as drift.
UNSEEN = 0.05
#: Absolute change in the missing rate that counts as drift (when also significant).
MISSING = 0.05


@dataclass
class ColumnDrift:
    """One column's comparison; ``drifted`` is the verdict, ``reasons`` say which test fired."""

    column: str
    kind: str
    test: str
    statistic: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    missing_reference: float
    missing_current: float
    unseen_share: float | None = None
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("statistic", "threshold", "missing_reference", "missing_current", "unseen_share"):
            value = out[key]
            out[key] = None if value is None or not math.isfinite(value) else round(float(value), 6)
        return out


@dataclass
class Reference:
    """A sample of the training rows per modelled column: numbers as values, categories as counts."""

    rows: int
    kinds: dict[str, str]
    numeric: dict[str, list[float]]
    levels: dict[str, dict[str, int]]
    missing: dict[str, float]
    scores: list[float] = field(default_factory=list)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        kinds: dict[str, str],
        *,
        scores: np.ndarray | None = None,
        rows: int = REFERENCE_ROWS,
        seed: int = 0,
    ) -> Reference:
        """``kinds`` maps column -> "numeric" or "categorical" (:func:`reference_kinds` picks them)."""
        doc = reference_sample(frame, kinds, rows=rows, seed=seed)
        kept = [] if scores is None else [float(s) for s in np.asarray(scores, dtype=np.float64)]
        return cls.from_json({**doc, "scores": kept})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reference:
        return cls(
            int(data["rows"]),
            {str(k): str(v) for k, v in data["kinds"].items()},
            {str(k): [float(x) for x in v] for k, v in data["numeric"].items()},
            {str(k): {str(a): int(b) for a, b in v.items()} for k, v in data["levels"].items()},
            {str(k): float(v) for k, v in data["missing"].items()},
            [float(x) for x in data.get("scores", [])],
        )


def compare(reference: Reference, current: pd.DataFrame, *, scores: np.ndarray | None = None) -> list[ColumnDrift]:
    """Every reference column that ``current`` holds, then ``"score"`` if both have scores."""
    out = []
    for name, kind in reference.kinds.items():
        if name not in current.columns:
            continue
        col = current[name]
        miss_cur = float(col.isna().mean()) if len(col) else 0.0
        miss_ref = reference.missing[name]
        if kind == "numeric":
            values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
            drift = _numeric(name, np.asarray(reference.numeric[name]), values[~np.isnan(values)])
        else:
            drift = _categorical(name, reference.levels[name], col.dropna().map(canonical_level))
        drift.missing_reference, drift.missing_current = miss_ref, miss_cur
        if _missing_moved(miss_ref, reference.rows, miss_cur, len(col)):
            drift.reasons.append(f"missing rate {miss_ref:.1%} -> {miss_cur:.1%}")
            drift.drifted = True
        out.append(drift)
    if scores is not None and reference.scores:
        current_scores = np.asarray(scores, dtype=np.float64)
        drift = _numeric("score", np.asarray(reference.scores), current_scores[np.isfinite(current_scores)])
        drift.kind = "score"
        out.append(drift)
    return out


def _numeric(name: str, ref: np.ndarray, cur: np.ndarray) -> ColumnDrift:
    base = ColumnDrift(name, "numeric", "none", math.nan, math.nan, False, ref.size, cur.size, 0.0, 0.0)
    if ref.size < 2 or cur.size < 2:
        base.test = "too few values"
        return base
    if min(ref.size, cur.size) <= SMALL:
        p = float(stats.ks_2samp(ref, cur).pvalue)
        base.test, base.statistic, base.threshold, base.drifted = "ks_p_value", p, P_VALUE, p < P_VALUE
        if base.drifted:
            base.reasons.append(f"Kolmogorov-Smirnov p = {p:.2g} < {P_VALUE}")
        return base
    spread = float(np.std(ref))
    distance = float(stats.wasserstein_distance(ref, cur))
    scaled = distance / spread if spread > 0 else (0.0 if distance == 0 else math.inf)
    base.test, base.statistic, base.threshold = "wasserstein_std", scaled, WASSERSTEIN
    base.drifted = scaled >= WASSERSTEIN
    if base.drifted:
        base.reasons.append(f"Wasserstein distance {scaled:.3g} reference deviations >= {WASSERSTEIN}")
    return base


def _categorical(name: str, ref_counts: dict[str, int], cur: pd.Series) -> ColumnDrift:
    cur_counts = cur.value_counts()
    n_ref, n_cur = sum(ref_counts.values()), int(cur_counts.sum())
    base = ColumnDrift(name, "categorical", "none", math.nan, math.nan, False, n_ref, n_cur, 0.0, 0.0)
    if n_ref == 0 or n_cur == 0:
        base.test = "too few values"
        return base
    unseen = float(cur_counts[[k for k in cur_counts.index if k not in ref_counts]].sum()) / n_cur
    base.unseen_share = unseen
    levels = sorted(set(ref_counts) | {str(k) for k in cur_counts.index})
    p = np.array([ref_counts.get(k, 0) for k in levels], dtype=np.float64)
    q = np.array([int(cur_counts.get(k, 0)) for k in levels], dtype=np.float64)
    if min(n_ref, n_cur) <= SMALL:
        table = np.vstack([p, q])
        table = table[:, table.sum(axis=0) > 0]
        pvalue = 1.0 if table.shape[1] < 2 else float(stats.chi2_contingency(table).pvalue)
        base.test, base.statistic, base.threshold, base.drifted = "chi2_p_value", pvalue, P_VALUE, pvalue < P_VALUE
        if base.drifted:
            base.reasons.append(f"chi-square p = {pvalue:.2g} < {P_VALUE}")
    else:
        distance = float(jensenshannon(p / p.sum(), q / q.sum(), base=2))
        base.test, base.statistic, base.threshold = "jensen_shannon", distance, JENSEN_SHANNON
        base.drifted = distance >= JENSEN_SHANNON
        if base.drifted:
            base.reasons.append(f"Jensen-Shannon distance {distance:.3g} >= {JENSEN_SHANNON}")
    if unseen >= UNSEEN:
        base.drifted = True
        base.reasons.append(f"{unseen:.1%} of rows at levels never seen in training (>= {UNSEEN:.0%})")
    return base


def _missing_moved(ref_rate: float, n_ref: int, cur_rate: float, n_cur: int) -> bool:
    """The missing rate moved by ``MISSING`` or more, and a two-proportion z-test agrees."""
    if abs(cur_rate - ref_rate) < MISSING or n_ref == 0 or n_cur == 0:
        return False
    pooled = (ref_rate * n_ref + cur_rate * n_cur) / (n_ref + n_cur)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_cur))
    if se == 0:
        return True
    z = abs(cur_rate - ref_rate) / se
    return float(2 * stats.norm.sf(z)) < P_VALUE
