"""The feedback loop over HTTP, on a real `fraudvae serve`: score, label late, read live precision, restart.

ULB's card file: 5,000 of its rows scored with event ids; labels posted later for a subset,
with duplicates, a changed mind from one source and ids the log never saw; GET /monitor's
precision is checked against one computed here from the responses and the labels sent.
"""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import numpy as np
import pytest

from fraudvae import VAEDetector
from tests.conftest import load_ulb
from tests.test_service_process import start_server

pytestmark = pytest.mark.slow  # real processes: make test, not make check


@pytest.fixture(scope="module")
def ulb_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, np.ndarray]:
    X, y = load_ulb(shared_data)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, test = order[:6000], order[6000:11000]
    normal = train[y[train] == 0]
    path = tmp_path_factory.mktemp("ulb") / "model"
    VAEDetector(random_state=0, max_epochs=30).fit(X.iloc[normal]).save(str(path))
    return path, X.iloc[test].reset_index(drop=True), y[test]


def _finite(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def test_labels_round_trip_and_survive_a_restart(ulb_model, tmp_path: Path) -> None:
    model, X, y = ulb_model
    env = {"FRAUDVAE_MONITOR_PATH": str(tmp_path / "monitor.sqlite"), "FRAUDVAE_MAX_BATCH_ROWS": "1000"}
    proc, url = start_server(model, env)
    try:
        flagged = np.zeros(len(X), dtype=bool)
        with httpx.Client(base_url=url, timeout=60) as client:
            for start in range(0, len(X), 1000):
                rows = [
                    _finite(r) | {"event_id": f"tx-{start + i}"}
                    for i, r in enumerate(X.iloc[start : start + 1000].to_dict("records"))
                ]
                r = client.post("/batch_score", json=rows)
                assert r.status_code == 200, r.text
                answers = r.json()["results"]
                assert [a["event_id"] for a in answers] == [row["event_id"] for row in rows]
                flagged[start : start + 1000] = [a["is_anomaly"] for a in answers]
            # Labels arrive later, for every fraud and a third of the rest, in three posts.
            rng = np.random.default_rng(1)
            labelled = (y == 1) | (rng.random(len(y)) < 1 / 3)
            items = [
                {
                    "event_id": f"tx-{i}",
                    "label": "fraud" if y[i] else "legit",
                    "source": "analyst",
                    "labelled_at": 1e9 + i,
                }
                for i in np.flatnonzero(labelled)
            ]
            first = client.post("/feedback", json=items[: len(items) // 2]).json()
            again = client.post("/feedback", json=items[: len(items) // 2]).json()  # a retried post
            unknown = [{"event_id": "never-scored", "label": "fraud"}, {"event_id": "also-never", "label": "legit"}]
            rest = client.post("/feedback", json=items[len(items) // 2 :] + unknown).json()
            assert first["stored"] == len(items) // 2 and again["unchanged"] == len(items) // 2 and again["stored"] == 0
            assert rest["unknown"] == 2 and sorted(rest["unknown_event_ids"]) == ["also-never", "never-scored"]
            bad = client.post("/feedback", json={"event_id": "tx-1", "label": "maybe"})
            assert bad.status_code == 422 and "label" in bad.text
            expected_precision = float(np.mean(y[flagged & labelled] == 1))
            expected_recall = float(np.mean(flagged[labelled & (y == 1)]))
            day = client.get("/monitor").json()["windows"]["day"]
            assert day["scored"] == len(X) and day["alerts"] == int(flagged.sum())
            assert day["labelled_alerts"] == int((flagged & labelled).sum())
            assert day["precision"] == pytest.approx(expected_precision)
            assert day["recall"] == pytest.approx(expected_recall)
            metrics = client.get("/metrics").text
            assert 'fraudvae_monitor{measure="precision",window="day"}' in metrics
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    proc, url = start_server(model, env)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            after = client.get("/monitor").json()
        assert after["windows"]["day"]["precision"] == pytest.approx(expected_precision)
        assert after["store"]["labels"] == len(items) + 2 and after["store"]["unknown_labelled_events"] == 2
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
