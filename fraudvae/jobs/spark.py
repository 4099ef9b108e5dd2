"""Batch scoring on Apache Spark: the same scoring function, run per Arrow batch on executors.

``score_dataframe`` adds the score columns to any Spark DataFrame with the training
columns, through ``mapInPandas``; each executor's Python process loads the model once.
Rows that cannot be scored keep null scores and say why in ``reject_reason`` (Spark has
no line numbers to report), so nothing disappears. Needs the extra: ``pip install
'fraudvae[spark]'``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraudvae.data.io import file_format
from fraudvae.detection.contract import REJECT_REASON, output_columns, reject_reason, score_columns
from fraudvae.detection.detector import VAEDetector
from fraudvae.exceptions import ConfigurationError, DataFileError
from fraudvae.features.behaviour import model_spec, with_features
from fraudvae.features.spec import FeatureSpec
from fraudvae.features.stream import compute_features
from fraudvae.jobs.batch import BatchSummary

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["score_dataframe", "score_path", "spark_session"]

#: Columns that keep an event's place while its entity's features are computed in a group.
_PART, _ROW = "__fraudvae_part", "__fraudvae_row"
#: Models already loaded in this Python process (one per executor worker, reused by tasks).
_MODELS: dict[str, VAEDetector] = {}


def _model(model_dir: str) -> VAEDetector:
    det = _MODELS.get(model_dir)
    if det is None:
        det = _MODELS[model_dir] = VAEDetector.load(model_dir)
    return det


def _output_schema(input_schema: Any, explain_top_k: int) -> Any:
    from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType

    types = {"float64": DoubleType(), "bool": BooleanType(), "string": StringType()}
    fields = list(input_schema.fields)
    fields += [StructField(name, types[kind]) for name, kind in output_columns(explain_top_k).items()]
    fields.append(StructField(REJECT_REASON, StringType()))
    return StructType(fields)


def _score_batches(model_dir: str, explain_top_k: int):  # type: ignore[no-untyped-def]
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        det = _model(model_dir)
        for pdf in batches:
            n = len(pdf)
            result = det.score_frame(
                pdf, errors="collect", warn_extra=False, explain_top_k=explain_top_k, sampled=False
            )
            out = pdf.copy()
            positions = result.row_positions if result.row_positions is not None else np.arange(n)
            for name, values in score_columns(result, explain_top_k).items():
                values = np.asarray(values)
                if values.dtype.kind == "f":
                    full: Any = np.full(n, np.nan)
                elif values.dtype.kind == "b":
                    full = pd.array([None] * n, dtype="boolean")
                else:
                    full = np.full(n, None, dtype=object)
                full[positions] = values
                out[name] = full
            reasons = np.full(n, None, dtype=object)
            for row, problems in result.rejected.items():
                reasons[row] = reject_reason(problems)
            out[REJECT_REASON] = reasons
            yield out

    return score


def score_dataframe(
    df: DataFrame, model_dir: str | Path, *, explain_top_k: int = 0, history: DataFrame | None = None
) -> DataFrame:
    """Return ``df`` with ``anomaly_score``, ``is_anomaly``, ``p_value`` (and top-k) columns.

    The model is verified on the driver first, so a bad path fails before any task runs.
    A model trained with a feature spec gets its derived columns too: the events (``history``,
    then ``df``) are hash-partitioned by each entity's keys, so all of an entity's events meet in
    one partition, and each partition is computed in one pass in input order (the batch job's
    tie order), as the batch job computes a whole file; then they are joined back to their rows.
    (One pass a partition, not one Python call an entity: with a million cards, per-entity
    calls cost more than the features.)
    """
    path = str(Path(model_dir).resolve())
    spec = model_spec(VAEDetector.load(path).extra_documents_)
    if history is not None and spec is None:
        raise ConfigurationError(f"history is for a model trained with --features; {path!r} has no feature spec.")
    if spec is not None and (spec.entities or spec.label_risk):
        df = _with_entity_features(df, spec, history)
    if spec is not None and spec.rows:
        df = _with_row_features(df, spec)
    return df.mapInPandas(_score_batches(path, explain_top_k), schema=_output_schema(df.schema, explain_top_k))


def _with_row_features(df: DataFrame, spec: FeatureSpec) -> DataFrame:
    """The within-row features (no history needed), batch by batch, replacing same-named columns."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    rows = FeatureSpec(spec.time, spec.time_unit, (), spec.rows)
    names = rows.feature_names()
    fields = [f for f in df.schema.fields if f.name not in set(names)]
    schema = StructType(fields + [StructField(name, DoubleType()) for name in names])

    def add(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            yield with_features(pdf, compute_features(pdf, rows))

    return df.mapInPandas(add, schema=schema)


def _entity_partition(one: FeatureSpec):  # type: ignore[no-untyped-def]
    def compute(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        parts = list(batches)  # the whole partition: every event of its entities
        if not parts:
            return
        pdf = pd.concat(parts, ignore_index=True).sort_values([_PART, _ROW], kind="stable").reset_index(drop=True)
        features = compute_features(pdf, one)
        yield pd.concat([pdf[[_PART, _ROW]], features], axis=1)

    return compute


def _with_entity_features(df: DataFrame, spec: FeatureSpec, history: DataFrame | None) -> DataFrame:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, IntegerType, LongType, StructField, StructType

    data = df.withColumn(_PART, F.lit(1)).withColumn(_ROW, F.monotonically_increasing_id())
    used = sorted(spec.columns_used())
    labels = sorted(spec.label_columns())  # read where a file has them (new traffic often has none)
    events = data.select(_PART, _ROW, *used, *(c for c in labels if c in df.columns))
    if history is not None:
        missing = [c for c in used if c not in history.columns]
        if missing:
            raise DataFileError(f"the history lacks column(s) {missing} that the feature spec uses.")
        past = history.select(*used, *(c for c in labels if c in history.columns))
        past = past.withColumn(_PART, F.lit(0)).withColumn(_ROW, F.monotonically_increasing_id())
        events = events.unionByName(past, allowMissingColumns=True)
    ids = [StructField(_PART, IntegerType()), StructField(_ROW, LongType())]
    groups = [(e.keys, FeatureSpec(spec.time, spec.time_unit, (e,), ())) for e in spec.entities]
    groups += [(r.keys, FeatureSpec(spec.time, spec.time_unit, (), (), (r,))) for r in spec.label_risk]
    for keys, one in groups:
        schema = StructType(ids + [StructField(name, DoubleType()) for name in one.feature_names()])
        columns = sorted({_PART, _ROW, *one.columns_used(), *(c for c in one.label_columns() if c in events.columns)})
        derived = events.select(*columns).repartition(*keys).mapInPandas(_entity_partition(one), schema=schema)
        data = data.drop(*[n for n in one.feature_names() if n in data.columns]).join(derived, [_PART, _ROW], "left")
    return data.drop(_PART, _ROW)


def spark_session(master: str = "local[2]", app_name: str = "fraudvae-score") -> SparkSession:
    """A session whose Python workers run this interpreter, with Arrow on and the console quiet."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError("--engine spark needs pyspark: pip install 'fraudvae[spark]'.") from exc
    # Workers run this interpreter (the one with fraudvae installed) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def score_path(
    model_dir: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    master: str = "local[2]",
    keep_columns: list[str] | None = None,
    explain_top_k: int = 0,
    max_reject_rate: float = 0.0,
    history: str | Path | None = None,
) -> BatchSummary:
    """``fraudvae score --engine spark``: files or directories in, a directory of part files out.

    The output (and ``OUT.rejects.csv``, a directory of CSV parts with the kept columns
    and the reason) are written beside their targets and renamed into place.
    """
    started = time.perf_counter()
    src, dst = Path(input_path), Path(output_path)
    if not src.exists():
        raise DataFileError(f"Input {str(src)!r} does not exist; check the path.")
    spark = spark_session(master)
    df = _read(spark, src)
    past = None
    if history is not None:
        if not Path(history).exists():
            raise DataFileError(f"History {str(history)!r} does not exist; check the path.")
        past = _read(spark, Path(history))
    keep = list(keep_columns or [])
    missing = [c for c in keep if c not in df.columns]
    if missing:
        raise DataFileError(f"--keep-columns names {missing}, which are not in {str(src)!r}.")
    scored = score_dataframe(df, model_dir, explain_top_k=explain_top_k, history=past).persist()
    try:
        total = scored.count()
        rejected = scored.filter(f"{REJECT_REASON} IS NOT NULL")
        n_rejected = rejected.count()
        good = scored.filter(f"{REJECT_REASON} IS NULL")
        score_cols = list(output_columns(explain_top_k))
        summary = BatchSummary(rows_read=total, rows_scored=total - n_rejected, rows_rejected=n_rejected)
        summary.rows_flagged = good.filter("is_anomaly").count()
        rejects_dst = dst.with_name(dst.name + ".rejects.csv")
        if n_rejected:
            _write_dir(rejected.select(*keep, REJECT_REASON), rejects_dst, "csv")
        else:
            shutil.rmtree(rejects_dst, ignore_errors=True)
        if summary.reject_rate <= max_reject_rate:
            _write_dir(good.select(*keep, *score_cols), dst, file_format(dst) if dst.suffix else "parquet")
    finally:
        scored.unpersist()
    summary.seconds = time.perf_counter() - started
    return summary


def _read(spark: SparkSession, src: Path) -> DataFrame:
    if file_format(src) == "parquet":
        return spark.read.parquet(str(src))
    return spark.read.option("header", True).csv(str(src))


def _write_dir(df: DataFrame, target: Path, fmt: str) -> None:
    tmp = target.with_name(f".{target.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    writer = df.write.mode("overwrite")
    (writer.option("header", True).csv(str(tmp)) if fmt == "csv" else writer.parquet(str(tmp)))
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    tmp.rename(target)
