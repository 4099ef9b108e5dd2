"""Scores from a fitted network: reconstruction, negative ELBO and IWAE, split per feature.

This module is the single scoring path: the Python API, the HTTP service, the batch
job and Spark all reach it through :meth:`fraudvae.VAEDetector.score_frame`.

Determinism: sampled scores use one fixed set of standard-normal draws shared by all
rows (``z_k = mu + sigma * eps_k``), so a row's score does not depend on which other
rows are in the batch. Rows are scored (float32, summed in float64) in chunks of one
fixed shape, ``CHUNK_ROWS`` rows followed by padding: BLAS chooses its GEMM kernels by
matrix shape (MKL rounds a row differently when the batch has 1 to 3 rows than when it
has more), so one shape gives every row the same arithmetic. Every reduction (over
draws, features or latent dimensions) is a sequence of elementwise operations:
vectorised reduction kernels round differently depending on where a row sits in
memory, elementwise IEEE operations do not. A row therefore gets bit-identical results
alone, in any batch, at any position, or on a Spark executor (on the same CPU type).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fraudvae.losses import feature_nll, kl_diag_normal, log_normal
from fraudvae.model import Inputs, TabularVAE
from fraudvae.preprocessing import Encoded

__all__ = ["CHUNK_ROWS", "Components", "PPCAParams", "score_ppca", "score_vae", "standard_normal_draws"]

#: Real rows per chunk; every chunk is padded to CHUNK_ROWS + _GUARD_ROWS rows.
CHUNK_ROWS = 240
#: Padding rows after every chunk: real rows never sit in a kernel's scalar tail.
_GUARD_ROWS = 16


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
    num_mean: np.ndarray  # (n, n_num) decoder means at the posterior mean (scaled units)
    bin_prob: np.ndarray  # (n, n_bin)
    cat_mode: np.ndarray  # (n, n_cat) most likely code
    latent_mean: np.ndarray  # (n, latent_dim)


def standard_normal_draws(n_samples: int, dim: int, seed: int) -> torch.Tensor:
    """The fixed draws behind sampled scores (antithetic pairs halve their variance)."""
    g = torch.Generator().manual_seed(seed)
    half = torch.randn(math.ceil(n_samples / 2), dim, generator=g, dtype=torch.float64).float()
    return torch.cat([half, -half])[:n_samples]


def _padded_chunks(enc: Encoded, chunk: int):  # type: ignore[no-untyped-def]
    n = len(enc)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        # Every chunk has the same shape, ``chunk`` rows then guard rows: BLAS picks its
        # kernels by matrix shape, so a fixed shape gives every row the same arithmetic
        # wherever it sits, and the guard rows keep real rows out of scalar tails.
        idx = np.arange(start, start + chunk + _GUARD_ROWS)
        idx[idx >= stop] = stop - 1  # pad by repeating the last row
        part = enc.take(idx)
        yield (
            start,
            stop,
            Inputs(
                torch.from_numpy(part.num).float(),
                torch.from_numpy(part.num_obs).float(),
                torch.from_numpy(part.bin).float(),
                torch.from_numpy(part.cat),
            ),
        )


def score_vae(
    module: TabularVAE, enc: Encoded, draws: torch.Tensor, *, sampled: bool = True, iwae: bool = True
) -> Components:
    """Score encoded rows in fixed-shape chunks (see the module docstring).

    ``sampled=False`` (or no draws at all) skips the K decoder passes: ELBO and IWAE
    then equal the reconstruction at the posterior mean plus the KL, which is the score
    of a detector with ``n_score_samples=0`` and all a reconstruction score needs.
    ``iwae=False`` skips the importance weights (about a fifth of the cost of a sampled
    score) and leaves ``iwae`` and ``iwae_latent`` as NaN.
    """
    n, n_feat = len(enc), enc.num.shape[1] + enc.bin.shape[1] + enc.cat.shape[1]
    rec = np.empty((n, n_feat))
    elbo = np.empty((n, n_feat))
    iwae_out = np.empty((n, n_feat))
    kl_out = np.zeros(n)
    iw_latent = np.zeros(n)
    num_mean = np.empty((n, enc.num.shape[1]))
    bin_prob = np.empty((n, enc.bin.shape[1]))
    cat_mode = np.empty((n, enc.cat.shape[1]), dtype=np.int64)
    latent = np.empty((n, module.latent_dim))
    k = draws.shape[0]
    with torch.no_grad():
        for start, stop, x in _padded_chunks(enc, CHUNK_ROWS):
            m = stop - start
            mu, logvar = module.encode(x)
            out = module.decode(mu)
            r = feature_nll(x, out, module.nullable_num)
            rec[start:stop] = r[:m].numpy()
            num_mean[start:stop] = out.num_mu[:m].numpy()
            bin_prob[start:stop] = torch.sigmoid(out.bin_logits[:m]).numpy()
            for j, logits in enumerate(out.cat_logits):
                cat_mode[start:stop, j] = logits[:m].argmax(-1).numpy()
            latent[start:stop] = mu[:m].numpy()
            if logvar is None or not sampled or k == 0:
                kl = (
                    seq_sum(kl_diag_normal(mu, logvar), -1)
                    if logvar is not None
                    else torch.zeros(mu.shape[0], dtype=mu.dtype)
                )
                kl_out[start:stop] = kl[:m].numpy()
                elbo[start:stop] = rec[start:stop]
                iwae_out[start:stop] = rec[start:stop]
                iw_latent[start:stop] = kl_out[start:stop]
                continue
            std = torch.exp(0.5 * logvar)
            z = mu.unsqueeze(0) + std.unsqueeze(0) * draws.unsqueeze(1)  # (K, B, L)
            nll = feature_nll(x, module.decode(z), module.nullable_num)  # (K, B, F)
            kl = seq_sum(kl_diag_normal(mu, logvar), -1)
            elbo[start:stop] = (seq_sum(nll, 0) / k)[:m].numpy()
            kl_out[start:stop] = kl[:m].numpy()
            if not iwae:
                iwae_out[start:stop] = np.nan
                iw_latent[start:stop] = np.nan
                continue
            zeros = torch.zeros_like(mu)
            log_w = (
                -seq_sum(nll, -1)
                + log_normal(z, zeros, zeros, reduce=seq_sum)
                - log_normal(z, mu.unsqueeze(0), logvar.unsqueeze(0), reduce=seq_sum)
            )  # (K, B)
            top = seq_max(log_w, 0)
            weights = torch.exp(log_w - top)
            norm = seq_sum(weights, 0)
            weights = weights / norm
            total = -(top + torch.log(norm) - math.log(k))
            share = seq_sum(weights.unsqueeze(-1) * nll, 0)
            iwae_out[start:stop] = share[:m].numpy()
            iw_latent[start:stop] = (total - seq_sum(share, -1))[:m].numpy()
    return Components(rec, elbo, kl_out, iwae_out, iw_latent, num_mean, bin_prob, cat_mode, latent)


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
