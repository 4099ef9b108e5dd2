"""Fitting: from a validated frame of normal rows to a calibrated :class:`~fraudvae.engine.Engine`.

The detector validates parameters and the container; this module does the rest in
order: infer the schema, split off validation rows, fit the preprocessor and the
backend, and calibrate every scoring plan on the validation rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from fraudvae.backends import backend_for
from fraudvae.engine import Engine, PreparedRows
from fraudvae.exceptions import InsufficientDataError
from fraudvae.inference import check_training_frame, infer_schema
from fraudvae.plan import ScoringPlan
from fraudvae.preprocessing import Preprocessor
from fraudvae.training import EpochLog

__all__ = ["MIN_ROWS", "Fitted", "calibrated_plans", "fit_engine"]

MIN_ROWS = 10
#: Fewest validation (and training) rows worth holding out; fewer share the training rows.
MIN_SPLIT_ROWS = 20


@dataclass
class Fitted:
    """A fitted engine and what the detector records about how it was fitted."""

    engine: Engine
    seed: int
    architecture: dict[str, Any]
    n_train_rows: int
    n_validation_rows: int
    history: list[dict[str, float]]
    train_config: dict[str, Any] | None


def calibrated_plans(n_score_samples: int | None) -> list[ScoringPlan]:
    """The plans ``fit`` and ``calibrate`` calibrate: every method, with the detector's draws."""
    plans = [ScoringPlan.resolve("elbo", n_score_samples), ScoringPlan.resolve("reconstruction", None)]
    if n_score_samples != 0:
        plans.append(ScoringPlan.resolve("iwae", n_score_samples))
    return plans


def fit_engine(
    frame: pd.DataFrame,
    params: Mapping[str, Any],
    epoch_callback: Callable[[EpochLog], None] | None = None,
) -> Fitted:
    """Fit on ``frame`` (string column names) with the detector's parameters ``params``."""
    n = len(frame)
    if n < MIN_ROWS:
        raise InsufficientDataError(
            f"Got {n} sample(s) (rows) to fit on; expected at least {MIN_ROWS}. Fit on more normal rows."
        )
    if frame.shape[1] == 0:
        raise InsufficientDataError("Got a frame with 0 columns; expected at least one feature column.")
    schema = infer_schema(frame, params["column_types"], max_categories=params["max_categories"])
    check_training_frame(frame, schema)
    clean = schema.validate_frame(frame).frame
    random_state = params["random_state"]
    seed = int(random_state) if random_state is not None else int(np.random.randint(0, 2**31 - 1))
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(params["validation_fraction"] * n)
    if n_val < MIN_SPLIT_ROWS or n - n_val < MIN_SPLIT_ROWS:
        train_idx, val_idx = perm, perm  # too few rows to spare: both steps use the training rows
    else:
        train_idx, val_idx = perm[n_val:], perm[:n_val]
    train_frame = clean.iloc[np.sort(train_idx)].reset_index(drop=True)
    val_frame = clean.iloc[np.sort(val_idx)].reset_index(drop=True)
    pre = Preprocessor.fit(
        train_frame, schema, max_categories=params["max_categories"], min_category_count=params["min_category_count"]
    )

    def on_epoch(log: EpochLog) -> None:
        if params["verbose"]:
            print(f"epoch {log.epoch:4d}  train {log.train_loss:10.4f}  val {log.val_loss:10.4f}  kl {log.kl:8.4f}")
        if epoch_callback is not None:
            epoch_callback(log)

    enc_val = pre.transform(val_frame)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backend, result = backend_for(params["kind"]).fit(
            pre, pre.transform(train_frame), enc_val, params, seed, on_epoch
        )
    default = ScoringPlan.resolve(params["scoring"], params["n_score_samples"])
    engine = Engine(schema, pre, backend, len(train_frame))
    calibration = engine.calibrate(
        # Already validated and encoded above: not a second pass through prepare().
        PreparedRows(val_frame, enc_val, {}, np.arange(len(val_frame))),
        calibrated_plans(params["n_score_samples"]),
        default,
        source="fit validation split",
        target_fpr=params["target_fpr"],
    )
    return Fitted(
        engine.with_calibration(calibration),
        seed,
        backend.architecture,
        len(train_frame),
        len(val_frame),
        result.history,
        result.train_config,
    )
