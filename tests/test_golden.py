"""Models saved by an earlier fraudvae score exactly as they did (regenerate: scripts/regenerate_golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudvae import VAEDetector

GOLDEN = Path(__file__).resolve().parent / "golden"
NAMES = sorted(p.name for p in GOLDEN.iterdir() if (p / "expected.json").is_file())


def _cpu_flags() -> list[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("regen", GOLDEN.parents[1] / "scripts" / "regenerate_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.cpu_flags())


def test_the_golden_set_is_complete() -> None:
    assert NAMES == ["ppca", "vae", "vae_draws", "vae_mixture"]


@pytest.mark.parametrize("name", NAMES)
def test_a_model_saved_before_the_change_scores_as_recorded(name: str) -> None:
    """Bit-identical on the CPU type that recorded them; elsewhere BLAS kernels may round
    the last bits differently (float32 network), so other CPU types get a 1e-5 tolerance."""
    record = json.loads((GOLDEN / name / "expected.json").read_text())
    rows = pd.read_parquet(GOLDEN / "rows.parquet")
    det = VAEDetector.load(str(GOLDEN / name / "model"))
    same_cpu = record["cpu_flags"] == _cpu_flags()
    for method, hexes in record["scores"].items():
        if method in ("is_anomaly", "p_value"):
            continue
        expected = np.array([float.fromhex(h) for h in hexes])
        got = det.anomaly_score(rows, scoring=method)
        if same_cpu:
            np.testing.assert_array_equal(got, expected, err_msg=f"{name}/{method}")
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"{name}/{method}")
    result = det.score_frame(rows)
    np.testing.assert_array_equal(result.is_anomaly, np.array(record["scores"]["is_anomaly"]))
    p_expected = np.array([float.fromhex(h) for h in record["scores"]["p_value"]])
    np.testing.assert_allclose(result.p_value, p_expected, atol=0 if same_cpu else 1e-2)
