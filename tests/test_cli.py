"""The `fraudvae` command on real files: its argv, output, files and exit status.

Commands run through the CLI's ``main`` in this process (``run``, tests/conftest.py's
``fraudvae_cli``); the console script itself runs as a real process for help and for an error
(``run_process``), and for the batch job's signals and terminal (tests/test_batch.py).
"""

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
from tests.conftest import fraudvae_cli

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

FRAUDVAE = str(Path(sys.executable).with_name("fraudvae"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return fraudvae_cli(*args)


def run_process(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
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
                "--target-precision",
                "--target-recall",
                "--column-types",
                "--kind",
                "--epochs",
                "--seed",
                "--quiet",
                "--no-compare",
                "--scoring",
                "--score-samples",
                "--prior-components",
            ],
        ),
        (
            "evaluate",
            ["--model", "--data", "--label-column", "--out", "--normal-value", "--all-rows", "--keep-columns"],
        ),
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
        ("serve", ["--model", "--host", "--port", "--workers", "--state"]),
    ],
)
def test_help_explains_every_option(command: str, options: list[str]) -> None:
    out = run_process(command, "--help")
    assert out.returncode == 0
    for option in options:
        line = next((ln for ln in out.stdout.splitlines() if ln.strip().startswith(option)), None)
        assert line is not None, f"{command} --help does not list {option}"
    top = run_process("--help")
    assert command in top.stdout


@pytest.mark.parametrize(
    ("action", "options"),
    [("load", ["--model", "--data", "--chunk-rows", "--state", "--quiet"]), ("info", ["--model", "--state"]),
     ("reset", ["--model", "--state"])],
)  # fmt: skip
def test_state_help_explains_every_option(action: str, options: list[str]) -> None:
    out = run_process("state", action, "--help")
    assert out.returncode == 0
    for option in options:
        assert any(ln.strip().startswith(option) for ln in out.stdout.splitlines()), f"state {action}: {option}"


def test_state_load_of_a_model_without_a_spec_is_one_line(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "h.csv"
    data.write_text("a\n1\n")
    out = run("state", "load", "--model", str(model_dir), "--data", str(data), "--state", f"sqlite:///{tmp_path}/s.db")
    _assert_one_line_error(out, "has no feature spec")
    out = run("state", "info", "--model", str(model_dir), "--state", "postgres://x")
    _assert_one_line_error(out, "unknown scheme")


def _assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fraudvae: error:"), out.stderr
    for needle in needles:
        assert needle in lines[0]


def test_wrong_path_is_one_line(tmp_path: Path) -> None:
    _assert_one_line_error(
        run_process("train", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m")),
        "nope.csv",
        "does not exist",
    )


def test_missing_label_column_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0] * 20, "b": ["x", "y"] * 20}).to_csv(data, index=False)
    _assert_one_line_error(
        run("train", "--data", str(data), "--out", str(tmp_path / "m"), "--label-column", "Class"),
        "'Class'",
        "not in the data",
    )


@pytest.mark.parametrize(
    ("option", "needles"),
    [
        (["--score-samples", "-1"], ("n_score_samples=-1", "expected 0 or more")),
        (["--prior-components", "-2"], ("prior_components=-2", "expected a whole number >= 0")),
        (["--n-init", "0"], ("n_init=0", "expected a whole number >= 1")),
    ],
)
def test_an_invalid_model_option_is_one_line(tmp_path: Path, option: list[str], needles: tuple[str, str]) -> None:
    data = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0] * 20, "b": ["x", "y"] * 20}).to_csv(data, index=False)
    _assert_one_line_error(
        run("train", "--data", str(data), "--out", str(tmp_path / "m"), *option, "--quiet"),
        *needles,
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
        ("fraud/carclaims.csv.gz", "FraudFound", "No", ["--drop-columns", "PolicyNumber", "--epochs", "4"]),
        ("fraud/ulb_creditcard_fraud_subset.csv.gz", "Class", "0", ["--no-compare", "--epochs", "4"]),
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


# ---------------------------------------------------------------------- findings of a fraud analyst
@pytest.fixture(scope="module")
def labelled_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo transactions as an export: a unique transaction id left in, labels present."""
    data = tmp_path_factory.mktemp("export") / "tx.csv"
    make_transactions(3000, fraud_rate=0.03, random_state=4).to_csv(data, index=False)
    return data


def test_regression_identifier_warning_printed_four_times(labelled_export: Path, tmp_path: Path) -> None:
    """Training with the comparison fits four detectors, and each repeated the identifier
    warning; it also suggested Python code to a CLI user. Now: once, naming --drop-columns."""
    out = run(
        "train", "--data", str(labelled_export), "--out", str(tmp_path / "m"), "--label-column", "is_fraud",
        "--epochs", "2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "like an identifier" in line]
    assert len(warnings) == 1, out.stderr
    assert "Column 'transaction_id' is left out of the model" in warnings[0]
    assert "--column-types transaction_id=categorical" in warnings[0] and "--keep-columns" in warnings[0]


def test_regression_target_target_fpr_in_train_output(labelled_export: Path, tmp_path: Path) -> None:
    out = run(
        "train", "--data", str(labelled_export), "--out", str(tmp_path / "m"), "--label-column", "is_fraud",
        "--drop-columns", "transaction_id", "--epochs", "2", "--no-compare", "--quiet",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "target target" not in out.stdout
    assert "target false-positive rate 0.01" in out.stdout


@pytest.mark.parametrize(("option", "key"), [("--target-precision", "precision"), ("--target-recall", "recall")])
def test_regression_train_offered_only_target_fpr(labelled_export: Path, tmp_path: Path, option: str, key: str) -> None:
    """The README promised a target precision or recall with labels; the CLI had only --target-fpr."""
    model = tmp_path / "m"
    out = run(
        "train", "--data", str(labelled_export), "--out", str(model), "--label-column", "is_fraud",
        "--drop-columns", "transaction_id", "--epochs", "3", "--no-compare", "--quiet", option, "0.5",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    calibration = json.loads((model / "calibration.json").read_text())
    assert calibration["goal"] == {f"target_{key}": 0.5}
    assert f"target {key} 0.5" in out.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target-precision", "0.5"], "needs labels"),
        (["--target-precision", "0.5", "--target-recall", "0.5"], "not allowed with argument"),
        (["--target-recall", "1.5"], "expected a number between 0 and 1"),
        (["--target-fpr", "abc"], "expected a number between 0 and 1"),
    ],
)
def test_threshold_targets_are_checked_in_one_line(labelled_export: Path, tmp_path: Path, args, needle) -> None:
    out = run("train", "--data", str(labelled_export), "--out", str(tmp_path / "m"), "--quiet", *args)
    assert out.returncode == 2
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_regression_scores_csv_had_no_id_column(labelled_export: Path, tmp_path: Path) -> None:
    """scores.csv and the report's rows could not be joined back to the input. The id that
    training dropped is kept by default; --keep-columns chooses others."""
    model = tmp_path / "m"
    out = run(
        "train", "--data", str(labelled_export), "--out", str(model), "--label-column", "is_fraud",
        "--drop-columns", "transaction_id", "--epochs", "2", "--no-compare", "--quiet",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    source = pd.read_csv(labelled_export)
    for extra, kept in (
        ([], ["transaction_id"]),
        (["--keep-columns", "transaction_id,amount"], ["transaction_id", "amount"]),
    ):
        report = tmp_path / f"r{len(kept)}"
        out = run(
            "evaluate", "--model", str(model), "--data", str(labelled_export), "--label-column", "is_fraud",
            "--out", str(report), *extra,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        scores = pd.read_csv(report / "scores.csv")
        assert list(scores.columns[1 : 1 + len(kept)]) == kept
        joined = scores.merge(source, on="transaction_id", suffixes=("", "_source"))
        assert len(joined) == len(scores)
        assert (joined["label"] == joined["is_fraud"]).all()  # the ids point at the right rows
        top = json.loads((report / "report.json").read_text())["top_rows"]
        assert all(set(r["keys"]) == set(kept) for r in top)
        assert "<th>transaction_id</th>" in (report / "report.html").read_text()
    out = run(
        "evaluate", "--model", str(model), "--data", str(labelled_export), "--label-column", "is_fraud",
        "--out", str(tmp_path / "bad"), "--keep-columns", "nope",
    )  # fmt: skip
    assert out.returncode == 2 and "--keep-columns names ['nope']" in out.stderr


def test_regression_report_ranked_features_by_two_attributions(fitted: VAEDetector, holdout, tmp_path: Path) -> None:
    """The heatmap coloured features by their excess over normal, the table ranked them by
    attribution (row 1570: heatmap timestamp.hour, table txn_count_1h). Both now use the
    attribution, and the report says so."""
    from fraudvae.report import html as report_module

    X, y = holdout
    result = fitted.score_frame(X, explain_top_k=3)
    captured: dict[str, np.ndarray] = {}
    original = report_module.plt.Axes.imshow

    def spy(self, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        captured["matrix"] = np.asarray(data)
        return original(self, data, *args, **kwargs)

    report_module.plt.Axes.imshow = spy  # type: ignore[method-assign]
    try:
        report_module.write_report(
            tmp_path, y=y, result=result, metrics=_metrics(y, result, fitted), meta={}, comparison=None,
            comparison_note="",
        )  # fmt: skip
    finally:
        report_module.plt.Axes.imshow = original  # type: ignore[method-assign]
    top = np.argsort(-result.anomaly_score, kind="stable")[:15]
    tops = result.top_features(3)
    for r, i in enumerate(top):
        strongest = max(tops[i], key=lambda f: f["attribution"])
        if strongest["attribution"] > 0:
            assert captured["matrix"][r].max() == pytest.approx(strongest["attribution"])
    html = (tmp_path / "report.html").read_text()
    assert "ranked by <b>attribution</b> everywhere" in html


def _metrics(y: np.ndarray, result, det: VAEDetector) -> dict:
    from fraudvae.detection.evaluation import evaluate_scores

    return evaluate_scores(y, result.anomaly_score, det.threshold_)


def test_train_n_init_keeps_the_best_initialisation_and_says_which(labelled_export: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    out = run(
        "train", "--data", str(labelled_export), "--out", str(model), "--label-column", "is_fraud",
        "--drop-columns", "transaction_id", "--epochs", "3", "--no-compare", "--n-init", "2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    config = json.loads((model / "config.json").read_text())
    assert config["params"]["n_init"] == 2 and len(config["inits"]) == 2
    losses = [i["validation_loss"] for i in config["inits"]]
    assert config["best_init"] == losses.index(min(losses))
    assert f"Kept initialisation {config['best_init'] + 1} of 2" in out.stdout
    progress = [line for line in out.stderr.splitlines() if "epoch 3/3" in line]
    assert [line.split()[:2] for line in progress] == [["init", "1/2"], ["init", "2/2"]], out.stderr


def test_regression_help_took_four_seconds_loading_torch_pandas_and_sklearn() -> None:
    """`fraudvae --help` and argument errors loaded the whole library (4 s); now they load none of it."""
    code = (
        "import sys; from fraudvae.cli.main import build_parser; build_parser(); import fraudvae; "
        "heavy = sorted(m for m in ('torch', 'pandas', 'sklearn', 'numpy') if m in sys.modules); "
        "print(heavy, fraudvae.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "[]", out.stdout
