"""``n_init``: several initialisations on one validation split, the lowest validation loss kept.

The weights' initialisation is most of a fit's seed-to-seed spread (docs/experiments/2026-12-03-initialisations.md, "The
seed spread's cause"); these tests pin what the parameter promises: init ``k`` is exactly
the fit a single detector makes from seed ``random_state + 1000 k`` on the same rows, the
kept one has the lowest validation loss, and the choice survives saving and loading.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from fraudvae import VAEDetector
from fraudvae.detection.artifact import file_sha256
from fraudvae.detection.fitting import INIT_SEED_STRIDE, best_init
from fraudvae.exceptions import ConfigurationError, IncompatibleArtifactError

SEED = 5
N_INIT = 3


@pytest.fixture(scope="module")
def unsplit(normal_train: pd.DataFrame) -> pd.DataFrame:
    """Rows too few to split (15 validation rows < 20): every seed trains and validates on all
    of them, so a single fit from an init's seed sees exactly the rows that init saw."""
    return normal_train.iloc[:150].reset_index(drop=True)


@pytest.fixture(scope="module")
def best_of(unsplit: pd.DataFrame) -> VAEDetector:
    return VAEDetector(random_state=SEED, max_epochs=12, n_init=N_INIT).fit(unsplit)


def test_every_initialisation_is_recorded_and_the_lowest_loss_is_kept(best_of: VAEDetector) -> None:
    assert best_of.init_seeds_ == [SEED + INIT_SEED_STRIDE * k for k in range(N_INIT)]
    losses = best_of.init_validation_losses_
    assert len(losses) == N_INIT and all(math.isfinite(v) for v in losses)
    assert len(set(losses)) == N_INIT, "different initialisations reached the very same loss: not re-initialised"
    assert best_of.best_init_ == int(np.argmin(losses))
    assert best_of.seed_ == SEED, "the detector's seed (the split's) is not the kept init's"


def test_the_kept_initialisation_is_the_single_fit_from_its_seed(best_of: VAEDetector, unsplit: pd.DataFrame) -> None:
    """Bit for bit, every score method: the loop adds a choice, not a different fit."""
    alone = VAEDetector(random_state=best_of.init_seeds_[best_of.best_init_], max_epochs=12).fit(unsplit)
    for scoring in ("elbo", "reconstruction", "iwae"):
        assert np.array_equal(
            best_of.anomaly_score(unsplit, scoring=scoring), alone.anomaly_score(unsplit, scoring=scoring)
        )
    assert alone.init_validation_losses_ == [best_of.init_validation_losses_[best_of.best_init_]]
    timeless = [[{k: v for k, v in e.items() if k != "seconds"} for e in d.history_] for d in (best_of, alone)]
    assert timeless[0] == timeless[1], "the history is the kept initialisation's"


def test_the_validation_loss_is_the_mean_score_of_the_validation_rows(best_of: VAEDetector, unsplit) -> None:
    """Here the validation rows are all the rows: the kept loss is their mean default score."""
    kept = best_of.init_validation_losses_[best_of.best_init_]
    assert math.isclose(kept, float(np.mean(best_of.anomaly_score(unsplit))), rel_tol=1e-12)


def test_one_init_is_the_first_of_several(best_of: VAEDetector, unsplit: pd.DataFrame) -> None:
    one = VAEDetector(random_state=SEED, max_epochs=12).fit(unsplit)
    assert one.n_init == 1 and one.best_init_ == 0 and one.init_seeds_ == [SEED]
    assert one.init_validation_losses_ == best_of.init_validation_losses_[:1]


def test_the_choice_survives_save_and_load(best_of: VAEDetector, unsplit: pd.DataFrame, tmp_path: Path) -> None:
    best_of.save(str(tmp_path / "m"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["params"]["n_init"] == N_INIT and config["best_init"] == best_of.best_init_
    assert [i["seed"] for i in config["inits"]] == best_of.init_seeds_
    loaded = VAEDetector.load(str(tmp_path / "m"))
    assert (loaded.n_init, loaded.best_init_, loaded.init_validation_losses_) == (
        N_INIT,
        best_of.best_init_,
        best_of.init_validation_losses_,
    )
    # IWAE's fixed draws are seeded by the kept init's seed: the same after loading.
    for scoring in ("elbo", "iwae"):
        assert np.array_equal(
            loaded.anomaly_score(unsplit, scoring=scoring), best_of.anomaly_score(unsplit, scoring=scoring)
        )


def test_regression_a_model_saved_before_n_init_loads_as_one_fit() -> None:
    golden = Path(__file__).resolve().parent / "golden" / "vae" / "model"
    config = json.loads((golden / "config.json").read_text())
    assert "n_init" not in config["params"] and "inits" not in config
    det = VAEDetector.load(str(golden))
    assert det.get_params()["n_init"] == 1 and det.best_init_ == 0 and det.init_seeds_ == []
    assert clone(det).n_init == 1


def test_the_epoch_callback_says_which_initialisation_trains(unsplit: pd.DataFrame) -> None:
    logs = []
    VAEDetector(random_state=0, max_epochs=3, kl_warmup_epochs=1, n_init=2).fit(unsplit, epoch_callback=logs.append)
    assert [(log.init, log.n_init, log.epoch) for log in logs] == [(k, 2, e) for k in range(2) for e in (1, 2, 3)]
    assert "init" not in logs[0].as_dict(), "history entries are one initialisation's"


def test_ppca_fits_once(unsplit: pd.DataFrame) -> None:
    det = VAEDetector(kind="ppca", random_state=1, n_init=4).fit(unsplit)
    assert det.init_seeds_ == [1] and det.best_init_ == 0


def test_n_init_cannot_change_on_a_fitted_detector(best_of: VAEDetector) -> None:
    with pytest.raises(ConfigurationError, match=r"Cannot set \['n_init'\]"):
        best_of.set_params(n_init=1)


@pytest.mark.parametrize("value", [0, -2, 1.5, "3", True, None])
def test_an_invalid_n_init_is_refused_naming_it(unsplit: pd.DataFrame, value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"n_init=.* is invalid; expected a whole number >= 1"):
        VAEDetector(n_init=value).fit(unsplit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("losses", "kept"),
    [
        ([3.0, 2.0, 2.5], 1),
        ([2.0, 2.0], 0),  # ties: the earlier
        ([math.nan, 5.0], 1),  # a diverged init never wins
        ([math.inf, 7.0, math.nan], 1),
        ([math.nan, math.nan], 0),  # nothing finite: the first, whose fit is the default's
        ([4.0], 0),
    ],
)
def test_best_init_rule(losses: list[float], kept: int) -> None:
    assert best_init(losses) == kept


@pytest.mark.parametrize("best", [3, -1])
def test_a_best_init_that_indexes_no_saved_initialisation_is_refused(
    best_of: VAEDetector, tmp_path: Path, best: int
) -> None:
    """Hashes re-signed, so only the content check can catch it (and a -1 would silently pick the last)."""
    model = tmp_path / "m"
    best_of.save(str(model))
    config = json.loads((model / "config.json").read_text())
    config["best_init"] = best
    (model / "config.json").write_text(json.dumps(config))
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["files"]["config.json"] = {
        "sha256": file_sha256(model / "config.json"),
        "bytes": (model / "config.json").stat().st_size,
    }
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleArtifactError, match=rf"best_init {best} does not index one of the 3"):
        VAEDetector.load(str(model))
