"""Pure loss functions. Each returns per-row, per-feature terms (no reduction).

Keeping the terms unreduced is what makes a score split exactly into per-feature
contributions: the training loss, the negative ELBO and the reconstruction score
are all sums of the same matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from fraudvae.model.network import DecoderOutput, Inputs

__all__ = [
    "bernoulli_nll",
    "feature_nll",
    "gaussian_nll",
    "kl_diag_normal",
    "kl_mixture_bound",
    "log_mixture",
    "log_normal",
]

_LOG_2PI = math.log(2 * math.pi)
#: A binary value off its two training levels (possible for numeric 0/1 columns) is
#: charged as a Gaussian deviation of this width from the nearest level.
_OFF_LEVEL_SCALE = 0.05


def gaussian_nll(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (_LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))


def bernoulli_nll(t: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    t = t.expand_as(logits)
    clipped = t.clamp(0.0, 1.0)
    off = (t - clipped) / _OFF_LEVEL_SCALE
    return F.binary_cross_entropy_with_logits(logits, clipped, reduction="none") + 0.5 * off**2


def kl_diag_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dimension, in closed form."""
    return 0.5 * (mu**2 + torch.exp(logvar) - 1.0 - logvar)


def _sum(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.sum(dim)


def _logsumexp(t: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.logsumexp(t, dim)


Reduce = Callable[[torch.Tensor, int], torch.Tensor]


def kl_mixture_bound(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    prior_mu: torch.Tensor,
    prior_logvar: torch.Tensor,
    reduce: Reduce = _sum,
    logsumexp: Reduce = _logsumexp,
) -> torch.Tensor:
    """An upper bound on KL(q(z|x) || p(z)) for the prior ``p = (1/K) sum_k N(m_k, diag s_k^2)``, per row.

    The KL to a mixture has no closed form; ``-log (1/K) sum_k exp(-KL(q || p_k))`` bounds it
    from above (Hershey & Olsen, 2007: Jensen's inequality with the best weights over the
    components), so the ELBO built on it is still a lower bound on ``log p(x)``; it is closed
    form and deterministic, so training and scoring use the same term. With one component at
    the origin with unit variance it is :func:`kl_diag_normal` summed. ``mu`` and ``logvar``
    are ``(..., L)``, the prior's ``(K, L)``; the result is ``(...)``. Scoring passes
    position-independent reductions (see :mod:`fraudvae.model.scoring`).
    """
    m, lv = mu.unsqueeze(-2), logvar.unsqueeze(-2)
    per_component = 0.5 * reduce(
        prior_logvar - lv + (torch.exp(lv) + (m - prior_mu) ** 2) * torch.exp(-prior_logvar) - 1.0, -1
    )
    return math.log(prior_mu.shape[0]) - logsumexp(-per_component, -1)


def log_mixture(
    z: torch.Tensor,
    prior_mu: torch.Tensor,
    prior_logvar: torch.Tensor,
    reduce: Reduce = _sum,
    logsumexp: Reduce = _logsumexp,
) -> torch.Tensor:
    """``log p(z)`` under the equal-weight mixture prior of :func:`kl_mixture_bound`, ``(..., L) -> (...)``."""
    per_component = log_normal(z.unsqueeze(-2), prior_mu, prior_logvar, reduce)
    return logsumexp(per_component, -1) - math.log(prior_mu.shape[0])


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, reduce: Reduce = _sum) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension.

    Scoring passes a sequential ``reduce`` so the sum rounds the same at every memory
    position (see :mod:`fraudvae.model.scoring`).
    """
    return -0.5 * reduce(_LOG_2PI + logvar + (z - mu) ** 2 * torch.exp(-logvar), -1)


def feature_nll(x: Inputs, out: DecoderOutput, nullable_num: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of each feature, shape ``(..., n_features)`` in internal order.

    ``out`` may carry leading sample dimensions (``(K, n, ...)``); ``x`` broadcasts.
    A numeric feature's term is the Gaussian term of its observed value plus the
    Bernoulli term of its missing indicator (when the feature was nullable in training).
    """
    num = gaussian_nll(x.num, out.num_mu, out.num_logvar) * x.num_obs
    if nullable_num.numel():
        miss_target = 1.0 - x.num_obs[..., nullable_num]
        miss = F.binary_cross_entropy_with_logits(
            out.miss_logits, miss_target.expand_as(out.miss_logits), reduction="none"
        )
        num = num.index_add(-1, nullable_num, miss)
    parts = [num, bernoulli_nll(x.bin, out.bin_logits)]
    for j, logits in enumerate(out.cat_logits):
        logp = torch.log_softmax(logits, dim=-1)
        idx = x.cat[..., j].expand(logits.shape[:-1]).unsqueeze(-1)
        parts.append(-logp.gather(-1, idx))
    return torch.cat(parts, dim=-1)
