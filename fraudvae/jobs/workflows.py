"""Train, evaluate and demo jobs: what the CLI runs, callable from Python too.

A training run on a labelled file splits it three ways (fit / calibration / test, at
random with stratification or by time), fits on the normal rows of the first part only,
calibrates on the second, and records the split in the artifact's training summary with
the data file's SHA-256. ``evaluate`` on that same file then reproduces the split and
reports on the test part only, so a report never grades a model on its training rows.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraudvae._version import __version__
from fraudvae.data.io import read_table
from fraudvae.detection.artifact import file_sha256
from fraudvae.detection.calibration import calibration_summary
from fraudvae.detection.detector import VAEDetector
from fraudvae.detection.evaluation import evaluate_scores, one_hot_baseline
from fraudvae.exceptions import ConfigurationError, DataFileError, InsufficientDataError
from fraudvae.features.behaviour import FEATURE_SPEC, describe_feature, model_frame, model_spec
from fraudvae.features.spec import FeatureSpec
from fraudvae.features.stream import compute_features, load_spec
from fraudvae.model.training import EpochLog

__all__ = ["EvaluateResult", "TrainResult", "evaluate_file", "labels_from", "split_rows", "train_file"]

SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


def labels_from(frame: pd.DataFrame, label_column: str, normal_value: str | None) -> np.ndarray:
    """1 = fraud. With ``normal_value``, every other value is fraud; else 1/true/yes is fraud."""
    if label_column not in frame.columns:
        raise DataFileError(
            f"Label column {label_column!r} is not in the data; the columns are {list(frame.columns)[:30]}."
        )
    raw = frame[label_column]
    if raw.isna().any():
        raise DataFileError(
            f"Label column {label_column!r} has {int(raw.isna().sum())} missing value(s); expected a label on every row."
        )
    text = raw.astype(str).str.strip()
    if normal_value is not None:
        normal = text == str(normal_value)
        if not normal.any():
            raise DataFileError(
                f"No row of {label_column!r} equals the normal value {normal_value!r}; "
                f"the values are {sorted(text.unique().tolist())[:10]}."
            )
        return (~normal).to_numpy().astype(int)
    lowered = text.str.lower()
    known = {"0", "1", "0.0", "1.0", "true", "false", "yes", "no"}
    unknown = sorted(set(lowered.unique()) - known)
    if unknown:
        raise DataFileError(
            f"Label column {label_column!r} holds {unknown[:5]}; pass --normal-value to say which value is normal."
        )
    return lowered.isin(["1", "1.0", "true", "yes"]).to_numpy().astype(int)


def split_rows(
    n: int, y: np.ndarray | None, seed: int, time_values: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions of the fit, calibration and test parts (60/20/20).

    By time: the oldest rows fit, the newest test (train on the past, judge on the
    future). Otherwise at random, stratified by label when there is one.
    """
    if time_values is not None:
        order = np.argsort(
            pd.to_datetime(time_values, errors="coerce", format="mixed").to_numpy()
            if not pd.api.types.is_numeric_dtype(time_values.dtype)
            else time_values.to_numpy(),
            kind="stable",
        )
    else:
        rng = np.random.default_rng(seed)
        if y is None:
            order = rng.permutation(n)
        else:
            # Stratify: shuffle each class, then interleave by rank so every part keeps the fraud rate.
            keys = np.empty(n)
            for cls in np.unique(y):
                idx = np.flatnonzero(y == cls)
                keys[idx] = (rng.permutation(idx.size) + rng.random(idx.size)) / idx.size
            order = np.argsort(keys, kind="stable")
    a = round(SPLIT_FRACTIONS[0] * n)
    b = round((SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]) * n)
    return np.sort(order[:a]), np.sort(order[a:b]), np.sort(order[b:])


def _features(frame: pd.DataFrame, label_column: str | None, drop: list[str]) -> pd.DataFrame:
    missing = [c for c in drop if c not in frame.columns]
    if missing:
        raise DataFileError(
            f"--drop-columns names {missing}, which are not in the data; the columns are {list(frame.columns)[:30]}."
        )
    return frame.drop(columns=[c for c in [label_column, *drop] if c])


@dataclass
class TrainResult:
    detector: VAEDetector
    summary: dict[str, Any]


def _compare(
    X_fit: pd.DataFrame,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    main: VAEDetector,
    main_fit_s: float,
    params: dict[str, Any],
    seed: int,
    raw_columns: list[str] | None = None,
) -> list[dict[str, Any]]:
    rows = [
        {
            "method": "VAE (this model)",
            "auroc": float(roc_auc_score(y_test, s := main.anomaly_score(X_test))),
            "auprc": float(average_precision_score(y_test, s)),
            "fit_s": main_fit_s,
        }
    ]
    if raw_columns is not None:  # what the behavioural features add: the same model without them
        started = time.perf_counter()
        det = VAEDetector(**params).fit(X_fit[raw_columns])
        fit_s = time.perf_counter() - started
        s = det.anomaly_score(X_test[raw_columns])
        rows.append(
            {
                "method": "VAE, raw columns only (no feature spec)",
                "auroc": float(roc_auc_score(y_test, s)),
                "auprc": float(average_precision_score(y_test, s)),
                "fit_s": fit_s,
            }
        )
    for kind, label in (
        ("ae", "deterministic autoencoder"),
        ("dae", "denoising autoencoder"),
        ("ppca", "probabilistic PCA"),
    ):
        started = time.perf_counter()
        det = VAEDetector(**{**params, "kind": kind}).fit(X_fit)
        fit_s = time.perf_counter() - started
        s = det.anomaly_score(X_test)
        rows.append(
            {
                "method": label,
                "auroc": float(roc_auc_score(y_test, s)),
                "auprc": float(average_precision_score(y_test, s)),
                "fit_s": fit_s,
            }
        )
    A, B = one_hot_baseline(X_fit, X_test)
    started = time.perf_counter()
    iso = IsolationForest(n_estimators=200, random_state=seed).fit(A)
    fit_s = time.perf_counter() - started
    s = -iso.score_samples(B)
    rows.append(
        {
            "method": "IsolationForest (one-hot)",
            "auroc": float(roc_auc_score(y_test, s)),
            "auprc": float(average_precision_score(y_test, s)),
            "fit_s": fit_s,
        }
    )
    return rows


def train_file(
    data: str | Path,
    out: str | Path,
    *,
    label_column: str | None = None,
    normal_value: str | None = None,
    time_column: str | None = None,
    drop_columns: list[str] | None = None,
    target_fpr: float | None = None,
    target_precision: float | None = None,
    target_recall: float | None = None,
    compare: bool = True,
    features: str | Path | FeatureSpec | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    **params: Any,
) -> TrainResult:
    """Fit a detector on a file and save it with its training summary. See the module docstring.

    The threshold meets ``target_fpr`` (default 0.01), or, with a label column,
    ``target_precision`` or ``target_recall`` on the calibration split (at most one).
    ``features`` (a spec file or :class:`~fraudvae.features.spec.FeatureSpec`) adds the
    behavioural features, computed point-in-time over the whole file; the spec is stored
    with the model so every entry point computes the same columns.
    """
    spec = load_spec(features) if isinstance(features, str | Path) else features
    goals = {"target_fpr": target_fpr, "target_precision": target_precision, "target_recall": target_recall}
    given = {k: v for k, v in goals.items() if v is not None}
    if len(given) > 1:
        raise ConfigurationError(
            f"Give at most one threshold target; got {', '.join('--' + k.replace('_', '-') for k in given)}."
        )
    if not label_column and set(given) - {"target_fpr"}:
        raise ConfigurationError(
            f"--{next(iter(given)).replace('_', '-')} needs labels to measure; pass --label-column, "
            "or use --target-fpr (which needs only normal rows)."
        )
    if not given:
        target_fpr = 0.01
    frame = read_table(data)
    if len(frame) == 0:
        raise InsufficientDataError(f"{str(data)!r} has no rows; expected normal transactions to learn from.")
    drop = list(drop_columns or [])
    if time_column is not None and time_column not in frame.columns:
        raise DataFileError(
            f"Time column {time_column!r} is not in the data; the columns are {list(frame.columns)[:30]}."
        )
    y = labels_from(frame, label_column, normal_value) if label_column else None
    X = _features(frame, label_column, drop)
    if spec is not None:
        started = time.perf_counter()
        keys = sorted({k for e in spec.entities for k in e.keys} & set(X.columns))
        X = model_frame(X, compute_features(frame, spec), spec)
        log(
            f"Behavioural features: {len(spec.feature_names())} derived column(s) over {len(frame)} events "
            f"in {time.perf_counter() - started:.1f}s ({', '.join(spec.feature_names()[:4])}"
            f"{', ...' if len(spec.feature_names()) > 4 else ''}); entity key column(s) {keys} are modelled "
            "through these only."
        )
    extra = {FEATURE_SPEC: spec.to_doc()} if spec is not None else {}
    seed = int(params.get("random_state") or 0)
    params = {**params, "random_state": seed, "target_fpr": target_fpr if target_fpr is not None else 0.01}
    summary: dict[str, Any] = {
        "fraudvae": __version__,
        "data": str(data),
        "data_sha256": file_sha256(data),
        "n_rows": len(frame),
        "label_column": label_column,
        "normal_value": normal_value,
        "time_column": time_column,
        "drop_columns": drop,
        "features": spec.feature_names() if spec is not None else [],
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
    }
    if y is None:
        log(f"No label column: fitting on all {len(X)} rows as normal; the threshold comes from a held-out 10%.")
        started = time.perf_counter()
        det = VAEDetector(**params).fit(X, epoch_callback=on_epoch)
        summary.update(
            split={"method": "none"},
            fit_seconds=time.perf_counter() - started,
            n_fit_rows=det.n_train_rows_,
            calibration=calibration_summary(det.calibration_),
        )
        det.save(str(out), extra_documents={"training_summary": summary, **extra})
        return TrainResult(det, summary)

    fit_idx, cal_idx, test_idx = split_rows(len(X), y, seed, frame[time_column] if time_column else None)
    X_fit = X.iloc[fit_idx][y[fit_idx] == 0].reset_index(drop=True)
    log(
        f"Split {'by ' + repr(time_column) if time_column else 'at random (stratified)'}: "
        f"{len(fit_idx)} fit ({len(X_fit)} normal used), {len(cal_idx)} calibration, {len(test_idx)} test rows."
    )
    started = time.perf_counter()
    det = VAEDetector(**params).fit(X_fit, epoch_callback=on_epoch)
    fit_s = time.perf_counter() - started
    X_cal, y_cal = X.iloc[cal_idx].reset_index(drop=True), y[cal_idx]
    det.calibrate(X_cal, y_cal, target_fpr=target_fpr, target_precision=target_precision, target_recall=target_recall)
    summary.update(
        split={
            "method": "time" if time_column else "random",
            "seed": seed,
            "fractions": list(SPLIT_FRACTIONS),
            "n_fit": len(fit_idx),
            "n_calibration": len(cal_idx),
            "n_test": len(test_idx),
        },
        n_fit_rows=len(X_fit),
        fit_seconds=fit_s,
        calibration=calibration_summary(det.calibration_),
    )
    if compare:
        log(
            "Fitting the comparison detectors (AE, denoising AE, probabilistic PCA, IsolationForest) on the same rows..."
        )
        X_test, y_test = X.iloc[test_idx].reset_index(drop=True), y[test_idx]
        raw = [c for c in X.columns if c not in spec.feature_names()] if spec is not None else None
        summary["comparison"] = _compare(X_fit, X_test, y_test, det, fit_s, params, seed, raw)
    det.save(str(out), extra_documents={"training_summary": summary, **extra})
    return TrainResult(det, summary)


@dataclass
class EvaluateResult:
    metrics: dict[str, Any]
    report_dir: Path
    n_rows: int
    note: str


def evaluate_file(
    model_dir: str | Path,
    data: str | Path,
    label_column: str,
    out: str | Path,
    *,
    normal_value: str | None = None,
    all_rows: bool = False,
    keep_columns: list[str] | None = None,
) -> EvaluateResult:
    """Score a labelled file with a saved model and write the report into ``out``.

    ``keep_columns`` (default: the columns training dropped, such as an id, when the
    file has them) are copied into ``scores.csv`` and the report's top rows.
    """
    det = VAEDetector.load(str(model_dir))
    summary = det.extra_documents_.get("training_summary", {})
    frame = read_table(data)
    if normal_value is None and summary.get("label_column") == label_column:
        normal_value = summary.get("normal_value")
    y = labels_from(frame, label_column, normal_value)
    drop = [c for c in summary.get("drop_columns", []) if c in frame.columns]
    keep = list(drop) if keep_columns is None else list(keep_columns)
    unknown = [c for c in keep if c not in frame.columns]
    if unknown:
        raise DataFileError(
            f"--keep-columns names {unknown}, which are not in the data; the columns are {list(frame.columns)[:30]}."
        )
    keys = frame[keep]
    X = _features(frame, label_column, drop)
    spec = model_spec(det.extra_documents_)
    if spec is not None:  # every event of the file is history for the later ones
        X = model_frame(X, compute_features(frame, spec), spec)
    note = "All rows of the file were scored."
    same_file = summary.get("data_sha256") == file_sha256(data) and summary.get("split", {}).get("method") in (
        "random",
        "time",
    )
    comparison = None
    comparison_note = (
        "The comparison is computed by `fraudvae train` on its own test split; evaluate the training file to see it."
    )
    if same_file and not all_rows:
        split = summary["split"]
        time_col = summary.get("time_column")
        _, _, test_idx = split_rows(len(X), y, int(split["seed"]), frame[time_col] if time_col else None)
        X, y, keys = X.iloc[test_idx].reset_index(drop=True), y[test_idx], keys.iloc[test_idx]
        note = (
            f"This is the model's training file: only its held-out test split ({len(y)} rows, "
            f"split {split['method']}) was scored; pass --all-rows to score every row."
        )
        comparison = summary.get("comparison")
        comparison_note = "Same fit rows and same test rows for every detector; fit seconds on this machine."
    if len(np.unique(y)) < 2:
        raise InsufficientDataError(
            f"The evaluated rows hold {int(y.sum())} fraud among {len(y)}; a report needs both normal and fraud rows."
        )
    result = det.score_frame(X, explain_top_k=3)
    metrics = evaluate_scores(y, result.anomaly_score, det.threshold_)
    meta = {
        "title": "fraudvae evaluation report",
        "model_dir": str(model_dir),
        "version": __version__,
        "kind": det.kind,
        "scoring": det.scoring,
        "data": str(data),
        "note": note,
        "calibration": calibration_summary(det.calibration_),
        "column_roles": det.schema_.roles(),
        "feature_spec": spec.to_doc() if spec is not None else None,
        "derived_features": _derived_contributions(result, y, spec) if spec is not None else [],
    }
    try:
        from fraudvae.report.html import write_report
    except ImportError as exc:  # matplotlib and jinja2 come with the extra
        raise ConfigurationError(
            f"The evaluation report needs the 'report' extra ({exc.name} is not installed): "
            "pip install 'fraudvae[report]'"
        ) from exc
    report_dir = write_report(
        out,
        y=y,
        result=result,
        metrics=metrics,
        meta=meta,
        comparison=comparison,
        comparison_note=comparison_note,
        keys=keys,
    )
    return EvaluateResult(metrics, report_dir, len(y), note)


def _derived_contributions(result: Any, y: np.ndarray, spec: FeatureSpec) -> list[dict[str, Any]]:
    """Each derived column in words, with its mean term of the score on fraud and on normal rows."""
    out = []
    for name in spec.feature_names():
        if name not in result.feature_names:  # left out at training (constant, say)
            out.append({"feature": name, "description": describe_feature(name), "modelled": False})
            continue
        j = result.feature_names.index(name)
        terms = result.contributions[:, j]
        out.append(
            {
                "feature": name,
                "description": describe_feature(name),
                "modelled": True,
                "mean_contribution_fraud": float(terms[y == 1].mean()),
                "mean_contribution_normal": float(terms[y == 0].mean()),
            }
        )
    return out
