"""The output contract (fraudvae/detection/contract.py) is what every entry point writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fraudvae import VAEDetector
from fraudvae.detection.contract import REJECT_REASON, output_columns, score_columns
from fraudvae.jobs.batch import score_file


@pytest.fixture(scope="module")
def model_dir(fitted: VAEDetector, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("contract") / "model"
    fitted.save(str(path))
    return path


@pytest.mark.parametrize("top_k", [0, 2])
def test_score_columns_are_the_contracts_columns(fitted: VAEDetector, holdout, top_k: int) -> None:
    X, _ = holdout
    result = fitted.score_frame(X.iloc[:20], explain_top_k=top_k)
    values = score_columns(result, top_k)
    assert list(values) == list(output_columns(top_k))
    assert all(len(v) == 20 for v in values.values())


@pytest.mark.parametrize("rows", [0, 30])
def test_the_batch_job_writes_the_contracts_columns(model_dir: Path, holdout, tmp_path: Path, rows: int) -> None:
    X, _ = holdout
    src = tmp_path / "in.csv"
    X.iloc[:rows].to_csv(src, index=False)
    score_file(model_dir, src, tmp_path / "out.csv", keep_columns=["amount"], explain_top_k=2)
    written = pd.read_csv(tmp_path / "out.csv")
    assert list(written.columns) == ["amount", *output_columns(2)]
    assert len(written) == rows


def test_sparks_output_schema_is_the_contracts_columns() -> None:
    from pyspark.sql.types import StringType, StructField, StructType

    from fraudvae.jobs.spark import _output_schema

    schema = _output_schema(StructType([StructField("id", StringType())]), 3)
    assert schema.fieldNames() == ["id", *output_columns(3), REJECT_REASON]
