"""Label-risk features (``[[label_risk]]``): frauds confirmed among a key's past events, known only after a delay.

Point in time by brute force (ties, missing keys and labels, chunked streams), the leak
guard (an event's own label and every label newer than ``t - delay`` never reach its
features), the spec's refusals, and one computation across training, ``evaluate``, the
batch job with ``--history`` and Spark on 20,000 events.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraudvae.exceptions import ConfigurationError, DataError
from fraudvae.features.behaviour import describe_feature, model_frame
from fraudvae.features.stream import FeatureStream, compute_features, parse_spec

WINDOWS, DELAY = (5, 20), 3
SPEC = {
    "time": {"column": "t", "unit": "s"},
    "label_risk": [{"keys": ["k"], "label": "y", "windows": ["5s", "20s"], "delay": "3s"}],
}


def _stream(seed: int, n: int = 2500) -> pd.DataFrame:
    """Integer times (many ties), 15 keys, some keys and labels missing, labels in several spellings."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 15, n).astype(object)
    keys[rng.random(n) < 0.03] = None
    labels = rng.choice(np.array(["fraud", "legit", "1", "0", "TRUE", "no", None], dtype=object), n)
    return pd.DataFrame({"t": np.sort(rng.integers(0, 1500, n)), "k": keys, "y": labels})


def _brute_force(df: pd.DataFrame) -> np.ndarray:
    fraud = df["y"].map(lambda v: v is not None and v.lower() in ("fraud", "1", "true", "yes")).to_numpy()
    out = np.full((len(df), 2 * len(WINDOWS)), np.nan)
    for i in range(len(df)):
        if df["k"].iloc[i] is None:
            continue
        t, same = df["t"].iloc[i], (df["k"] == df["k"].iloc[i]).to_numpy()
        for j, w in enumerate(WINDOWS):
            inside = same & (df["t"] >= t - DELAY - w).to_numpy() & (df["t"] < t - DELAY).to_numpy()
            out[i, 2 * j] = fraud[inside].sum()
            out[i, 2 * j + 1] = fraud[inside].mean() if inside.any() else np.nan
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_in_time_by_brute_force_in_one_pass_and_in_chunks(seed: int) -> None:
    df, spec = _stream(seed), parse_spec(SPEC)
    one = compute_features(df, spec)
    assert list(one.columns) == [
        "k:frauds_5s_to_3s_ago",
        "k:fraud_share_5s_to_3s_ago",
        "k:frauds_20s_to_3s_ago",
        "k:fraud_share_20s_to_3s_ago",
    ]
    np.testing.assert_array_equal(one.to_numpy(), _brute_force(df))
    rng = np.random.default_rng(seed)
    cuts = np.unique(np.r_[0, rng.integers(1, len(df), 6), 1, len(df)])
    stream = FeatureStream(spec, in_time_order=True)
    parts = [stream.update(df.iloc[a:b]) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(pd.concat(parts).to_numpy(), one.to_numpy())
    assert stream.memory_rows() < 200, "only the last delay + longest window of events is kept"


def test_leak_guard_own_and_recent_labels_never_reach_the_features() -> None:
    df, spec = _stream(5), parse_spec(SPEC)
    before = compute_features(df, spec).to_numpy()
    i = 1800
    t = df["t"].iloc[i]
    flipped = df.copy()
    recent = (df["t"] >= t - DELAY).to_numpy()  # the event itself, its ties and everything since t - delay
    flipped.loc[recent, "y"] = np.where(df.loc[recent, "y"].isin(["fraud", "1", "TRUE"]), "legit", "fraud")
    after = compute_features(flipped, spec).to_numpy()
    np.testing.assert_array_equal(
        after[: i + 1][df["t"].iloc[: i + 1] == t], before[: i + 1][df["t"].iloc[: i + 1] == t]
    )
    older = flipped.copy()
    older.loc[(df["t"] < t - DELAY).to_numpy() & (df["k"] == df["k"].iloc[i]).to_numpy(), "y"] = "fraud"
    assert not np.array_equal(compute_features(older, spec).to_numpy()[i], after[i], equal_nan=True), (
        "older labels count"
    )


def test_a_file_without_the_label_column_confirms_nothing() -> None:
    df = _stream(3)
    features = compute_features(df.drop(columns=["y"]), parse_spec(SPEC))
    counts = features["k:frauds_20s_to_3s_ago"]
    assert (counts[df["k"].notna()] == 0).all() and features["k:fraud_share_20s_to_3s_ago"].max() == 0


def test_an_unknown_label_value_is_named() -> None:
    df = _stream(3)
    df.loc[7, "y"] = "maybe"
    with pytest.raises(DataError, match=re.escape("label column 'y' holds 'maybe' at row 8; expected fraud/legit")):
        compute_features(df, parse_spec(SPEC))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"delay": None}, 'no delay; expected delay = "7d"'),
        ({"windows": ["all"]}, "must be a finite duration"),
        ({"delay": "all"}, "must be a finite duration"),
        ({"label": None}, 'no label; expected label = "is_fraud"'),
        ({"lag": "1d"}, "unknown option(s) ['lag']"),
    ],
)
def test_the_spec_refuses_what_would_hide_the_delay(change: dict, needle: str) -> None:
    entry = {k: v for k, v in {**SPEC["label_risk"][0], **change}.items() if v is not None}
    with pytest.raises(ConfigurationError, match=re.escape(needle)):
        parse_spec({**SPEC, "label_risk": [entry]})


def test_the_spec_round_trips_and_the_model_never_sees_the_label_or_the_key() -> None:
    spec = parse_spec(SPEC)
    assert parse_spec(spec.to_doc()) == spec
    df = _stream(1).assign(amount=1.0)
    X = model_frame(df, compute_features(df, spec), spec)
    assert "y" not in X.columns and "k" not in X.columns and "amount" in X.columns


def test_label_risk_in_words() -> None:
    assert describe_feature("terminal:frauds_28d_to_7d_ago") == (
        "terminal: how many of its events in the 28d up to 7d ago were confirmed fraud"
    )
    assert describe_feature("terminal:fraud_share_1d_to_7d_ago") == (
        "terminal: the share of its events in the 1d up to 7d ago that were confirmed fraud"
    )
    # With the scored row's values (as the report passes them), the window's event count too.
    row = {"terminal:frauds_28d_to_7d_ago": 4.0, "terminal:fraud_share_28d_to_7d_ago": 4 / 31}
    assert describe_feature("terminal:frauds_28d_to_7d_ago", row) == (
        "terminal: how many of its 31 events in the 28d up to 7d ago were confirmed fraud"
    )
    empty = {"terminal:frauds_1d_to_7d_ago": 0.0, "terminal:fraud_share_1d_to_7d_ago": float("nan")}
    assert "its 0 events in the 1d" in describe_feature("terminal:fraud_share_1d_to_7d_ago", empty)


HISTORY = 4000  # events loaded as history; the 20,000 after them are scored


@pytest.fixture(scope="module")
def risk_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """24,000 card events; a model with card windows and merchant label risk (2-day delay) trained on them."""
    from fraudvae import VAEDetector
    from fraudvae.datasets.events import make_card_events
    from fraudvae.features.behaviour import FEATURE_SPEC
    from fraudvae.jobs.workflows import train_file

    root = tmp_path_factory.mktemp("label_risk")
    frame = make_card_events(24_000, random_state=4)
    paths = {name: root / f"{name}.csv" for name in ("all", "history", "day", "unlabelled")}
    frame.to_csv(paths["all"], index=False)
    frame.iloc[:HISTORY].to_csv(paths["history"], index=False)
    frame.iloc[HISTORY:].to_csv(paths["day"], index=False)
    frame.iloc[HISTORY:].drop(columns=["is_fraud"]).to_csv(paths["unlabelled"], index=False)  # new traffic
    (root / "spec.toml").write_text(
        '[time]\ncolumn = "timestamp"\n\n[[entity]]\nkeys = ["card_id"]\nwindows = ["1h"]\ncount = true\n\n'
        '[[label_risk]]\nkeys = ["merchant"]\nlabel = "is_fraud"\nwindows = ["1d", "7d"]\ndelay = "2d"\n',
        encoding="utf-8",
    )
    train_file(
        paths["all"],
        root / "model",
        label_column="is_fraud",
        normal_value="0",
        time_column="timestamp",
        drop_columns=["transaction_id", "device_id"],
        features=root / "spec.toml",
        compare=False,
        log=lambda line: None,
        random_state=0,
        max_epochs=3,
    )
    det = VAEDetector.load(str(root / "model"))
    spec = parse_spec(det.extra_documents_[FEATURE_SPEC])
    features = compute_features(frame, spec)
    assert features["merchant:frauds_7d_to_2d_ago"].max() > 0, "the stream has confirmed frauds to count"
    X = model_frame(frame.drop(columns=["is_fraud", "transaction_id", "device_id"]), features, spec)
    expected = pd.Series(det.score_frame(X).anomaly_score, index=frame["transaction_id"])
    return {"root": root, "model": root / "model", "frame": frame, "expected": expected, "spec": spec} | paths


@pytest.mark.slow
def test_four_entry_points_give_the_same_bits_on_20000_events(risk_model: dict[str, Any], tmp_path: Path) -> None:
    from fraudvae.jobs.batch import score_file
    from fraudvae.jobs.spark import score_path
    from fraudvae.jobs.workflows import evaluate_file

    m, expected = risk_model, risk_model["expected"]
    evaluate_file(m["model"], m["all"], "is_fraud", tmp_path / "report", all_rows=True)
    report = pd.read_csv(tmp_path / "report" / "scores.csv", float_precision="round_trip")
    np.testing.assert_array_equal(report["anomaly_score"].to_numpy(), expected.to_numpy())
    day = expected.iloc[HISTORY:]
    score_file(
        m["model"], m["day"], tmp_path / "day.parquet", chunk_rows=997, keep_columns=["transaction_id"],
        history=m["history"],
    )  # fmt: skip
    batch = pd.read_parquet(tmp_path / "day.parquet").set_index("transaction_id")["anomaly_score"]
    spark_out = tmp_path / "spark.parquet"
    score_path(m["model"], m["day"], spark_out, keep_columns=["transaction_id"], history=m["history"])
    spark = pd.read_parquet(spark_out).set_index("transaction_id")["anomaly_score"]
    np.testing.assert_array_equal(batch.loc[day.index].to_numpy(), day.to_numpy())
    np.testing.assert_array_equal(spark.loc[day.index].to_numpy(), day.to_numpy())
    # New traffic without its labels: events whose windows end inside the history score as in training.
    score_file(
        m["model"], m["unlabelled"], tmp_path / "new.parquet", keep_columns=["transaction_id"], history=m["history"]
    )
    new = pd.read_parquet(tmp_path / "new.parquet").set_index("transaction_id")["anomaly_score"]
    when = pd.to_datetime(m["frame"]["timestamp"])
    same = day[(when.iloc[HISTORY:] - pd.Timedelta("2d") <= when.iloc[HISTORY - 1]).to_numpy()]
    assert 200 < len(same) < len(day)
    np.testing.assert_array_equal(new.loc[same.index].to_numpy(), same.to_numpy())
    assert (new.loc[day.index].to_numpy() != day.to_numpy()).any(), "later events miss the day's labels"


@pytest.mark.slow
@pytest.mark.parametrize(("state_url", "workers"), [("sqlite", 1), ("redis", 2)], indirect=["state_url"])
def test_online_with_labels_posted_back_scores_as_the_batch_job(
    risk_model: dict[str, Any], state_url: str, workers: int, tmp_path: Path
) -> None:
    """20,000 raw events over HTTP to a real server (history loaded with ``state load``, its labels
    with it), each batch's labels posted to /feedback after it: the batch job's bits on the labelled day."""
    import httpx

    from tests.test_state_service import Server, _bodies, _run

    m = risk_model
    _run("state", "load", "--model", str(m["model"]), "--data", str(m["history"]), "--state", state_url, "--quiet")
    day = m["frame"].iloc[HISTORY:].reset_index(drop=True)
    bodies = _bodies(day.drop(columns=["is_fraud", "device_id"]))  # without labels (device_id: dropped at training)
    when = pd.to_datetime(day["timestamp"]).to_numpy()
    env = {"FRAUDVAE_EVENT_ID_COLUMN": "transaction_id"}
    server = Server(m["model"], state_url, workers, env, tmp_path / "server.log").start()
    scores, applied = [], 0
    try:
        with httpx.Client(timeout=120) as client:
            a = 0
            while a < len(day):  # a batch spans under the 2-day delay: its labels are back before they fall due
                b = min(a + 500, int(np.searchsorted(when, when[a] + np.timedelta64(2, "D"), side="right")))
                r = client.post(f"{server.url}/batch_score", json=bodies[a:b])
                assert r.status_code == 200, r.text
                scores += [row["anomaly_score"] for row in r.json()["results"]]
                labels = [
                    {"event_id": e, "label": "fraud" if y else "legit", "source": "replay"}
                    for e, y in zip(day["transaction_id"].iloc[a:b], day["is_fraud"].iloc[a:b], strict=True)
                ]
                r = client.post(f"{server.url}/feedback", json=labels)
                assert r.status_code == 200, r.text
                applied += r.json()["label_risk"]["applied"]
                a = b
    finally:
        server.stop()
    online = np.array(scores)
    offline = m["expected"].iloc[HISTORY:].to_numpy()
    differ = np.flatnonzero(online != offline)
    assert len(differ) == 0, f"{len(differ)} of {len(day)} scores differ, first at {differ[:5]}"
    assert applied > 0.9 * len(day)


def test_suggest_proposes_label_risk_with_a_delay_to_confirm() -> None:
    import tomllib

    from fraudvae.datasets.events import make_card_events
    from fraudvae.features.suggest import suggest_spec

    frame = make_card_events(12_000, random_state=11)
    text, reasons = suggest_spec(frame, label_column="is_fraud")
    risk = tomllib.loads(text)["label_risk"]
    # Frauds repeat on devices (7 and 28 days back), not on cards or merchants: only where they repeat.
    assert risk == [{"keys": ["device_id"], "label": "is_fraud", "windows": ["7d", "28d"], "delay": "7d"}]
    assert text.count("# CONFIRM the delay") == len(risk) and any("confirm the 7d delay" in r for r in reasons)
    text, reasons = suggest_spec(
        frame.assign(is_fraud=frame["is_fraud"].map({0: "ok", 1: "bad"})), label_column="is_fraud"
    )
    assert "label_risk" not in tomllib.loads(text) and any(r.startswith("no label risk") for r in reasons)
    assert "label_risk" not in tomllib.loads(suggest_spec(frame)[0]), "no label column, no label risk"


def test_online_records_and_later_labels_give_the_one_pass_bits() -> None:
    """The online computation (stored records, labels applied after each batch, as POST /feedback does)
    equals one pass over the labelled file, as long as each label arrives before it falls due."""
    from fraudvae.features.online import apply_labels, entity_records, update_events

    spec = parse_spec(
        {
            "time": {"column": "t", "unit": "s"},
            "entity": [{"keys": ["k"], "windows": ["10s"], "count": True}],
            "label_risk": SPEC["label_risk"],
        }
    )
    df = _stream(7)
    df["y"] = df["y"].fillna("legit")
    expected = compute_features(df, spec).to_numpy()
    store: dict[str, str] = {}
    got, expired = [], 0
    fraud = df["y"].str.lower().isin(["fraud", "1", "true"]).to_numpy().astype(float)
    ids = [f"e{i}" for i in range(len(df))]
    t = df["t"].to_numpy()
    starts = [0]
    while starts[-1] < len(df):  # batches within the delay: every label arrives before it falls due
        starts.append(int(np.searchsorted(t, t[starts[-1]] + DELAY, side="right")))
    for a, b in itertools.pairwise(starts):
        part = df.iloc[a:b].drop(columns=["y"])  # online events carry no label
        wanted = sorted({r for row in entity_records(part, spec) for r in row if r is not None})
        update = update_events(part, spec, {r: store.get(r) for r in wanted}, ids=ids[a:b])
        store |= update.records
        expired += update.expired
        got.append(update.features.to_numpy())
        changed, found = apply_labels(
            {r: store[r] for r in store if r.startswith("\x1e")},
            dict(zip(ids[a:b], fraud[a:b], strict=True)),
        )
        store |= changed
        # Events already older than their key's newest minus delay + window need no label any more.
        assert found and found <= {i for i, k in zip(ids[a:b], part["k"], strict=True) if k is not None}
    np.testing.assert_array_equal(np.vstack(got), expected)
    assert expired > 0, "events older than delay + the longest window leave the records"


def test_online_a_late_label_counts_from_its_arrival_and_a_changed_label_replaces_it() -> None:
    from fraudvae.features.online import apply_labels, entity_records, update_events

    spec = parse_spec(SPEC)
    store: dict[str, str] = {}

    def score(t: float, event: str) -> float:
        part = pd.DataFrame({"t": [t], "k": ["m1"]})
        wanted = [r for row in entity_records(part, spec) for r in row if r is not None]
        update = update_events(part, spec, {r: store.get(r) for r in wanted}, ids=[event])
        store.update(update.records)
        return float(update.features["k:frauds_20s_to_3s_ago"].iloc[0])

    def label(event: str, fraud: bool) -> None:
        changed, found = apply_labels(dict(store), {event: 1.0 if fraud else 0.0})
        store.update(changed)
        assert found == {event}

    assert score(100.0, "a") == 0.0
    assert score(110.0, "b") == 0.0, "a's label has not arrived: not confirmed, though a is 10 s old"
    label("a", fraud=True)  # late: it fell due at 103
    assert score(111.0, "c") == 1.0, "from its arrival on, the late label counts"
    label("a", fraud=False)  # the analyst changes their mind
    assert score(112.0, "d") == 0.0
    label("a", fraud=True)
    label("a", fraud=True)  # the same label twice changes nothing
    assert score(113.0, "e") == 1.0
    assert score(130.0, "f") == 0.0, "a (t=100) is outside 20 s ending 3 s ago"
