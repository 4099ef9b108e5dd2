"""The likelihood probe (``benchmarks/likelihood_probe.py``) measures only what it is asked to.

Its variants are patched into the product for their own fits; a name it does not know used
to fit the default silently, and a patch left behind would change every later fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.likelihood_probe import (
    GRIDS,
    _known,
    _patched,
    _split_of,
    choose,
    family_nll,
    gaussian,
    scoring_time_deltas,
    validation_rows,
)
from fraudvae import VAEDetector
from fraudvae.data import preprocessing
from fraudvae.detection import fitting
from fraudvae.model import losses
from fraudvae.model import network as model


@pytest.mark.parametrize(
    "name", ["cap2.3", "floor4", "student_t20", "ensemble2", "homoscedastic", "free_bits0.5", "beta0.5"]
)
def test_known_variants_are_accepted(name: str) -> None:
    assert _known(name)


@pytest.mark.parametrize("name", ["bogus", "capx", "cap0", "ensemble0", "ensemble2.5", "student_t", "Cap2.3", ""])
def test_regression_likelihood_probe_fitted_the_default_for_an_unknown_variant(name: str) -> None:
    assert not _known(name)


@pytest.mark.parametrize("name", ["cap2.3", "floor4", "student_t20", "homoscedastic"])
def test_patches_are_undone_after_their_fits(name: str) -> None:
    before = (model.TabularVAE.heads, losses.gaussian_nll, preprocessing.Preprocessor.__init__)
    with _patched(name):
        during = (model.TabularVAE.heads, losses.gaussian_nll, preprocessing.Preprocessor.__init__)
    assert during != before  # the variant is in force inside
    assert (model.TabularVAE.heads, losses.gaussian_nll, preprocessing.Preprocessor.__init__) == before


@pytest.mark.parametrize(
    "name",
    [
        *("val_mixture", "val_cap", "val_student_t", "scap2.3", "jacobian", "own_default", "model_seed0"),
        *("model_seed4", "logvar0", "logvar0.5", "logvar1", "hinge0", "hinge50", "hinge100"),
    ],
)
def test_scoring_time_and_model_seed_variants_are_accepted(name: str) -> None:
    assert _known(name)


@pytest.mark.parametrize(
    "name",
    [
        *("model_seed", "model_seed1.5", "model_seed-1", "scap", "scapx", "val_bogus", "val_"),
        *("logvar", "logvar-1", "logvar2", "logvarx", "hinge", "hinge101", "hinge-5", "hingex"),
    ],
)
def test_malformed_scoring_time_and_model_seed_names_are_refused(name: str) -> None:
    assert not _known(name)


def _decoder_values(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=2000)
    var = np.exp(rng.normal(-2.0, 1.0, size=2000))
    return mu + np.sqrt(var) * rng.normal(size=2000), mu, var


@pytest.mark.parametrize("kind", sorted(GRIDS))
def test_each_family_starts_at_the_default_gaussian(kind: str) -> None:
    x, mu, var = _decoder_values()
    assert np.array_equal(family_nll(kind, GRIDS[kind][0], x, mu, var, 1.0), gaussian(x, mu, var))


@pytest.mark.parametrize("kind", sorted(GRIDS))
def test_validation_keeps_the_default_for_a_calibrated_decoder(kind: str) -> None:
    """Values drawn from the decoder's own N(mu, var): no other member of the family fits them better."""
    x, mu, var = _decoder_values()
    assert choose(kind, x, mu, var, float(var.max())) == GRIDS[kind][0]


@pytest.mark.parametrize("kind", sorted(GRIDS))
def test_validation_leaves_the_default_for_an_overconfident_decoder(kind: str) -> None:
    """One value in twenty lies 30 of the decoder's standard deviations away: the family's heavier member wins."""
    x, mu, var = _decoder_values()
    x[::20] = mu[::20] + 30.0 * np.sqrt(var[::20])
    assert choose(kind, x, mu, var, float(var.max())) != GRIDS[kind][0]


def test_the_contamination_bounds_what_one_deviation_costs() -> None:
    x, mu, var = np.array([0.0, 1e3]), np.zeros(2), np.full(2, 1e-4)
    w, ceiling = 0.01, 1.0
    mixed = family_nll("mixture", w, x, mu, var, ceiling)
    wide = gaussian(x, mu, np.full(2, ceiling))
    assert np.all(mixed <= wide - np.log(w) + 1e-9)
    assert np.all(mixed <= gaussian(x, mu, var) - np.log(1 - w) + 1e-9)


def test_an_empty_validation_column_keeps_the_default() -> None:
    empty = np.zeros(0)
    assert choose("mixture", empty, empty, empty, 1.0) == GRIDS["mixture"][0]


@pytest.mark.parametrize("n", [30, 400])
def test_validation_rows_are_the_ones_the_fit_held_out(n: int) -> None:
    """Few rows: the fit validates on its training rows; enough rows: on a tenth of them."""
    rng = np.random.default_rng(n)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.lognormal(size=n), "c": rng.normal(size=n)})
    det = VAEDetector(max_epochs=2, random_state=3).fit(frame)
    val = validation_rows(det, frame)
    assert len(val) == det.n_validation_rows_ == (n if n < 200 else round(0.1 * n))
    assert val.merge(frame, how="left", indicator=True)["_merge"].eq("both").all()
    test = frame.head(25)
    deltas = scoring_time_deltas(det, frame, test, ["own_default", "val_mixture", "scap2.3", "jacobian"])
    for variant, (delta, changed) in deltas.items():
        assert delta.shape == (len(test),) and np.all(np.isfinite(delta)), variant
        assert changed > 0 or np.all(delta == 0.0), variant
    assert deltas["scap2.3"][1] == 3  # every numeric feature
    assert np.all(deltas["own_default"][0] == 0.0)


def test_the_precision_and_hinge_variants_only_move_what_they_name() -> None:
    """``logvar1`` is the ELBO itself; ``logvarW`` scales the precision term's removal by
    ``1 - W``; a hinge never lowers a score and raises it more for a higher percentile."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {"a": rng.normal(size=300), "b": rng.lognormal(size=300), "c": rng.choice(["x", "y", "z"], size=300)}
    )
    det = VAEDetector(max_epochs=3, random_state=5).fit(frame)
    test = frame.head(40)
    deltas = scoring_time_deltas(det, frame, test, ["logvar1", "logvar0", "logvar0.5", "hinge0", "hinge25", "hinge75"])
    assert np.all(deltas["logvar1"][0] == 0.0)
    assert np.allclose(deltas["logvar0.5"][0], 0.5 * deltas["logvar0"][0])
    assert np.any(deltas["logvar0"][0] != 0.0) and deltas["logvar0"][1] == 2  # the two numeric features
    assert deltas["hinge25"][1] == 3  # every feature, the latent term left out
    for low, high in (("hinge0", "hinge25"), ("hinge25", "hinge75")):
        assert np.all(deltas[low][0] >= 0.0) and np.all(deltas[high][0] >= deltas[low][0] - 1e-12)
    assert np.any(deltas["hinge75"][0] > 0.0)


@pytest.mark.parametrize(
    "name, known", [("best_of5", True), ("best_of2", True), ("best_of1", False), ("best_of", False)]
)
def test_best_of_needs_two_initialisations_or_more(name: str, known: bool) -> None:
    assert _known(name) is known


def test_fits_inside_split_of_share_one_validation_split_and_the_patch_is_undone() -> None:
    """Initialisations compared by validation loss must be scored on the same rows."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    before = fitting.np
    with _split_of(7):
        dets = [VAEDetector(max_epochs=2, random_state=seed).fit(frame) for seed in (7, 1007)]
    assert fitting.np is before
    for det in dets:
        val = validation_rows(det, frame, split_seed=7)
        reference = det.calibration_["plans"]["elbo"]["reference_scores"]
        assert np.allclose(np.sort(det.anomaly_score(val)), np.sort(reference))
    # Outside the patch the second seed draws its own split: other rows, other reference scores.
    own = VAEDetector(max_epochs=2, random_state=1007).fit(frame)
    assert not np.allclose(
        np.sort(own.anomaly_score(validation_rows(dets[1], frame, split_seed=7))),
        np.sort(own.calibration_["plans"]["elbo"]["reference_scores"]),
    )


def test_the_probes_best_of_fits_are_the_products_n_init_fits() -> None:
    """``best_ofK``'s separate fits (one per initialisation, so each gets test figures) must be
    the initialisations ``VAEDetector(n_init=K)`` trains: same seeds, same split, same losses."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.exponential(size=300)})
    with _split_of(7):
        apart = [VAEDetector(max_epochs=3, random_state=7 + 1000 * k).fit(frame) for k in range(2)]
    product = VAEDetector(max_epochs=3, random_state=7, n_init=2).fit(frame)
    assert product.init_validation_losses_ == [d.init_validation_losses_[0] for d in apart]
    kept = apart[product.best_init_]
    assert np.array_equal(product.anomaly_score(frame), kept.anomaly_score(frame))
