"""Spark in local mode (real JVM, real executors): scores equal the single-machine scores, row for row."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from fraudvae import VAEDetector
from fraudvae.data.io import read_table
from fraudvae.datasets import make_transactions
from fraudvae.jobs.spark import score_dataframe, spark_session

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = spark_session("local[2]", "fraudvae-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spark") / "tx.csv"
    frame = make_transactions(2500, fraud_rate=0.01, random_state=9)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[123, "amount"] = "not-a-number"
    frame.to_csv(path, index=False)
    return path


def test_spark_scores_equal_local_scores_row_for_row(spark: SparkSession, model_dir: Path, data_csv: Path) -> None:
    df = spark.read.option("header", True).csv(str(data_csv)).repartition(3)  # rows land in other batches
    scored = score_dataframe(df, model_dir, explain_top_k=2).toPandas().set_index("transaction_id")
    local = read_table(data_csv)
    result = VAEDetector.load(str(model_dir)).score_frame(local, errors="collect", warn_extra=False, explain_top_k=2)
    ids = local["transaction_id"].to_numpy()
    expected = pd.DataFrame(
        {
            "anomaly_score": result.anomaly_score,
            "p_value": result.p_value,
            "feature_1": [t[0]["feature"] for t in result.top_features(2)],
        },
        index=ids[result.row_positions],
    )
    got = scored.loc[expected.index]
    assert got["anomaly_score"].to_numpy().tobytes() == expected["anomaly_score"].to_numpy().tobytes()
    assert got["p_value"].to_numpy().tobytes() == expected["p_value"].to_numpy().tobytes()
    assert list(got["feature_1"]) == list(expected["feature_1"])
    bad = scored.loc[ids[123]]
    assert (
        np.isnan(bad["anomaly_score"])
        and bad["reject_reason"] == "amount: found 'not-a-number', expected a finite number or null"
    )
    assert len(scored) == 2500, "no row is dropped"


def test_cli_spark_engine_writes_parquet_and_rejects(model_dir: Path, data_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "scored.parquet"
    r = subprocess.run(
        [
            FRAUDVAE,
            "score",
            "--engine",
            "spark",
            "--master",
            "local[2]",
            "--model",
            str(model_dir),
            "--input",
            str(data_csv),
            "--output",
            str(out),
            "--keep-columns",
            "transaction_id",
            "--max-reject-rate",
            "0.01",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rows read 2500, scored 2499" in r.stdout and "rejected 1" in r.stdout
    got = pd.read_parquet(out)
    assert len(got) == 2499 and list(got.columns) == ["transaction_id", "anomaly_score", "is_anomaly", "p_value"]
    rejects = pd.concat(pd.read_csv(p) for p in (tmp_path / "scored.parquet.rejects.csv").glob("*.csv"))
    assert list(rejects["reject_reason"]) == ["amount: found 'not-a-number', expected a finite number or null"]


def test_regression_spark_worker_parsed_text_with_pandas(spark: SparkSession, model_dir: Path, tmp_path: Path) -> None:
    """Spark hands the model text columns; their numbers went to pd.to_numeric, which kills
    the Python worker on "1e77904855641443592". Every corpus cell, in every column kind, is
    now scored or rejected with its reason, and the job completes."""
    from tests.test_hostile_input import CELLS, KIND_COLUMNS, csv_bytes, with_cell

    rows = [with_cell(column, text) for _, text in CELLS for column in KIND_COLUMNS.values()]
    src = tmp_path / "hostile.csv"
    src.write_bytes(csv_bytes(rows))
    df = spark.read.option("header", True).csv(str(src)).repartition(2)
    scored = score_dataframe(df, model_dir).toPandas()
    assert len(scored) >= len(rows)  # Spark's CSV reader splits the cell with a newline in two records
    rejected = scored["reject_reason"].notna()
    assert rejected.sum() > len(CELLS)  # most hostile numbers and dates are refused...
    assert scored.loc[~rejected, "anomaly_score"].notna().all()  # ...the rest is scored
    exponent = scored["amount"] == "1e77904855641443592"
    assert scored.loc[exponent, "reject_reason"].str.contains("amount").all()


def test_missing_where_never_missing_is_scored_on_spark(spark: SparkSession, model_dir: Path, tmp_path: Path) -> None:
    frame = make_transactions(40, fraud_rate=0.0, random_state=3)
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[5, "amount"] = None
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)
    df = spark.read.option("header", True).csv(str(src))
    scored = score_dataframe(df, model_dir, explain_top_k=3).toPandas().set_index("transaction_id")
    row = scored.loc[frame.loc[5, "transaction_id"]]
    assert row["reject_reason"] is None and np.isfinite(row["anomaly_score"])
    assert "amount" in {row["feature_1"], row["feature_2"], row["feature_3"]}
