"""Behavioural features (``fraudvae.features.stream``): every value against a brute-force computation.

The stream is built by hand: two-key entities, events at the same instant (ties are not
each other's past), missing keys, times and values, and windows that open and close.
"""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pandas as pd
import pytest

from fraudvae.exceptions import ConfigurationError, DataError, EventOrderError
from fraudvae.features.stream import FeatureStream, compute_features, load_spec, parse_spec
from fraudvae.features.suggest import suggest_spec

SPEC = {
    "time": {"column": "t"},
    "entity": [
        {
            "keys": ["card"],
            "windows": ["10min", "1h", "all"],
            "count": True,
            "sum": ["amount"],
            "mean": ["amount"],
            "max": ["amount"],
            "std": ["amount"],
            "distinct": ["merchant"],
            "time_since_previous": True,
            "ratio_to_past_mean": ["amount"],
            "new_value": ["merchant"],
        },
        {"keys": ["card", "merchant"], "name": "card_merchant", "windows": ["1d"], "count": True},
    ],
    "row": [
        {"name": "since_signup", "op": "time_difference", "columns": ["t", "signup"]},
        {"name": "km", "op": "distance", "columns": ["lat", "lon", "lat2", "lon2"]},
        {"name": "age", "op": "age", "columns": ["dob", "t"]},
        {"name": "amount_over_limit", "op": "ratio", "columns": ["amount", "limit"]},
        {"name": "headroom", "op": "difference", "columns": ["limit", "amount"]},
    ],
}
WINDOWS = {"10min": 600.0, "1h": 3600.0, "all": math.inf, "1d": 86400.0}


def _stream(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-03-01T00:00:00", "s")
    # A 10-minute grid: many events share an instant, and windows end exactly on events.
    seconds = np.sort(rng.integers(0, 3 * 86400 // 600, n)) * 600
    frame = pd.DataFrame(
        {
            "t": (start + seconds.astype("timedelta64[s]")).astype(str),
            "card": rng.choice(["c1", "c2", "c3", "c4"], n).astype(object),
            "merchant": rng.choice(["m1", "m2", "m3", "m4", "m5", "m6"], n).astype(object),
            "amount": rng.lognormal(3, 1, n).round(2),
            "limit": rng.choice([0.0, 500.0, 1000.0], n),
            "signup": "2024-02-01T12:00:00",
            "dob": "1990-06-15",
            "lat": rng.uniform(-60, 60, n),
            "lon": rng.uniform(-180, 180, n),
            "lat2": rng.uniform(-60, 60, n),
            "lon2": rng.uniform(-180, 180, n),
        }
    ).sample(frac=1.0, random_state=seed)  # the file is not in time order
    frame.loc[frame.index[::37], "card"] = None
    frame.loc[frame.index[::41], "amount"] = np.nan
    frame.loc[frame.index[::43], "merchant"] = None
    frame.loc[frame.index[::53], "t"] = None
    return frame


def _brute(frame: pd.DataFrame) -> dict[str, list[float]]:
    t = (pd.to_datetime(frame["t"]) - pd.Timestamp(0)).dt.total_seconds().to_numpy()
    card, merchant, amount = frame["card"].to_numpy(), frame["merchant"].to_numpy(), frame["amount"].to_numpy()
    out: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)

    for i in range(len(frame)):
        known = card[i] is not None and not np.isnan(t[i])
        past = [j for j in range(len(frame)) if known and card[j] == card[i] and t[j] < t[i]]
        for w in ("10min", "1h", "all"):
            inside = [j for j in past if t[j] >= t[i] - WINDOWS[w]]
            vals = [amount[j] for j in inside if not np.isnan(amount[j])]
            nan = math.nan
            add(f"card:count_{w}", len(inside) if known else nan)
            add(f"card:sum_amount_{w}", sum(vals) if known else nan)
            add(f"card:mean_amount_{w}", float(np.mean(vals)) if vals else nan)
            add(f"card:max_amount_{w}", max(vals) if vals else nan)
            add(f"card:std_amount_{w}", float(np.std(vals)) if vals else nan)
            add(f"card:distinct_merchant_{w}", len({merchant[j] for j in inside} - {None}) if known else nan)
        add("card:seconds_since_previous", t[i] - max(t[j] for j in past) if past else math.nan)
        past_vals = [amount[j] for j in past if not np.isnan(amount[j])]
        mean = float(np.mean(past_vals)) if past_vals else math.nan
        add("card:amount_over_past_mean", amount[i] / mean if past_vals and mean != 0 else math.nan)
        seen = {merchant[j] for j in past}
        add("card:new_merchant", math.nan if not known or merchant[i] is None else float(merchant[i] not in seen))
        pair_known = known and merchant[i] is not None
        same = [j for j in past if merchant[j] == merchant[i] and t[j] >= t[i] - 86400]
        add("card_merchant:count_1d", len(same) if pair_known else math.nan)
    return out


def test_every_feature_equals_a_brute_force_computation() -> None:
    frame = _stream()
    spec = parse_spec(SPEC)
    got = compute_features(frame, spec)
    assert list(got.columns) == spec.feature_names() and got.index.equals(frame.index)
    for name, expected in _brute(frame).items():
        np.testing.assert_allclose(got[name].to_numpy(), np.array(expected, dtype=float), rtol=1e-9, err_msg=name)
    # Ties: events at one instant of one card see the same past (none of each other).
    tied = frame.dropna(subset=["card", "t"]).groupby(["card", "t"]).filter(lambda g: len(g) > 1)
    assert len(tied) > 20
    counts = got.loc[tied.index, "card:count_all"].groupby([tied["card"], tied["t"]]).nunique()
    assert (counts == 1).all()


def test_row_features() -> None:
    frame = _stream(50)
    got = compute_features(frame, parse_spec(SPEC))
    t = pd.to_datetime(frame["t"])
    np.testing.assert_allclose(got["since_signup"], (t - pd.Timestamp("2024-02-01T12:00:00")).dt.total_seconds())
    np.testing.assert_allclose(got["age"], (t - pd.Timestamp("1990-06-15")).dt.total_seconds() / (365.2425 * 86400))
    one = pd.DataFrame({"a": [0.0], "b": [0.0], "c": [0.0], "d": [90.0]})
    spec = parse_spec({"row": [{"name": "km", "op": "distance", "columns": ["a", "b", "c", "d"]}]})
    assert compute_features(one, spec)["km"].iloc[0] == pytest.approx(10007.5, rel=1e-4)  # a quarter meridian
    limit_zero = frame["limit"] == 0
    assert got.loc[limit_zero, "amount_over_limit"].isna().all()
    np.testing.assert_allclose(got["headroom"], frame["limit"] - frame["amount"])


def test_a_later_event_never_changes_an_earlier_events_features() -> None:
    frame = _stream().dropna(subset=["t"])
    spec = parse_spec(SPEC)
    full = compute_features(frame, spec)
    cut = pd.to_datetime(frame["t"]).sort_values().iloc[len(frame) // 2]
    early = frame[pd.to_datetime(frame["t"]) < cut]
    pd.testing.assert_frame_equal(compute_features(early, spec), full.loc[early.index])


def test_hostile_numbers_are_missing_not_a_crash() -> None:
    frame = pd.DataFrame({"t": [1.0, 2.0, 3.0], "card": ["a", "a", "a"], "amount": ["1e77904855641443592", "5", "x"]})
    spec = parse_spec({"time": {"column": "t", "unit": "s"}, "entity": [{"keys": "card", "sum": ["amount"]}]})
    got = compute_features(frame, spec)["card:sum_amount_all"].tolist()
    assert got == [0.0, 0.0, 5.0]


def test_hostile_time_text_is_missing_not_parsed() -> None:
    """Times go through the schema's parser, which refuses text no date-time can be."""
    frame = pd.DataFrame({"t": ["2024-01-01T00:00:00", "9" * 100, "2024-01-01T00:10:00", "\ud800"], "card": ["a"] * 4})
    spec = parse_spec({"time": {"column": "t"}, "entity": [{"keys": "card", "count": True}]})
    got = compute_features(frame, spec)["card:count_all"].tolist()
    assert got[0] == 0.0 and got[2] == 1.0 and math.isnan(got[1]) and math.isnan(got[3])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"entity": [{"keys": ["card"]}]}, "need \\[time\\] column"),
        ({"time": {"column": "t"}, "entity": [{"count": True}]}, "no keys"),
        ({"time": {"column": "t"}, "entity": [{"keys": ["c"], "windows": ["10 minutes"]}]}, "'10 minutes' is not"),
        ({"time": {"column": "t"}, "entity": [{"keys": ["c"], "median": ["a"]}]}, "unknown option.*median"),
        ({"row": [{"op": "product", "columns": ["a", "b"]}]}, "op 'product'"),
        ({"row": [{"op": "distance", "columns": ["a", "b"]}]}, "takes 4 columns, got 2"),
        ({"time": {"column": "t", "unit": "weeks"}}, "unit 'weeks'"),
        ({"windows": []}, "unknown section"),
    ],
)
def test_spec_mistakes_name_their_place(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_spec(doc)


def test_spec_file_and_missing_columns(tmp_path) -> None:
    path = tmp_path / "features.toml"
    path.write_text('[time]\ncolumn = "t"\n\n[[entity]]\nkeys = ["card"]\ncount = true\n', encoding="utf-8")
    spec = load_spec(path)
    assert spec.feature_names() == ["card:count_all"]
    with pytest.raises(DataError, match="\\['card'\\]"):
        compute_features(pd.DataFrame({"t": ["2024-01-01"]}), spec)
    path.write_text("[time\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_spec(path)


def _in_time_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[np.argsort(pd.to_datetime(frame["t"]).to_numpy(), kind="stable")]


@pytest.mark.parametrize("chunk", [1, 7, 64, 399])
def test_a_stream_of_chunks_gives_the_bits_of_one_pass(chunk: int) -> None:
    """History crosses chunk boundaries (ties split across two chunks too): same bits as one pass."""
    frame = _in_time_order(_stream())
    spec = parse_spec(SPEC)
    whole = compute_features(frame, spec)
    stream = FeatureStream(spec, in_time_order=True)
    parts = [stream.update(frame.iloc[i : i + chunk]) for i in range(0, len(frame), chunk)]
    pd.testing.assert_frame_equal(pd.concat(parts), whole, check_exact=True)
    # The stream holds each entity's last window of events, a summary per entity and the seen
    # (card, merchant) pairs: not the file.
    t = pd.to_datetime(frame["t"])
    recent = {w: int((t >= t.max() - pd.Timedelta(w)).sum()) for w in ("1h", "1D")}
    cards, pairs = (
        frame["card"].nunique(),
        len(frame.dropna(subset=["card", "merchant"]).value_counts(["card", "merchant"])),
    )
    assert stream.memory_rows() <= recent["1h"] + cards + pairs + recent["1D"] + pairs


def test_a_stream_refuses_an_event_earlier_than_its_past() -> None:
    frame = _in_time_order(_stream()).dropna(subset=["t"])
    stream = FeatureStream(parse_spec(SPEC))
    stream.update(frame.iloc[100:200])
    with pytest.raises(EventOrderError, match=r"row 101 .* earlier than an event before it .* sort the file by 't'"):
        stream.update(frame.iloc[:100])
    shuffled = FeatureStream(parse_spec(SPEC), in_time_order=True)
    with pytest.raises(EventOrderError) as caught:
        shuffled.update(frame.iloc[[0, 5, 3, 9]])
    assert caught.value.position == 2


def test_keys_typed_differently_by_two_readers_are_one_entity() -> None:
    """A CSV reader that types ids as numbers and one that keeps text must see the same card."""
    spec = parse_spec({"time": {"column": "t", "unit": "s"}, "entity": [{"keys": "card", "count": True}]})
    typed = pd.DataFrame({"t": [1.0, 2.0, 3.0, 4.0], "card": [7, 7.0, 12, np.nan]})
    text = pd.DataFrame({"t": ["1", "2", "3", "4"], "card": ["7", "007", "12", None]})
    expected = [0.0, 1.0, 0.0, math.nan]
    for frame in (typed, text):
        np.testing.assert_array_equal(compute_features(frame, spec)["card:count_all"], expected)


def test_suggest_reads_shapes_and_writes_a_spec_that_parses() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    start = np.datetime64("2025-01-01T00:00:00", "s")
    frame = pd.DataFrame(
        {
            'weird "name"\nid': rng.integers(0, 300, n).astype(str),  # a repeated text id, hostile name
            "user_id": rng.integers(0, 200, n),  # a repeated integer id, named as one
            "paid": rng.lognormal(3, 1, n).round(2),
            "channel": rng.choice(["web", "app", "pos"], n),
            "signup": (start + rng.integers(0, 86400 * 30, n).astype("timedelta64[s]")).astype(str),
            "purchase": (start + rng.integers(86400 * 30, 86400 * 60, n).astype("timedelta64[s]")).astype(str),
            "row_no": np.arange(n),  # unique per row: no past, not an entity
            "label": rng.integers(0, 2, n),
        }
    )
    text, reasons = suggest_spec(frame, label_column="label")
    spec = parse_spec(tomllib.loads(text))
    assert spec.time == "purchase"
    assert [e.keys for e in spec.entities] == [('weird "name"\nid',), ("user_id",)]
    assert spec.entities[0].stats == {"sum": ("paid",)} and spec.entities[0].new_value == ("channel",)
    assert [(r.op, r.columns) for r in spec.rows] == [("time_difference", ("purchase", "signup"))]
    assert "label" not in text and "row_no" not in text and any("user_id" in r for r in reasons)
    assert compute_features(frame, spec).shape == (n, len(spec.feature_names()))


def test_suggest_with_nothing_to_derive_says_so() -> None:
    with pytest.raises(DataError, match=r"found nothing to derive.*no date-time column"):
        suggest_spec(pd.DataFrame({"a": np.arange(100.0), "b": ["x", "y"] * 50}))


_ODD_VALUES = [None, np.nan, pd.NA, pd.NaT, 7, 7.0, "7", "007", True, "true", -0.0, 1e300, math.inf, "x", 2**70, ""]


@pytest.mark.parametrize("value", _ODD_VALUES, ids=repr)
def test_one_value_reads_as_the_factorized_path_reads_it(value: object) -> None:
    """The service's few-value path of ``canonical_text`` gives the text factorizing gives."""
    from fraudvae.features import columns

    for frame in ([value], [value, 7, None, "x"], [value] * 20):
        col = pd.Series(frame, dtype=object)
        few = columns.canonical_text(col)
        many = columns.canonical_text(pd.concat([col] * 17, ignore_index=True))[: len(col)]  # over the limit
        assert few.tolist() == many.tolist()


def test_positions_are_get_indexer_for_few_and_many_values() -> None:
    from fraudvae.data.preprocessing import positions
    from fraudvae.features.windows import positions as stream_positions

    keys = pd.Index(["a", "b", "__other__", "7"], dtype=object)
    for values in (["b"], ["zz", None, "a"], [np.nan], ["7", 7], ["a", "b", "q"] * 7):
        values = np.array(values, dtype=object)
        assert positions(keys, values).tolist() == keys.get_indexer(values).tolist()
        index = {k: i for i, k in enumerate(keys)}
        assert stream_positions(index, values).tolist() == keys.get_indexer(values).tolist()
