"""The mixture-of-Gaussians prior over ``z``: its KL bound, its scoring path, and its artifacts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fraudvae import VAEDetector
from fraudvae.exceptions import ConfigurationError
from fraudvae.model.backends import to_inputs
from fraudvae.model.losses import kl_diag_normal, kl_mixture_bound, log_mixture, log_normal
from fraudvae.model.scoring import seq_logsumexp, seq_sum
from fraudvae.model.training import _loss_terms


def _posterior(n: int, latent: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent, generator=g, dtype=torch.float64), 0.5 * torch.randn(
        n, latent, generator=g, dtype=torch.float64
    )


def test_one_standard_component_is_the_standard_normal_kl() -> None:
    mu, logvar = _posterior(50, 4, 0)
    zeros = torch.zeros(1, 4, dtype=torch.float64)
    bound = kl_mixture_bound(mu, logvar, zeros, zeros)
    torch.testing.assert_close(bound, kl_diag_normal(mu, logvar).sum(-1))


@pytest.mark.parametrize("components", [2, 16])
def test_the_kl_bound_lies_above_a_monte_carlo_kl(components: int) -> None:
    """The ELBO built on the bound must stay a lower bound on log p(x): the bound is never
    below the true KL, estimated here with many draws of q."""
    mu, logvar = _posterior(40, 3, 1)
    g = torch.Generator().manual_seed(2)
    prior_mu = torch.randn(components, 3, generator=g, dtype=torch.float64)
    prior_logvar = 0.3 * torch.randn(components, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(20_000, 1, 3, generator=g, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps  # (draws, rows, L)
    mc = (log_normal(z, mu, logvar) - log_mixture(z, prior_mu, prior_logvar)).mean(0)
    bound = kl_mixture_bound(mu, logvar, prior_mu, prior_logvar)
    assert bool((bound >= mc - 0.02).all()), float((mc - bound).max())
    # and it is a close bound where one component dominates (the posterior sits on it)
    near = kl_mixture_bound(prior_mu[:1], prior_logvar[:1], prior_mu, prior_logvar)
    assert float(near) <= math.log(components) + 1e-9


def test_the_position_independent_reductions_give_the_same_kl() -> None:
    mu, logvar = _posterior(30, 5, 3)
    prior_mu, prior_logvar = _posterior(16, 5, 4)
    torch.testing.assert_close(
        kl_mixture_bound(mu, logvar, prior_mu, prior_logvar, seq_sum, seq_logsumexp),
        kl_mixture_bound(mu, logvar, prior_mu, prior_logvar),
    )


@pytest.fixture(scope="module")
def mixture(normal_train: pd.DataFrame) -> VAEDetector:
    return VAEDetector(random_state=0, max_epochs=25, prior_components=8).fit(normal_train)


def test_the_prior_is_learned_and_saved_with_the_model(mixture: VAEDetector, holdout, tmp_path) -> None:
    module = mixture.engine_.backend.module
    assert module.prior_mu is not None and module.prior_mu.shape == (8, mixture.architecture_["latent_dim"])
    assert mixture.architecture_["prior_components"] == 8
    # training moved the components away from their initial draws' common scale
    assert float(module.prior_logvar.detach().abs().max()) > 1e-3
    X, _ = holdout
    mixture.save(tmp_path / "m")
    loaded = VAEDetector.load(tmp_path / "m")
    for method in ("elbo", "iwae", "reconstruction"):
        np.testing.assert_array_equal(
            loaded.anomaly_score(X.iloc[:200], scoring=method), mixture.anomaly_score(X.iloc[:200], scoring=method)
        )


def test_scoring_kl_matches_the_training_kl(mixture: VAEDetector, holdout) -> None:
    X, _ = holdout
    prepared = mixture.prepare(X.iloc[:300])
    module = mixture.engine_.backend.module
    with torch.no_grad():
        _, kl = _loss_terms(module, to_inputs(prepared.enc, torch.device("cpu")), sample=False, noise_std=0.0)
    comp = mixture.engine_.backend.components(prepared.enc, 0, iwae=False, expectations=False)
    np.testing.assert_allclose(comp.kl, kl.sum(-1).numpy(), rtol=1e-5, atol=1e-5)


def test_a_row_scores_the_same_alone_and_in_a_batch_with_a_mixture_prior(mixture: VAEDetector, holdout) -> None:
    X, _ = holdout
    batch = {m: mixture.anomaly_score(X.iloc[:300], scoring=m) for m in ("elbo", "iwae")}
    for i in (0, 137, 299):
        for m, scores in batch.items():
            assert mixture.anomaly_score(X.iloc[[i]], scoring=m)[0] == scores[i]


def test_iwae_is_tighter_than_the_sampled_elbo_with_a_mixture_prior(mixture: VAEDetector, holdout) -> None:
    """IWAE uses the exact mixture density, the ELBO its KL bound: on average IWAE's -log p(x)
    estimate must be the lower (tighter) of the two, or the prior's two code paths disagree."""
    X, _ = holdout
    det = mixture
    det.set_params(n_score_samples=32)
    try:
        elbo = det.anomaly_score(X.iloc[:500], scoring="elbo")
        iwae = det.anomaly_score(X.iloc[:500], scoring="iwae")
    finally:
        det.set_params(n_score_samples=None)
    assert float(np.mean(iwae)) < float(np.mean(elbo))


def test_the_standard_normal_prior_is_still_available(normal_train: pd.DataFrame) -> None:
    det = VAEDetector(random_state=0, max_epochs=3, prior_components=0).fit(normal_train.iloc[:500])
    assert det.engine_.backend.module.prior_mu is None
    assert det.architecture_["prior_components"] == 0


@pytest.mark.parametrize("value", [-1, 1.5, "16", True])
def test_an_invalid_prior_components_is_refused_naming_it(normal_train: pd.DataFrame, value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"prior_components=.*expected a whole number"):
        VAEDetector(prior_components=value).fit(normal_train.iloc[:100])  # type: ignore[arg-type]


def test_regression_a_model_saved_before_mixture_priors_reported_todays_prior_default() -> None:
    """Its saved parameters predate ``prior_components``: ``get_params`` (and so ``clone``) must
    describe the model that was loaded, not today's default."""
    golden = Path(__file__).resolve().parent / "golden" / "vae" / "model"
    assert "prior_components" not in json.loads((golden / "config.json").read_text())["params"]
    det = VAEDetector.load(str(golden))
    assert det.get_params()["prior_components"] == 0
    assert det.engine_.backend.module.prior_mu is None
