"""The under-fit probe (``benchmarks/underfit.py``) fits what it is asked to, and leaves the product as it was.

A configuration name it did not know would fit the default silently, and a training budget
left patched would lengthen every later fit in the process.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.underfit import _batch, _budget, _decays, parse
from fraudvae import VAEDetector
from fraudvae.model import backends, schedule, training


@pytest.mark.parametrize(
    ("config", "parts"),
    [
        ("default", {}),
        ("steps8000", {"steps": 8000.0}),
        ("steps8000+lr1e-3", {"steps": 8000.0, "lr": 1e-3}),
        ("latent3+prior64", {"latent": 3.0, "prior": 64.0}),
        ("steps32000+patience50", {"steps": 32000.0, "patience": 50.0}),
        ("gmm64", {"gmm": 64.0}),
        ("lr0.001", {"lr": 1e-3}),
        ("steps8000+decay3", {"steps": 8000.0, "decay": 3.0}),
        ("batch1024+steps32000+patience50", {"batch": 1024.0, "steps": 32000.0, "patience": 50.0}),
    ],
)
def test_configurations_parse_into_their_parts(config: str, parts: dict[str, float]) -> None:
    assert parse(config) == parts


@pytest.mark.parametrize(
    "config", ["", "bogus", "steps", "steps0", "steps-5", "Steps8000", "steps8000+steps4000", "gmm64+lr1e-3", "lr"]
)
def test_regression_underfit_probe_would_fit_the_default_for_an_unknown_configuration(config: str) -> None:
    with pytest.raises(ValueError, match=r"configuration|gmmK"):
        parse(config)


def test_the_budget_sets_the_epochs_of_its_own_fits_only() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    params = {"hidden_dims": (8,), "prior_components": 2, "patience": 10_000, "random_state": 0}
    with _budget(schedule.STEP_BUDGET // 4):
        fitted = VAEDetector(**params).fit(X)
    # 360 training rows in batches of 36: 10 steps an epoch, so 50 epochs for the budget's
    # 500 steps, where the schedule's 2000 steps take 200.
    assert fitted.train_config_["max_epochs"] == len(fitted.history_) == 50
    assert backends.default_epochs is schedule.default_epochs  # restored for every later fit
    assert backends.default_epochs(360, 36) == 200


def test_the_batch_and_decay_parts_patch_their_own_fits_only() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    params = {"hidden_dims": (8,), "max_epochs": 3, "random_state": 0}
    with _batch(1024), _decays(2):
        fitted = VAEDetector(**params).fit(X)
    # 2,700 training rows: a tenth is 270 rows a step, above the default's 256, and the
    # automatic learning rate scales with it.
    assert fitted.train_config_["batch_size"] == 270
    assert fitted.train_config_["learning_rate"] == pytest.approx(3e-4 * 270 / 256)
    assert fitted.train_config_["decays"] == 2
    assert backends.default_batch_size is schedule.default_batch_size
    assert backends.TrainConfig is training.TrainConfig
    assert VAEDetector(**params).fit(X).train_config_["decays"] == 0
