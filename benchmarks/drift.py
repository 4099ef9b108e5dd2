"""Drift tests (fraudvae.monitor.drift): false flags on an unchanged stream, and injected changes found.

On the shared car-claims file's normal rows (mixed numbers and categories), split at random
into a reference of 7,000 rows (the training side; the model keeps 5,000 of them) and the rest.
For windows of 500 rows (p-value tests) and 2,000 rows (distances), 20 random windows each:

- unchanged: how many of the feature-tests flag drift (the issue's bound: 1 in 20);
- a mean shift of 0.5 reference standard deviations in ``Age``, a new ``Make`` taking 10% of
  rows, ``PolicyType`` 30% missing: in how many windows the changed column is flagged, and
  how many other columns are flagged beside it.

Writes the table to BENCHMARKS.md (``drift``). No model is fitted: about 20 seconds.

Run:  .venv/bin/python benchmarks/drift.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import protocol
from benchmarks.markdown import replace_section
from fraudvae.data.inference import infer_schema
from fraudvae.monitor import drift

ROOT = Path(__file__).resolve().parents[1]
DRAWS = 20


def _changes() -> dict[str, tuple[str, object]]:
    def shift(w: pd.DataFrame, ref: drift.Reference, rng: np.random.Generator) -> None:
        w["Age"] = w["Age"] + 0.5 * np.std(ref.numeric["Age"])

    def new_level(w: pd.DataFrame, ref: drift.Reference, rng: np.random.Generator) -> None:
        w.loc[rng.random(len(w)) < 0.10, "Make"] = "Tesla"

    def missing(w: pd.DataFrame, ref: drift.Reference, rng: np.random.Generator) -> None:
        w.loc[rng.random(len(w)) < 0.30, "PolicyType"] = None

    return {
        "unchanged": ("", None),
        "Age + 0.5 sd": ("Age", shift),
        "new Make, 10% of rows": ("Make", new_level),
        "PolicyType 30% missing": ("PolicyType", missing),
    }


def main() -> int:
    X, y = protocol.load("carclaims")
    normal = X[y == 0].reset_index(drop=True)
    order = np.random.default_rng(0).permutation(len(normal))
    train, rest = normal.iloc[order[:7000]], normal.iloc[order[7000:]].reset_index(drop=True)
    kinds = drift.reference_kinds(infer_schema(train))
    reference = drift.Reference.from_frame(train, kinds, rows=5000)
    lines = [
        f"Car claims' normal rows, reference {reference.rows:,} rows, {len(kinds)} columns compared, "
        f"{DRAWS} random windows per cell.",
        "",
        "| window | change | changed column flagged | other columns flagged (feature-tests) |",
        "|---|---|---:|---:|",
    ]
    for size in (500, 2000):
        for label, (column, change) in _changes().items():
            hits, others = 0, 0
            for draw in range(DRAWS):
                rng = np.random.default_rng(1000 * size + draw)
                window = rest.iloc[rng.choice(len(rest), size, replace=False)].reset_index(drop=True).copy()
                if change is not None:
                    change(window, reference, rng)  # type: ignore[operator]
                flagged = {d.column for d in drift.compare(reference, window) if d.drifted}
                hits += column in flagged
                others += len(flagged - {column})
            tests = DRAWS * (len(kinds) - (1 if column else 0))
            found = f"{hits} / {DRAWS}" if column else "-"
            lines.append(f"| {size:,} rows | {label} | {found} | {others} / {tests} ({others / tests:.1%}) |")
    lines += [
        "",
        f"Tests: up to {drift.SMALL:,} values, Kolmogorov-Smirnov / chi-square at p < {drift.P_VALUE}; beyond, "
        f"Wasserstein >= {drift.WASSERSTEIN} reference deviations / Jensen-Shannon >= {drift.JENSEN_SHANNON}; "
        f"unseen levels >= {drift.UNSEEN:.0%} of rows; missing rate moved >= {drift.MISSING:.0%} (and p < {drift.P_VALUE}).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(ROOT / "docs" / "experiments" / "2026-12-05-drift.md", "drift", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
