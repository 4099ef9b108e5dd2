"""The automatic training schedule: batch size and learning rate follow the number of rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fraudvae import VAEDetector
from fraudvae.model.schedule import MAX_BATCH, MIN_EPOCHS, SMALL_BATCH, TARGET_STEPS, default_batch_size


@pytest.mark.parametrize(
    ("rows", "batch"),
    [(10, 16), (160, 16), (1_000, 100), (2_560, 256), (25_600, 256), (25_601, 257), (90_000, 900), (10**7, MAX_BATCH)],
)
def test_default_batch_size(rows: int, batch: int) -> None:
    assert default_batch_size(rows) == batch


def test_default_batch_is_unchanged_up_to_25600_rows_and_caps_steps_per_epoch_beyond() -> None:
    """Fits of up to 25,600 rows (every fit of the shared benchmark) keep the schedule they were measured with."""
    for rows in range(10, 25_601, 97):
        assert default_batch_size(rows) == int(np.clip(rows // 10, 16, SMALL_BATCH))
    for rows in (25_601, 50_000, 123_457, 204_800):
        assert math.ceil(rows / default_batch_size(rows)) <= TARGET_STEPS // MIN_EPOCHS


def _fit_config(rows: int, **params: object) -> dict[str, float]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    det = VAEDetector(random_state=0, max_epochs=1, hidden_dims=(8,), validation_fraction=0.5, **params)
    return det.fit(frame).train_config_


def test_learning_rate_scales_linearly_with_a_large_automatic_batch() -> None:
    cfg = _fit_config(60_000)  # 30,000 training rows -> 300-row batches
    assert cfg["batch_size"] == 300
    assert cfg["learning_rate"] == pytest.approx(3e-4 * 300 / SMALL_BATCH)


@pytest.mark.parametrize(("rows", "params"), [(60_000, {"batch_size": 300}), (2_000, {})])
def test_learning_rate_is_as_given_for_small_or_explicit_batches(rows: int, params: dict[str, object]) -> None:
    assert _fit_config(rows, **params)["learning_rate"] == 3e-4
