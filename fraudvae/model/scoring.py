"""Scores from a fitted network: reconstruction, negative ELBO and IWAE, split per feature.

This module is the single scoring path: the Python API, the HTTP service, the batch
job and Spark all reach it through :meth:`fraudvae.VAEDetector.score_frame`.

Determinism: sampled scores use one fixed set of standard-normal draws shared by all
rows (``z_k = mu + sigma * eps_k``), so a row's score does not depend on which other
rows are in the batch. Rows are scored (float32, summed in float64) in chunks of one
fixed shape, ``CHUNK_ROWS`` rows followed by padding: BLAS chooses its GEMM kernels by
matrix shape (MKL rounds a row differently when the batch has 1 to 3 rows than when it
has more), so one shape gives every row the same arithmetic. Chunks are stacked in
groups and multiplied with one batched call (``baddbmm``), one fixed-shape product per
chunk, so large batches cost few Python-level operations. Everything else is
elementwise on the stacked tensors, which torch splits between threads at places that
move with the tensor's size and the thread count; so only operations that round the
same in vector and scalar code are used: ``+ - * /``, ``exp``, ``log``, ``log1p``,
``log_softmax``, and the activations built from them (:class:`fraudvae.model.network.SiLU`).
Every reduction (over draws, features or latent dimensions) is a sequence of
elementwise operations: vectorised reduction kernels round differently depending on
where a row sits in memory. A row therefore gets bit-identical results alone, in any
batch, at any position, with any number of threads, or on a Spark executor (on the
same CPU type).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from fraudvae.data.preprocessing import Encoded
from fraudvae.model.losses import feature_nll, kl_diag_normal, kl_mixture_bound, log_mixture, log_normal
from fraudvae.model.network import Inputs, TabularVAE, sigmoid

__all__ = ["CHUNK_ROWS", "Components", "PPCAParams", "score_ppca", "score_vae", "standard_normal_draws"]

#: Real rows per chunk; every chunk is padded to CHUNK_ROWS + _GUARD_ROWS rows.
CHUNK_ROWS = 240
#: Padding rows after every chunk: real rows never sit in a kernel's scalar tail.
_GUARD_ROWS = 16
_ROWS = CHUNK_ROWS + _GUARD_ROWS
#: Decoder rows (chunk rows x draws) per group of chunks scored together: enough to
#: amortise Python's per-operation cost, small enough to stay in cache-sized pieces.
_GROUP_ROWS = 16_384


def seq_sum(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum along ``dim`` as a chain of elementwise additions (same rounding at every position)."""
    parts = t.unbind(dim)
    acc = parts[0].clone()
    for p in parts[1:]:
        acc = acc + p
    return acc


def seq_max(t: torch.Tensor, dim: int) -> torch.Tensor:
    parts = t.unbind(dim)
    acc = parts[0].clone()
    for p in parts[1:]:
        acc = torch.maximum(acc, p)
    return acc


def seq_logsumexp(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``log(sum(exp(t)))`` along ``dim`` from :func:`seq_max` and :func:`seq_sum`."""
    top = seq_max(t, dim)
    return top + torch.log(seq_sum(torch.exp(t - top.unsqueeze(dim)), dim))


def row_sum(a: np.ndarray) -> np.ndarray:
    """Row sums of a 2-D array as a chain of column additions (numpy's pairwise sum varies with layout)."""
    if a.shape[1] == 0:
        return np.zeros(a.shape[0])
    acc = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        acc += a[:, j]
    return acc


@dataclass
class Components:
    """Per-feature contributions (internal feature order) of each score."""

    reconstruction: np.ndarray  # (n, F): NLL at the posterior mean
    elbo: np.ndarray  # (n, F): expected NLL under q(z|x)
    kl: np.ndarray  # (n,)
    iwae: np.ndarray  # (n, F): importance-weighted NLL share of each feature
    iwae_latent: np.ndarray  # (n,): the rest of the IWAE estimate (prior vs posterior)
    # What the decoder expects at the posterior mean (None unless asked for: only
    # explanations show them, and the batch hot path skips them).
    num_mean: np.ndarray | None  # (n, n_num) means (scaled units)
    bin_prob: np.ndarray | None  # (n, n_bin)
    cat_mode: np.ndarray | None  # (n, n_cat) most likely code
    latent_mean: np.ndarray  # (n, latent_dim)

    def rows(self, index: slice) -> Components:
        """The terms of some rows only (views, not copies)."""
        parts: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        sliced: dict[str, Any] = {k: None if a is None else a[index] for k, a in parts.items()}
        return Components(**sliced)


def standard_normal_draws(n_samples: int, dim: int, seed: int) -> torch.Tensor:
    """The fixed draws behind sampled scores (antithetic pairs halve their variance)."""
    g = torch.Generator().manual_seed(seed)
    half = torch.randn(math.ceil(n_samples / 2), dim, generator=g, dtype=torch.float64).float()
    return torch.cat([half, -half])[:n_samples]


def _groups(n: int, per_group: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Row indices of each group of padded chunks, and a mask of the real (unpadded) rows.

    Every chunk has the same shape, ``CHUNK_ROWS`` rows then guard rows: BLAS picks its
    kernels by matrix shape, so a fixed shape gives every row the same arithmetic
    wherever it sits, and the guard rows keep real rows out of scalar tails. Padding
    repeats a chunk's last row.
    """
    starts = np.arange(0, n, CHUNK_ROWS)
    offsets = np.arange(_ROWS)
    for first in range(0, len(starts), per_group):
        s = starts[first : first + per_group, None]
        stop = np.minimum(s + CHUNK_ROWS, n)
        idx = s + offsets
        real = idx < stop
        yield np.where(real, idx, stop - 1).ravel(), real.ravel()


def score_vae(
    module: TabularVAE,
    enc: Encoded,
    draws: torch.Tensor,
    *,
    sampled: bool = True,
    iwae: bool = True,
    expectations: bool = True,
) -> Components:
    """Score encoded rows in groups of fixed-shape chunks (see the module docstring).

    ``sampled=False`` (or no draws at all) skips the K decoder passes: ELBO and IWAE
    then equal the reconstruction at the posterior mean plus the KL, which is the score
    of a detector with ``n_score_samples=0`` and all a reconstruction score needs.
    ``iwae=False`` skips the importance weights (about a fifth of the cost of a sampled
    score) and leaves ``iwae`` and ``iwae_latent`` as NaN. ``expectations=False`` leaves
    out the decoder's expected values (``num_mean``, ``bin_prob``, ``cat_mode``).
    """
    n, n_feat = len(enc), enc.num.shape[1] + enc.bin.shape[1] + enc.cat.shape[1]
    rec = np.empty((n, n_feat))
    elbo = np.empty((n, n_feat))
    iwae_out = np.empty((n, n_feat))
    kl_out = np.zeros(n)
    iw_latent = np.zeros(n)
    num_mean = np.empty((n, enc.num.shape[1])) if expectations else None
    bin_prob = np.empty((n, enc.bin.shape[1])) if expectations else None
    cat_mode = np.empty((n, enc.cat.shape[1]), dtype=np.int64) if expectations else None
    latent = np.empty((n, module.latent_dim))
    k = draws.shape[0]
    draw_passes = sampled and k > 0 and module.kind == "vae"
    per_group = max(1, _GROUP_ROWS // (_ROWS * (k if draw_passes else 1)))
    with torch.no_grad():
        for idx, real in _groups(n, per_group):
            g, dest = len(idx) // _ROWS, idx[real]
            part = enc.take(idx)
            x = Inputs(
                torch.from_numpy(part.num).float(),
                torch.from_numpy(part.num_obs).float(),
                torch.from_numpy(part.bin).float(),
                torch.from_numpy(part.cat),
            )
            mu, logvar = module.encode_chunks(x, g)
            out = module.decode_chunks(mu, g)
            rec[dest] = feature_nll(x, out, module.nullable_num).numpy()[real]
            if num_mean is not None and bin_prob is not None and cat_mode is not None:
                num_mean[dest] = out.num_mu.numpy()[real]
                bin_prob[dest] = sigmoid(out.bin_logits).numpy()[real]
                for j, logits in enumerate(out.cat_logits):
                    cat_mode[dest, j] = logits.argmax(-1).numpy()[real]
            latent[dest] = mu.numpy()[real]
            if logvar is not None:
                kl_out[dest] = _kl(module, mu, logvar).numpy()[real]
            if logvar is None or not draw_passes:
                elbo[dest] = rec[dest]
                iwae_out[dest] = rec[dest]
                iw_latent[dest] = kl_out[dest]
                continue
            # Draw-major inside each chunk, (g, K, rows, latent): a chunk's K x rows
            # decoder inputs form one fixed-shape product.
            shape = (g, 1, _ROWS, -1)
            mu4, logvar4 = mu.reshape(shape), logvar.reshape(shape)
            z = mu4 + torch.exp(0.5 * logvar4) * draws.reshape(1, k, 1, -1)
            x4 = Inputs(*(t.reshape(shape) for t in (x.num, x.num_obs, x.bin, x.cat)))
            out_k = module.decode_chunks(z, g)
            nll = feature_nll(x4, out_k, module.nullable_num)  # (g, K, rows, F)
            elbo[dest] = (seq_sum(nll, 1) / k).reshape(len(idx), -1).numpy()[real]
            if not iwae:
                iwae_out[dest] = np.nan
                iw_latent[dest] = np.nan
                continue
            log_w = (
                -seq_sum(nll, -1) + _log_prior(module, z) - log_normal(z, mu4, logvar4, reduce=seq_sum)
            )  # (g, K, rows)
            top = seq_max(log_w, 1)
            weights = torch.exp(log_w - top.unsqueeze(1))
            norm = seq_sum(weights, 1)
            weights = weights / norm.unsqueeze(1)
            total = -(top + torch.log(norm) - math.log(k))
            share = seq_sum(weights.unsqueeze(-1) * nll, 1)  # (g, rows, F)
            iwae_out[dest] = share.reshape(len(idx), -1).numpy()[real]
            iw_latent[dest] = (total - seq_sum(share, -1)).reshape(-1).numpy()[real]
    return Components(rec, elbo, kl_out, iwae_out, iw_latent, num_mean, bin_prob, cat_mode, latent)


def _kl(module: TabularVAE, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The KL term per row under the module's prior, with position-independent reductions."""
    prior = module.mixture_prior()
    if prior is None:
        return seq_sum(kl_diag_normal(mu, logvar), -1)
    return kl_mixture_bound(mu, logvar, *prior, seq_sum, seq_logsumexp)


def _log_prior(module: TabularVAE, z: torch.Tensor) -> torch.Tensor:
    """``log p(z)`` under the module's prior, with position-independent reductions."""
    prior = module.mixture_prior()
    if prior is None:
        zeros = torch.zeros_like(z)
        return log_normal(z, zeros, zeros, reduce=seq_sum)
    return log_mixture(z, *prior, seq_sum, seq_logsumexp)


@dataclass
class PPCAParams:
    """Closed-form probabilistic PCA (Tipping & Bishop) on the encoded design matrix."""

    mean: np.ndarray
    precision: np.ndarray
    logdet: float
    components: np.ndarray
    design_to_feature: np.ndarray


def score_ppca(params: PPCAParams, design: np.ndarray, n_features: int) -> np.ndarray:
    """Exact negative log-likelihood, split per feature.

    ``-log N(x; m, C) = 1/2 (d log 2 pi + log|C| + r^T C^-1 r)`` with ``r = x - m``; the
    quadratic form splits as ``sum_j r_j (C^-1 r)_j``, and the constant is shared
    equally among the design columns, so the per-feature terms sum to the score.
    """
    d = design.shape[1]
    const = 0.5 * (math.log(2 * math.pi) + params.logdet / d)
    per_design = np.empty_like(design)
    n = design.shape[0]
    for start in range(0, n, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n)
        idx = np.minimum(np.arange(start, stop + _GUARD_ROWS), stop - 1)
        r = design[idx] - params.mean
        # One matrix-vector product per row (a stacked matmul): a GEMM over the chunk
        # would round a row differently depending on its position.
        quad = np.matmul(r[:, None, :], params.precision)[:, 0, :]
        per_design[start:stop] = (const + 0.5 * r * quad)[: stop - start]
    out = np.zeros((n, n_features))
    np.add.at(out.T, params.design_to_feature, per_design.T)
    return out
