"""Behavioural features end to end: one computation in training, evaluation, the batch job and Spark.

A model is trained with a feature spec on generated card events; the same events are then
scored four ways (the training computation in Python, ``evaluate``, the streaming batch job
with a history file and small chunks, Spark with the same history) and every score must be
the same bits. Also: the spec is stored under the manifest, an out-of-order file is refused
by line with nothing written, and ``features suggest`` proposes a spec that helps.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from fraudvae import VAEDetector
from fraudvae.datasets.events import DEMO_FEATURE_SPEC, make_card_events
from fraudvae.exceptions import ConfigurationError, EventOrderError
from fraudvae.features.behaviour import FEATURE_SPEC, describe_feature, model_frame
from fraudvae.features.stream import compute_features, parse_spec
from fraudvae.features.suggest import suggest_spec
from fraudvae.jobs.batch import score_file
from fraudvae.jobs.workflows import evaluate_file, split_rows, train_file
from tests.conftest import fraudvae_cli

pytestmark = pytest.mark.slow  # trains models and starts Spark: make test, not make check

SPLIT_AT = 1200  # the history file holds the first events, the "day" file the rest


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("behaviour")
    frame = make_card_events(3000, random_state=3)
    paths = {"all": root / "events.csv", "history": root / "history.csv", "day": root / "day.csv"}
    frame.to_csv(paths["all"], index=False)
    frame.iloc[:SPLIT_AT].to_csv(paths["history"], index=False)
    frame.iloc[SPLIT_AT:].to_csv(paths["day"], index=False)
    (root / "features.toml").write_text(DEMO_FEATURE_SPEC, encoding="utf-8")
    train_file(
        paths["all"],
        root / "model",
        label_column="is_fraud",
        normal_value="0",
        time_column="timestamp",
        drop_columns=["transaction_id"],
        features=root / "features.toml",
        compare=False,
        log=lambda line: None,
        random_state=0,
        max_epochs=5,
    )
    return paths | {"model": root / "model", "root": root}


def _reference(events: dict[str, Path]) -> pd.Series:
    """The training computation: the whole file's features in one pass, scored in memory."""
    det = VAEDetector.load(str(events["model"]))
    frame = pd.read_csv(events["all"])
    spec = parse_spec(det.extra_documents_[FEATURE_SPEC])
    X = model_frame(frame.drop(columns=["is_fraud", "transaction_id"]), compute_features(frame, spec), spec)
    return pd.Series(det.score_frame(X).anomaly_score, index=frame["transaction_id"])


def test_the_spec_is_stored_under_the_manifest(events: dict[str, Path]) -> None:
    manifest = json.loads((events["model"] / "manifest.json").read_text())
    assert any(FEATURE_SPEC in name for name in json.dumps(manifest).split('"'))
    det = VAEDetector.load(str(events["model"]))
    assert parse_spec(det.extra_documents_[FEATURE_SPEC]) == parse_spec(tomllib.loads(DEMO_FEATURE_SPEC))
    assert "card_id:count_10min" in det.feature_names_in_


def test_four_entry_points_give_the_same_bits(events: dict[str, Path], tmp_path: Path) -> None:
    expected = _reference(events)
    # evaluate (every row), as its report's scores.csv writes them
    evaluate_file(events["model"], events["all"], "is_fraud", tmp_path / "report", all_rows=True)
    report = pd.read_csv(tmp_path / "report" / "scores.csv", float_precision="round_trip")
    np.testing.assert_array_equal(report["anomaly_score"].to_numpy(), expected.to_numpy())
    # the batch job: the day's file in chunks of 97 rows, the first events as --history
    day = expected.iloc[SPLIT_AT:]
    out = tmp_path / "day.parquet"
    summary = score_file(
        events["model"], events["day"], out, chunk_rows=97, keep_columns=["transaction_id"], history=events["history"]
    )
    assert summary.rows_scored == len(day)
    batch = pd.read_parquet(out).set_index("transaction_id")["anomaly_score"]
    np.testing.assert_array_equal(batch.loc[day.index].to_numpy(), day.to_numpy())
    # without the history the day's first events have no past: their scores differ
    alone = tmp_path / "alone.parquet"
    score_file(events["model"], events["day"], alone, keep_columns=["transaction_id"])
    assert (pd.read_parquet(alone)["anomaly_score"].to_numpy() != day.to_numpy()).any()
    # Spark: entities grouped across partitions, the same history
    from fraudvae.jobs.spark import score_path

    spark_out = tmp_path / "spark.parquet"
    score_path(events["model"], events["day"], spark_out, keep_columns=["transaction_id"], history=events["history"])
    spark = pd.read_parquet(spark_out).set_index("transaction_id")["anomaly_score"]
    np.testing.assert_array_equal(spark.loc[day.index].to_numpy(), day.to_numpy())


def test_regression_an_event_out_of_time_order_stops_the_job_by_line_and_writes_nothing(
    events: dict[str, Path], tmp_path: Path
) -> None:
    lines = events["day"].read_text().splitlines()
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join([lines[0], *lines[1:500], lines[700], *lines[500:700], *lines[701:]]) + "\n")
    out = tmp_path / "o.parquet"
    with pytest.raises(EventOrderError, match=r"swapped.csv'.*line 502 .*sort the file by 'timestamp'"):
        score_file(events["model"], swapped, out, chunk_rows=64)
    assert not out.exists() and list(tmp_path.glob("*.part")) == []
    # the history must come before the day, not after
    with pytest.raises(EventOrderError, match=r"history\.csv"):
        score_file(events["model"], events["history"], out, history=events["day"])
    done = fraudvae_cli("score", "--model", str(events["model"]), "--input", str(swapped), "--output", str(out))
    assert done.returncode == 2 and "line 502" in done.stderr and "Traceback" not in done.stderr


def test_history_needs_a_model_with_a_spec(model_dir: Path, events: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="has no feature spec"):
        score_file(model_dir, events["day"], tmp_path / "o.csv", history=events["history"])


def test_the_report_speaks_the_features(events: dict[str, Path], tmp_path: Path) -> None:
    evaluate_file(events["model"], events["all"], "is_fraud", tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    derived = {d["feature"]: d for d in doc["derived_features"]}
    assert derived["card_id:count_10min"]["description"] == "card_id: count of events in the last 10min"
    assert doc["feature_spec"]["entity"][0]["keys"] == ["card_id"]
    html = (tmp_path / "r" / "report.html").read_text()
    assert "Behavioural features" in html and "device_id: distinct card_id values in its whole past" in html


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("card:count_1h", "card: count of events in the last 1h"),
        ("card:sum_amount_7d", "card: sum of amount in the last 7d"),
        ("card:max_amount_all", "card: largest of amount in its whole past"),
        ("card:seconds_since_previous", "card: seconds since its previous event"),
        ("card:amount_over_past_mean", "card: amount over its past mean"),
        ("card:new_country", "card: country never seen before (1 = new)"),
        ("amount", "amount"),
    ],
)
def test_describe_feature(name: str, words: str) -> None:
    assert describe_feature(name) == words


@pytest.mark.filterwarnings("ignore:Column 'card_id' is frequency-encoded")
@pytest.mark.filterwarnings("ignore:Column 'device_id' is frequency-encoded")
def test_suggested_spec_unedited_beats_no_spec(tmp_path: Path) -> None:
    """Two timestamp columns and a repeated device-like id: the suggestion names the time
    between the timestamps and per-id counts, and training with it beats training without."""
    frame = make_card_events(12_000, random_state=11)
    data = tmp_path / "events.csv"
    frame.to_csv(data, index=False)
    done = fraudvae_cli(
        "features", "suggest", "--data", str(data), "--label-column", "is_fraud", "--out", str(tmp_path / "s.toml")
    )
    assert done.returncode == 0, done.stderr
    assert "device_id" in done.stderr
    doc = tomllib.loads((tmp_path / "s.toml").read_text())
    assert {"op": "time_difference", "columns": ["timestamp", "account_opened"]}.items() <= doc["row"][0].items()
    assert {"keys": ["device_id"], "count": True}.items() <= next(
        e for e in doc["entity"] if e["keys"] == ["device_id"]
    ).items()
    text, _ = suggest_spec(frame, label_column="is_fraud")
    assert tomllib.loads(text) == doc
    y = frame["is_fraud"].to_numpy()
    _, _, test = split_rows(len(frame), y, 0, frame["timestamp"])
    auprc = {}
    for name, spec in (("without", None), ("with", tmp_path / "s.toml")):
        result = train_file(
            data,
            tmp_path / name,
            label_column="is_fraud",
            normal_value="0",
            time_column="timestamp",
            drop_columns=["transaction_id"],
            features=spec,
            compare=False,
            log=lambda line: None,
            random_state=0,
        )
        X = frame.drop(columns=["is_fraud", "transaction_id"])
        if spec is not None:
            spec_used = parse_spec(result.detector.extra_documents_[FEATURE_SPEC])
            X = model_frame(X, compute_features(frame, spec_used), spec_used)
        auprc[name] = average_precision_score(y[test], result.detector.anomaly_score(X.iloc[test]))
    assert auprc["with"] > 1.5 * auprc["without"], auprc
