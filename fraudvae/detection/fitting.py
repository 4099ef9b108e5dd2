"""Fitting: from a validated frame of normal rows to a calibrated :class:`~fraudvae.detection.engine.Engine`.

The detector validates parameters and the container; this module does the rest in
order: infer the schema, split off validation rows, fit the preprocessor and the
backend, and calibrate every scoring plan on the validation rows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from fraudvae.data.inference import check_training_frame, infer_schema
from fraudvae.data.preprocessing import Preprocessor
from fraudvae.data.reference import reference_kinds, reference_sample
from fraudvae.detection.engine import Engine, PreparedRows
from fraudvae.detection.plan import ScoringPlan
from fraudvae.exceptions import InsufficientDataError
from fraudvae.model.backends import backend_for
from fraudvae.model.training import EpochLog

__all__ = [
    "INIT_SEED_STRIDE",
    "MIN_ROWS",
    "Fitted",
    "Init",
    "best_init",
    "calibrated_plans",
    "fit_engine",
    "validation_loss",
]

MIN_ROWS = 10
#: Fewest validation (and training) rows worth holding out; fewer share the training rows.
MIN_SPLIT_ROWS = 20
#: Initialisation ``k`` of ``n_init`` trains from seed ``seed + INIT_SEED_STRIDE * k`` (0: the seed itself).
INIT_SEED_STRIDE = 1000


@dataclass(frozen=True)
class Init:
    """One initialisation of ``n_init``: its seed and the validation loss it reached."""

    seed: int
    validation_loss: float


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
    #: Every initialisation trained (``n_init``), in order; ``best_init`` indexes the kept one.
    inits: list[Init] = field(default_factory=list)
    best_init: int = 0
    #: A sample of the training rows for drift checks (:mod:`fraudvae.data.reference`); None
    #: for models saved before it was kept.
    reference: dict[str, Any] | None = None


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

    n_init = 1 if params["kind"] == "ppca" else int(params["n_init"])  # closed form: one solution

    def on_epoch_of(k: int) -> Callable[[EpochLog], None]:
        def on_epoch(log: EpochLog) -> None:
            log = dataclasses.replace(log, init=k, n_init=n_init)
            if params["verbose"]:
                init = f"init {k + 1}/{n_init}  " if n_init > 1 else ""
                print(
                    f"{init}epoch {log.epoch:4d}  train {log.train_loss:10.4f}  val {log.val_loss:10.4f}  "
                    f"kl {log.kl:8.4f}"
                )
            if epoch_callback is not None:
                epoch_callback(log)

        return on_epoch

    enc_train, enc_val = pre.transform(train_frame), pre.transform(val_frame)
    # Already validated and encoded above: not a second pass through prepare().
    val_rows = PreparedRows(val_frame, enc_val, {}, np.arange(len(val_frame)))
    inits: list[Init] = []
    best, kept = 0, None  # only the best so far stays in memory
    for k in range(n_init):
        init_seed = seed + INIT_SEED_STRIDE * k
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            backend, result = backend_for(params["kind"]).fit(
                pre, enc_train, enc_val, params, init_seed, on_epoch_of(k)
            )
        candidate = Engine(schema, pre, backend, len(train_frame))
        inits.append(Init(init_seed, validation_loss(candidate, val_rows)))
        if k == 0 or best_init([inits[best].validation_loss, inits[k].validation_loss]) == 1:
            best, kept = k, (candidate, result)
    assert kept is not None  # init 0 is kept until a better one comes
    engine, result = kept
    default = ScoringPlan.resolve(params["scoring"], params["n_score_samples"])
    calibration = engine.calibrate(
        val_rows,
        calibrated_plans(params["n_score_samples"]),
        default,
        source="fit validation split",
        target_fpr=params["target_fpr"],
    )
    return Fitted(
        engine.with_calibration(calibration),
        seed,
        engine.backend.architecture,
        len(train_frame),
        len(val_frame),
        result.history,
        result.train_config,
        inits,
        best,
        reference_sample(clean, reference_kinds(schema), seed=seed),
    )


def validation_loss(engine: Engine, val_rows: PreparedRows) -> float:
    """Mean negative ELBO at the posterior mean of the validation rows: what picks an initialisation.

    The early-stopping criterion, through the scoring path the model will serve with, so the
    pick is made on the score users get (the exact negative log-likelihood for PPCA).
    """
    score = engine.score(val_rows, ScoringPlan("elbo", 0), sampled=False, require_calibration=False)
    return float(np.mean(score.anomaly_score))


def best_init(losses: Sequence[float]) -> int:
    """The initialisation kept: the lowest validation loss; a diverged (non-finite) one never
    wins over a finite one, and ties keep the earlier initialisation."""
    return min(range(len(losses)), key=lambda k: (losses[k] if math.isfinite(losses[k]) else math.inf, k))
