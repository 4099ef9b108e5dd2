"""Fit time on 100,000 rows x 30 columns, against what the machine's arithmetic allows, in one run.

Beside the fit: IsolationForest on the same rows, and a plain torch matrix product of
the network's first layer shape (the automatic batch x the encoder's input width x the
first hidden width) on the same number of threads, which gives the GFLOP/s this machine
reaches on products of that size. The fit's achieved GFLOP/s counts the arithmetic
of its linear layers: 6 flops per weight and training row (forward, and backward to
both inputs and weights), 2 per weight and validation row.

Run: .venv/bin/python benchmarks/fit.py   (about a minute)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from sklearn.ensemble import IsolationForest
from torch import nn

from benchmarks.markdown import replace_section
from benchmarks.synthetic import wide_table
from fraudvae import VAEDetector
from fraudvae.model.threads import torch_threads

ROOT = Path(__file__).resolve().parents[1]


def _matmul_gflops(rows: int, inner: int, outer: int, threads: int, seconds: float = 3.0) -> float:
    a, b = torch.randn(rows, inner), torch.randn(inner, outer)
    with torch_threads(threads):
        for _ in range(20):
            torch.mm(a, b)
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for _ in range(50):
                torch.mm(a, b)
            n += 50
        elapsed = time.perf_counter() - started
    return 2.0 * rows * inner * outer * n / elapsed / 1e9


def main() -> int:
    frame = wide_table(100_000)
    threads_seen: set[int] = set()
    started = time.perf_counter()
    det = VAEDetector(random_state=0).fit(frame, epoch_callback=lambda _: threads_seen.add(torch.get_num_threads()))
    vae_s = time.perf_counter() - started
    train_s = sum(h["seconds"] for h in det.history_)
    numeric = frame.select_dtypes("number").to_numpy(dtype=float)
    started = time.perf_counter()
    IsolationForest(n_estimators=200, random_state=0).fit(numeric)
    iso_s = time.perf_counter() - started
    started = time.perf_counter()
    det.anomaly_score(frame.iloc[:20_000])
    score_s = time.perf_counter() - started

    cfg, epochs = det.train_config_, len(det.history_)
    weights = sum(
        m.in_features * m.out_features for m in det.engine_.backend.module.modules() if isinstance(m, nn.Linear)
    )
    flops = epochs * weights * (6.0 * det.n_train_rows_ + 2.0 * det.n_validation_rows_)
    achieved = flops / train_s / 1e9
    threads = max(threads_seen)
    first = det.engine_.backend.module.encoder[0]
    peak = _matmul_gflops(cfg["batch_size"], first.in_features, first.out_features, threads)
    text = (
        "| what | seconds | ratio |\n|---|---:|---:|\n"
        f"| `VAEDetector().fit`, 100,000 x 30 (24 numeric, 4 categorical, 2 binary): {epochs} epochs of "
        f"{cfg['batch_size']}-row batches on {threads} thread(s) | {vae_s:.1f} | {vae_s / iso_s:.1f}x IsolationForest |\n"
        f"| of which the training loop (all epochs, validation included) | {train_s:.1f} | "
        f"{flops / 1e9:.0f} GFLOP in linear layers: {achieved:.1f} GFLOP/s |\n"
        f"| plain `torch.mm` ({cfg['batch_size']} x {first.in_features}) @ ({first.in_features} x "
        f"{first.out_features}), {threads} thread(s) | | {peak:.1f} GFLOP/s (the fit reaches "
        f"{achieved / peak:.0%} of it) |\n"
        f"| IsolationForest(200 trees).fit, same rows (numeric columns) | {iso_s:.1f} | 1.0 |\n"
        f"| `anomaly_score` (default: ELBO at the posterior mean), 20,000 rows | {score_s:.1f} | "
        f"{20_000 / score_s:,.0f} rows/s |\n"
    )
    print(text)
    replace_section(ROOT / "BENCHMARKS.md", "fit", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
