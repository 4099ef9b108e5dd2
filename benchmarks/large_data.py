"""Detection beyond the protocol's 20,000-row cap: the automatic batch rule on large training sets.

``../shared/BENCHMARK.md`` fits on at most 20,000 normal rows, below the 25,600 rows where
:func:`fraudvae.model.schedule.default_batch_size` starts to grow the batch, so the shared
benchmark cannot see that rule. Here the two largest shared files are fitted on up to
100,000 normal rows of their train half (otherwise the protocol's split and test
sample), once with the automatic batch and once with the 256-row batch of earlier
versions, each in the same run.

Run: .venv/bin/python benchmarks/large_data.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks import protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.model.schedule import default_batch_size

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("10_cover", "33_skin")
SEEDS = (0, 1)
MAX_TRAIN = 100_000


def main() -> int:
    rows = []
    for name in NAMES:
        X, y = protocol.load(name)
        for seed in SEEDS:
            s = protocol.split(name, X, y, seed, max_train=MAX_TRAIN)
            for label, batch in (("automatic", None), ("256 (before)", 256)):
                started = time.perf_counter()
                det = VAEDetector(random_state=seed, batch_size=batch).fit(s.X_train)
                fit_s = time.perf_counter() - started
                score = det.anomaly_score(s.X_test)
                used = det.train_config_["batch_size"]
                rows.append(
                    (
                        name,
                        seed,
                        len(s.X_train),
                        label,
                        used,
                        len(det.history_),
                        fit_s,
                        roc_auc_score(s.y_test, score),
                        average_precision_score(s.y_test, score),
                    )
                )
                print(rows[-1], flush=True)
    text = (
        "| file | seed | training rows | batch | rows per step | epochs | fit s | AUROC | AUPRC |\n"
        "|---|---:|---:|---|---:|---:|---:|---:|---:|\n"
    )
    for name, seed, n, label, used, epochs, fit_s, auroc, auprc in rows:
        text += (
            f"| {name} | {seed} | {n:,} | {label} | {used:,} | {epochs} | {fit_s:.1f} | {auroc:.3f} | {auprc:.3f} |\n"
        )
    for label in ("automatic", "256 (before)"):
        sel = [r for r in rows if r[3] == label]
        text += (
            f"\nMean, {label} batch: fit {np.mean([r[6] for r in sel]):.1f} s, "
            f"AUROC {np.mean([r[7] for r in sel]):.3f}, AUPRC {np.mean([r[8] for r in sel]):.3f}."
        )
    text += f"\n\n(automatic batch at 100,000 rows x 0.9: {default_batch_size(90_000)} rows)\n"
    print(text)
    replace_section(ROOT / "docs" / "experiments" / "2026-11-23-large-training-sets.md", "large_data", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
