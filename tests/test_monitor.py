"""``fraudvae monitor``: drift against the reference kept at fit, alert rates, labelled precision, the page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudvae import VAEDetector
from fraudvae.cli import main
from fraudvae.exceptions import DataFileError, IncompatibleArtifactError
from fraudvae.jobs.monitor_job import monitor_file, partial_labels

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def window(holdout, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """The held-out rows with amounts tripled; every other label withheld (not labelled yet)."""
    X, y = holdout
    out = tmp_path_factory.mktemp("monitor")
    frame = X.assign(amount=X["amount"] * 3)
    labels = pd.Series(np.where(y == 1, "fraud", "legit"), dtype=object)
    labels[np.arange(len(labels)) % 2 == 1] = None
    frame.assign(label=labels).to_csv(out / "window.csv", index=False)
    return out, frame, labels.to_numpy()


def test_fit_keeps_a_reference_sample_and_it_survives_saving(fitted: VAEDetector, model_dir: Path) -> None:
    ref = VAEDetector.load(str(model_dir)).reference_
    assert ref == json.loads(json.dumps(fitted.reference_))
    assert ref["kinds"]["amount"] == "numeric" and ref["kinds"]["country"] == "categorical"
    assert "timestamp" not in ref["kinds"], "time always moves on: not compared"
    assert ref["rows"] == 2000 and len(ref["numeric"]["amount"]) == 2000


def test_cli_reports_the_drifted_column_and_the_precision_the_labels_imply(
    model_dir: Path, window, capsys: pytest.CaptureFixture[str]
) -> None:
    out, frame, labels = window
    args = ["--data", str(out / "window.csv"), "--label-column", "label", "--time-column", "timestamp"]
    assert main(["monitor", "--model", str(model_dir), *args, "--out", str(out / "report")]) == 0
    doc = json.loads((out / "report" / "monitor.json").read_text())
    # The window's 1% fraud carries high velocity counts: those columns drift too, for real.
    assert set(doc["drifted_columns"]) - {"txn_count_1h", "txn_count_24h"} == {"amount"}
    # Independently: flags from the model, precision from the labels the test withheld or kept.
    flag = VAEDetector.load(str(model_dir)).flag(frame).astype(bool)
    labelled = np.array([v is not None for v in labels])
    alerts = flag & labelled
    assert doc["alerts"] == int(flag.sum()) and doc["alert_rate"] == pytest.approx(flag.mean())
    assert doc["labels"]["labelled_alerts"] == int(alerts.sum())
    assert doc["labels"]["precision"] == pytest.approx(float(np.mean(labels[alerts] == "fraud")))
    assert doc["labels"]["recall"] == pytest.approx(float(np.mean(flag[labels == "fraud"])))
    assert sum(p["rows"] for p in doc["alerts_over_time"]) == len(frame)
    assert "alert rate" in capsys.readouterr().out


def test_unchanged_traffic_drifts_nowhere(model_dir: Path, holdout, tmp_path: Path) -> None:
    X, y = holdout
    X[y == 0].to_csv(tmp_path / "same.csv", index=False)
    doc = monitor_file(model_dir, tmp_path / "same.csv", tmp_path / "report").document
    assert doc["drifted_columns"] == [] and doc["labels"] is None


def test_a_model_saved_before_references_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(IncompatibleArtifactError, match="re-fit it with this version"):
        monitor_file(GOLDEN / "vae" / "model", GOLDEN / "rows.parquet", tmp_path / "report")
    assert not (tmp_path / "report").exists(), "nothing half-written"


@pytest.mark.parametrize(
    ("values", "normal", "expected"),
    [
        (["fraud", "legit", None, "FRAUD"], None, [1, 0, -1, 1]),
        ([1, 0, None, 1.0], None, [1, 0, -1, 1]),
        (["ok", "chargeback", None], "ok", [0, 1, -1]),
    ],
)
def test_partial_labels(values: list, normal: str | None, expected: list[int]) -> None:
    assert partial_labels(pd.Series(values, dtype=object), "label", normal).tolist() == expected


def test_an_unknown_label_is_refused_by_name() -> None:
    with pytest.raises(DataFileError, match=r"'label' holds \['maybe'\]"):
        partial_labels(pd.Series(["fraud", "maybe"]), "label", None)


@pytest.mark.slow
def test_monitor_page_renders_in_a_browser_with_its_plots(model_dir: Path, window) -> None:
    from playwright.sync_api import sync_playwright

    out, _, _ = window
    page_path = out / "browser" / "monitor.html"
    monitor_file(model_dir, out / "window.csv", out / "browser", label_column="label", time_column="timestamp")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        response = page.goto(page_path.as_uri(), wait_until="load")
        assert response is not None and response.ok
        images = page.evaluate("[...document.images].map(i => ({ok: i.complete && i.naturalWidth > 100, alt: i.alt}))")
        cells = page.locator("td.drift").all_inner_texts()
        browser.close()
    alts = [i["alt"] for i in images]
    assert alts[:3] == ["alert rate over time", "score distribution", "amount: training against current"], alts
    assert all(i["ok"] for i in images) and errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), "the page must be self-contained"
    assert any("Wasserstein" in c for c in cells)


def test_the_batch_job_writes_a_score_log_beside_its_output(model_dir: Path, holdout, tmp_path: Path) -> None:
    from fraudvae.detection.artifact import model_version
    from fraudvae.jobs.batch import score_file

    X, _ = holdout
    X.assign(tx=[f"t{i}" for i in range(len(X))]).to_csv(tmp_path / "in.csv", index=False)
    score_file(model_dir, tmp_path / "in.csv", tmp_path / "out.csv", score_log=tmp_path / "log.parquet", id_column="tx")
    log, out = pd.read_parquet(tmp_path / "log.parquet"), pd.read_csv(tmp_path / "out.csv")
    assert list(log.columns) == ["event_id", "scored_at", "model_version", "score", "flagged", "top_features"]
    assert log["event_id"].tolist() == [f"t{i}" for i in range(len(X))]
    assert (log["model_version"] == model_version(model_dir)).all()
    np.testing.assert_array_equal(log["flagged"].to_numpy(), out["is_anomaly"].to_numpy())


def test_a_batch_that_fails_writes_no_score_log(model_dir: Path, holdout, tmp_path: Path) -> None:
    from fraudvae.jobs.batch import score_file

    X, _ = holdout
    X.assign(amount="not a number").to_csv(tmp_path / "bad.csv", index=False)
    score_file(model_dir, tmp_path / "bad.csv", tmp_path / "out.csv", score_log=tmp_path / "log.parquet")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "log.parquet").exists()


def test_a_spec_model_is_monitored_on_its_raw_events(spec_model_dir: Path, card_events, tmp_path: Path) -> None:
    """The features are computed as evaluate computes them; drift compares the raw and derived columns."""
    card_events.iloc[4000:].to_csv(tmp_path / "later.csv", index=False)
    doc = monitor_file(spec_model_dir, tmp_path / "later.csv", tmp_path / "report", label_column="is_fraud").document
    compared = {d["column"] for d in doc["drift"]}
    assert "amount" in compared and any(":" in c for c in compared), compared
    assert doc["rows"] == 2000 and doc["labels"]["labelled_frauds"] == int(card_events["is_fraud"].iloc[4000:].sum())
    assert (tmp_path / "report" / "monitor.html").stat().st_size > 0
