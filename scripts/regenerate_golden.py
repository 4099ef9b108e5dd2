"""Regenerate the golden models and their expected scores (tests/golden/).

The golden test (tests/test_golden.py) loads models saved by an earlier fraudvae and
checks that today's code scores them exactly as recorded. Regenerate only when a change
is *meant* to alter scores, and say so in the commit message:

    .venv/bin/python scripts/regenerate_golden.py            (all of them)
    .venv/bin/python scripts/regenerate_golden.py vae_mixture  (one new model; the others stay)

Each model is fitted on the built-in demo data (small, so the files stay small), saved
to ``tests/golden/<name>/``, and its scores on fixed rows are written to
``tests/golden/<name>/expected.json`` as exact float hex strings, with the CPU flags of
the machine that wrote them (other CPU types may round the last bits differently).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fraudvae import VAEDetector
from fraudvae.datasets import LABEL_COLUMN, make_transactions

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
#: name -> constructor parameters of each golden model.
MODELS: dict[str, dict[str, object]] = {
    "vae": {"random_state": 0, "max_epochs": 3, "hidden_dims": (32, 16), "prior_components": 0},
    "vae_draws": {
        "random_state": 1,
        "max_epochs": 3,
        "hidden_dims": (32, 16),
        "n_score_samples": 4,
        "prior_components": 0,
    },
    # The mixture prior's KL bound and (with draws) its exact log-density in IWAE.
    "vae_mixture": {
        "random_state": 2,
        "max_epochs": 3,
        "hidden_dims": (32, 16),
        "n_score_samples": 4,
        "prior_components": 8,
    },
    "ppca": {"kind": "ppca", "random_state": 0},
}


def golden_rows() -> tuple:
    """Training rows and the rows the expected scores are recorded on."""
    data = make_transactions(1500, fraud_rate=0.02, random_state=7).drop(columns=["transaction_id"])
    normal = data[data[LABEL_COLUMN] == 0].drop(columns=[LABEL_COLUMN])
    rows = data.drop(columns=[LABEL_COLUMN]).iloc[-120:].reset_index(drop=True)
    return normal.iloc[:1000].reset_index(drop=True), rows


def cpu_flags() -> list[str]:
    """The SIMD flags that decide which BLAS kernels run (and so the last bits of a score)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            return sorted(f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "fma", "sse4")))
    return []


def expected_scores(det: VAEDetector, rows) -> dict[str, object]:
    out: dict[str, object] = {}
    for method in ("elbo", "reconstruction", "iwae"):
        if method == "iwae" and det.n_score_samples == 0:
            continue
        result = det.score_frame(rows, scoring=method) if method == det.scoring else None
        scores = det.anomaly_score(rows, scoring=method)
        out[method] = [float(s).hex() for s in scores]
        if result is not None:
            out["is_anomaly"] = [bool(b) for b in result.is_anomaly]
            out["p_value"] = [float(p).hex() for p in result.p_value]
    return out


def main(names: list[str]) -> None:
    train, rows = golden_rows()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    if not names:
        rows.to_parquet(GOLDEN / "rows.parquet", index=False)  # scored rows, fixed even if the generator changes
    rows = pd.read_parquet(GOLDEN / "rows.parquet")
    for name, params in MODELS.items():
        if names and name not in names:
            continue
        target = GOLDEN / name
        if target.exists():
            shutil.rmtree(target)
        det = VAEDetector(**params).fit(train)  # type: ignore[arg-type]
        det.save(str(target / "model"))
        loaded = VAEDetector.load(str(target / "model"))
        record = {"cpu_flags": cpu_flags(), "scores": expected_scores(loaded, rows)}
        (target / "expected.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{name}: {np.mean([float.fromhex(s) for s in record['scores']['elbo']]):.4f} mean ELBO score")


if __name__ == "__main__":
    main(sys.argv[1:])
