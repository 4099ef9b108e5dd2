"""Backends: the model families behind the detector, each fitted, scored and saved the same way.

A backend turns encoded rows into per-feature score terms (:class:`~fraudvae.model.scoring.Components`)
and knows how to fit and persist itself; the engine and the detector never branch on
the model kind. Two families:

- :class:`NetworkBackend`, the tabular VAE and its deterministic relatives (``"vae"``,
  ``"ae"``, ``"dae"``), trained by :func:`fraudvae.model.training.train`;
- :class:`PPCABackend`, closed-form probabilistic PCA on the encoded design, the linear baseline.

To add a family: implement the :class:`Backend` protocol and register it in :data:`BACKENDS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from sklearn.decomposition import PCA

from fraudvae.data.preprocessing import Encoded, Preprocessor
from fraudvae.model.network import Inputs, TabularVAE, design_tensor, design_to_feature
from fraudvae.model.schedule import default_batch_size, default_epochs, scaled_lr
from fraudvae.model.scoring import Components, PPCAParams, score_ppca, score_vae, standard_normal_draws
from fraudvae.model.threads import choose_threads, torch_threads
from fraudvae.model.training import EpochLog, TrainConfig, train

__all__ = ["BACKENDS", "Backend", "FitResult", "NetworkBackend", "PPCABackend", "backend_for"]


def to_inputs(enc: Encoded, device: torch.device, dtype: torch.dtype = torch.float32) -> Inputs:
    return Inputs(
        torch.as_tensor(enc.num, dtype=dtype, device=device),
        torch.as_tensor(enc.num_obs, dtype=dtype, device=device),
        torch.as_tensor(enc.bin, dtype=dtype, device=device),
        torch.as_tensor(enc.cat, dtype=torch.long, device=device),
    )


def design_matrix(pre: Preprocessor, enc: Encoded) -> np.ndarray:
    """The flat float64 row representation (values, missing flags, binaries, one-hots)."""
    x = to_inputs(enc, torch.device("cpu"), torch.float64)
    return design_tensor(x, torch.tensor(pre.nullable_num, dtype=torch.long), pre.cat_cardinalities).numpy()


class FitResult:
    """What fitting a backend produced besides the backend: epoch history and the schedule used."""

    def __init__(self, history: list[dict[str, float]], train_config: dict[str, Any] | None) -> None:
        self.history = history
        self.train_config = train_config


class Backend(Protocol):
    """What the engine needs from a model family."""

    #: Architecture document saved with the model (``config.json``), enough to rebuild it.
    architecture: dict[str, Any]

    def components(self, enc: Encoded, draws: int, *, iwae: bool, expectations: bool) -> Components:
        """Per-feature terms of every score; ``draws`` 0 = at the posterior mean only."""
        ...

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors (safetensors) and extra JSON config entries to save."""
        ...


class NetworkBackend:
    """The tabular VAE (or a deterministic / denoising autoencoder with the same heads)."""

    kinds: ClassVar[tuple[str, ...]] = ("vae", "ae", "dae")

    def __init__(self, module: TabularVAE, architecture: dict[str, Any], seed: int) -> None:
        self.module = module.cpu().eval()
        self.architecture = architecture
        self.seed = seed
        # An eval-mode copy for scoring, so a user's module.train() cannot change scores.
        self._scoring = self.build(architecture)
        self._scoring.load_state_dict(self.module.state_dict())
        self._scoring.eval()
        self._draws: dict[int, torch.Tensor] = {}

    @staticmethod
    def build(a: Mapping[str, Any]) -> TabularVAE:
        return TabularVAE(
            a["n_num"],
            list(a["nullable_num"]),
            a["n_bin"],
            list(a["cat_cardinalities"]),
            a["latent_dim"],
            tuple(a["hidden_dims"]),
            a["kind"],
            list(a["num_min_variance"]),
            prior_components=int(a.get("prior_components", 0)),  # 0 in models saved before mixture priors
        )

    @classmethod
    def fit(
        cls,
        pre: Preprocessor,
        enc_train: Encoded,
        enc_val: Encoded,
        params: Mapping[str, Any],
        seed: int,
        on_epoch: Callable[[EpochLog], None],
    ) -> tuple[NetworkBackend, FitResult]:
        latent = _latent_size(params["latent_dim"], len(pre.internal_order), lowest=2)
        architecture: dict[str, Any] = {
            "n_num": len(pre.num_features),
            "nullable_num": pre.nullable_num,
            "n_bin": len(pre.bin_features),
            "cat_cardinalities": pre.cat_cardinalities,
            "latent_dim": latent,
            "hidden_dims": [int(h) for h in params["hidden_dims"]],
            "kind": params["kind"],
            "num_min_variance": pre.num_min_variance,
            "prior_components": int(params["prior_components"]) if params["kind"] == "vae" else 0,
        }
        device_name = params["device"]
        if device_name == "auto":
            device_name = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device_name)
        module = cls.build(architecture).to(device)
        n = len(enc_train)
        batch = int(params["batch_size"]) if params["batch_size"] else default_batch_size(n)
        epochs = int(params["max_epochs"]) if params["max_epochs"] else default_epochs(n, batch)
        config = TrainConfig(
            max_epochs=epochs,
            batch_size=batch,
            learning_rate=scaled_lr(params["learning_rate"], batch, automatic=not params["batch_size"]),
            weight_decay=params["weight_decay"],
            beta=params["beta"],
            kl_warmup_epochs=min(params["kl_warmup_epochs"], epochs),
            free_bits=params["free_bits"],
            patience=params["patience"],
            noise_std=params["noise_std"],
        )
        widths = [module.input_dim, *params["hidden_dims"], 2 * latent]
        layer_products = sum(a * b for a, b in itertools.pairwise(widths))
        # Forward and backward through encoder and decoder: about 12 flops per weight and row.
        threads = choose_threads(12.0 * batch * layer_products, params["n_jobs"])
        with torch_threads(threads):
            history = train(
                module,
                to_inputs(enc_train, device),
                to_inputs(enc_val, device),
                config,
                torch.Generator().manual_seed(seed),
                on_epoch,
            )
        backend = cls(module, architecture, seed)
        return backend, FitResult([h.as_dict() for h in history], dict(config.__dict__))

    @classmethod
    def from_state(
        cls,
        architecture: dict[str, Any],
        tensors: Mapping[str, torch.Tensor],
        config: Mapping[str, Any],
        *,
        seed: int,
        pre: Preprocessor,
    ) -> NetworkBackend:
        module = cls.build(architecture)
        module.load_state_dict({k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")})
        return cls(module, architecture, seed)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {f"module.{k}": v for k, v in self.module.state_dict().items()}, {}

    def draws(self, k: int) -> torch.Tensor:
        """The fixed draws of a plan with ``k`` draws (seeded by the model: same for every row and call)."""
        if k not in self._draws:
            self._draws[k] = standard_normal_draws(k, self.architecture["latent_dim"], self.seed)
        return self._draws[k]

    def components(self, enc: Encoded, draws: int, *, iwae: bool, expectations: bool) -> Components:
        return score_vae(self._scoring, enc, self.draws(draws), sampled=draws > 0, iwae=iwae, expectations=expectations)


def _latent_size(requested: int | None, n_features: int, *, lowest: int) -> int:
    """``latent_dim`` as given, else half the model features, between ``lowest`` and 16."""
    return int(requested) if requested is not None else int(np.clip(n_features // 2, lowest, 16))


class PPCABackend:
    """Closed-form probabilistic PCA (Tipping & Bishop) on the encoded design matrix.

    Its likelihood is exact, so every scoring method gives the same score.
    """

    kinds: ClassVar[tuple[str, ...]] = ("ppca",)

    def __init__(self, params: PPCAParams, pre: Preprocessor, architecture: dict[str, Any]) -> None:
        self.params = params
        self.pre = pre
        self.architecture = architecture

    @classmethod
    def fit(
        cls,
        pre: Preprocessor,
        enc_train: Encoded,
        enc_val: Encoded,
        params: Mapping[str, Any],
        seed: int,
        on_epoch: Callable[[EpochLog], None],
    ) -> tuple[PPCABackend, FitResult]:
        design = design_matrix(pre, enc_train)
        d = design.shape[1]
        q = _latent_size(params["latent_dim"], len(pre.internal_order), lowest=1)
        q = max(1, min(q, d - 1, design.shape[0] - 1))
        # A tiny ridge keeps the covariance invertible when columns are constant.
        pca = PCA(n_components=q, svd_solver="full").fit(design)
        covariance = pca.get_covariance() + 1e-6 * np.eye(d)
        precision = np.linalg.inv(covariance)
        _, logdet = np.linalg.slogdet(covariance)
        mapping = np.asarray(
            design_to_feature(len(pre.num_features), pre.nullable_num, len(pre.bin_features), pre.cat_cardinalities)
        )
        fitted = PPCAParams(pca.mean_, precision, float(logdet), pca.components_, mapping)
        return cls(fitted, pre, {"kind": "ppca", "latent_dim": q, "design_dim": d}), FitResult([], None)

    @classmethod
    def from_state(
        cls,
        architecture: dict[str, Any],
        tensors: Mapping[str, torch.Tensor],
        config: Mapping[str, Any],
        *,
        seed: int,
        pre: Preprocessor,
    ) -> PPCABackend:
        params = PPCAParams(
            tensors["ppca.mean"].numpy(),
            tensors["ppca.precision"].numpy(),
            float(config["ppca_logdet"]),
            tensors["ppca.components"].numpy(),
            tensors["ppca.design_to_feature"].numpy(),
        )
        return cls(params, pre, architecture)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        p = self.params
        tensors = {
            "ppca.mean": torch.from_numpy(p.mean),
            "ppca.precision": torch.from_numpy(p.precision),
            "ppca.components": torch.from_numpy(p.components),
            "ppca.design_to_feature": torch.from_numpy(p.design_to_feature.astype(np.int64)),
        }
        return tensors, {"ppca_logdet": p.logdet}

    def components(self, enc: Encoded, draws: int, *, iwae: bool, expectations: bool) -> Components:
        pre, mean = self.pre, self.params.mean
        design = design_matrix(pre, enc)
        nll = score_ppca(self.params, design, len(pre.internal_order))
        n, nn_, nb = len(enc), len(pre.num_features), len(pre.bin_features)
        num_mean = np.tile(mean[:nn_], (n, 1))
        off = nn_ + len(pre.nullable_num)
        bin_prob = np.tile(mean[off : off + nb], (n, 1))
        cat_mode = np.zeros((n, len(pre.cat_features)), dtype=np.int64)
        start = off + nb
        for j, card in enumerate(pre.cat_cardinalities):
            cat_mode[:, j] = int(np.argmax(mean[start : start + card]))
            start += card
        latent = (design - mean) @ self.params.components.T
        zero = np.zeros(n)
        return Components(nll, nll, zero, nll, zero, num_mean, bin_prob, cat_mode, latent)


#: Model kind -> backend class.
BACKENDS: dict[str, type[NetworkBackend] | type[PPCABackend]] = {
    kind: cls for cls in (NetworkBackend, PPCABackend) for kind in cls.kinds
}


def backend_for(kind: str) -> type[NetworkBackend] | type[PPCABackend]:
    return BACKENDS[kind]
