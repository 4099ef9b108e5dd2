"""Generated tables for the speed benchmarks: 30 columns (24 numeric, 4 categorical, 2 binary)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def wide_table(n_rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_rows, 4))
    mixing = rng.normal(size=(4, 24))
    numeric = latent @ mixing + 0.3 * rng.normal(size=(n_rows, 24))
    numeric[:, 0] = np.exp(numeric[:, 0] / 3 + 3)  # an amount-like heavy tail
    frame = pd.DataFrame(numeric, columns=[f"n{i:02d}" for i in range(24)])
    for i, levels in enumerate((5, 12, 30, 80)):
        frame[f"c{i}"] = np.char.add(f"c{i}_", rng.integers(0, levels, n_rows).astype(str))
    frame["b0"] = rng.random(n_rows) < 0.3
    frame["b1"] = (latent[:, 0] > 0).astype(np.int64)
    return frame
