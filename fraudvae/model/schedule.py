"""The automatic training schedule: rows per step and epochs, from the number of rows."""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MAX_BATCH",
    "MIN_EPOCHS",
    "SMALL_BATCH",
    "STEP_BUDGET",
    "TARGET_STEPS",
    "default_batch_size",
    "default_epochs",
    "scaled_lr",
]

#: The steps per epoch the automatic batch allows on large data: an epoch is at most
#: ``TARGET_STEPS // MIN_EPOCHS`` steps (it sets the batch, not the length of the fit).
TARGET_STEPS = 2000
#: Gradient steps the automatic epoch count aims at (early stopping often ends sooner). Issue 37
#: measured 4,000: better on both held-out halves (seeds 0-2) for 1.62x the fit time, but it
#: widened the mean AUPRC spread over seeds 0-4 (0.0366 -> 0.0372), which rule 1 forbids
#: (docs/experiments/2026-12-05-held-out-halves.md).
STEP_BUDGET = 2000
#: Fewest epochs of the automatic schedule; with ``TARGET_STEPS`` it caps the steps per epoch.
MIN_EPOCHS = 20
#: Rows per step of the automatic schedule below ``TARGET_STEPS // MIN_EPOCHS * 256`` rows.
SMALL_BATCH = 256
#: Largest automatic batch (reached at 204,800 training rows; larger data gets longer epochs).
MAX_BATCH = 2048
#: Most automatic epochs (tiny data would otherwise ask for thousands).
MAX_EPOCHS = 400


def default_batch_size(n: int) -> int:
    """Rows per gradient step when ``batch_size`` is None.

    A tenth of the rows, between 16 and 256, up to 25,600 rows. Beyond that the
    batch grows with the rows so that an epoch is at most ``TARGET_STEPS / MIN_EPOCHS``
    steps: every automatic fit then takes about the same number of optimizer steps,
    and large data buys larger, cheaper-per-row steps rather than more of them (a
    256-row step spends most of its time in per-operation overhead, not arithmetic;
    BENCHMARKS.md, fit time).
    """
    small = int(np.clip(n // 10, 16, SMALL_BATCH))
    return int(min(MAX_BATCH, max(small, math.ceil(n / (TARGET_STEPS // MIN_EPOCHS)))))


def default_epochs(n: int, batch: int, *, steps: int = STEP_BUDGET, most: int = MAX_EPOCHS) -> int:
    """About ``steps`` optimizer steps, at least ``MIN_EPOCHS`` and at most ``most`` epochs.

    The budget is a parameter so that a measurement of longer schedules
    (``benchmarks/underfit.py``) runs this rule, not a copy of it.
    """
    per_epoch = math.ceil(n / batch)
    return int(np.clip(math.ceil(steps / per_epoch), MIN_EPOCHS, most))


def scaled_lr(learning_rate: float, batch: int, automatic: bool) -> float:
    """Larger automatic batches take fewer steps per epoch; the linear scaling rule
    (Goyal et al., 2017) keeps each row's share of an epoch's progress. The square-root
    rule lost AUPRC on large data (docs/experiments/2026-11-23-large-training-sets.md)."""
    return learning_rate * (batch / SMALL_BATCH if automatic and batch > SMALL_BATCH else 1.0)
