"""A small training loop: AdamW, KL warm-up, free bits, early stopping (optionally after
learning-rate cuts on a plateau, off in the default fit: docs/experiments/2026-12-05-underfit.md).

It takes a module and encoded tensors and returns the best weights it saw on the
validation rows plus a history; it knows nothing about pandas or artifacts.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from fraudvae.model.losses import feature_nll, kl_diag_normal, kl_mixture_bound
from fraudvae.model.network import Inputs, TabularVAE

__all__ = ["EpochLog", "TrainConfig", "train"]


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    beta: float
    kl_warmup_epochs: int
    free_bits: float
    patience: int
    noise_std: float  # input corruption of the denoising autoencoder
    #: On a plateau of ``patience`` epochs, multiply the learning rate by ``lr_decay`` and go
    #: on, at most ``decays`` times; the next plateau ends the fit (0: the first one does).
    decays: int = 0
    lr_decay: float = 0.3


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    kl: float
    beta: float
    seconds: float
    max_epochs: int
    #: Which of the detector's ``n_init`` initialisations this epoch trains (set by the fit).
    init: int = 0
    n_init: int = 1

    def as_dict(self) -> dict[str, float]:
        """The epoch as a history entry (a history is one initialisation's: no init fields)."""
        return {k: float(v) for k, v in self.__dict__.items() if k not in ("init", "n_init")}


def _loss_terms(module: TabularVAE, x: Inputs, *, sample: bool, noise_std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction NLL per row, and KL per row: per latent dimension under the standard
    normal prior ``(n, L)``, as one bound under a mixture prior ``(n, 1)``."""
    noise = None
    if noise_std > 0 and module.training:
        noise = noise_std * torch.randn(x.num.shape[0], module.input_dim, device=x.num.device)
    mu, logvar = module.encode(x, noise)
    if logvar is None:
        z, kl = mu, torch.zeros_like(mu)
    else:
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        prior = module.mixture_prior()
        kl = kl_diag_normal(mu, logvar) if prior is None else kl_mixture_bound(mu, logvar, *prior).unsqueeze(-1)
    rec = feature_nll(x, module.decode(z), module.nullable_num).sum(-1)
    return rec, kl


def _slice(x: Inputs, idx: torch.Tensor) -> Inputs:
    return Inputs(x.num[idx], x.num_obs[idx], x.bin[idx], x.cat[idx])


def evaluate_loss(module: TabularVAE, x: Inputs, batch_size: int = 4096) -> float:
    """Mean negative ELBO at the posterior mean (deterministic, for early stopping)."""
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, x.num.shape[0], batch_size):
            idx = torch.arange(start, min(start + batch_size, x.num.shape[0]), device=x.num.device)
            rec, kl = _loss_terms(module, _slice(x, idx), sample=False, noise_std=0.0)
            total += float((rec + kl.sum(-1)).sum())
    return total / max(1, x.num.shape[0])


def train(
    module: TabularVAE,
    train_x: Inputs,
    val_x: Inputs,
    config: TrainConfig,
    generator: torch.Generator,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Fit ``module`` in place and load the weights of its best validation epoch.

    Free bits (Kingma et al., 2016) keep each latent dimension's batch-mean KL from
    being pushed below ``free_bits`` nats, and the warm-up ramps the KL weight from 0
    to ``beta``; together they guard against posterior collapse, where the decoder
    ignores ``z`` and the VAE degenerates to a density over marginals.
    """
    opt = torch.optim.AdamW(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    n = train_x.num.shape[0]
    steps_per_epoch = max(1, math.ceil(n / config.batch_size))
    best_state = copy.deepcopy(module.state_dict())
    best_val, bad_epochs, decayed = math.inf, 0, 0
    history: list[EpochLog] = []
    noise_std = config.noise_std if module.kind == "dae" else 0.0
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        beta = config.beta * min(1.0, epoch / max(1, config.kl_warmup_epochs))
        module.train()
        perm = torch.randperm(n, generator=generator).to(train_x.num.device)
        total, total_kl = 0.0, 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
            rec, kl = _loss_terms(module, _slice(train_x, idx), sample=True, noise_std=noise_std)
            kl_dims = kl.mean(0)
            # Free bits per latent dimension; a mixture prior's one KL term gets them all.
            floor = config.free_bits * module.latent_dim / kl_dims.numel()
            kl_term = torch.clamp(kl_dims, min=floor).sum() if module.kind == "vae" else kl_dims.sum()
            loss = rec.mean() + beta * kl_term
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            opt.step()
            total += float(loss.detach()) * idx.numel()
            total_kl += float(kl.detach().sum())
        val = evaluate_loss(module, val_x)
        log = EpochLog(epoch, total / n, val, total_kl / n, beta, time.perf_counter() - started, config.max_epochs)
        history.append(log)
        if on_epoch is not None:
            on_epoch(log)
        # Only epochs at full KL weight are comparable; during warm-up keep training.
        if epoch >= config.kl_warmup_epochs:
            if math.isinf(best_val) or val < best_val - 1e-4 * max(1.0, abs(best_val)):
                best_val, bad_epochs = val, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                bad_epochs += 1
                if bad_epochs >= config.patience:
                    if decayed >= config.decays:
                        break
                    decayed, bad_epochs = decayed + 1, 0
                    for group in opt.param_groups:
                        group["lr"] *= config.lr_decay
        else:
            best_state = copy.deepcopy(module.state_dict())
    module.load_state_dict(best_state)
    module.eval()
    return history
