"""Training behaviour: the KL stays alive, early stopping restores the best epoch."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from fraudvae import VAEDetector
from fraudvae.model.network import Inputs, TabularVAE
from fraudvae.model.training import TrainConfig, evaluate_loss, train


def _toy_inputs(n: int, seed: int) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g)
    num = torch.cat([z, z @ torch.tensor([[1.0, -0.5], [0.3, 2.0]]) + 0.1 * torch.randn(n, 2, generator=g)], dim=1)
    return Inputs(num, torch.ones_like(num), torch.zeros(n, 0), torch.zeros(n, 0, dtype=torch.long))


def _toy_config(**changes: Any) -> TrainConfig:
    base = TrainConfig(
        max_epochs=40,
        batch_size=64,
        learning_rate=3e-3,
        weight_decay=0.0,
        beta=1.0,
        kl_warmup_epochs=3,
        free_bits=0.0,
        patience=4,
        noise_std=0.1,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("kind", ["vae", "ae", "dae"])
def test_training_keeps_the_best_validation_epoch(kind: str) -> None:
    torch.manual_seed(0)
    module = TabularVAE(4, [], 0, [], 2, (16,), kind)  # type: ignore[arg-type]
    config = _toy_config()
    val = _toy_inputs(300, 1)
    history = train(module, _toy_inputs(1000, 0), val, config, torch.Generator().manual_seed(0))
    comparable = [h.val_loss for h in history if h.epoch >= config.kl_warmup_epochs]
    assert evaluate_loss(module, val) == pytest.approx(min(comparable), rel=1e-6)
    assert history[0].train_loss > history[-1].train_loss, "training must reduce the loss"


def test_history_is_recorded(fitted: VAEDetector) -> None:
    assert len(fitted.history_) >= 1
    assert set(fitted.history_[0]) == {"epoch", "train_loss", "val_loss", "kl", "beta", "seconds", "max_epochs"}


def test_a_plateau_decays_the_learning_rate_before_it_ends_the_fit() -> None:
    """``decays`` turns the first plateaus into learning-rate cuts: the fit is the undecayed
    one up to its stopping epoch, then goes on, and still returns its best epoch's weights."""

    def fit(decays: int) -> tuple[list[float], float]:
        torch.manual_seed(0)
        module = TabularVAE(4, [], 0, [], 2, (16,), "vae")  # type: ignore[arg-type]
        config = _toy_config(
            max_epochs=300, learning_rate=1e-2, kl_warmup_epochs=2, patience=3, noise_std=0.0, decays=decays
        )
        val = _toy_inputs(300, 1)
        history = train(module, _toy_inputs(600, 0), val, config, torch.Generator().manual_seed(0))
        return [h.val_loss for h in history], evaluate_loss(module, val)

    plain, plain_best = fit(0)
    decayed, decayed_best = fit(2)
    assert len(plain) < len(decayed) < 300, "two plateaus must cut the rate, the third must end the fit"
    assert decayed[: len(plain)] == plain, "before the first plateau nothing may differ"
    assert decayed_best == pytest.approx(min(decayed[1:]), rel=1e-6)
    assert decayed_best <= plain_best
