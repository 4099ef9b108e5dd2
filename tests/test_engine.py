"""The engine under the facade: scoring plans, per-plan calibration, one forward pass.

Includes the regression tests of two bugs of the single-class detector:
``score_frame(scoring=m)`` used the fitted method's threshold, p-value reference and
explanation baseline for another method's scores; and ``set_params(n_score_samples=k)``
on a fitted detector kept the draws of the old count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from fraudvae import VAEDetector
from fraudvae.detection.plan import IWAE_DEFAULT_DRAWS, ScoringPlan
from fraudvae.exceptions import ConfigurationError, NotCalibratedError
from fraudvae.model.backends import to_inputs
from fraudvae.model.network import run_chunked


@pytest.fixture(scope="module")
def small(normal_train: pd.DataFrame) -> VAEDetector:
    return VAEDetector(random_state=0, max_epochs=3).fit(normal_train)


@pytest.mark.parametrize("method", ["reconstruction", "iwae"])
def test_score_frame_with_another_scoring_uses_that_methods_threshold(small: VAEDetector, holdout, method: str) -> None:
    X, _ = holdout
    plans = small.calibration_["plans"]
    result = small.score_frame(X, scoring=method, explain_top_k=1)
    own = plans[small.scoring_plan(method).key]
    assert result.threshold == own["threshold"] != plans["elbo"]["threshold"]
    np.testing.assert_array_equal(result.is_anomaly, result.anomaly_score > own["threshold"])
    reference = np.asarray(own["reference_scores"])
    expected_p = (1 + (reference[None, :] >= result.anomaly_score[:, None]).sum(1)) / (reference.size + 1)
    np.testing.assert_allclose(result.p_value, expected_p)
    np.testing.assert_allclose(result.excess, result.contributions - np.asarray(own["feature_baseline"]))


def test_fit_calibrates_every_method(small: VAEDetector) -> None:
    assert sorted(small.calibration_["plans"]) == ["elbo", f"iwae@{IWAE_DEFAULT_DRAWS}", "reconstruction"]
    assert small.calibration_["plan"] == "elbo"


def test_set_params_n_score_samples_after_fit_takes_effect(small: VAEDetector, normal_train, holdout) -> None:
    X, _ = holdout
    det = VAEDetector(random_state=0, max_epochs=3).fit(normal_train)
    direct = VAEDetector(random_state=0, max_epochs=3, n_score_samples=4).fit(normal_train)  # same network
    det.set_params(n_score_samples=4)
    for method in ("elbo", "iwae"):
        np.testing.assert_array_equal(det.anomaly_score(X, scoring=method), direct.anomaly_score(X, scoring=method))
    # Thresholds belong to plans: the new one needs calibrating before it flags anything.
    with pytest.raises(NotCalibratedError, match="elbo over 4 draws"):
        det.flag(X)
    det.calibrate(normal_train.iloc[:1000])
    assert det.calibration_["plan"] == "elbo@4"
    assert det.flag(X).shape == (len(X),)


def test_set_params_after_fit_refuses_what_would_need_a_refit(small: VAEDetector) -> None:
    det = clone(small).set_params(hidden_dims=(8,))  # unfitted: anything goes
    assert det.hidden_dims == (8,)
    with pytest.raises(ConfigurationError, match=r"\['hidden_dims', 'kind'\].*clone"):
        small.set_params(hidden_dims=(8,), kind="ae")
    with pytest.raises(ConfigurationError, match="n_score_samples=0"):
        small.set_params(scoring="iwae", n_score_samples=0)
    assert small.scoring == "elbo" and small.n_score_samples is None  # nothing applied
    small.set_params(hidden_dims=small.hidden_dims, verbose=False)  # unchanged values are fine


def test_switching_the_scoring_of_a_fitted_detector_switches_its_threshold(small: VAEDetector, holdout) -> None:
    X, _ = holdout
    det = clone(small)
    det.__dict__.update({k: v for k, v in small.__dict__.items() if k.endswith("_")})
    det.set_params(scoring="reconstruction")
    assert det.threshold_ == small.calibration_["plans"]["reconstruction"]["threshold"]
    np.testing.assert_array_equal(det.flag(X), small.score_frame(X, scoring="reconstruction").is_anomaly)


@pytest.mark.parametrize(
    ("method", "draws", "key"),
    [("elbo", 0, "elbo"), ("elbo", 8, "elbo@8"), ("reconstruction", 8, "reconstruction"), ("iwae", 16, "iwae@16")],
)
def test_plan_keys(method: str, draws: int, key: str) -> None:
    assert ScoringPlan(method, draws).key == key


def test_prepare_then_score_prepared_equals_score_frame(small: VAEDetector, holdout) -> None:
    X, _ = holdout
    prepared = small.prepare(X.iloc[:300])
    split = small.score_prepared(prepared, explain_top_k=2)
    whole = small.score_frame(X.iloc[:300], explain_top_k=2)
    np.testing.assert_array_equal(split.anomaly_score, whole.anomaly_score)
    assert split.top_features(2) == whole.top_features(2)


def test_the_scoring_forward_pass_matches_the_training_forward_pass(small: VAEDetector, holdout) -> None:
    """Scoring runs the network through fixed-shape chunks (``run_chunked``); training runs
    ``nn.Sequential``. Both must be the same function, or scores would drift from the model."""
    X, _ = holdout
    module = small.engine_.backend.module
    x = to_inputs(small.prepare(X.iloc[:512]).enc, torch.device("cpu"))
    with torch.no_grad():
        mu_train, logvar_train = module.encode(x)
        out_train = module.decode(mu_train)
        mu, logvar = module.encode_chunks(x, 2)
        out = module.decode_chunks(mu, 2)
    torch.testing.assert_close(mu, mu_train, rtol=1e-5, atol=1e-5)
    assert logvar is not None and logvar_train is not None
    torch.testing.assert_close(logvar, logvar_train, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.num_mu, out_train.num_mu, rtol=1e-5, atol=1e-5)
    for a, b in zip(out.cat_logits, out_train.cat_logits, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_layer_without_a_deterministic_kernel_is_refused() -> None:
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(TypeError, match="ReLU"):
        run_chunked(mlp, torch.zeros(8, 3), 2)


@pytest.mark.parametrize("method", ["elbo", "reconstruction", "iwae"])
def test_a_lone_row_is_explained_in_one_pass_with_the_same_result_as_in_a_batch(
    small: VAEDetector, holdout, method: str
) -> None:
    """A few rows share one chunk with their one-feature-typical variants (one forward pass,
    the service's /score); in a larger batch the ranking takes a second pass over the
    candidates only. Both must give the same bits: scores, rankings, drops, explanations."""
    X, _ = holdout
    X = X.iloc[:120].reset_index(drop=True)
    X.loc[[3, 7], "amount"] = np.nan  # never missing in training: scored as evidence
    batch = small.score_frame(X, scoring=method, explain_top_k=3)
    assert batch.ranking is not None and batch.drops is not None
    for i in (0, 3, 7, 42):
        alone = small.score_frame(X.iloc[[i]], scoring=method, explain_top_k=3)
        assert alone.ranking is not None and alone.drops is not None
        np.testing.assert_array_equal(alone.anomaly_score, batch.anomaly_score[[i]])
        np.testing.assert_array_equal(alone.ranking, batch.ranking[[i]])
        np.testing.assert_array_equal(alone.drops, batch.drops[[i]])
        assert alone.top_features(3) == [batch.top_features(3)[i]]
    names = [item["feature"] for item in small.score_frame(X.iloc[[3]], explain_top_k=3).top_features(3)[0]]
    assert "amount" in names
