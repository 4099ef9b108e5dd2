"""The network: a plain ``nn.Module`` with one output head per column type.

It knows nothing about pandas, schemas or scores. The decoder emits, for every
row, a Gaussian mean and log-variance per numeric feature, a logit per missing
indicator and per binary feature, and a logit vector per categorical feature. The
prior over ``z`` is the standard normal or a learned mixture of Gaussians.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DecoderOutput", "Inputs", "TabularVAE", "design_tensor", "design_to_feature", "run_chunked"]

#: Smallest decoder variance (in robust-scaled units). Without a floor, a feature the
#: decoder can predict exactly drives its variance to zero and its likelihood to
#: infinity, and that one feature then dominates every score. Discrete features get a
#: larger, per-feature floor (see ``Preprocessor``).
MIN_VARIANCE = 1e-3


@dataclass
class Inputs:
    """A batch as tensors (see :class:`fraudvae.data.preprocessing.Encoded`)."""

    num: torch.Tensor
    num_obs: torch.Tensor
    bin: torch.Tensor
    cat: torch.Tensor


@dataclass
class DecoderOutput:
    num_mu: torch.Tensor
    num_logvar: torch.Tensor
    miss_logits: torch.Tensor
    bin_logits: torch.Tensor
    cat_logits: list[torch.Tensor]


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))`` from ``exp`` and ``log1p`` (see :class:`SiLU`); linear above 20 like torch's."""
    if torch.is_grad_enabled() and x.requires_grad:
        return F.softplus(x)  # training, as in SiLU
    return torch.where(x > 20.0, x, torch.log1p(torch.exp(x.clamp(max=20.0))))


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))`` from ``exp`` (see :class:`SiLU`)."""
    return 1.0 / (1.0 + torch.exp(-x.clamp(min=-80.0)))


class SiLU(nn.Module):
    """``x * sigmoid(x)`` built from ``exp``, so every element rounds the same wherever it sits.

    torch's fused ``silu``, ``sigmoid`` and ``softplus`` kernels round an element
    differently (by one unit in the last place) in their vectorised body and in their
    scalar tail, and where that tail falls depends on the tensor's size and on how the
    work is split between threads: a row's score would then depend on its batch.
    ``exp``, ``log`` and ``log1p`` give the same bits on both paths, and ``+ - * /``
    are exactly rounded, so these compositions are position-independent. Training keeps
    the fused kernel: both are the same function to within one unit in the last place.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            # Training: torch's fused kernel (one pass, and the networks trained before
            # this class existed are reproduced exactly); position does not matter there.
            return F.silu(x)
        # Scoring, without gradients: four passes in one buffer (an infinite exp(-x)
        # gives x / inf = -0, the activation's value to float32 precision).
        t = torch.neg(x).exp_().add_(1.0)
        return torch.div(x, t, out=t)


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [nn.Linear(a, b), SiLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class TabularVAE(nn.Module):
    """Encoder/decoder MLPs for mixed-type rows.

    Parameters
    ----------
    kind
        ``"vae"``: stochastic encoder (mean and log-variance). ``"ae"`` and ``"dae"``:
        deterministic encoder; the denoising variant differs only in training, where
        the inputs are corrupted.
    prior_components
        ``0``: the standard normal prior. ``K > 0`` (``"vae"`` only): an equal-weight
        mixture of ``K`` diagonal Gaussians whose means and variances are learned with
        the network (``prior_mu``, ``prior_logvar``). Normal data made of clusters then
        gets a latent density with gaps between them, where a standard normal prior
        makes the space between clusters as likely as the clusters (BENCHMARKS.md).
    """

    nullable_num: torch.Tensor
    num_min_variance: torch.Tensor

    def __init__(
        self,
        n_num: int,
        nullable_num: list[int],
        n_bin: int,
        cat_cardinalities: list[int],
        latent_dim: int,
        hidden_dims: tuple[int, ...],
        kind: Literal["vae", "ae", "dae"],
        num_min_variance: list[float] | None = None,
        dropout: float = 0.0,
        prior_components: int = 0,
    ) -> None:
        super().__init__()
        floor = torch.tensor(num_min_variance or [0.0] * n_num, dtype=torch.float32).clamp(min=MIN_VARIANCE)
        self.register_buffer("num_min_variance", floor, persistent=False)
        self.n_num, self.n_bin, self.kind, self.latent_dim = n_num, n_bin, kind, latent_dim
        self.register_buffer("nullable_num", torch.tensor(nullable_num, dtype=torch.long), persistent=False)
        self.cat_cardinalities = list(cat_cardinalities)
        self.input_dim = n_num + len(nullable_num) + n_bin + sum(cat_cardinalities)
        enc_out = 2 * latent_dim if kind == "vae" else latent_dim
        self.encoder = _mlp([self.input_dim, *hidden_dims, enc_out], dropout)
        self.out_dim = 2 * n_num + len(nullable_num) + n_bin + sum(cat_cardinalities)
        self.decoder = _mlp([latent_dim, *reversed(hidden_dims), self.out_dim], dropout)
        # Per-feature ceiling of the decoder variance (see ``decode``).
        self.num_logvar_base = nn.Parameter(torch.zeros(n_num))
        self.prior_mu: nn.Parameter | None = None
        self.prior_logvar: nn.Parameter | None = None
        if prior_components and kind == "vae":
            # Drawn after the layers, so the layers' initial weights do not depend on the prior.
            self.prior_mu = nn.Parameter(torch.randn(prior_components, latent_dim))
            self.prior_logvar = nn.Parameter(torch.zeros(prior_components, latent_dim))

    def mixture_prior(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The mixture prior's means and log-variances, ``(K, latent)`` each; ``None`` for N(0, I)."""
        if self.prior_mu is None or self.prior_logvar is None:
            return None
        return self.prior_mu, self.prior_logvar

    def design(self, x: Inputs) -> torch.Tensor:
        """The flat encoder input: values, missing flags, binaries and one-hot categories."""
        return design_tensor(x, self.nullable_num, self.cat_cardinalities)

    def encode(self, x: Inputs, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posterior mean and log-variance (``None`` for deterministic kinds)."""
        h = self.design(x)
        if noise is not None:
            h = h + noise
        return self.posterior(self.encoder(h))

    def posterior(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Split the encoder's raw output into the posterior mean and log-variance."""
        if self.kind != "vae":
            return out, None
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> DecoderOutput:
        return self.heads(self.decoder(z))

    def encode_chunks(self, x: Inputs, chunks: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scoring's encoder pass: :meth:`encode` with one fixed-shape product per chunk.

        ``x`` holds ``chunks`` equal blocks of rows (see :mod:`fraudvae.model.scoring`). Same
        function as the training pass, :meth:`encode`, to float32 rounding (a test checks it).
        """
        h = run_chunked(self.encoder, self.design(x), chunks)
        return self.posterior(h.reshape(-1, h.shape[-1]))

    def decode_chunks(self, z: torch.Tensor, chunks: int) -> DecoderOutput:
        """Scoring's decoder pass: :meth:`decode` with one fixed-shape product per chunk.

        ``z`` is ``(rows, latent)`` or ``(chunks, draws, rows_per_chunk, latent)``; the output
        keeps its leading shape.
        """
        h = run_chunked(self.decoder, z, chunks)
        return self.heads(h.reshape(*z.shape[:-1], h.shape[-1]))

    def heads(self, out: torch.Tensor) -> DecoderOutput:
        """Split the decoder's raw output into the per-type likelihood parameters."""
        n, m, b = self.n_num, int(self.nullable_num.numel()), self.n_bin
        mu, raw_var = out[..., :n], out[..., n : 2 * n]
        # Per-row variance, capped by a learned per-feature variance: a row may be
        # predicted more precisely than average, never less. Uncapped, an unusual row is
        # encoded where the decoder claims a wide variance and explains its deviation away.
        logvar = torch.log(torch.exp(self.num_logvar_base - softplus(-raw_var)) + self.num_min_variance)
        miss = out[..., 2 * n : 2 * n + m]
        binl = out[..., 2 * n + m : 2 * n + m + b]
        cats = (
            list(torch.split(out[..., 2 * n + m + b :], self.cat_cardinalities, dim=-1))
            if self.cat_cardinalities
            else []
        )
        return DecoderOutput(mu, logvar, miss, binl, cats)


def run_chunked(mlp: nn.Sequential, h: torch.Tensor, chunks: int) -> torch.Tensor:
    """Run ``mlp`` with one matrix product per chunk: ``h`` is ``chunks`` equal blocks of rows.

    One batched call (``baddbmm``) multiplies every chunk with the shape of a lone
    chunk (a single product over the stacked rows would be another shape, and BLAS picks
    its kernels, and so its rounding, by shape). Only layers whose scoring arithmetic is
    position-independent are allowed: a layer type added to the network must be added
    here too, or scoring refuses it instead of drifting from training silently.
    """
    h = h.reshape(chunks, -1, h.shape[-1])
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            h = torch.baddbmm(layer.bias, h, layer.weight.t().expand(chunks, -1, -1))
        elif isinstance(layer, SiLU | nn.Identity) or (isinstance(layer, nn.Dropout) and not layer.training):
            h = layer(h)  # position-independent activation, or the identity
        else:
            raise TypeError(f"run_chunked has no deterministic scoring kernel for {type(layer).__name__}.")
    return h


def design_tensor(x: Inputs, nullable_num: torch.Tensor, cat_cardinalities: list[int]) -> torch.Tensor:
    """The flat row representation shared by the encoder and the PPCA baseline.

    Columns: values, missing flags, binaries, then each categorical one-hot (written
    with one scatter, not one ``one_hot`` per column).
    """
    n_num, n_miss, n_bin = x.num.shape[1], int(nullable_num.numel()), x.bin.shape[1]
    start = n_num + n_miss + n_bin
    out = x.num.new_zeros((x.num.shape[0], start + sum(cat_cardinalities)))
    out[:, :n_num] = x.num
    out[:, n_num : n_num + n_miss] = 1.0 - x.num_obs[:, nullable_num]
    out[:, n_num + n_miss : start] = x.bin
    if cat_cardinalities:
        offsets = torch.tensor([0, *itertools.accumulate(cat_cardinalities)][:-1]) + start
        out.scatter_(1, x.cat + offsets, 1.0)
    return out


def design_to_feature(n_num: int, nullable_num: list[int], n_bin: int, cat_cardinalities: list[int]) -> list[int]:
    """For each column of :func:`design_tensor`, the internal feature it belongs to."""
    out = list(range(n_num)) + list(nullable_num) + [n_num + j for j in range(n_bin)]
    for j, card in enumerate(cat_cardinalities):
        out += [n_num + n_bin + j] * card
    return out
