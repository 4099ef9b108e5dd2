"""Drift per column (fraudvae.monitor.drift): flagged where it is, and nowhere else.

On the shared car-claims file (mixed numbers and categories): the normal rows are split at
random into a reference (the training side) and windows of the same distribution; one
change is injected into a window at a time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks import protocol
from fraudvae.data.inference import infer_schema
from fraudvae.monitor import drift

pytestmark = pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")


@pytest.fixture(scope="module")
def claims() -> tuple[pd.DataFrame, drift.Reference, dict[str, str]]:
    X, y = protocol.load("carclaims")
    normal = X[y == 0].reset_index(drop=True)
    order = np.random.default_rng(0).permutation(len(normal))
    train, rest = normal.iloc[order[:7000]], normal.iloc[order[7000:]].reset_index(drop=True)
    kinds = drift.reference_kinds(infer_schema(train))
    return rest, drift.Reference.from_frame(train, kinds, rows=5000), kinds


def _flagged(reference: drift.Reference, window: pd.DataFrame) -> set[str]:
    return {d.column for d in drift.compare(reference, window) if d.drifted}


def _mean_shift(w: pd.DataFrame, ref: drift.Reference) -> pd.DataFrame:
    w["Age"] = w["Age"] + 0.5 * np.std(ref.numeric["Age"])
    return w


def _new_category(w: pd.DataFrame, ref: drift.Reference) -> pd.DataFrame:
    rows = np.random.default_rng(1).random(len(w)) < 0.10
    w.loc[rows, "Make"] = "Tesla"
    return w


def _missing(w: pd.DataFrame, ref: drift.Reference) -> pd.DataFrame:
    rows = np.random.default_rng(2).random(len(w)) < 0.30
    w.loc[rows, "PolicyType"] = None
    return w


def test_kinds_leave_out_identifiers(claims) -> None:
    _, _, kinds = claims
    assert "PolicyNumber" not in kinds, "a row counter always drifts"
    assert kinds["Age"] == "numeric" and kinds["Make"] == "categorical"


@pytest.mark.parametrize("size", [500, 2000])
@pytest.mark.parametrize(
    ("change", "column"), [(_mean_shift, "Age"), (_new_category, "Make"), (_missing, "PolicyType")]
)
def test_an_injected_change_is_flagged_on_its_column_and_no_other(claims, size: int, change, column: str) -> None:
    rest, reference, _ = claims
    for draw in range(3):
        rows = np.random.default_rng(100 + draw).choice(len(rest), size, replace=False)
        window = change(rest.iloc[rows].reset_index(drop=True).copy(), reference)
        assert _flagged(reference, window) == {column}, (size, draw)


@pytest.mark.parametrize("size", [500, 2000])
def test_resamples_of_the_same_distribution_raise_at_most_one_flag_in_20_tests(claims, size: int) -> None:
    rest, reference, kinds = claims
    flags = 0
    for draw in range(20):
        rows = np.random.default_rng(200 + draw).choice(len(rest), size, replace=False)
        flags += len(_flagged(reference, rest.iloc[rows]))
    tests = 20 * len(kinds)
    assert flags <= tests / 20, f"{flags} false flags in {tests} feature-tests"


def test_the_score_is_compared_with_the_calibration_scores() -> None:
    rng = np.random.default_rng(0)
    reference = drift.Reference.from_frame(
        pd.DataFrame({"x": rng.normal(size=3000)}), {"x": "numeric"}, scores=rng.gamma(2.0, size=3000)
    )
    same = drift.compare(reference, pd.DataFrame({"x": rng.normal(size=2000)}), scores=rng.gamma(2.0, size=2000))
    moved = drift.compare(reference, pd.DataFrame({"x": rng.normal(size=2000)}), scores=rng.gamma(2.6, size=2000))
    assert [d.column for d in same] == ["x", "score"]
    assert not same[-1].drifted and moved[-1].drifted and moved[-1].kind == "score"


def test_reference_round_trips_through_json(claims) -> None:
    import json

    _, reference, _ = claims
    again = drift.Reference.from_json(json.loads(json.dumps(reference.to_json())))
    assert again == reference


@pytest.mark.parametrize(
    ("reference", "window", "expected"),
    [
        ({"x": [1.0, 2.0, 3.0]}, {"x": []}, "too few values"),
        ({"x": [1.0] * 50}, {"x": [1.0] * 50}, "ks_p_value"),
    ],
)
def test_degenerate_windows_do_not_raise(reference, window, expected: str) -> None:
    ref = drift.Reference.from_frame(pd.DataFrame(reference), {"x": "numeric"})
    (result,) = drift.compare(ref, pd.DataFrame(window, dtype=float))
    assert result.test == expected and not result.drifted
    json_ready = result.to_json()
    assert all(v is None or isinstance(v, (str, int, float, bool, list)) for v in json_ready.values())


@pytest.mark.parametrize(
    ("value", "text"), [(1, "1"), (1.0, "1"), ("1", "1"), (True, "True"), (2.5, "2.5"), ("web", "web")]
)
def test_a_level_is_the_same_whichever_way_it_arrived(value: object, text: str) -> None:
    """Regression: the service compared JSON's 1 with the training file's 1.0 and saw a new level."""
    from fraudvae.data.reference import canonical_level

    assert canonical_level(value) == text


def test_integers_sent_as_floats_are_not_a_new_level() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"grade": rng.integers(1, 4, 3000).astype(float)})
    ref = drift.Reference.from_frame(train, {"grade": "categorical"})
    (result,) = drift.compare(ref, pd.DataFrame({"grade": rng.integers(1, 4, 2000)}))
    assert result.unseen_share == 0.0 and not result.drifted
