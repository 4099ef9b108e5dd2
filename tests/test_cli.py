"""The `fraudvae` console script, run as a real process on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from fraudvae import VAEDetector
from fraudvae.datasets import make_transactions

FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))


def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FRAUDVAE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            "train",
            [
                "--data",
                "--out",
                "--label-column",
                "--normal-value",
                "--time-column",
                "--drop-columns",
                "--target-fpr",
                "--kind",
                "--epochs",
                "--seed",
                "--quiet",
                "--no-compare",
                "--scoring",
                "--score-samples",
            ],
        ),
        ("evaluate", ["--model", "--data", "--label-column", "--out", "--normal-value", "--all-rows"]),
        ("demo", ["--out", "--rows", "--seed", "--quiet"]),
        (
            "score",
            [
                "--model",
                "--input",
                "--output",
                "--chunk-rows",
                "--keep-columns",
                "--explain-top-k",
                "--max-reject-rate",
                "--engine",
                "--master",
                "--quiet",
            ],
        ),
        ("serve", ["--model", "--host", "--port", "--workers"]),
    ],
)
def test_help_explains_every_option(command: str, options: list[str]) -> None:
    out = run(command, "--help")
    assert out.returncode == 0
    for option in options:
        line = next((ln for ln in out.stdout.splitlines() if ln.strip().startswith(option)), None)
        assert line is not None, f"{command} --help does not list {option}"
    top = run("--help")
    assert command in top.stdout


def _assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fraudvae: error:"), out.stderr
    for needle in needles:
        assert needle in lines[0]


def test_wrong_path_is_one_line(tmp_path: Path) -> None:
    _assert_one_line_error(
        run("train", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m")), "nope.csv", "does not exist"
    )


def test_missing_label_column_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0] * 20, "b": ["x", "y"] * 20}).to_csv(data, index=False)
    _assert_one_line_error(
        run("train", "--data", str(data), "--out", str(tmp_path / "m"), "--label-column", "Class"),
        "'Class'",
        "not in the data",
    )


def test_invalid_score_samples_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0] * 20, "b": ["x", "y"] * 20}).to_csv(data, index=False)
    _assert_one_line_error(
        run("train", "--data", str(data), "--out", str(tmp_path / "m"), "--score-samples", "-1", "--quiet"),
        "n_score_samples=-1",
        "expected 0 or more",
    )
    assert not (tmp_path / "m").exists()


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "t.parquet"
    data.write_bytes(b"this is not parquet at all")
    _assert_one_line_error(run("train", "--data", str(data), "--out", str(tmp_path / "m")), "Cannot read", "PARQUET")


def test_missing_model_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}).to_csv(data, index=False)
    _assert_one_line_error(
        run(
            "evaluate",
            "--model",
            str(tmp_path / "none"),
            "--data",
            str(data),
            "--label-column",
            "y",
            "--out",
            str(tmp_path / "r"),
        ),
        "does not exist",
    )


def _recompute(report_dir: Path) -> None:
    """Every number of report.json must follow from scores.csv."""
    report = json.loads((report_dir / "report.json").read_text())
    m = report["metrics"]
    scores = pd.read_csv(report_dir / "scores.csv")
    y, s = scores["label"].to_numpy(), scores["anomaly_score"].to_numpy()
    flagged = s > m["threshold"]
    assert np.array_equal(flagged, scores["is_anomaly"].to_numpy())
    tn, fp, fn, tp = confusion_matrix(y, flagged, labels=[0, 1]).ravel()
    assert m["at_threshold"]["confusion_matrix"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert m["at_threshold"]["precision"] == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert m["at_threshold"]["recall"] == pytest.approx(tp / (tp + fn))
    assert m["at_threshold"]["false_positive_rate"] == pytest.approx(fp / (fp + tn))
    assert m["at_threshold"]["alert_rate"] == pytest.approx(flagged.mean())
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s))
    assert m["auprc"] == pytest.approx(average_precision_score(y, s))
    order = np.argsort(-s, kind="stable")
    for k, v in m["precision_at_k"].items():
        assert v == pytest.approx(y[order[: int(k)]].mean())
    assert m["n_rows"] == len(y) and m["n_fraud"] == y.sum()
    html = (report_dir / "report.html").read_text()
    assert f"{m['auroc']:.3f}" in html and f"{m['at_threshold']['precision']:.3f}" in html


@pytest.mark.parametrize(
    ("file", "label", "normal", "extra"),
    [
        ("fraud/carclaims.csv.gz", "FraudFound", "No", ["--drop-columns", "PolicyNumber"]),
        ("fraud/ulb_creditcard_fraud_subset.csv.gz", "Class", "0", ["--no-compare"]),
    ],
)
def test_train_then_evaluate_on_real_data(shared_data: Path, tmp_path: Path, file, label, normal, extra) -> None:
    data = shared_data / file
    model, report = tmp_path / "model", tmp_path / "report"
    out = run(
        "train", "--data", str(data), "--out", str(model), "--label-column", label, "--normal-value", normal, *extra
    )
    assert out.returncode == 0, out.stderr
    assert "epoch 1/" in out.stderr, "plain progress lines when stderr is not a terminal"
    summary = json.loads((model / "training_summary.json").read_text())
    assert summary["split"]["method"] == "random" and summary["label_column"] == label
    if "--no-compare" not in extra:
        methods = [r["method"] for r in summary["comparison"]]
        assert methods == [
            "VAE (this model)",
            "deterministic autoencoder",
            "denoising autoencoder",
            "probabilistic PCA",
            "IsolationForest (one-hot)",
        ]
    out = run("evaluate", "--model", str(model), "--data", str(data), "--label-column", label, "--out", str(report))
    assert out.returncode == 0, out.stderr
    assert "held-out test split" in out.stdout
    _recompute(report)
    assert json.loads((report / "report.json").read_text())["metrics"]["n_rows"] == summary["split"]["n_test"]


def test_time_split_and_quiet(tmp_path: Path) -> None:
    data = tmp_path / "tx.csv"
    make_transactions(4000, fraud_rate=0.02, random_state=1).to_csv(data, index=False)
    model = tmp_path / "m"
    out = run(
        "train",
        "--data",
        str(data),
        "--out",
        str(model),
        "--label-column",
        "is_fraud",
        "--time-column",
        "timestamp",
        "--drop-columns",
        "transaction_id",
        "--epochs",
        "5",
        "--score-samples",
        "0",
        "--no-compare",
        "--quiet",
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert VAEDetector.load(str(model)).n_score_samples == 0
    summary = json.loads((model / "training_summary.json").read_text())
    assert summary["split"]["method"] == "time"
    out = run(
        "evaluate",
        "--model",
        str(model),
        "--data",
        str(data),
        "--label-column",
        "is_fraud",
        "--out",
        str(tmp_path / "r"),
    )
    assert out.returncode == 0, out.stderr
    scores = pd.read_csv(tmp_path / "r" / "scores.csv")
    assert len(scores) == summary["split"]["n_test"]
    _recompute(tmp_path / "r")
