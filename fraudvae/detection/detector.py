"""``VAEDetector``: the thin scikit-learn facade over the engine.

It validates parameters and containers (the edge), splits the data, fits a backend
(:mod:`fraudvae.model.backends`), calibrates every scoring plan, and hands scoring to the
:class:`~fraudvae.detection.engine.Engine`. Persistence lives in :mod:`fraudvae.detection.persistence`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from fraudvae.data.schema import as_frame
from fraudvae.detection.engine import PreparedRows
from fraudvae.detection.fitting import Fitted, calibrated_plans, fit_engine
from fraudvae.detection.persistence import load_detector, save_detector
from fraudvae.detection.plan import ScoringPlan
from fraudvae.detection.results import LATENT, ScoreResult
from fraudvae.exceptions import ConfigurationError, DataError, NotFittedError
from fraudvae.model.backends import BACKENDS
from fraudvae.model.training import EpochLog

__all__ = ["VAEDetector"]

#: Parameters that change how a fitted model scores, not the model: ``set_params``
#: applies them to a fitted detector; any other parameter needs a new fit (``clone``).
RUNTIME_PARAMS = frozenset({"scoring", "n_score_samples", "n_jobs", "verbose"})


class VAEDetector(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Anomaly detector for mixed-type tables: a VAE fitted on normal rows only.

    Parameters
    ----------
    kind : {"vae", "ae", "dae", "ppca"}
        The backend: the VAE (default); a deterministic or denoising autoencoder with the
        same likelihood heads; or closed-form probabilistic PCA, the linear baseline.
    scoring : {"elbo", "reconstruction", "iwae"}
        Default score: the negative ELBO (best on the shared benchmark), the feature
        likelihood at the posterior mean, or the tighter, costlier importance-weighted bound.
    n_score_samples : int or None
        Draws of ``z`` behind sampled scores (fixed draws: scores are deterministic).
        ``None``: each method's default, the posterior mean for the ELBO (as good as 16
        draws on the benchmark, one decoder pass) and 16 draws for IWAE. With ``scoring``
        it makes the :class:`~fraudvae.detection.plan.ScoringPlan` (:meth:`scoring_plan`); ``fit``
        calibrates the plans of all three methods.
    latent_dim, hidden_dims
        Size of ``z`` (``None``: ``clip(n_features // 2, 2, 16)``) and widths (docs/experiments/2026-12-02-generalization-ablation.md).
    prior_components : int
        The prior over ``z``: a learned mixture of this many Gaussians (``0``: the standard
        normal). Clustered normal data leaves gaps between clusters that the score sees.
    max_epochs, batch_size : int or None
        ``None`` follows :mod:`fraudvae.model.schedule` (about 2,000 steps, batches of a tenth of
        the rows up to 256, larger beyond 25,600 rows with the learning rate scaled).
    learning_rate, weight_decay, beta, kl_warmup_epochs, free_bits, patience, noise_std
        AdamW settings, KL weight and warm-up, per-dimension KL floor (nats), early-stopping
        patience (epochs), input corruption of the denoising autoencoder.
    validation_fraction, target_fpr : float
        Share of the normal rows held out for early stopping and calibration; the
        false-positive rate the thresholds are calibrated to at ``fit``.
    n_init : int
        Fits from seeds ``random_state + 1000 k`` on one split, the best validation loss kept.
    column_types, max_categories, min_category_count
        Kind per column overriding inference; vocabulary cap per categorical column; how
        often a value must occur to get its own category (rarer ones share ``<other>``).
    device : str
        ``"auto"`` trains on a GPU when present; scoring always runs on the CPU.
    n_jobs : int or None
        Torch threads (``None``: ``FRAUDVAE_TORCH_THREADS`` or chosen from the work and the
        usable CPUs, :mod:`fraudvae.model.threads`). Not saved; scores do not depend on it.
    random_state, verbose
        Seed of the split, the initial weights, training and the score draws; print one
        line per epoch.
    """

    def __init__(
        self,
        kind: Literal["vae", "ae", "dae", "ppca"] = "vae",
        scoring: Literal["elbo", "reconstruction", "iwae"] = "elbo",
        latent_dim: int | None = None,
        hidden_dims: tuple[int, ...] = (256, 128),
        prior_components: int = 16,
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
        n_init: int = 1,
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
        self.prior_components = prior_components
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
        self.n_init = n_init
        self.n_score_samples = n_score_samples
        self.target_fpr = target_fpr
        self.column_types = column_types
        self.max_categories = max_categories
        self.min_category_count = min_category_count
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ scikit-learn glue
    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = tags.input_tags.string = tags.input_tags.categorical = True
        return tags

    def set_params(self, **params: Any) -> VAEDetector:
        """As scikit-learn's, but a fitted detector takes only what applies without refitting.

        ``scoring``, ``n_score_samples``, ``n_jobs`` and ``verbose`` take effect at once
        (a plan ``fit`` did not calibrate then needs :meth:`calibrate`); any other change to
        a fitted detector is refused: it would describe a model that was never fitted.
        """
        if hasattr(self, "engine_"):
            current = self.get_params(deep=False)
            fixed = sorted(k for k, v in params.items() if k not in RUNTIME_PARAMS and current.get(k, v) != v)
            if fixed:
                raise ConfigurationError(
                    f"Cannot set {fixed} on a fitted {type(self).__name__}: they shape the fitted model. "
                    "Use sklearn.base.clone(detector).set_params(...) and fit again."
                )
            ScoringPlan.resolve(
                params.get("scoring", self.scoring), params.get("n_score_samples", self.n_score_samples)
            )
        return super().set_params(**params)  # type: ignore[no-any-return]

    def _input_frame(self, X: Any, *, reset: bool) -> pd.DataFrame:
        """Validate the container (not the values) and return a frame with string names."""
        if isinstance(X, pd.DataFrame):
            if reset:
                validate_data(self, X, reset=True, skip_check_array=True)  # n_features_in_, feature_names_in_
                if not all(isinstance(c, str) for c in X.columns):
                    self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
            return as_frame(X)
        if reset:
            arr = validate_data(self, X, reset=True, ensure_all_finite="allow-nan", dtype="numeric")
        else:
            arr = check_array(X, ensure_all_finite=False, dtype="numeric")
            validate_data(self, arr, reset=False, skip_check_array=True)
        names = list(getattr(self, "feature_names_in_", [])) or None
        return as_frame(arr, names if reset or names else self.engine_.schema.names)

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self, "engine_")
        except Exception as exc:  # sklearn's NotFittedError -> ours, which subclasses it
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with normal rows "
                "(or VAEDetector.load a saved model) before scoring."
            ) from exc

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, *, epoch_callback: Callable[[EpochLog], None] | None = None) -> VAEDetector:
        """Learn what normal rows look like, then calibrate every plan on held-out ones.

        ``X``: normal rows only (a DataFrame of mixed types, or an array); missing values
        are modelled. ``y`` is ignored (scikit-learn compatibility). ``epoch_callback`` is
        called with an :class:`~fraudvae.model.training.EpochLog` after every epoch.
        """
        _check_params(self)
        self._set_fitted(fit_engine(self._input_frame(X, reset=True), self.get_params(), epoch_callback))
        return self

    def _set_fitted(self, fitted: Fitted) -> None:
        self.engine_, self.schema_, self.preprocessor_ = fitted.engine, fitted.engine.schema, fitted.engine.preprocessor
        self.seed_, self.architecture_, self.history_ = fitted.seed, fitted.architecture, fitted.history
        self.n_train_rows_, self.n_validation_rows_ = fitted.n_train_rows, fitted.n_validation_rows
        self.init_seeds_, self.best_init_ = [i.seed for i in fitted.inits], fitted.best_init
        self.init_validation_losses_, self.reference_ = [i.validation_loss for i in fitted.inits], fitted.reference
        if fitted.train_config is not None:
            self.train_config_ = fitted.train_config

    # ------------------------------------------------------------------ plans and calibration
    def scoring_plan(self, scoring: str | None = None) -> ScoringPlan:
        """The plan (method and draws) a score uses: ``scoring`` or the detector's, with ``n_score_samples``."""
        return ScoringPlan.resolve(scoring or self.scoring, self.n_score_samples)

    def _elbo_draws(self) -> int:
        """Draws of the ELBO in the ``neg_elbo`` column (IWAE's draws leave a posterior-mean ELBO alone)."""
        return self.scoring_plan("elbo").draws

    @property
    def calibration_(self) -> dict[str, Any]:
        """The calibration document (``calibration.json``): one entry per calibrated plan."""
        self._check_fitted()
        return self.engine_.calibration

    @property
    def threshold_(self) -> float:
        """Threshold of the current plan (``anomaly_score > threshold_`` flags a row)."""
        self._check_fitted()
        return self.engine_.plan_calibration(self.scoring_plan()).threshold

    @property
    def offset_(self) -> float:
        """scikit-learn's convention: ``decision_function = score_samples - offset_``."""
        return -self.threshold_

    def calibrate(
        self,
        X: Any,
        y: Any = None,
        *,
        target_fpr: float | None = None,
        target_precision: float | None = None,
        target_recall: float | None = None,
    ) -> VAEDetector:
        """Recalibrate every plan (and the current one) on held-out rows.

        Without ``y`` all rows are normal and the threshold meets ``target_fpr`` (default:
        the detector's) with the split-conformal guarantee. With ``y`` (1 = anomaly) it meets
        ``target_precision`` or ``target_recall``, or maximizes F1; normal rows become the
        p-value reference. Realized rates are recorded in ``calibration_``.
        """
        self._check_fitted()
        if sum(t is not None for t in (target_fpr, target_precision, target_recall)) > 1:
            raise ConfigurationError("Pass at most one of target_fpr, target_precision and target_recall.")
        prepared = self.prepare(X)
        labels = None
        if y is not None:
            labels = np.asarray(y).astype(bool).ravel()
            if labels.shape[0] != len(prepared):
                raise DataError(f"y has {labels.shape[0]} labels for {len(prepared)} rows; expected one label per row.")
        if labels is None and target_fpr is None:
            target_fpr = self.target_fpr
        targets = {"target_fpr": target_fpr, "target_precision": target_precision, "target_recall": target_recall}
        plans = calibrated_plans(self.n_score_samples)
        engine = self.engine_
        doc = engine.calibrate(
            prepared, plans, self.scoring_plan(), source="calibrate", labels=labels, strict=True, **targets
        )
        self.engine_ = engine.with_calibration(doc)
        return self

    # ------------------------------------------------------------------ scoring
    def prepare(
        self, X: Any, *, errors: Literal["raise", "collect"] = "raise", warn_extra: bool = True
    ) -> PreparedRows:
        """Validate and encode rows (the first step of :meth:`score_frame`; pandas work).

        ``errors="collect"`` sets invalid rows aside in ``rejected`` (by row position)
        instead of raising. The batch job runs this in its reader thread while earlier
        chunks are in :meth:`score_prepared` (torch work), so both cores stay busy.
        """
        self._check_fitted()
        return self.engine_.prepare(self._input_frame(X, reset=False), errors=errors, warn_extra=warn_extra)

    def score_prepared(
        self, prepared: PreparedRows, *, scoring: str | None = None, sampled: bool = True, explain_top_k: int = 0
    ) -> ScoreResult:
        """Score rows from :meth:`prepare` (the second step of :meth:`score_frame`)."""
        self._check_fitted()
        return self.engine_.score(
            prepared,
            self.scoring_plan(scoring),
            sampled=sampled,
            explain_top_k=explain_top_k,
            elbo_draws=self._elbo_draws(),
        )

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

        ``scoring`` overrides the detector's method for this call (its own calibrated
        threshold, p-value reference and explanation baseline are used). ``errors="collect"``
        puts invalid rows in ``result.rejected``; ``result.row_positions`` maps scored rows
        back. ``sampled=False`` skips draw passes the score does not need (``neg_elbo`` is
        then at the posterior mean). ``explain_top_k`` ranks the features behind each score.
        """
        plan = self.scoring_plan(scoring)
        prepared = self.prepare(X, errors=errors, warn_extra=warn_extra)
        return self.engine_.score(
            prepared, plan, sampled=sampled, explain_top_k=explain_top_k, elbo_draws=self._elbo_draws()
        )

    def anomaly_score(self, X: Any, *, scoring: str | None = None, return_p_value: bool = False) -> Any:
        """Anomaly score per row (higher = more anomalous); optionally with conformal p-values.

        Scores need no calibration (p-values do): any valid plan can be scored.
        """
        plan = self.scoring_plan(scoring)
        prepared = self.prepare(X)
        result = self.engine_.score(prepared, plan, sampled=False, require_calibration=return_p_value)
        return (result.anomaly_score, result.p_value) if return_p_value else result.anomaly_score

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn convention: higher = more normal (the negated anomaly score)."""
        return -self.anomaly_score(X)  # type: ignore[no-any-return]

    def decision_function(self, X: Any) -> np.ndarray:
        """Negative for rows above the threshold (anomalies), positive for normal rows."""
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

        Candidates are the features whose term exceeds its median on held-out normal rows
        the most (a feature with many categories is not blamed just for being hard to
        predict), ranked by ``attribution``: the fall of the score when that feature alone
        is set to its typical value. Columns: ``row, rank, feature, contribution, excess,
        attribution, value, expected, anomaly_score``.
        """
        return self.score_frame(X, scoring=scoring, explain_top_k=top_k).explanations(top_k)

    def transform_latent(self, X: Any) -> np.ndarray:
        """Posterior means (the 2-D view of the report uses these)."""
        return self.score_frame(X, sampled=False).latent_mean

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, *, extra_documents: Mapping[str, Any] | None = None) -> None:
        """Write the fitted detector to a directory (safetensors + JSON + SHA-256 manifest).

        ``extra_documents`` (name -> JSON-able object) are stored and hashed alongside,
        for example the CLI's training summary; ``load`` returns them in ``extra_documents_``.
        """
        self._check_fitted()
        save_detector(self, path, extra_documents)

    @classmethod
    def load(cls, path: str) -> VAEDetector:
        """Read a directory written by :meth:`save`, verifying every file's SHA-256 first."""
        return load_detector(cls, path)

    @property
    def feature_names_out_(self) -> list[str]:
        self._check_fitted()
        return [*self.preprocessor_.feature_names, LATENT]


def _check_params(det: VAEDetector) -> None:
    """The parameters' edge checks (kept out of the facade's body, which stays short)."""
    if det.kind not in BACKENDS:
        raise ConfigurationError(f"kind={det.kind!r} is invalid; expected one of {list(BACKENDS)}.")
    if not 0.0 < det.validation_fraction < 1.0:
        raise ConfigurationError(
            f"validation_fraction={det.validation_fraction!r} is invalid; expected a value between 0 and 1."
        )
    k = det.prior_components
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ConfigurationError(
            f"prior_components={k!r} is invalid; expected a whole number >= 0 (0: the standard normal prior)."
        )
    n = det.n_init
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigurationError(
            f"n_init={n!r} is invalid; expected a whole number >= 1 (1: one fit; k: the best of k initialisations)."
        )
    if det.latent_dim is not None and int(det.latent_dim) < 1:
        raise ConfigurationError(f"latent_dim={det.latent_dim!r} is invalid; expected a positive integer or None.")
    det.scoring_plan()
