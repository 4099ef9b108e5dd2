"""``VAEDetector``: the one class that knows about pandas, scikit-learn and artifacts."""

from __future__ import annotations

import itertools
import math
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.decomposition import PCA
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from fraudvae._version import __version__
from fraudvae.artifact import read_artifact, write_artifact
from fraudvae.calibration import conformal_p_values, threshold_for_fpr, threshold_from_labels
from fraudvae.exceptions import (
    ColumnProblem,
    ConfigurationError,
    DataError,
    IncompatibleArtifactError,
    InsufficientDataError,
    NotFittedError,
)
from fraudvae.model import Inputs, TabularVAE, design_tensor, design_to_feature
from fraudvae.preprocessing import Encoded, Preprocessor, expand_features
from fraudvae.schema import Schema, as_frame, check_training_frame, infer_schema
from fraudvae.scoring import Components, PPCAParams, row_sum, score_ppca, score_vae, standard_normal_draws
from fraudvae.threads import choose_threads, torch_threads
from fraudvae.training import EpochLog, TrainConfig, train

__all__ = ["LATENT", "SCORINGS", "ScoreResult", "VAEDetector"]

KINDS = ("vae", "ae", "dae", "ppca")
SCORINGS = ("elbo", "reconstruction", "iwae")
#: Name of the pseudo-feature that carries the latent part of a score (KL for the
#: ELBO, prior-vs-posterior weight for IWAE), so contributions always sum to the score.
LATENT = "<latent>"
#: IWAE draws when ``n_score_samples`` is None (the default ELBO needs none).
IWAE_DEFAULT_DRAWS = 16
MIN_ROWS = 10
#: Gradient steps the automatic epoch count aims at (early stopping usually ends sooner).
TARGET_STEPS = 2000
#: Fewest epochs of the automatic schedule; with ``TARGET_STEPS`` it caps the steps per epoch.
MIN_EPOCHS = 20
#: Rows per step of the automatic schedule below ``TARGET_STEPS // MIN_EPOCHS * 256`` rows.
SMALL_BATCH = 256
#: Largest automatic batch (reached at 204,800 training rows; larger data gets longer epochs).
MAX_BATCH = 2048


def default_batch_size(n: int) -> int:
    """Rows per gradient step when ``batch_size`` is None.

    A tenth of the rows, between 16 and 256, up to 25,600 rows. Beyond that the
    batch grows with the rows so that an epoch is at most ``TARGET_STEPS / MIN_EPOCHS``
    steps: every automatic fit then takes about the same number of optimizer steps,
    and large data buys larger, cheaper-per-row steps rather than more of them (a
    256-row step spends most of its time in per-operation overhead, not arithmetic;
    BENCHMARKS.md, fit time).
    """
    small = int(np.clip(n // 10, 16, SMALL_BATCH))
    return int(min(MAX_BATCH, max(small, math.ceil(n / (TARGET_STEPS // MIN_EPOCHS)))))


def _to_inputs(enc: Encoded, device: torch.device, dtype: torch.dtype = torch.float32) -> Inputs:
    return Inputs(
        torch.as_tensor(enc.num, dtype=dtype, device=device),
        torch.as_tensor(enc.num_obs, dtype=dtype, device=device),
        torch.as_tensor(enc.bin, dtype=dtype, device=device),
        torch.as_tensor(enc.cat, dtype=torch.long, device=device),
    )


@dataclass
class _Prepared:
    """Rows validated and encoded, ready to score (see ``VAEDetector._prepare_rows``)."""

    clean: pd.DataFrame
    enc: Encoded
    rejected: dict[int, list[ColumnProblem]]
    row_positions: np.ndarray


@dataclass
class ScoreResult:
    """Everything one scoring call computes, for every entry point to format.

    ``contributions`` has one column per model feature plus :data:`LATENT`, in
    ``feature_names`` order; each row sums to ``anomaly_score``.
    """

    anomaly_score: np.ndarray
    reconstruction: np.ndarray
    neg_elbo: np.ndarray
    p_value: np.ndarray
    is_anomaly: np.ndarray
    threshold: float
    contributions: np.ndarray
    excess: np.ndarray
    feature_names: list[str]
    #: Each feature's value and the model's expected value, in the user's units
    #: (filled, like ``ranking``, only with ``explain_top_k > 0``).
    values: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    latent_mean: np.ndarray
    rejected: dict[int, list[ColumnProblem]] = field(default_factory=dict)
    row_positions: np.ndarray | None = None
    #: Per row, candidate features (schema order index) best first, and the score drop
    #: when each is reset to its typical value (filled by ``score_frame(explain_top_k=k)``).
    ranking: np.ndarray | None = None
    drops: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.anomaly_score.shape[0])

    def top_features(self, k: int) -> list[list[dict[str, Any]]]:
        """For each row, the ``k`` features most responsible for its score, most first.

        Needs ``score_frame(..., explain_top_k=k)`` (or more); each item gives the
        feature, its term of the score (``contribution``), that term's excess over
        normal rows, the score drop when the feature alone is made typical
        (``attribution``), the row's value and the model's expected value.
        """
        if len(self) == 0:
            return []
        if self.ranking is None or self.drops is None:
            raise ValueError("top_features needs a result scored with explain_top_k > 0.")
        k = min(k, self.ranking.shape[1])
        out = []
        for i in range(len(self)):
            items = []
            for r in range(k):
                j = int(self.ranking[i, r])
                name = self.feature_names[j]
                items.append(
                    {
                        "feature": name,
                        "contribution": float(self.contributions[i, j]),
                        "excess": float(self.excess[i, j]),
                        "attribution": float(self.drops[i, r]),
                        "value": _jsonable(self.values[name][i]),
                        "expected": _jsonable(self.expected[name][i]),
                    }
                )
            out.append(items)
        return out


#: Longest text echoed in an explanation (a category value); longer is cut, marked with "...".
MAX_ECHO_CHARS = 200


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str) and len(v) > MAX_ECHO_CHARS:
        return v[: MAX_ECHO_CHARS - 3] + "..."
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


class VAEDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Anomaly detector for mixed-type tables: a VAE fitted on normal rows only.

    Parameters
    ----------
    kind : {"vae", "ae", "dae", "ppca"}
        ``"vae"`` (default); ``"ae"`` a deterministic autoencoder and ``"dae"`` a
        denoising one, with the same likelihood heads, for comparison; ``"ppca"``
        closed-form probabilistic PCA on the encoded columns, the linear baseline.
    scoring : {"elbo", "reconstruction", "iwae"}
        Default score; ``"elbo"`` was best on the shared benchmark (BENCHMARKS.md). ``"reconstruction"`` is the feature likelihood at the posterior
        mean; ``"elbo"`` the negative ELBO; ``"iwae"`` the importance-weighted
        likelihood bound with ``n_score_samples`` draws (tightest, costliest).
    latent_dim : int or None
        Size of ``z``; ``None`` picks ``clip(n_features // 2, 2, 16)``.
    hidden_dims : tuple of int
        Widths of the encoder layers (the decoder mirrors them).
    max_epochs, batch_size : int or None
        ``None`` scales them with the number of rows (about 2,000 gradient steps,
        at least 20 epochs, fewer when early stopping ends training; batches of a
        tenth of the rows up to 256, and beyond 25,600 rows large enough that an
        epoch is 100 steps, at most 2,048 rows: see :func:`default_batch_size`).
    learning_rate, weight_decay : float
        AdamW settings. An automatic batch larger than 256 rows scales the learning
        rate by ``batch / 256`` (at most 8x); ``train_config_`` records the rate used.
    beta, kl_warmup_epochs, free_bits : float, int, float
        KL weight, the epochs over which it ramps from 0, and the per-dimension KL
        floor (nats) that keeps the posterior from collapsing.
    patience : int
        Epochs without validation improvement before training stops.
    noise_std : float
        Input corruption of the denoising autoencoder.
    validation_fraction : float
        Share of the normal rows held out for early stopping and the threshold.
    n_score_samples : int or None
        Draws of ``z`` for the ELBO and IWAE scores (fixed draws: scores are deterministic).
        Each draw costs one decoder pass. ``None`` (default): the ELBO's reconstruction
        term is evaluated at the posterior mean (one pass in all; over three seeds of the
        shared benchmark its mean AUROC equals that of 16 draws, 0.880, see BENCHMARKS.md,
        "Score estimator and draw count") and IWAE, which needs draws, uses 16. An int
        fixes the count for both; ``0`` is the default ELBO, and IWAE needs at least 1.
    target_fpr : float
        False-positive rate the threshold is calibrated to at ``fit``.
    column_types : dict or None
        Kind per column name, overriding inference.
    max_categories, min_category_count : int
        Vocabulary size cap per categorical column, and how often a value must occur
        to get its own category (rarer ones share the ``<other>`` bucket with unseen ones).
    device : str
        ``"auto"`` trains on a GPU when one is present; scoring always runs on the CPU.
    n_jobs : int or None
        Torch threads for fitting and scoring. ``None`` (default): ``FRAUDVAE_TORCH_THREADS``
        if set, else chosen from the work and the CPUs this process may use (affinity and
        cgroup quota): one thread for this model's usual sizes, where a second one saves
        little idle and costs several-fold on a busy machine (see :mod:`fraudvae.threads`).
        A runtime setting: it is not saved with the model. Scores do not depend on it.
    random_state : int or None
        Seed of the split, the initial weights, training and the score draws.
    verbose : bool
        Print one line per epoch (the CLI uses ``epoch_callback`` for its progress bar).
    """

    def __init__(
        self,
        kind: Literal["vae", "ae", "dae", "ppca"] = "vae",
        scoring: Literal["elbo", "reconstruction", "iwae"] = "elbo",
        latent_dim: int | None = None,
        hidden_dims: tuple[int, ...] = (128, 64),
        max_epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float = 3e-4,
        weight_decay: float = 1e-4,
        beta: float = 1.0,
        kl_warmup_epochs: int = 10,
        free_bits: float = 0.05,
        patience: int = 10,
        noise_std: float = 0.1,
        validation_fraction: float = 0.1,
        n_score_samples: int | None = None,
        target_fpr: float = 0.01,
        column_types: Mapping[str, str] | None = None,
        max_categories: int = 100,
        min_category_count: int = 5,
        device: str = "auto",
        n_jobs: int | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.kind = kind
        self.scoring = scoring
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs
        self.free_bits = free_bits
        self.patience = patience
        self.noise_std = noise_std
        self.validation_fraction = validation_fraction
        self.n_score_samples = n_score_samples
        self.target_fpr = target_fpr
        self.column_types = column_types
        self.max_categories = max_categories
        self.min_category_count = min_category_count
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ sklearn glue
    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    def _check_params(self) -> None:
        if self.kind not in KINDS:
            raise ConfigurationError(f"kind={self.kind!r} is invalid; expected one of {list(KINDS)}.")
        if self.scoring not in SCORINGS:
            raise ConfigurationError(f"scoring={self.scoring!r} is invalid; expected one of {list(SCORINGS)}.")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigurationError(
                f"validation_fraction={self.validation_fraction!r} is invalid; expected a value between 0 and 1."
            )
        if self.latent_dim is not None and int(self.latent_dim) < 1:
            raise ConfigurationError(f"latent_dim={self.latent_dim!r} is invalid; expected a positive integer or None.")
        if self.n_score_samples is not None and self.n_score_samples < 0:
            raise ConfigurationError(
                f"n_score_samples={self.n_score_samples!r} is invalid; expected 0 or more draws, or None (the default)."
            )
        if self.scoring == "iwae" and self.n_score_samples == 0:
            raise ConfigurationError(
                "scoring='iwae' with n_score_samples=0 is invalid; the importance-weighted bound needs "
                "at least 1 draw. Set n_score_samples >= 1 or use scoring='elbo'."
            )

    def _input_frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """Validate the container (not the values) and return a frame with string names."""
        if isinstance(X, pd.DataFrame):
            if reset:
                validate_data(self, X, reset=True, skip_check_array=True)  # n_features_in_, feature_names_in_
                if not all(isinstance(c, str) for c in X.columns):
                    self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
            return as_frame(X)
        arr = (
            validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype="numeric", ensure_min_samples=1)
            if reset
            else self._check_array_for_scoring(X)
        )
        names = list(getattr(self, "feature_names_in_", [])) or None
        if not reset and names is None:
            names = self.schema_.names
        return as_frame(arr, names)

    def _check_array_for_scoring(self, X: Any) -> np.ndarray:
        arr = check_array(X, ensure_all_finite=False, dtype="numeric")
        validate_data(self, arr, reset=False, skip_check_array=True)
        return arr

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, "schema_")
        except Exception as exc:  # sklearn's NotFittedError -> ours, which subclasses it
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with normal rows "
                "(or VAEDetector.load a saved model) before scoring."
            ) from exc

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        epoch_callback: Callable[[EpochLog], None] | None = None,
    ) -> VAEDetector:
        """Learn what normal rows look like, then calibrate the threshold on held-out ones.

        Parameters
        ----------
        X : DataFrame or array of shape (n_samples, n_features)
            Normal rows only. Mixed types are fine in a DataFrame; missing values are
            modelled, not refused.
        y : ignored
            Present for scikit-learn compatibility; fit never uses labels.
        epoch_callback : callable, optional
            Called with an :class:`~fraudvae.training.EpochLog` after every epoch.
        """
        self._check_params()
        frame = self._input_frame(X, reset=True)
        n = len(frame)
        if n < MIN_ROWS:
            raise InsufficientDataError(
                f"Got {n} sample(s) (rows) to fit on; expected at least {MIN_ROWS}. Fit on more normal rows."
            )
        if frame.shape[1] == 0:
            raise InsufficientDataError("Got a frame with 0 columns; expected at least one feature column.")
        schema = infer_schema(frame, self.column_types, max_categories=self.max_categories)
        check_training_frame(frame, schema)
        clean = schema.validate_frame(frame).frame
        seed = int(self.random_state) if self.random_state is not None else int(np.random.randint(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        n_val = round(self.validation_fraction * n)
        if n_val < 20 or n - n_val < 20:
            # Too few rows to spare: early stopping and the threshold use the training rows.
            train_idx, val_idx = perm, perm
        else:
            train_idx, val_idx = perm[n_val:], perm[:n_val]
        train_frame = clean.iloc[np.sort(train_idx)].reset_index(drop=True)
        val_frame = clean.iloc[np.sort(val_idx)].reset_index(drop=True)

        self.schema_ = schema
        self.preprocessor_ = Preprocessor.fit(
            train_frame, schema, max_categories=self.max_categories, min_category_count=self.min_category_count
        )
        self.seed_ = seed
        self.n_train_rows_ = len(train_frame)
        self.n_validation_rows_ = len(val_frame)
        enc_train = self.preprocessor_.transform(train_frame)
        enc_val = self.preprocessor_.transform(val_frame)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.kind == "ppca":
                self._fit_ppca(enc_train)
                self.history_: list[dict[str, float]] = []
            else:
                self._fit_network(enc_train, enc_val, seed, epoch_callback)
        self._prepare_scoring()
        result = self._score_clean(val_frame)
        self._set_calibration(
            result.anomaly_score,
            result.contributions,
            source="fit validation split",
            labels=None,
            threshold=None,
            goal={"target_fpr": self.target_fpr},
        )
        return self

    def _fit_network(
        self, enc_train: Encoded, enc_val: Encoded, seed: int, epoch_callback: Callable[[EpochLog], None] | None
    ) -> None:
        pre = self.preprocessor_
        n_features = len(pre.internal_order)
        latent = int(self.latent_dim) if self.latent_dim is not None else int(np.clip(n_features // 2, 2, 16))
        self.architecture_: dict[str, Any] = {
            "n_num": len(pre.num_features),
            "nullable_num": pre.nullable_num,
            "n_bin": len(pre.bin_features),
            "cat_cardinalities": pre.cat_cardinalities,
            "latent_dim": latent,
            "hidden_dims": [int(h) for h in self.hidden_dims],
            "kind": self.kind,
            "num_min_variance": pre.num_min_variance,
        }
        if self.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(self.device)
        module = self._build_module().to(device)
        n = len(enc_train)
        batch = int(self.batch_size) if self.batch_size else default_batch_size(n)
        steps = math.ceil(n / batch)
        epochs = (
            int(self.max_epochs) if self.max_epochs else int(np.clip(math.ceil(TARGET_STEPS / steps), MIN_EPOCHS, 400))
        )
        # Larger automatic batches take fewer steps per epoch; the linear scaling rule
        # (Goyal et al., 2017) keeps each row's share of an epoch's progress. The
        # square-root rule lost AUPRC on large data (BENCHMARKS.md, large training sets).
        lr = self.learning_rate * (batch / SMALL_BATCH if not self.batch_size and batch > SMALL_BATCH else 1.0)
        config = TrainConfig(
            max_epochs=epochs,
            batch_size=batch,
            learning_rate=lr,
            weight_decay=self.weight_decay,
            beta=self.beta,
            kl_warmup_epochs=min(self.kl_warmup_epochs, epochs),
            free_bits=self.free_bits,
            patience=self.patience,
            noise_std=self.noise_std,
        )

        def on_epoch(log: EpochLog) -> None:
            if self.verbose:
                print(f"epoch {log.epoch:4d}  train {log.train_loss:10.4f}  val {log.val_loss:10.4f}  kl {log.kl:8.4f}")
            if epoch_callback is not None:
                epoch_callback(log)

        widths = [module.input_dim, *self.hidden_dims, 2 * latent]
        layer_products = sum(a * b for a, b in itertools.pairwise(widths))
        # Forward and backward through encoder and decoder: about 12 flops per weight and row.
        threads = choose_threads(12.0 * batch * layer_products, self.n_jobs)
        with torch_threads(threads):
            history = train(
                module,
                _to_inputs(enc_train, device),
                _to_inputs(enc_val, device),
                config,
                torch.Generator().manual_seed(seed),
                on_epoch,
            )
        self.history_ = [h.as_dict() for h in history]
        self.train_config_ = {k: v for k, v in config.__dict__.items()}
        self.module_ = module.cpu().eval()

    def _build_module(self) -> TabularVAE:
        a = self.architecture_
        return TabularVAE(
            a["n_num"],
            list(a["nullable_num"]),
            a["n_bin"],
            list(a["cat_cardinalities"]),
            a["latent_dim"],
            tuple(a["hidden_dims"]),
            a["kind"],
            list(a["num_min_variance"]),
        )

    def _design(self, enc: Encoded) -> np.ndarray:
        pre = self.preprocessor_
        x = _to_inputs(enc, torch.device("cpu"), torch.float64)
        return design_tensor(x, torch.tensor(pre.nullable_num, dtype=torch.long), pre.cat_cardinalities).numpy()

    def _fit_ppca(self, enc_train: Encoded) -> None:
        pre = self.preprocessor_
        design = self._design(enc_train)
        d = design.shape[1]
        q = int(self.latent_dim) if self.latent_dim is not None else int(np.clip(len(pre.internal_order) // 2, 1, 16))
        q = max(1, min(q, d - 1, design.shape[0] - 1))
        # A tiny ridge keeps the covariance invertible when columns are constant.
        pca = PCA(n_components=q, svd_solver="full").fit(design)
        covariance = pca.get_covariance() + 1e-6 * np.eye(d)
        precision = np.linalg.inv(covariance)
        _, logdet = np.linalg.slogdet(covariance)
        mapping = np.asarray(
            design_to_feature(len(pre.num_features), pre.nullable_num, len(pre.bin_features), pre.cat_cardinalities)
        )
        self.ppca_ = PPCAParams(pca.mean_, precision, float(logdet), pca.components_, mapping)
        self.architecture_ = {"kind": "ppca", "latent_dim": q, "design_dim": d}

    def _prepare_scoring(self) -> None:
        """Build what scoring needs once (an eval-mode copy of the network and the fixed draws)."""
        if self.kind == "ppca":
            return
        self._scoring_module = self._build_module()
        self._scoring_module.load_state_dict(self.module_.state_dict())
        self._scoring_module.eval()
        k = IWAE_DEFAULT_DRAWS if self.n_score_samples is None else int(self.n_score_samples)
        self._draws = standard_normal_draws(k, self.architecture_["latent_dim"], self.seed_)

    def _elbo_draws(self) -> int:
        """Draws behind the ELBO's reconstruction term (0: at the posterior mean)."""
        return 0 if self.n_score_samples is None else int(self.n_score_samples)

    # ------------------------------------------------------------------ scoring core
    def _components(self, enc: Encoded, sampled: bool, iwae: bool = True, expectations: bool = False) -> Components:
        comp = self._network_components(enc, sampled, iwae, expectations)
        if enc.unexpected_missing is not None:
            # A value missing where training never had one: the network cannot weigh it, so
            # its term is the surprise of the event itself, -log of the Laplace estimate
            # 1 / (n + 2) of a miss after n observed rows. Terms still sum to the score.
            evidence = math.log(self.n_train_rows_ + 2)
            for terms in {id(t): t for t in (comp.reconstruction, comp.elbo, comp.iwae)}.values():
                terms[enc.unexpected_missing] = evidence
        return comp

    def _network_components(self, enc: Encoded, sampled: bool, iwae: bool, expectations: bool) -> Components:
        if self.kind == "ppca":
            nll = score_ppca(self.ppca_, self._design(enc), len(self.preprocessor_.internal_order))
            mean = self.ppca_.mean
            pre = self.preprocessor_
            n, nn_, nb = len(enc), len(pre.num_features), len(pre.bin_features)
            num_mean = np.tile(mean[:nn_], (n, 1))
            off = nn_ + len(pre.nullable_num)
            bin_prob = np.tile(mean[off : off + nb], (n, 1))
            cat_mode = np.zeros((n, len(pre.cat_features)), dtype=np.int64)
            start = off + nb
            for j, card in enumerate(pre.cat_cardinalities):
                cat_mode[:, j] = int(np.argmax(mean[start : start + card]))
                start += card
            latent = (self._design(enc) - mean) @ self.ppca_.components.T
            zero = np.zeros(n)
            return Components(nll, nll, zero, nll, zero, num_mean, bin_prob, cat_mode, latent)
        comp = score_vae(self._scoring_module, enc, self._draws, sampled=sampled, iwae=iwae, expectations=expectations)
        if self._elbo_draws() == 0:  # the draws (if run) were for IWAE; the ELBO is at the posterior mean
            comp.elbo = comp.reconstruction
        return comp

    @staticmethod
    def _method_terms(comp: Components, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature terms (internal order) and the latent term of one scoring method."""
        if method == "reconstruction":
            return comp.reconstruction, np.zeros(comp.reconstruction.shape[0])
        if method == "elbo":
            return comp.elbo, comp.kl
        return comp.iwae, comp.iwae_latent

    def _rank_features(
        self, enc: Encoded, score: np.ndarray, excess: np.ndarray, method: str, sampled: bool, top_k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank each row's features by how much the score falls when that feature alone is typical.

        A term of the score can be large because another feature is off: an extreme
        value pulls the latent code, and correlated features are then mispredicted.
        Resetting the real culprit repairs the whole row, so the counterfactual drop
        names it. Only the ``max(2k, 6)`` features with the largest excess are tried.
        """
        pre = self.preprocessor_
        n, n_feat = len(enc), len(pre.feature_names)
        m = min(n_feat, max(2 * top_k, 6))
        candidates = np.argsort(-excess[:, :n_feat], axis=1, kind="stable")[:, :m]  # schema order
        internal = pre.to_schema_order[candidates]  # -> internal index
        n_num, n_bin = enc.num.shape[1], enc.bin.shape[1]
        typ_num, typ_bin, typ_cat = pre.typical_row_values()
        rows = np.repeat(np.arange(n), m)
        mod = enc.take(rows).copy()
        feat = internal.ravel()
        r = np.arange(n * m)
        if mod.unexpected_missing is not None:
            mod.unexpected_missing[r, feat] = False  # a feature made typical is present
        is_num = feat < n_num
        is_bin = (feat >= n_num) & (feat < n_num + n_bin)
        is_cat = feat >= n_num + n_bin
        mod.num[r[is_num], feat[is_num]] = typ_num[feat[is_num]]
        mod.num_obs[r[is_num], feat[is_num]] = 1.0
        mod.bin[r[is_bin], feat[is_bin] - n_num] = typ_bin[feat[is_bin] - n_num]
        mod.cat[r[is_cat], feat[is_cat] - n_num - n_bin] = typ_cat[feat[is_cat] - n_num - n_bin]
        comp = self._components(mod, sampled=sampled, iwae=method == "iwae")
        per_feature, latent = self._method_terms(comp, method)
        modified = (row_sum(per_feature) + latent).reshape(n, m)
        drops = score[:, None] - modified
        order = np.argsort(-drops, axis=1, kind="stable")
        return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(drops, order, axis=1)

    def _score_clean(
        self,
        clean: pd.DataFrame,
        scoring: str | None = None,
        *,
        sampled: bool = True,
        explain_top_k: int = 0,
        enc: Encoded | None = None,
    ) -> ScoreResult:
        """Score a frame already normalized by ``schema_.validate_frame`` (and ``enc``, its encoding)."""
        method = scoring or self.scoring
        pre = self.preprocessor_
        if enc is None:
            enc = pre.transform(clean)
        # Draw passes: IWAE always needs them; the ELBO only when it averages over draws
        # (``sampled`` then also fills ``neg_elbo`` for the other methods).
        sampled = method == "iwae" or (self._elbo_draws() > 0 and (sampled or method == "elbo"))
        comp = self._components(enc, sampled=sampled, iwae=method == "iwae", expectations=explain_top_k > 0)
        perm = pre.to_schema_order
        per_feature, latent = self._method_terms(comp, method)
        contributions = np.column_stack([per_feature[:, perm], latent])
        score = row_sum(contributions)
        baseline = getattr(self, "calibration_", {}).get("feature_baseline", {}).get(method)
        excess = contributions - (np.asarray(baseline) if baseline is not None else 0.0)
        reference = getattr(self, "_reference", None)
        threshold = float(getattr(self, "threshold_", np.inf))
        p_value = conformal_p_values(score, reference) if reference is not None else np.full(len(score), np.nan)
        values: dict[str, np.ndarray] = {}
        expected: dict[str, np.ndarray] = {}
        ranking = drops = None
        if explain_top_k > 0 and len(enc):
            # Only explanations show values in the user's units; the batch and Spark
            # hot path skips the conversion.
            values, expected = self._values_and_expectations(clean, enc, comp)
            ranking, drops = self._rank_features(enc, score, excess, method, sampled, explain_top_k)
        return ScoreResult(
            anomaly_score=score,
            reconstruction=row_sum(comp.reconstruction),
            neg_elbo=row_sum(comp.elbo) + comp.kl,
            p_value=p_value,
            is_anomaly=score > threshold,
            threshold=threshold,
            contributions=contributions,
            excess=excess,
            feature_names=[*pre.feature_names, LATENT],
            values=values,
            expected=expected,
            latent_mean=comp.latent_mean,
            ranking=ranking,
            drops=drops,
        )

    def _values_and_expectations(
        self, clean: pd.DataFrame, enc: Encoded, comp: Components
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        pre = self.preprocessor_
        assert comp.num_mean is not None and comp.bin_prob is not None and comp.cat_mode is not None
        derived = expand_features(clean, self.schema_, pre.frequencies)
        values: dict[str, np.ndarray] = {}
        expected: dict[str, np.ndarray] = {}
        for j, name in enumerate(pre.num_features):
            values[name] = np.asarray(derived[name], dtype=np.float64)
            expected[name] = pre.inverse_numeric(name, comp.num_mean[:, j])
        for j, name in enumerate(pre.bin_features):
            spec = self.schema_[name]
            levels = np.asarray(spec.levels, dtype=object)
            t = np.asarray(derived[name], dtype=np.float64)
            lo, hi = float(spec.levels[0]), float(spec.levels[1])
            raw = t * (hi - lo) + lo
            values[name] = np.where(t == 0, levels[0], np.where(t == 1, levels[1], raw.astype(object)))
            expected[name] = np.where(comp.bin_prob[:, j] > 0.5, levels[1], levels[0])
        for j, name in enumerate(pre.cat_features):
            vocab = np.asarray(pre.stats[name]["vocabulary"], dtype=object)
            values[name] = np.asarray(derived[name], dtype=object)
            expected[name] = vocab[comp.cat_mode[:, j]]
        return values, expected

    # ------------------------------------------------------------------ public scoring
    def score_frame(
        self,
        X: Any,
        *,
        scoring: str | None = None,
        errors: Literal["raise", "collect"] = "raise",
        warn_extra: bool = True,
        sampled: bool = True,
        explain_top_k: int = 0,
    ) -> ScoreResult:
        """Validate and score rows; the single scoring function behind every entry point.

        Parameters
        ----------
        X : DataFrame or array
            Rows to score, with the training columns (extra columns are ignored with a warning).
        scoring : str, optional
            Override the detector's ``scoring`` for this call.
        errors : {"raise", "collect"}
            ``"collect"`` sets invalid rows aside in ``result.rejected`` (keyed by row
            position) instead of raising; ``result.row_positions`` maps scored rows back.
        sampled : bool
            ``False`` skips the sampled passes unless the scoring method needs them
            (a reconstruction score needs none; ``neg_elbo`` then uses the posterior
            mean). The score itself is the same either way.
        explain_top_k : int
            Also rank the features behind each row's score (``result.top_features``).
        """
        self._check_scoring(scoring)
        return self._score_rows(self._prepare_rows(X, errors, warn_extra), scoring, sampled, explain_top_k)

    def _check_scoring(self, scoring: str | None) -> None:
        self._check_fitted()
        if scoring is not None and scoring not in SCORINGS:
            raise ConfigurationError(f"scoring={scoring!r} is invalid; expected one of {list(SCORINGS)}.")
        if (scoring or self.scoring) == "iwae" and self.kind != "ppca" and self.n_score_samples == 0:
            raise ConfigurationError(
                "scoring='iwae' is invalid for this detector: it was fitted with n_score_samples=0 and the "
                "importance-weighted bound needs at least 1 draw. Use scoring='elbo' or 'reconstruction'."
            )

    def _prepare_rows(self, X: Any, errors: Literal["raise", "collect"], warn_extra: bool) -> _Prepared:
        """The first half of :meth:`score_frame`: validate and encode (pandas work).

        The batch job runs it in its reader thread while the previous chunk is in
        :meth:`_score_rows` (torch work), so both cores stay busy.
        """
        self._check_fitted()
        frame = self._input_frame(X, reset=False)
        validated = self.schema_.validate_frame(frame, errors=errors, warn_extra=warn_extra)
        keep = np.ones(len(frame), dtype=bool)
        keep[list(validated.rejected)] = False
        enc = self.preprocessor_.transform(validated.frame)
        return _Prepared(validated.frame, enc, validated.rejected, np.flatnonzero(keep))

    def _score_rows(self, prepared: _Prepared, scoring: str | None, sampled: bool, explain_top_k: int) -> ScoreResult:
        """The second half of :meth:`score_frame`: score encoded rows."""
        self._check_scoring(scoring)
        result = self._score_clean(
            prepared.clean, scoring, sampled=sampled, explain_top_k=explain_top_k, enc=prepared.enc
        )
        result.rejected = prepared.rejected
        result.row_positions = prepared.row_positions
        return result

    def anomaly_score(self, X: Any, *, scoring: str | None = None, return_p_value: bool = False) -> Any:
        """Anomaly score per row (higher = more anomalous); optionally with conformal p-values."""
        # sampled=False: only the chosen method's passes (a reconstruction score needs no draws).
        result = self.score_frame(X, scoring=scoring, sampled=False)
        if return_p_value:
            return result.anomaly_score, result.p_value
        return result.anomaly_score

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn convention: higher = more normal (the negated anomaly score)."""
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Negative for rows above the threshold (anomalies), positive for normal rows."""
        self._check_fitted()
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for normal rows, -1 for anomalies, as scikit-learn's outlier detectors return."""
        return np.where(self.flag(X), -1, 1)

    def flag(self, X: Any) -> np.ndarray:
        """Boolean array: ``anomaly_score > threshold_``."""
        return self.score_frame(X, sampled=False).is_anomaly

    def feature_contributions(self, X: Any, *, scoring: str | None = None) -> pd.DataFrame:
        """Per-row, per-feature terms of the score (plus ``<latent>``); rows sum to the score."""
        r = self.score_frame(X, scoring=scoring, sampled=False)
        return pd.DataFrame(r.contributions, columns=r.feature_names)

    def explain(self, X: Any, top_k: int = 3, *, scoring: str | None = None) -> pd.DataFrame:
        """The ``top_k`` features that make each row unusual, most unusual first.

        Candidates are the features whose term of the score exceeds its median on
        held-out normal rows the most (so a feature with many categories is not blamed
        just for being hard to predict); they are ranked by ``attribution``, the fall of
        the score when that feature alone is set to its typical value.

        Returns
        -------
        DataFrame with columns ``row, rank, feature, contribution, excess,
        attribution, value, expected, anomaly_score``.
        """
        r = self.score_frame(X, scoring=scoring, explain_top_k=top_k)
        records = []
        for i, items in enumerate(r.top_features(top_k)):
            for rank, item in enumerate(items, start=1):
                records.append({"row": i, "rank": rank, **item, "anomaly_score": float(r.anomaly_score[i])})
        cols = ["row", "rank", "feature", "contribution", "excess", "attribution", "value", "expected", "anomaly_score"]
        return pd.DataFrame.from_records(records, columns=cols)

    def transform_latent(self, X: Any) -> np.ndarray:
        """Posterior means (the 2-D view of the report uses these)."""
        return self.score_frame(X, sampled=False).latent_mean

    # ------------------------------------------------------------------ calibration
    def calibrate(
        self,
        X: Any,
        y: Any = None,
        *,
        target_fpr: float | None = None,
        target_precision: float | None = None,
        target_recall: float | None = None,
    ) -> VAEDetector:
        """Set ``threshold_`` from held-out rows.

        Without ``y`` all rows are taken as normal and the threshold meets
        ``target_fpr`` (default: the detector's) with the split-conformal guarantee.
        With ``y`` (1 = anomaly), the threshold meets ``target_precision`` or
        ``target_recall``, or maximizes F1 when neither is given; normal rows also
        become the p-value reference. Realized rates are recorded in ``calibration_``.
        """
        self._check_fitted()
        targets = [t for t in (target_fpr, target_precision, target_recall) if t is not None]
        if len(targets) > 1:
            raise ConfigurationError("Pass at most one of target_fpr, target_precision and target_recall.")
        result = self.score_frame(X)
        labels = None
        if y is not None:
            labels = np.asarray(y).astype(bool).ravel()
            if labels.shape[0] != len(result):
                raise DataError(f"y has {labels.shape[0]} labels for {len(result)} rows; expected one label per row.")
        if labels is None or target_fpr is not None:
            normal = result.anomaly_score if labels is None else result.anomaly_score[~labels]
            contribs = result.contributions if labels is None else result.contributions[~labels]
            goal = {"target_fpr": target_fpr if target_fpr is not None else self.target_fpr}
            self._set_calibration(
                normal,
                contribs,
                source="calibrate",
                labels=None,
                threshold=None,
                goal=goal,
                strict=True,
                all_scores=result.anomaly_score,
                all_labels=labels,
            )
            return self
        threshold, goal = threshold_from_labels(
            result.anomaly_score, labels, target_precision=target_precision, target_recall=target_recall
        )
        self._set_calibration(
            result.anomaly_score[~labels],
            result.contributions[~labels],
            source="calibrate",
            labels=labels,
            threshold=threshold,
            goal=goal,
            all_scores=result.anomaly_score,
            all_labels=labels,
        )
        return self

    def _set_calibration(
        self,
        normal_scores: np.ndarray,
        normal_contribs: np.ndarray,
        *,
        source: str,
        labels: np.ndarray | None,
        threshold: float | None,
        goal: dict[str, Any],
        strict: bool = False,
        all_scores: np.ndarray | None = None,
        all_labels: np.ndarray | None = None,
    ) -> None:
        if normal_scores.size == 0:
            raise InsufficientDataError("Calibration needs normal rows; got none.")
        if threshold is None:
            fpr = float(goal["target_fpr"])
            try:
                threshold = threshold_for_fpr(normal_scores, fpr)
                guaranteed = True
            except InsufficientDataError:
                if strict:
                    raise
                threshold, guaranteed = float(np.max(normal_scores)), False
            goal = {**goal, "conformal_guarantee": guaranteed}
        self.threshold_ = float(threshold)
        self.offset_ = -self.threshold_
        self._reference = np.sort(normal_scores)
        realized: dict[str, Any] = {
            "n_normal": int(normal_scores.size),
            "false_positive_rate": float(np.mean(normal_scores > threshold)),
        }
        if all_labels is not None and all_scores is not None:
            pred = all_scores > threshold
            tp = int(np.sum(pred & all_labels))
            fp = int(np.sum(pred & ~all_labels))
            fn = int(np.sum(~pred & all_labels))
            realized.update(
                n_anomalies=int(all_labels.sum()),
                precision=tp / (tp + fp) if tp + fp else 0.0,
                recall=tp / (tp + fn) if tp + fn else 0.0,
                alert_rate=float(pred.mean()),
            )
        # Per-feature medians on normal rows, per scoring method, for explain's ranking.
        baseline = {self.scoring: np.median(normal_contribs, axis=0).tolist()}
        self.calibration_ = {
            "source": source,
            "scoring": self.scoring,
            "goal": goal,
            "threshold": self.threshold_,
            "realized": realized,
            "reference_scores": self._reference.tolist(),
            "feature_baseline": baseline,
        }

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, *, extra_documents: Mapping[str, Any] | None = None) -> None:
        """Write the fitted detector to a directory (safetensors + JSON + SHA-256 manifest).

        ``extra_documents`` (name -> JSON-able object) are stored and hashed alongside,
        for example the CLI's training summary; ``load`` returns them in ``extra_documents_``.
        """
        self._check_fitted()
        extra_docs = dict(extra_documents or getattr(self, "extra_documents_", {}))
        reserved = {"config", "schema", "preprocessing", "calibration", "history", "versions"} & set(extra_docs)
        if reserved:
            raise ConfigurationError(f"extra_documents cannot use the reserved name(s) {sorted(reserved)}.")
        params = self.get_params()
        params.pop("n_jobs")  # a runtime setting of this machine, not of the model
        params["hidden_dims"] = list(params["hidden_dims"])
        params["column_types"] = dict(params["column_types"]) if params["column_types"] else None
        if self.kind == "ppca":
            tensors = {
                "ppca.mean": torch.from_numpy(self.ppca_.mean),
                "ppca.precision": torch.from_numpy(self.ppca_.precision),
                "ppca.components": torch.from_numpy(self.ppca_.components),
                "ppca.design_to_feature": torch.from_numpy(self.ppca_.design_to_feature.astype(np.int64)),
            }
            extra = {"ppca_logdet": self.ppca_.logdet}
        else:
            tensors = {f"module.{k}": v for k, v in self.module_.state_dict().items()}
            extra = {}
        config = {
            "class": type(self).__name__,
            "params": params,
            "seed": self.seed_,
            "architecture": self.architecture_,
            "train_config": getattr(self, "train_config_", None),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": [str(c) for c in getattr(self, "feature_names_in_", [])] or None,
            "n_train_rows": self.n_train_rows_,
            "n_validation_rows": self.n_validation_rows_,
            **extra,
        }
        versions = {
            "fraudvae": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "scikit-learn": sklearn.__version__,
        }
        write_artifact(
            path,
            tensors,
            {
                "config": config,
                "schema": self.schema_.to_json(),
                "preprocessing": self.preprocessor_.to_json(),
                "calibration": self.calibration_,
                "history": self.history_,
                "versions": versions,
                **extra_docs,
            },
        )
        self.extra_documents_ = extra_docs

    @classmethod
    def load(cls, path: str) -> VAEDetector:
        """Read a directory written by :meth:`save`, verifying every file's SHA-256 first."""
        tensors, docs = read_artifact(path)
        try:
            config = docs["config"]
            params = dict(config["params"])
            params["hidden_dims"] = tuple(params["hidden_dims"])
            det = cls(**params)
            det.schema_ = Schema.from_json(docs["schema"])
            det.preprocessor_ = Preprocessor.from_json(det.schema_, docs["preprocessing"])
            det.seed_ = int(config["seed"])
            det.architecture_ = config["architecture"]
            det.n_features_in_ = int(config["n_features_in"])
            if config.get("feature_names_in"):
                det.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
            det.n_train_rows_ = int(config["n_train_rows"])
            det.n_validation_rows_ = int(config["n_validation_rows"])
            det.history_ = list(docs["history"])
            if config.get("train_config"):
                det.train_config_ = config["train_config"]
            if det.kind == "ppca":
                det.ppca_ = PPCAParams(
                    tensors["ppca.mean"].numpy(),
                    tensors["ppca.precision"].numpy(),
                    float(config["ppca_logdet"]),
                    tensors["ppca.components"].numpy(),
                    tensors["ppca.design_to_feature"].numpy(),
                )
            else:
                module = det._build_module()
                state = {k[len("module.") :]: v for k, v in tensors.items() if k.startswith("module.")}
                module.load_state_dict(state)
                det.module_ = module.eval()
            known = {"config", "schema", "preprocessing", "calibration", "history", "versions"}
            det.extra_documents_ = {k: v for k, v in docs.items() if k not in known}
            cal = docs["calibration"]
            det.calibration_ = cal
            det.threshold_ = float(cal["threshold"])
            det.offset_ = -det.threshold_
            det._reference = np.asarray(cal["reference_scores"], dtype=np.float64)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IncompatibleArtifactError(
                f"{path!r} passed its integrity check but its content is not what this fraudvae "
                f"({__version__}) expects ({type(exc).__name__}: {exc}). It was written by fraudvae "
                f"{docs.get('versions', {}).get('fraudvae', 'unknown')}; re-save it with this version."
            ) from exc
        det._prepare_scoring()
        return det

    @property
    def feature_names_out_(self) -> list[str]:
        self._check_fitted()
        return [*self.preprocessor_.feature_names, LATENT]
