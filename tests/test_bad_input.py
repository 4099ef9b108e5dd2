"""Bad input gets an error (or warning) that names the column, the value and what was expected."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from fraudvae import DataError, DataWarning, InsufficientDataError, SchemaError, VAEDetector


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "merchant": rng.choice(["a", "b", "c"], n),
            "velocity": rng.poisson(2, n).astype(float),
        }
    )


@pytest.fixture(scope="module")
def small_det() -> VAEDetector:
    return VAEDetector(random_state=0, max_epochs=2).fit(_frame())


# ---------------------------------------------------------------- fitting
def test_fit_on_too_few_rows() -> None:
    with pytest.raises(InsufficientDataError, match=r"Got 5 sample\(s\).*at least 10"):
        VAEDetector().fit(_frame(5))


def test_fit_on_empty_frame() -> None:
    with pytest.raises(InsufficientDataError, match="Got 0 sample"):
        VAEDetector().fit(_frame().iloc[:0])


def test_fit_on_all_constant_columns() -> None:
    with pytest.raises(DataError, match=r"Every column is constant \(\['a', 'b'\]\)"):
        VAEDetector().fit(pd.DataFrame({"a": [1.0] * 50, "b": ["x"] * 50}))


def test_fit_warns_about_one_constant_column() -> None:
    df = _frame().assign(flat=7.0)
    with pytest.warns(DataWarning, match=r"\['flat'\] are constant"):
        VAEDetector(random_state=0, max_epochs=1).fit(df)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_fit_refuses_infinite_values(value: float) -> None:
    df = _frame()
    df.loc[17, "amount"] = value
    with pytest.raises(DataError, match=r"Column 'amount' holds 1 infinite value\(s\) \(first at row 17\)"):
        VAEDetector().fit(df)


@pytest.mark.parametrize("label", ["Class", "is_fraud", "FraudFound", "label"])
def test_fit_warns_about_a_label_column_left_in(label: str) -> None:
    df = _frame().assign(**{label: np.r_[np.zeros(190), np.ones(10)]})
    with pytest.warns(DataWarning, match=rf"\['{label}'\] look like a label"):
        VAEDetector(random_state=0, max_epochs=1).fit(df)


def test_fit_leaves_out_a_row_counter_and_says_so() -> None:
    df = _frame().assign(txn_id=np.arange(200))
    with pytest.warns(DataWarning, match=r"Column 'txn_id' is left out of the model: unique integers"):
        det = VAEDetector(random_state=0, max_epochs=1).fit(df)
    assert "txn_id" not in det.schema_.names and "txn_id" in det.schema_.all_names
    assert det.schema_.roles()["txn_id"]["encoding"] == "excluded"


def _raw_export(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A frame as raw exports come: ids, free text, a high-cardinality merchant, nothing in one column."""
    rng = np.random.default_rng(seed)
    df = _frame(n, seed)
    df["trans_num"] = [f"{rng.integers(0, 2**60):015x}" for _ in range(n)]
    df["memo"] = [f"note {i} {rng.integers(0, 10**6)}" for i in range(n)]
    df["shop"] = rng.choice([f"shop_{i}" for i in range(150)], n)
    df["empty"] = np.nan
    return df


def test_raw_export_columns_are_excluded_or_frequency_encoded_one_line_each() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = VAEDetector(random_state=0, max_epochs=2).fit(_raw_export())
    roles = det.schema_.roles()
    assert {k: v["encoding"] for k, v in roles.items()} == {
        "trans_num": "excluded",
        "memo": "excluded",
        "shop": "frequency",
        "empty": "excluded",
    }
    lines = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    for column in roles:
        assert sum(f"Column {column!r}" in line for line in lines) == 1, lines
    assert "shop.frequency" in det.preprocessor_.feature_names
    assert not any(f.startswith(("trans_num", "memo", "empty")) for f in det.preprocessor_.feature_names)


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
def test_excluded_columns_are_optional_at_scoring_and_ignored() -> None:
    df = _raw_export()
    det = VAEDetector(random_state=0, max_epochs=2).fit(df)
    with_ids = det.anomaly_score(df.iloc[:20])
    changed = df.iloc[:20].assign(trans_num="other", memo="x")
    np.testing.assert_array_equal(det.anomaly_score(changed), with_ids)
    np.testing.assert_array_equal(
        det.anomaly_score(df.iloc[:20].drop(columns=["trans_num", "memo", "empty"])), with_ids
    )


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
def test_frequency_encoding_scores_an_unseen_merchant_as_rare() -> None:
    df = _raw_export()
    det = VAEDetector(random_state=0, max_epochs=30).fit(df)
    rows = df.iloc[:50].copy()
    result = det.score_frame(rows.assign(shop="brand_new_shop"), explain_top_k=3)
    base = det.score_frame(rows)
    j = result.feature_names.index("shop.frequency")
    # Measured: about 3.1 nats unseen vs 1.3 as recorded; shops seen once are nearly as rare.
    assert result.contributions[:, j].mean() > base.contributions[:, j].mean() + 0.5
    assert result.values["shop.frequency"].tolist() == [0.0] * 50  # never seen in training: count 0


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
@pytest.mark.parametrize(
    ("override", "encoding", "feature"),
    [({"shop": "categorical"}, "", "shop"), ({"trans_num": "frequency"}, "frequency", "trans_num.frequency")],
)
def test_column_types_override_the_roles(override: dict, encoding: str, feature: str) -> None:
    det = VAEDetector(random_state=0, max_epochs=1, column_types=override).fit(_raw_export())
    name = next(iter(override))
    assert det.schema_[name].encoding == encoding
    assert feature in det.preprocessor_.feature_names


def _people(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Card events with the customer's date of birth (as text, as exports hold it)."""
    rng = np.random.default_rng(seed)
    when = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.uniform(0, 700, n), unit="D")
    age = rng.uniform(18, 80, n)
    dob = (when - pd.to_timedelta(age * 365.2425, unit="D")).normalize()
    return _frame(n, seed).assign(when=when.strftime("%Y-%m-%dT%H:%M:%S"), dob=dob.strftime("%Y-%m-%d"))


def test_a_date_of_birth_is_modelled_as_age_at_the_event_and_said_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = VAEDetector(random_state=0, max_epochs=2).fit(_people())
    spec = det.schema_["dob"]
    assert (spec.encoding, spec.reference) == ("years", "when")
    assert "like a date of birth" in det.schema_.roles()["dob"]["reason"]
    lines = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert sum("Column 'dob' is modelled in years" in line for line in lines) == 1, lines
    names = det.preprocessor_.feature_names
    assert "dob.age_years" in names and not any(n in names for n in ("dob.hour", "dob.dayofweek"))
    assert {"when.hour", "when.dayofweek"} <= set(names)  # the event clock keeps its calendar parts
    # The value shown is the age at the event, computed from both columns of that row.
    row = pd.DataFrame({"amount": [20.0], "merchant": ["a"], "velocity": [2.0]}).assign(
        when="2021-03-01T12:00:00", dob="1971-03-01"
    )
    age = det.score_frame(row, explain_top_k=5).values["dob.age_years"][0]
    assert age == pytest.approx(50.0, abs=0.01)


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
def test_years_without_an_event_clock_is_the_calendar_year_and_survives_save_load(tmp_path) -> None:
    df = _people().drop(columns=["when"])
    det = VAEDetector(random_state=0, max_epochs=2).fit(df)
    assert (det.schema_["dob"].encoding, det.schema_["dob"].reference) == ("years", "")
    year = det.score_frame(df.iloc[:1].assign(dob="1990-07-02"), explain_top_k=5).values["dob.year"][0]
    assert year == pytest.approx(1990.5, abs=0.01)
    det.save(str(tmp_path / "m"))
    again = VAEDetector.load(str(tmp_path / "m"))
    assert again.schema_["dob"] == det.schema_["dob"]
    np.testing.assert_array_equal(again.anomaly_score(df), det.anomaly_score(df))


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
@pytest.mark.parametrize(("override", "encoding"), [("datetime", ""), ("years", "years")])
def test_column_types_choose_calendar_parts_or_years(override: str, encoding: str) -> None:
    df = _people()
    if override == "years":  # a short-span date asked for as years
        df = df.assign(opened=pd.to_datetime(df["when"]) - pd.Timedelta(days=30))
        det = VAEDetector(random_state=0, max_epochs=1, column_types={"opened": "years"}).fit(df)
        assert (det.schema_["opened"].encoding, det.schema_["opened"].reference) == ("years", "when")
        return
    det = VAEDetector(random_state=0, max_epochs=1, column_types={"dob": override}).fit(df)
    assert det.schema_["dob"].encoding == encoding
    assert "dob.hour" in det.preprocessor_.feature_names


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
def test_a_missing_date_of_birth_is_scored_and_named() -> None:
    det = VAEDetector(random_state=0, max_epochs=2).fit(_people())
    row = _people(1, seed=5).assign(dob=None)
    result = det.score_frame(row, explain_top_k=3)
    assert np.isfinite(result.anomaly_score).all()
    assert "dob.age_years" in set(result.explanations(3)["feature"])


@pytest.mark.filterwarnings("ignore::fraudvae.exceptions.DataWarning")
def test_every_column_left_out_is_one_clear_error() -> None:
    df = _raw_export()[["trans_num", "memo"]]
    with pytest.raises(DataError, match="Every column was left out of the model"):
        VAEDetector(random_state=0, max_epochs=1).fit(df)


# ---------------------------------------------------------------- scoring
def test_missing_columns_are_each_named(small_det: VAEDetector) -> None:
    with pytest.raises(SchemaError) as err:
        small_det.anomaly_score(_frame().drop(columns=["amount", "velocity"]))
    problems = {p.column: p for p in err.value.problems}
    assert set(problems) == {"amount", "velocity"}
    assert problems["amount"].found == "no such column"
    assert problems["amount"].expected == "a finite number or null"
    assert "column 'amount': found no such column, expected a finite number" in str(err.value)


def test_wrong_dtype_names_column_value_and_expectation(small_det: VAEDetector) -> None:
    df = _frame(20).astype({"amount": object})
    df.loc[3, "amount"] = "12,50"
    with pytest.raises(SchemaError, match=r"column 'amount' \(row 3\): found '12,50', expected a finite number"):
        small_det.anomaly_score(df)


def test_numbers_as_strings_are_accepted(small_det: VAEDetector) -> None:
    df = _frame(20)
    as_text = df.astype({"amount": str})
    np.testing.assert_array_equal(small_det.anomaly_score(as_text), small_det.anomaly_score(df))


def test_infinite_value_at_scoring(small_det: VAEDetector) -> None:
    df = _frame(20)
    df.loc[4, "velocity"] = np.inf
    with pytest.raises(SchemaError, match=r"column 'velocity' \(row 4\): found inf, expected a finite number"):
        small_det.anomaly_score(df)


@pytest.mark.parametrize("column", ["merchant", "amount", "velocity"])
def test_regression_missing_value_in_column_never_missing_in_training_refused_the_frame(
    small_det: VAEDetector, column: str
) -> None:
    """A value missing where training had none raised SchemaError for the whole frame, so no
    row was scored: in fraud, an unscored transaction passes (the system failed open). It
    is now scored, its own term is the evidence log(n + 2) (the surprise of a miss after n
    observed rows), and the explanation names the column."""
    df = _frame(20)
    clean = small_det.score_frame(df, explain_top_k=3)
    df.loc[2, column] = None
    result = small_det.score_frame(df, explain_top_k=3)
    np.testing.assert_array_equal(np.delete(result.anomaly_score, 2), np.delete(clean.anomaly_score, 2))
    j = result.feature_names.index(column)
    assert result.contributions[2, j] == pytest.approx(np.log(small_det.n_train_rows_ + 2))
    assert result.anomaly_score[2] == pytest.approx(result.contributions[2].sum())  # still sums exactly
    assert result.anomaly_score[2] > clean.anomaly_score[2] - clean.contributions[2, j]
    assert column in [f["feature"] for f in result.top_features(3)[2]]


def test_extra_columns_are_ignored_with_a_warning(small_det: VAEDetector) -> None:
    df = _frame(20)
    with pytest.warns(DataWarning, match=r"Ignoring 1 column\(s\).*\['note'\]"):
        scored = small_det.anomaly_score(df.assign(note="x"))
    np.testing.assert_array_equal(scored, small_det.anomaly_score(df))


def test_column_order_does_not_matter(small_det: VAEDetector) -> None:
    df = _frame(20)
    np.testing.assert_array_equal(small_det.anomaly_score(df[df.columns[::-1]]), small_det.anomaly_score(df))


def test_collect_mode_sets_bad_rows_aside(small_det: VAEDetector) -> None:
    df = _frame(30).astype({"amount": object})
    df.loc[[4, 9], "amount"] = "n/a"
    result = small_det.score_frame(df, errors="collect")
    assert sorted(result.rejected) == [4, 9]
    assert len(result) == 28
    assert list(result.row_positions[:5]) == [0, 1, 2, 3, 5]
    clean = small_det.anomaly_score(df.drop(index=[4, 9]).astype({"amount": float}))
    np.testing.assert_array_equal(result.anomaly_score, clean)


def test_no_warning_for_clean_input(small_det: VAEDetector) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_det.anomaly_score(_frame(20))


def test_iso_timestamps_read_from_csv_are_datetimes_not_identifiers(tmp_path) -> None:
    """Regression: a CSV round trip turns timestamps into strings; they were inferred categorical."""
    df = _frame().assign(ts=pd.date_range("2026-01-01", periods=200, freq="37min"))
    df.to_csv(tmp_path / "t.csv", index=False)
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["ts"].dtype == object
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = VAEDetector(random_state=0, max_epochs=1).fit(back)
    assert det.schema_["ts"].kind == "datetime"
    np.testing.assert_array_equal(det.anomaly_score(back.iloc[:5]), det.anomaly_score(df.iloc[:5]))
