"""Fit time on 100,000 rows x 30 columns, beside IsolationForest fitted on the same rows in the same run.

Run: .venv/bin/python benchmarks/fit.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.ensemble import IsolationForest

from benchmarks.markdown import replace_section
from benchmarks.synthetic import wide_table
from fraudvae import VAEDetector

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    frame = wide_table(100_000)
    started = time.perf_counter()
    det = VAEDetector(random_state=0).fit(frame)
    vae_s = time.perf_counter() - started
    numeric = frame.select_dtypes("number").to_numpy(dtype=float)
    started = time.perf_counter()
    IsolationForest(n_estimators=200, random_state=0).fit(numeric)
    iso_s = time.perf_counter() - started
    started = time.perf_counter()
    det.anomaly_score(frame.iloc[:20_000])
    score_s = time.perf_counter() - started
    text = (
        "| what | seconds | ratio |\n|---|---:|---:|\n"
        f"| `VAEDetector().fit`, 100,000 x 30 (24 numeric, 4 categorical, 2 binary), {len(det.history_)} epochs "
        f"| {vae_s:.1f} | {vae_s / iso_s:.1f}x IsolationForest |\n"
        f"| IsolationForest(200 trees).fit, same rows (numeric columns) | {iso_s:.1f} | 1.0 |\n"
        f"| `anomaly_score` (default: ELBO at the posterior mean), 20,000 rows | {score_s:.1f} | {20_000 / score_s:,.0f} rows/s |\n"
    )
    print(text)
    replace_section(ROOT / "BENCHMARKS.md", "fit", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
