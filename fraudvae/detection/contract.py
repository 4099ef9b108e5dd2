"""The output contract, defined once: score columns, their types, explanation columns, reject reasons.

The batch job, Spark, the evaluation report (``scores.csv``) and the HTTP service all
build their outputs from here, so a column added or renamed here changes every entry
point together (``tests/test_contract.py`` checks the batch job, Spark's schema and the
report against it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fraudvae.detection.results import ScoreResult
from fraudvae.exceptions import ColumnProblem

__all__ = [
    "REJECT_FILE_REASON",
    "REJECT_LINE",
    "REJECT_REASON",
    "SCORE_COLUMNS",
    "explanation_columns",
    "output_columns",
    "reject_reason",
    "score_columns",
]

#: Score columns every scored row gets, with their logical type.
SCORE_COLUMNS: dict[str, str] = {"anomaly_score": "float64", "is_anomaly": "bool", "p_value": "float64"}
#: Column naming why a row was not scored (Spark output; the batch job's rejects file).
REJECT_REASON = "reject_reason"
#: Columns of the batch job's rejects file: the input line (1 = the header) and the reason.
REJECT_LINE = "line"
REJECT_FILE_REASON = "reason"


def explanation_columns(top_k: int) -> dict[str, str]:
    """``feature_1, contribution_1, ...``: the ``top_k`` features behind each score, most first."""
    out: dict[str, str] = {}
    for r in range(1, top_k + 1):
        out[f"feature_{r}"] = "string"
        out[f"contribution_{r}"] = "float64"
    return out


def output_columns(top_k: int) -> dict[str, str]:
    """Every column a scoring output adds to the kept input columns, in order, with its type."""
    return {**SCORE_COLUMNS, **explanation_columns(top_k)}


def score_columns(result: ScoreResult, top_k: int) -> dict[str, Any]:
    """The values of :func:`output_columns` for the scored rows of ``result``."""
    out: dict[str, Any] = {
        "anomaly_score": result.anomaly_score,
        "is_anomaly": np.asarray(result.is_anomaly, dtype=bool),
        "p_value": result.p_value,
    }
    if top_k:
        tops = result.top_features(top_k)
        for r in range(top_k):
            out[f"feature_{r + 1}"] = [t[r]["feature"] if r < len(t) else None for t in tops]
            out[f"contribution_{r + 1}"] = [t[r]["contribution"] if r < len(t) else None for t in tops]
    return out


def reject_reason(problems: Iterable[ColumnProblem]) -> str:
    """One line saying why a row was not scored: every offending column, what was found and expected."""
    return "; ".join(f"{p.column}: found {p.found}, expected {p.expected}" for p in problems)
