"""The engine: a fitted model's scoring, from validated rows to a :class:`ScoreResult`.

It holds what fitting produced (schema, preprocessor, backend, calibration) and does
the work every entry point shares, in two public steps:

- :meth:`Engine.prepare`: validate and encode rows (pandas work);
- :meth:`Engine.score`: score prepared rows under a :class:`~fraudvae.detection.plan.ScoringPlan`
  (torch work), with threshold, p-values and explanations from that plan's calibration.

The batch job runs the two steps in different threads so both cores stay busy. The
engine never branches on the model kind: that is the backend's business.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from fraudvae.data.preprocessing import Encoded, Preprocessor, expand_features
from fraudvae.data.schema import Schema
from fraudvae.detection.calibration import calibrate_scores, conformal_p_values
from fraudvae.detection.plan import ScoringPlan
from fraudvae.detection.results import LATENT, ScoreResult
from fraudvae.exceptions import ColumnProblem, NotCalibratedError
from fraudvae.model.backends import Backend
from fraudvae.model.scoring import CHUNK_ROWS, Components, row_sum

__all__ = ["Engine", "PreparedRows"]


@dataclass
class PreparedRows:
    """Rows validated and encoded, ready to score (see :meth:`Engine.prepare`).

    ``clean`` holds the valid rows in the schema's types, ``enc`` their encoding;
    ``rejected`` maps the input position of each invalid row to its problems, and
    ``row_positions`` maps each valid row back to its input position.
    """

    clean: pd.DataFrame
    enc: Encoded
    rejected: dict[int, list[ColumnProblem]]
    row_positions: np.ndarray

    def __len__(self) -> int:
        return len(self.enc)


@dataclass
class _PlanCalibration:
    threshold: float
    reference: np.ndarray  # sorted normal scores
    baseline: np.ndarray  # per-feature median contribution on normal rows


def _method_terms(comp: Components, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature terms (internal order) and the latent term of one scoring method."""
    if method == "reconstruction":
        return comp.reconstruction, np.zeros(comp.reconstruction.shape[0])
    if method == "elbo":
        return comp.elbo, comp.kl
    return comp.iwae, comp.iwae_latent


class Engine:
    """A fitted model's scoring (see the module docstring)."""

    def __init__(
        self,
        schema: Schema,
        preprocessor: Preprocessor,
        backend: Backend,
        n_train_rows: int,
        calibration: dict[str, Any] | None = None,
        default_plan: ScoringPlan | None = None,
    ) -> None:
        self.schema = schema
        self.preprocessor = preprocessor
        self.backend = backend
        self.n_train_rows = n_train_rows
        self.calibration: dict[str, Any] = {}
        self._plans: dict[str, _PlanCalibration] = {}
        if calibration is not None:
            self.set_calibration(calibration, default_plan)

    # ------------------------------------------------------------------ calibration store
    def set_calibration(self, calibration: dict[str, Any], default_plan: ScoringPlan | None = None) -> None:
        """Install a calibration document (``calibration.json``), upgrading the one-plan format.

        Artifacts written before plans existed calibrated one method, the detector's
        ``scoring`` with its ``n_score_samples``: ``default_plan`` says which.
        """
        if "plans" not in calibration:
            if default_plan is None:
                raise ValueError("a calibration without plans needs the plan it was made for")
            legacy = calibration
            entry = {k: legacy[k] for k in ("goal", "threshold", "realized", "reference_scores")}
            entry["feature_baseline"] = legacy["feature_baseline"][legacy["scoring"]]
            calibration = {
                "source": legacy["source"],
                "scoring": legacy["scoring"],
                "plan": default_plan.key,
                "goal": legacy["goal"],
                "threshold": legacy["threshold"],
                "realized": legacy["realized"],
                "plans": {default_plan.key: entry},
            }
        self.calibration = calibration
        self._plans = {
            key: _PlanCalibration(
                float(entry["threshold"]),
                np.asarray(entry["reference_scores"], dtype=np.float64),
                np.asarray(entry["feature_baseline"], dtype=np.float64),
            )
            for key, entry in calibration["plans"].items()
        }

    def calibrated_plans(self) -> list[str]:
        return sorted(self._plans)

    def plan_calibration(self, plan: ScoringPlan) -> _PlanCalibration:
        found = self._plans.get(plan.key)
        if found is None:
            raise NotCalibratedError(
                f"The scoring plan {plan.describe()!r} (key {plan.key!r}) has no calibrated threshold; this model "
                f"calibrated {self.calibrated_plans()}. Call calibrate(X_normal) after choosing the plan, "
                "or score with a calibrated one."
            )
        return found

    def calibrate(
        self,
        prepared: PreparedRows,
        plans: Iterable[ScoringPlan],
        default_plan: ScoringPlan,
        *,
        source: str,
        labels: np.ndarray | None = None,
        strict: bool = False,
        **targets: float | None,
    ) -> dict[str, Any]:
        """A calibration document for every plan, from the same rows (see :func:`fraudvae.detection.calibration.calibrate_scores`).

        ``targets`` are ``target_fpr``, ``target_precision`` or ``target_recall``. The engine is
        left as it is: install the document with :meth:`with_calibration`.
        """
        plans = list(dict.fromkeys([default_plan, *plans]))
        by_draws: dict[int, Components] = {}
        entries: dict[str, dict[str, Any]] = {}
        for plan in plans:
            draws = 0 if plan.method == "reconstruction" else plan.draws
            if draws not in by_draws:
                iwae = any(p.method == "iwae" and p.draws == draws for p in plans)
                by_draws[draws] = self._components(prepared.enc, draws, iwae=iwae, expectations=False)
            contributions, score = self._contributions(by_draws[draws], plan.method)
            entries[plan.key] = calibrate_scores(score, contributions, labels, strict=strict, **targets)
        main = entries[default_plan.key]
        doc = {
            "source": source,
            "scoring": default_plan.method,
            "plan": default_plan.key,
            "goal": main["goal"],
            "threshold": main["threshold"],
            "realized": main["realized"],
            "plans": entries,
        }
        return doc

    def with_calibration(self, calibration: dict[str, Any]) -> Engine:
        """A copy of this engine with another calibration (the fitted model itself is shared)."""
        other = copy.copy(self)
        other.set_calibration(calibration)
        return other

    # ------------------------------------------------------------------ the two steps
    def prepare(self, frame: pd.DataFrame, *, errors: Literal["raise", "collect"], warn_extra: bool) -> PreparedRows:
        """Validate (once, here: the edge) and encode rows of a frame with string column names."""
        validated = self.schema.validate_frame(frame, errors=errors, warn_extra=warn_extra)
        keep = np.ones(len(frame), dtype=bool)
        keep[list(validated.rejected)] = False
        enc = self.preprocessor.transform(validated.frame)
        return PreparedRows(validated.frame, enc, validated.rejected, np.flatnonzero(keep))

    def score(
        self,
        prepared: PreparedRows,
        plan: ScoringPlan,
        *,
        sampled: bool = True,
        explain_top_k: int = 0,
        require_calibration: bool = True,
        elbo_draws: int | None = None,
    ) -> ScoreResult:
        """Score prepared rows under ``plan``.

        ``sampled=False`` skips draw passes the score does not need (a reconstruction
        score needs none; ``neg_elbo`` is then at the posterior mean). Without
        ``require_calibration`` a plan that was never calibrated still gets scores, with
        NaN p-values, an infinite threshold and no explanation baseline. ``elbo_draws``
        says which ELBO fills the ``neg_elbo`` column (``0``: at the posterior mean, even
        when IWAE ran draws; ``None``: the plan's draws).
        """
        cal = self.plan_calibration(plan) if require_calibration else self._plans.get(plan.key)
        enc = prepared.enc
        n, n_feat = len(enc), len(self.preprocessor.feature_names)
        draws = plan.draws if plan.method != "reconstruction" or sampled else 0
        iwae = plan.method == "iwae"
        variant_scores = None
        if explain_top_k > 0 and 0 < n * (n_feat + 1) <= CHUNK_ROWS:
            # A few rows (the service's /score): the rows and each of their one-feature-typical
            # variants fit in one chunk, so the ranking costs no second pass. Same bits as two
            # passes: a row's terms never depend on the rows beside it.
            variants = self._variants(enc, np.tile(np.arange(n_feat), (n, 1)))
            both = self._components(Encoded.stack(enc, variants), draws, iwae=iwae, expectations=True)
            comp = both.rows(slice(0, n))
            variant_scores = self._variant_totals(both.rows(slice(n, None)), plan.method).reshape(n, n_feat)
        else:
            comp = self._components(enc, draws, iwae=iwae, expectations=explain_top_k > 0)
        contributions, score = self._contributions(comp, plan.method)
        if elbo_draws == 0:
            comp.elbo = comp.reconstruction
        excess = contributions - cal.baseline if cal is not None else contributions
        threshold = cal.threshold if cal is not None else math.inf
        p_value = conformal_p_values(score, cal.reference) if cal is not None else np.full(len(score), np.nan)
        values: dict[str, np.ndarray] = {}
        expected: dict[str, np.ndarray] = {}
        ranking = drops = None
        if explain_top_k > 0 and len(enc):
            # Only explanations show values in the user's units; the batch and Spark
            # hot path skips the conversion.
            values, expected = self._values_and_expectations(prepared.clean, comp)
            ranking, drops = self._rank_features(enc, score, excess, plan.method, draws, explain_top_k, variant_scores)
        return ScoreResult(
            anomaly_score=score,
            reconstruction=row_sum(comp.reconstruction),
            neg_elbo=row_sum(comp.elbo) + comp.kl,
            p_value=p_value,
            is_anomaly=score > threshold,
            threshold=threshold,
            contributions=contributions,
            excess=excess,
            feature_names=[*self.preprocessor.feature_names, LATENT],
            values=values,
            expected=expected,
            latent_mean=comp.latent_mean,
            rejected=prepared.rejected,
            row_positions=prepared.row_positions,
            ranking=ranking,
            drops=drops,
        )

    # ------------------------------------------------------------------ internals
    def _components(self, enc: Encoded, draws: int, *, iwae: bool, expectations: bool) -> Components:
        comp = self.backend.components(enc, draws, iwae=iwae, expectations=expectations)
        if enc.unexpected_missing is not None:
            # A value missing where training never had one: the model cannot weigh it, so
            # its term is the surprise of the event itself, -log of the Laplace estimate
            # 1 / (n + 2) of a miss after n observed rows. Terms still sum to the score.
            evidence = math.log(self.n_train_rows + 2)
            for terms in {id(t): t for t in (comp.reconstruction, comp.elbo, comp.iwae)}.values():
                terms[enc.unexpected_missing] = evidence
        return comp

    def _contributions(self, comp: Components, method: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature terms in schema order plus the latent term, and their row sums (the score)."""
        per_feature, latent = _method_terms(comp, method)
        contributions = np.column_stack([per_feature[:, self.preprocessor.to_schema_order], latent])
        return contributions, row_sum(contributions)

    def _rank_features(
        self,
        enc: Encoded,
        score: np.ndarray,
        excess: np.ndarray,
        method: str,
        draws: int,
        top_k: int,
        variant_scores: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank each row's features by how much the score falls when that feature alone is typical.

        A term of the score can be large because another feature is off: an extreme
        value pulls the latent code, and correlated features are then mispredicted.
        Resetting the real culprit repairs the whole row, so the counterfactual drop
        names it. Only the ``max(2k, 6)`` features with the largest excess are tried
        (``variant_scores``, when given, already holds every feature's variant score).
        """
        n_feat = len(self.preprocessor.feature_names)
        m = min(n_feat, max(2 * top_k, 6))
        candidates = np.argsort(-excess[:, :n_feat], axis=1, kind="stable")[:, :m]  # schema order
        if variant_scores is not None:
            modified = np.take_along_axis(variant_scores, candidates, axis=1)
        else:
            comp = self._components(self._variants(enc, candidates), draws, iwae=method == "iwae", expectations=False)
            modified = self._variant_totals(comp, method).reshape(len(enc), m)
        drops = score[:, None] - modified
        order = np.argsort(-drops, axis=1, kind="stable")
        return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(drops, order, axis=1)

    def _variants(self, enc: Encoded, features: np.ndarray) -> Encoded:
        """For each row and each of its ``features`` (schema order, (n, m)), the row with that feature typical."""
        pre = self.preprocessor
        n, m = features.shape
        n_num, n_bin = enc.num.shape[1], enc.bin.shape[1]
        typ_num, typ_bin, typ_cat = pre.typical_row_values()
        mod = enc.take(np.repeat(np.arange(n), m)).copy()
        feat = pre.to_schema_order[features].ravel()  # -> internal index
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
        return mod

    @staticmethod
    def _variant_totals(comp: Components, method: str) -> np.ndarray:
        per_feature, latent = _method_terms(comp, method)
        return row_sum(per_feature) + latent

    def _values_and_expectations(
        self, clean: pd.DataFrame, comp: Components
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        pre = self.preprocessor
        assert comp.num_mean is not None and comp.bin_prob is not None and comp.cat_mode is not None
        derived = expand_features(clean, self.schema, pre.frequencies)
        values: dict[str, np.ndarray] = {}
        expected: dict[str, np.ndarray] = {}
        for j, name in enumerate(pre.num_features):
            values[name] = np.asarray(derived[name], dtype=np.float64)
            expected[name] = pre.inverse_numeric(name, comp.num_mean[:, j])
        for j, name in enumerate(pre.bin_features):
            spec = self.schema[name]
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
