"""The likelihood probe (``benchmarks/likelihood_probe.py``) measures only what it is asked to.

Its variants are patched into the product for their own fits; a name it does not know used
to fit the default silently, and a patch left behind would change every later fit.
"""

from __future__ import annotations

import pytest

from benchmarks.likelihood_probe import _known, _patched
from fraudvae import losses, model, preprocessing


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
