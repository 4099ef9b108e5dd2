"""A spec model over HTTP (the real app in process, a real SQLite file or redis-server):
raw events in, features from the store, ids counted once, what-ifs, late events, faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fraudvae_service.app import create_app
from fraudvae_service.settings import Settings

from fraudvae.state import open_store
from tests.conftest import free_port

STORES = pytest.mark.parametrize("state_url", ["sqlite", "redis"], indirect=True)


def _events(card_events: pd.DataFrame, start: int, n: int) -> list[dict[str, Any]]:
    frame = card_events.iloc[start : start + n].drop(columns=["is_fraud"])
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _client(model: Path, state_url: str, **settings: Any) -> TestClient:
    return TestClient(
        create_app(Settings(model_dir=model, state_url=state_url, event_id_column="transaction_id", **settings))
    )


@pytest.fixture
def client(spec_model_dir: Path, state_url: str) -> Iterator[TestClient]:
    with _client(spec_model_dir, state_url, admin_key="admin") as c:
        yield c


@STORES
def test_a_retried_event_id_returns_the_stored_answer_and_counts_once(
    client: TestClient, card_events: pd.DataFrame, state_url: str
) -> None:
    first, second = _events(card_events, 4000, 2)
    a = client.post("/score", json=first).json()
    again = client.post("/score", json=first).json()
    assert again["replayed"] is True and a["replayed"] is False and a["event_id"] == first["transaction_id"]
    assert {k: again[k] for k in ("anomaly_score", "top_features", "p_value")} == {
        k: a[k] for k in ("anomaly_score", "top_features", "p_value")
    }
    batch = client.post("/batch_score", json=[first, second, second]).json()["results"]
    assert [r["replayed"] for r in batch] == [True, False, True]  # a duplicate inside a batch counts once
    assert batch[1]["anomaly_score"] == batch[2]["anomaly_score"]
    assert open_store(state_url).counts()["events"] == 2


@STORES
def test_record_false_scores_from_the_history_and_writes_nothing(
    client: TestClient, card_events: pd.DataFrame, state_url: str
) -> None:
    events = _events(card_events, 4000, 40)
    for e in events[:39]:
        assert client.post("/score", json=e).status_code == 200
    store = open_store(state_url)
    before = store.counts()
    what_if = client.post("/score", json={**events[39], "record": False}).json()
    assert what_if["event_id"] is None and what_if["replayed"] is False
    assert store.counts() == before
    real = client.post("/score", json=events[39]).json()
    assert real["anomaly_score"] == what_if["anomaly_score"]  # the same past, the same features
    assert store.counts()["events"] == before["events"] + 1


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_a_late_event_is_flagged_recorded_and_earlier_answers_stand(
    client: TestClient, card_events: pd.DataFrame
) -> None:
    events = _events(card_events, 4000, 3)
    card = events[0]["card_id"]
    newer = {**events[1], "card_id": card, "timestamp": "2026-03-01T12:00:00", "transaction_id": "n1"}
    older = {**events[2], "card_id": card, "timestamp": "2026-03-01T11:00:00", "transaction_id": "o1"}
    assert client.post("/score", json=newer).json()["late"] is False
    late = client.post("/score", json=older).json()
    assert late["late"] is True and late["replayed"] is False
    assert client.post("/score", json=newer).json()["replayed"] is True  # its answer stands


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_derived_columns_and_missing_ids_are_refused_by_name(client: TestClient, card_events: pd.DataFrame) -> None:
    event = _events(card_events, 4000, 1)[0]
    r = client.post("/score", json={**event, "card_id:count_1h": 0})
    assert r.status_code == 422
    [err] = r.json()["detail"]
    assert err["field"] == "card_id:count_1h" and "derived by the model's feature spec" in err["message"]
    r = client.post("/score", json={**event, "transaction_id": None})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "transaction_id"
    r = client.post("/score", json={k: v for k, v in event.items() if k != "card_id"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "card_id"
    r = client.post("/batch_score", content="a,b\n1,2\n", headers={"content-type": "text/csv"})
    assert r.status_code == 415 and "JSON array" in r.json()["detail"]
    mixed = [{**event, "record": False}, {**event, "transaction_id": "x2"}]
    r = client.post("/batch_score", json=mixed)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "record"


@STORES
def test_model_and_metrics_report_the_store(client: TestClient, card_events: pd.DataFrame, state_url: str) -> None:
    for e in _events(card_events, 4000, 5):
        client.post("/score", json=e)
    state = client.get("/model").json()["state"]
    assert state["kind"] == state_url.split(":")[0] and state["events"] == 5 and state["entities"] >= 2
    assert state["read_ms_p50"] is not None and state["write_ms_p50"] is not None
    metrics = client.get("/metrics").text
    assert 'fraudvae_state{kind="' in metrics and "fraudvae_state_up 1.0" in metrics


def test_an_unreachable_store_is_503_never_a_score(spec_model_dir: Path, card_events: pd.DataFrame) -> None:
    with _client(spec_model_dir, f"redis://127.0.0.1:{free_port()}/0") as c:
        ready = c.get("/ready")
        assert ready.status_code == 503 and "state store unavailable" in ready.json()["detail"]
        for event in ({**_events(card_events, 4000, 1)[0]}, {**_events(card_events, 4000, 1)[0], "record": False}):
            r = c.post("/score", json=event)
            assert r.status_code == 503 and "Redis" in r.json()["detail"], r.text
        assert c.post("/batch_score", json=_events(card_events, 4000, 2)).status_code == 503
        assert c.get("/health").status_code == 200  # the process lives on


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_a_reload_whose_spec_differs_refuses_the_store(
    client: TestClient, model_dir: Path, spec_model_dir: Path, tmp_path: Path
) -> None:
    """The store holds the demo spec's history; a model with another spec is refused (409),
    and the old model keeps serving."""
    import shutil

    from fraudvae import VAEDetector
    from fraudvae.features.behaviour import FEATURE_SPEC

    other = tmp_path / "other"
    det = VAEDetector.load(str(spec_model_dir))
    doc = json.loads(json.dumps(det.extra_documents_[FEATURE_SPEC]))
    doc["entity"][0]["windows"] = ["2h", *doc["entity"][0]["windows"][1:]]
    det.extra_documents_[FEATURE_SPEC] = doc
    det.save(str(other))
    before = client.get("/model").json()["model_version"]
    r = client.post("/model/reload", json={"model_dir": str(other)}, headers={"X-API-Key": "admin"})
    assert r.status_code == 409 and "another feature spec" in r.json()["detail"], r.text
    assert client.get("/model").json()["model_version"] == before
    shutil.rmtree(other)
