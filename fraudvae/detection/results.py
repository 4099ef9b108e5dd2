"""``ScoreResult``: what one scoring call computes, before any entry point formats it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from fraudvae.exceptions import ColumnProblem

__all__ = ["LATENT", "MAX_ECHO_CHARS", "ScoreResult", "jsonable"]

#: Name of the pseudo-feature that carries the latent part of a score (KL for the
#: ELBO, prior-vs-posterior weight for IWAE), so contributions always sum to the score.
LATENT = "<latent>"
#: Longest text echoed in an explanation (a category value); longer is cut, marked with "...".
MAX_ECHO_CHARS = 200


def jsonable(v: Any) -> Any:
    """A value as JSON can carry it: numpy scalars unwrapped, long text cut, NaN as None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str) and len(v) > MAX_ECHO_CHARS:
        return v[: MAX_ECHO_CHARS - 3] + "..."
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _rows(a: np.ndarray) -> list[list[Any]]:
    """A 2-D array as nested Python lists (float64 values become Python floats in one call)."""
    return a.astype(np.float64).tolist()  # type: ignore[no-any-return]


@dataclass
class ScoreResult:
    """Everything one scoring call computes, for every entry point to format.

    ``contributions`` has one column per model feature plus :data:`LATENT`, in
    ``feature_names`` order; each row sums to ``anomaly_score``.
    """

    anomaly_score: np.ndarray
    reconstruction: np.ndarray
    neg_elbo: np.ndarray
    p_value: np.ndarray
    is_anomaly: np.ndarray
    threshold: float
    contributions: np.ndarray
    excess: np.ndarray
    feature_names: list[str]
    #: Each feature's value and the model's expected value, in the user's units
    #: (filled, like ``ranking``, only with ``explain_top_k > 0``).
    values: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    latent_mean: np.ndarray
    rejected: dict[int, list[ColumnProblem]] = field(default_factory=dict)
    row_positions: np.ndarray | None = None
    #: Per row, candidate features (schema order index) best first, and the score drop
    #: when each is reset to its typical value (filled by ``score_frame(explain_top_k=k)``).
    ranking: np.ndarray | None = None
    drops: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.anomaly_score.shape[0])

    def take(self, rows: slice) -> ScoreResult:
        """The result of the scored rows ``rows`` (a contiguous run, as numbered in this result).

        For a result with every input row scored (``rejected`` empty); the service uses it to
        hand each coalesced request its own rows.
        """
        if self.rejected:
            raise ValueError("take needs a result with no rejected rows.")
        arrays = {
            f.name: getattr(self, f.name)[rows]
            for f in fields(self)
            if isinstance(getattr(self, f.name), np.ndarray) and f.name != "row_positions"
        }
        n = len(range(*rows.indices(len(self))))
        return replace(
            self,
            **arrays,
            values={k: v[rows] for k, v in self.values.items()},
            expected={k: v[rows] for k, v in self.expected.items()},
            row_positions=None if self.row_positions is None else np.arange(n),
        )

    def top_features(self, k: int) -> list[list[dict[str, Any]]]:
        """For each row, the ``k`` features most responsible for its score, most first.

        Needs ``score_frame(..., explain_top_k=k)`` (or more); each item gives the
        feature, its term of the score (``contribution``), that term's excess over
        normal rows, the score drop when the feature alone is made typical
        (``attribution``), the row's value and the model's expected value.
        """
        if len(self) == 0:
            return []
        if self.ranking is None or self.drops is None:
            raise ValueError("top_features needs a result scored with explain_top_k > 0.")
        k = min(k, self.ranking.shape[1])
        ranking = self.ranking[:, :k]
        # Whole columns at once (one gather and one tolist each), not one numpy scalar per item.
        contribution = np.take_along_axis(self.contributions, ranking, axis=1)
        excess = np.take_along_axis(self.excess, ranking, axis=1)
        names, values, expected = self.feature_names, self.values, self.expected
        cols = (ranking.tolist(), _rows(contribution), _rows(excess), _rows(self.drops[:, :k]))
        out = []
        for i, (js, cs, es, ds) in enumerate(zip(*cols, strict=True)):
            out.append(
                [
                    {
                        "feature": names[j],
                        "contribution": c,
                        "excess": e,
                        "attribution": d,
                        "value": jsonable(values[names[j]][i]),
                        "expected": jsonable(expected[names[j]][i]),
                    }
                    for j, c, e, d in zip(js, cs, es, ds, strict=True)
                ]
            )
        return out

    def explanations(self, top_k: int) -> pd.DataFrame:
        """:meth:`top_features` as a long table: one row per (scored row, rank)."""
        records = [
            {"row": i, "rank": rank, **item, "anomaly_score": float(self.anomaly_score[i])}
            for i, items in enumerate(self.top_features(top_k))
            for rank, item in enumerate(items, start=1)
        ]
        cols = ["row", "rank", "feature", "contribution", "excess", "attribution", "value", "expected", "anomaly_score"]
        return pd.DataFrame.from_records(records, columns=cols)
