"""Behaviour of VAEDetector on the built-in mixed-type data: scores, explanations, calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from fraudvae import LATENT, SCORINGS, ConfigurationError, NotFittedError, VAEDetector
from fraudvae.model.backends import design_matrix
from fraudvae.model.network import SiLU, sigmoid, softplus
from fraudvae.model.scoring import CHUNK_ROWS


@pytest.mark.parametrize("scoring", SCORINGS)
def test_contributions_sum_to_score(fitted: VAEDetector, holdout, scoring: str) -> None:
    X, _ = holdout
    contributions = fitted.feature_contributions(X, scoring=scoring)
    score = fitted.anomaly_score(X, scoring=scoring)
    assert list(contributions.columns) == [*fitted.preprocessor_.feature_names, LATENT]
    np.testing.assert_allclose(contributions.sum(axis=1).to_numpy(), score, rtol=1e-12, atol=1e-9)


def test_scores_are_bit_identical_on_repeated_calls(fitted: VAEDetector, holdout) -> None:
    X, _ = holdout
    first = fitted.anomaly_score(X)
    second = fitted.anomaly_score(X)
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("scoring", SCORINGS)
def test_row_score_does_not_depend_on_batch_or_position(fitted: VAEDetector, holdout, scoring: str) -> None:
    """Every term of a row's score is bit-identical alone, in any batch, at any position."""
    X, _ = holdout
    rows = X.iloc[:300]
    reference = fitted.score_frame(rows, scoring=scoring).contributions
    for offset in (1, 3, 17, CHUNK_ROWS - 1):
        shifted = pd.concat([X.iloc[1000 : 1000 + offset], rows], ignore_index=True)
        got = fitted.score_frame(shifted, scoring=scoring).contributions[offset:]
        assert got.tobytes() == reference.tobytes(), f"offset {offset}"
    reversed_ = fitted.score_frame(rows.iloc[::-1], scoring=scoring).contributions[::-1]
    assert reversed_.tobytes() == reference.tobytes()
    for i in (0, 7, CHUNK_ROWS - 1, CHUNK_ROWS, 299):
        alone = fitted.score_frame(rows.iloc[[i]], scoring=scoring)
        assert alone.contributions[0].tobytes() == reference[i].tobytes(), f"row {i}"


@pytest.mark.parametrize("size", [2, 3, CHUNK_ROWS + 1])
def test_regression_gemm_rounds_small_batches_differently(fitted: VAEDetector, holdout, size: int) -> None:
    """MKL's GEMM takes another kernel for 1-3 row matrices; fixed-shape chunks hide that."""
    X, _ = holdout
    reference = fitted.score_frame(X.iloc[:size]).contributions
    for i in range(size):
        assert fitted.score_frame(X.iloc[[i]]).contributions[0].tobytes() == reference[i].tobytes(), f"row {i}"


@pytest.mark.parametrize(
    ("activation", "fused"),
    [(SiLU(), F.silu), (softplus, F.softplus), (sigmoid, torch.sigmoid)],
    ids=["silu", "softplus", "sigmoid"],
)
def test_regression_fused_activations_rounded_their_scalar_tail_differently(activation, fused) -> None:  # type: ignore[no-untyped-def]
    """Alone or in a large (multi-threaded, vectorised) tensor, an element gets the same bits.

    torch's fused SiLU, softplus and sigmoid round the scalar tail of a thread's share
    differently from its vector body (about 1 element in 25). Scoring stacks many chunks
    into one tensor, and where the shares end depends on its size and the thread count:
    with 3 threads, F.silu on a (4, 4096, 185) tensor gave 2 elements other bits than
    with 1 thread.
    """
    x = torch.randn(100_003, 7, generator=torch.Generator().manual_seed(0)) * 8
    with torch.no_grad():
        big = activation(x)
        alone = torch.cat([activation(x[i : i + 1]) for i in range(0, 100_003, 33)])  # the scalar path
    assert alone.numpy().tobytes() == big[::33].numpy().tobytes()
    torch.testing.assert_close(big, fused(x), rtol=1e-6, atol=1e-7)  # the same function as torch's


def _contributions_with_threads(det: VAEDetector, rows: pd.DataFrame, threads: int, scoring: str) -> np.ndarray:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        return det.score_frame(rows, scoring=scoring).contributions
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_scores_do_not_depend_on_the_thread_count(fitted: VAEDetector, holdout, scoring: str) -> None:
    """The batch job's workers score with 1 thread, the service with all of them."""
    X, _ = holdout
    rows = pd.concat([X, X], ignore_index=True)  # several groups of chunks
    one = _contributions_with_threads(fitted, rows, 1, scoring)
    for threads in (2, 3):
        got = _contributions_with_threads(fitted, rows, threads, scoring)
        assert got.tobytes() == one.tobytes(), f"{threads} threads"


@pytest.mark.parametrize("scoring", SCORINGS)
def test_skipping_unneeded_draws_leaves_the_score_unchanged(fitted: VAEDetector, holdout, scoring: str) -> None:
    X, _ = holdout
    full = fitted.score_frame(X.iloc[:500], scoring=scoring, sampled=True)
    lean = fitted.score_frame(X.iloc[:500], scoring=scoring, sampled=False)
    assert lean.contributions.tobytes() == full.contributions.tobytes()
    assert fitted.anomaly_score(X.iloc[:500], scoring=scoring).tobytes() == full.anomaly_score.tobytes()


def test_default_elbo_is_at_the_posterior_mean_and_draws_are_opt_in(
    normal_train: pd.DataFrame, holdout, tmp_path
) -> None:
    """Default: the negative ELBO with its reconstruction term at the posterior mean (one
    decoder pass); ``n_score_samples=K`` averages it over K draws; IWAE draws 16 unless told."""
    X, _ = holdout
    lean = VAEDetector(random_state=0, max_epochs=4).fit(normal_train)
    sampled = VAEDetector(random_state=0, max_epochs=4, n_score_samples=16).fit(normal_train)  # same network
    reference = sampled.score_frame(X, sampled=False, scoring="reconstruction")
    score = lean.anomaly_score(X)
    np.testing.assert_allclose(score, reference.neg_elbo, rtol=1e-12)
    assert not np.allclose(score, sampled.anomaly_score(X))  # the sampled ELBO differs
    assert lean.threshold_ != sampled.threshold_  # calibrated on its own score
    np.testing.assert_array_equal(lean.score_frame(X).is_anomaly, score > lean.threshold_)
    # IWAE draws (16 by default) leave the posterior-mean ELBO as it is.
    iwae = lean.score_frame(X, scoring="iwae")
    assert iwae.neg_elbo.tobytes() == lean.score_frame(X).neg_elbo.tobytes()
    assert iwae.anomaly_score.tobytes() == sampled.anomaly_score(X, scoring="iwae").tobytes()
    lean.save(str(tmp_path / "m"))
    loaded = VAEDetector.load(str(tmp_path / "m"))
    assert loaded.n_score_samples is None
    assert loaded.anomaly_score(X).tobytes() == score.tobytes()
    zero = VAEDetector(random_state=0, max_epochs=4, n_score_samples=0).fit(normal_train)
    assert zero.anomaly_score(X).tobytes() == score.tobytes()
    with pytest.raises(ConfigurationError, match="n_score_samples=0"):
        zero.anomaly_score(X, scoring="iwae")


@pytest.mark.parametrize("value", [1.3326116640936367e308, -1.7e308, np.finfo(np.float64).max])
def test_regression_value_near_float_limit_overflowed_in_scaling(fitted: VAEDetector, holdout, value: float) -> None:
    """Found by the service fuzz test: dividing by a robust scale below 1 overflowed.

    The overflow warning became a 500 under ``filterwarnings = error``; the value is
    clipped at a million robust deviations either way.
    """
    X, _ = holdout
    rows = X.iloc[:2].copy()
    rows["txn_count_1h"] = value
    rows["amount"] = value
    score = fitted.anomaly_score(rows)
    assert np.isfinite(score).all() and (score > fitted.threshold_).all()


def test_scores_are_bit_identical_after_save_and_load(fitted: VAEDetector, holdout, tmp_path) -> None:
    X, _ = holdout
    fitted.save(str(tmp_path / "model"))
    loaded = VAEDetector.load(str(tmp_path / "model"))
    for scoring in SCORINGS:
        assert loaded.anomaly_score(X, scoring=scoring).tobytes() == fitted.anomaly_score(X, scoring=scoring).tobytes()
    assert loaded.threshold_ == fitted.threshold_
    assert loaded.get_params() == fitted.get_params()


def test_same_seed_gives_the_same_model(normal_train: pd.DataFrame) -> None:
    a = VAEDetector(random_state=3, max_epochs=3).fit(normal_train.iloc[:600])
    b = VAEDetector(random_state=3, max_epochs=3).fit(normal_train.iloc[:600])
    assert a.anomaly_score(normal_train.iloc[:50]).tobytes() == b.anomaly_score(normal_train.iloc[:50]).tobytes()


def test_detects_the_demo_fraud(fitted: VAEDetector, holdout) -> None:
    X, y = holdout
    assert roc_auc_score(y, fitted.anomaly_score(X)) > 0.9


def test_higher_score_means_more_anomalous_in_sklearn_terms(fitted: VAEDetector, holdout) -> None:
    X, _ = holdout
    score = fitted.anomaly_score(X)
    np.testing.assert_array_equal(fitted.score_samples(X), -score)
    decision = fitted.decision_function(X)
    np.testing.assert_array_equal(decision < 0, score > fitted.threshold_)
    np.testing.assert_array_equal(fitted.predict(X), np.where(score > fitted.threshold_, -1, 1))
    np.testing.assert_array_equal(fitted.flag(X), score > fitted.threshold_)


def test_p_values_are_conformal(fitted: VAEDetector, holdout) -> None:
    X, _ = holdout
    score, p = fitted.anomaly_score(X, return_p_value=True)
    cal = fitted.calibration_
    n_ref = len(cal["plans"][cal["plan"]]["reference_scores"])
    assert np.all((p >= 1 / (n_ref + 1)) & (p <= 1))
    order = np.argsort(score)
    assert np.all(np.diff(p[order]) <= 0), "p-values must fall as scores rise"


def test_unseen_category_is_scored_not_refused(fitted: VAEDetector, holdout) -> None:
    X, y = holdout
    rows = X[y == 0].iloc[:20].reset_index(drop=True)
    base = fitted.anomaly_score(rows)
    rows["country"] = "Atlantis"
    new = fitted.anomaly_score(rows)
    assert np.all(np.isfinite(new) & (new > base))
    top = fitted.explain(rows, top_k=2).groupby("row")["feature"].apply(list)
    # A row whose amount is already unusual can rank it first: at the posterior mean (the
    # default ELBO) 17 of these 20 rows rank the country first, with 16 draws all 20.
    assert sum(t[0] == "country" for t in top) >= 16, top.tolist()
    assert all("country" in t for t in top), top.tolist()


def test_missing_value_in_nullable_column_is_scored(fitted: VAEDetector, holdout) -> None:
    X, _ = holdout
    row = X.iloc[[1]].copy()
    row["distance_from_home_km"] = np.nan
    assert np.isfinite(fitted.anomaly_score(row)[0])


def test_datetime_column_becomes_parts(fitted: VAEDetector) -> None:
    names = fitted.preprocessor_.feature_names
    assert "timestamp.hour" in names and "timestamp.dayofweek" in names
    assert fitted.schema_["timestamp"].kind == "datetime"


def test_inferred_kinds(fitted: VAEDetector) -> None:
    kinds = {c.name: c.kind for c in fitted.schema_.columns}
    assert kinds["amount"] == "numeric"
    assert kinds["country"] == "categorical"
    assert kinds["card_present"] == "binary"
    assert fitted.schema_["distance_from_home_km"].nullable
    assert fitted.preprocessor_.stats["amount"]["transform"] == "ratio", (
        "amounts span orders of magnitude above their floor"
    )


def test_column_types_override(normal_train: pd.DataFrame) -> None:
    det = VAEDetector(random_state=0, max_epochs=2, column_types={"hour": "categorical"}).fit(normal_train.iloc[:500])
    assert det.schema_["hour"].kind == "categorical"
    with pytest.raises(ConfigurationError, match="'nope'"):
        VAEDetector(column_types={"nope": "numeric"}).fit(normal_train.iloc[:100])


def test_explain_reports_value_and_expectation(fitted: VAEDetector, holdout) -> None:
    X, y = holdout
    row = X[y == 0].iloc[[2]].copy()
    row["amount"] = 250_000.0
    out = fitted.explain(row, top_k=3)
    assert list(out.columns) == [
        "row",
        "rank",
        "feature",
        "contribution",
        "excess",
        "attribution",
        "value",
        "expected",
        "anomaly_score",
    ]
    assert list(out["rank"]) == [1, 2, 3]
    top = out.iloc[0]
    assert top["feature"] == "amount" and top["value"] == 250_000.0
    assert 1 < top["expected"] < 5_000


def test_scoring_before_fit_says_what_to_do() -> None:
    with pytest.raises(NotFittedError, match=r"not fitted yet. Call 'fit'"):
        VAEDetector().anomaly_score(np.zeros((3, 2)))


@pytest.mark.parametrize("kind", ["ae", "dae", "ppca"])
def test_other_kinds_fit_score_and_explain(normal_train: pd.DataFrame, holdout, kind: str, tmp_path) -> None:
    X, y = holdout
    det = VAEDetector(kind=kind, random_state=0, max_epochs=15).fit(normal_train)
    score = det.anomaly_score(X)
    assert roc_auc_score(y, score) > 0.8
    np.testing.assert_allclose(det.feature_contributions(X).sum(axis=1), score, rtol=1e-12, atol=1e-9)
    det.save(str(tmp_path / kind))
    assert VAEDetector.load(str(tmp_path / kind)).anomaly_score(X).tobytes() == score.tobytes()
    shifted = det.feature_contributions(pd.concat([X.iloc[-3:], X], ignore_index=True)).to_numpy()[3:]
    assert shifted.tobytes() == det.feature_contributions(X).to_numpy().tobytes()


def test_ppca_matches_sklearn_likelihood(normal_train: pd.DataFrame) -> None:
    """The closed-form baseline is the textbook probabilistic PCA density."""
    from sklearn.decomposition import PCA

    # Under 20 validation rows, fit uses every row, so sklearn can be fitted on the same ones.
    det = VAEDetector(kind="ppca", random_state=0, validation_fraction=0.004).fit(normal_train)
    rows = normal_train.iloc[:200]
    design = design_matrix(det.preprocessor_, det.prepare(rows).enc)
    train_design = design_matrix(det.preprocessor_, det.prepare(normal_train).enc)
    reference = PCA(n_components=det.architecture_["latent_dim"], svd_solver="full").fit(train_design)
    # Same model up to the tiny ridge fraudvae adds for invertibility.
    np.testing.assert_allclose(det.anomaly_score(rows), -reference.score_samples(design), rtol=1e-4)


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "gan"},
        {"scoring": "mse"},
        {"validation_fraction": 1.5},
        {"latent_dim": 0},
        {"n_score_samples": -1},
        {"scoring": "iwae", "n_score_samples": 0},
    ],
)
def test_invalid_parameters_are_named(normal_train: pd.DataFrame, bad: dict) -> None:
    name = list(bad)[-1]
    with pytest.raises(ConfigurationError, match=name):
        VAEDetector(**bad).fit(normal_train.iloc[:100])


def test_numpy_input_gets_positional_names() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    det = VAEDetector(random_state=0, max_epochs=3).fit(X)
    assert det.schema_.names == ["x0", "x1", "x2", "x3"]
    assert det.n_features_in_ == 4
    with pytest.raises(ValueError, match="X has 3 features"):
        det.anomaly_score(X[:, :3])
