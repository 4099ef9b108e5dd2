"""HTTP endpoints through FastAPI's TestClient: status codes and exact error details."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fraudvae_service.app import create_app
from fraudvae_service.settings import Settings

from fraudvae import VAEDetector
from tests.conftest import a_transaction


def make_client(model_dir: Path, **overrides: object) -> TestClient:
    return TestClient(create_app(Settings(model_dir=model_dir, **overrides)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    with make_client(model_dir, max_batch_rows=50, max_body_bytes=200_000, admin_key="admin-secret") as c:
        yield c


def test_score_matches_the_library(client: TestClient, model_dir: Path) -> None:
    row = a_transaction()
    r = client.post("/score", json=row)
    assert r.status_code == 200, r.text
    body = r.json()
    det = VAEDetector.load(str(model_dir))
    expected = det.score_frame(pd.DataFrame([row]), explain_top_k=3)
    assert body["anomaly_score"] == float(expected.anomaly_score[0])
    assert body["p_value"] == float(expected.p_value[0])
    assert body["threshold"] == det.threshold_
    assert body["is_anomaly"] == (body["anomaly_score"] > body["threshold"])
    assert body["components"]["neg_elbo"] == pytest.approx(body["anomaly_score"])
    assert [f["feature"] for f in body["top_features"]] == [f["feature"] for f in expected.top_features(3)[0]]
    assert set(body["top_features"][0]) == {"feature", "contribution", "attribution", "value", "expected"}
    assert body["model_version"] and body["request_id"] == r.headers["X-Request-ID"]


def test_suspicious_transaction_is_flagged(client: TestClient) -> None:
    row = a_transaction() | {
        "amount": 9500.0,
        "country": "NG",
        "hour": 3,
        "distance_from_home_km": 8000.0,
        "txn_count_1h": 14,
        "card_present": False,
        "channel": "online",
    }
    body = client.post("/score", json=row).json()
    assert body["is_anomaly"] is True and body["p_value"] < 0.01


def test_batch_keeps_input_order_and_matches_single_scores(client: TestClient) -> None:
    rows = [a_transaction() | {"amount": float(a)} for a in (5, 50, 500, 5000)]
    r = client.post("/batch_score", json=rows)
    assert r.status_code == 200, r.text
    body = r.json()
    singles = [client.post("/score", json=row).json()["anomaly_score"] for row in rows]
    assert [x["anomaly_score"] for x in body["results"]] == singles
    assert body["summary"]["rows"] == 4
    assert body["summary"]["flagged"] == sum(x["is_anomaly"] for x in body["results"])


def test_batch_accepts_csv(client: TestClient) -> None:
    rows = [a_transaction() | {"amount": float(a)} for a in (5, 50)]
    csv = pd.DataFrame(rows).to_csv(index=False)
    r = client.post("/batch_score", content=csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    as_json = client.post("/batch_score", json=rows).json()
    assert [x["anomaly_score"] for x in r.json()["results"]] == [x["anomaly_score"] for x in as_json["results"]]


def _detail(r) -> list[dict]:
    assert r.status_code == 422, r.text
    return r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field", "value", "expected"),
    [
        ({"amount": "12.50"}, "amount", "12.50", "a finite number or null"),
        ({"country": 7}, "country", 7, "a category (string) or null"),
        ({"card_present": "yes"}, "card_present", "yes", "one of [False, True] or null"),
        ({"coupon": "X"}, "coupon", "X", "no such field (unknown fields are refused)"),
    ],
)
def test_bad_fields_are_named(client: TestClient, change: dict, field: str, value: object, expected: str) -> None:
    detail = _detail(client.post("/score", json=a_transaction() | change))
    assert detail == [
        {"field": field, "row": None, "value": value, "expected": expected, "message": detail[0]["message"]}
    ]


def test_missing_field(client: TestClient) -> None:
    row = a_transaction()
    del row["hour"]
    assert _detail(client.post("/score", json=row))[0] | {"message": ""} == {
        "field": "hour",
        "row": None,
        "value": None,
        "expected": "a value (required field)",
        "message": "",
    }


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(client: TestClient, literal: str) -> None:
    body = json.dumps(a_transaction()).replace('"amount": 42.5', f'"amount": {literal}')
    detail = _detail(client.post("/score", content=body, headers={"Content-Type": "application/json"}))
    assert detail[0]["expected"] == "a JSON document" and literal in detail[0]["message"]


def test_nullable_field_accepts_null_and_omission(client: TestClient) -> None:
    row = a_transaction() | {"distance_from_home_km": None}
    assert client.post("/score", json=row).status_code == 200
    del row["distance_from_home_km"]
    assert client.post("/score", json=row).status_code == 200


def test_unseen_category_is_scored(client: TestClient) -> None:
    r = client.post("/score", json=a_transaction() | {"merchant_category": "space_tourism"})
    assert r.status_code == 200
    assert r.json()["top_features"][0]["feature"] == "merchant_category"


def test_batch_errors_carry_the_row(client: TestClient) -> None:
    rows = [a_transaction(), a_transaction() | {"amount": "x"}]
    assert _detail(client.post("/batch_score", json=rows))[0]["row"] == 1


def test_csv_batch_errors_carry_the_row(client: TestClient) -> None:
    csv = pd.DataFrame([a_transaction(), a_transaction() | {"amount": "lots"}]).to_csv(index=False)
    detail = _detail(client.post("/batch_score", content=csv, headers={"Content-Type": "text/csv"}))
    assert detail[0] | {"message": ""} == {
        "field": "amount",
        "row": 1,
        "value": "'lots'",
        "expected": "a finite number or null",
        "message": "",
    }


def test_empty_batch(client: TestClient) -> None:
    assert _detail(client.post("/batch_score", json=[]))[0]["message"] == "empty batch"


def test_oversized_batch_is_413_with_the_limit(client: TestClient) -> None:
    r = client.post("/batch_score", json=[a_transaction()] * 51)
    assert r.status_code == 413 and "limit of 50 rows" in r.json()["detail"]


def test_oversized_body_is_413_with_the_limit(client: TestClient) -> None:
    r = client.post("/score", content=b"{" + b" " * 250_000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "limit of 200000 bytes" in r.json()["detail"]


@pytest.mark.parametrize(
    ("path", "ctype"), [("/score", "text/plain"), ("/batch_score", "application/xml"), ("/score", "")]
)
def test_wrong_content_type_is_415(client: TestClient, path: str, ctype: str) -> None:
    r = client.post(path, content=b"{}", headers={"Content-Type": ctype} if ctype else {})
    assert r.status_code == 415 and "expected application/json" in r.json()["detail"]


def test_health_ready_model_and_metrics(client: TestClient, model_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["status"] == "ready"
    info = client.get("/model").json()
    det = VAEDetector.load(str(model_dir))
    assert info["threshold"] == det.threshold_ and info["kind"] == "vae"
    assert [c["name"] for c in info["schema"]["columns"]] == det.schema_.names
    assert "reference_scores" not in info["calibration"]
    training = info["training"]
    assert (training["n_init"], training["best_init"]) == (det.n_init, det.best_init_)
    assert training["init_validation_losses"] == det.init_validation_losses_
    client.post("/score", json=a_transaction())
    text = client.get("/metrics").text
    for metric in (
        "fraudvae_requests_total",
        "fraudvae_request_seconds_bucket",
        "fraudvae_rows_scored_total",
        "fraudvae_flag_rate",
        "fraudvae_anomaly_score_bucket",
        "fraudvae_score_pass_requests_count",
    ):
        assert metric in text
    assert 'endpoint="/score"' in text


def test_openapi_shows_the_training_columns(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    props = doc["components"]["schemas"]["Transaction"]["properties"]
    assert list(props) == [*a_transaction(), "event_id"], "event_id names the transaction for POST /feedback"
    assert doc["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Transaction"
    }
    batch = doc["paths"]["/batch_score"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["maxItems"] == 50
    assert "text/csv" in batch["description"]


def test_request_id_is_echoed(client: TestClient) -> None:
    r = client.post("/score", json=a_transaction(), headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123" and r.json()["request_id"] == "abc-123"


@pytest.mark.parametrize("supplied", ["", "bad id with spaces", "x" * 65])
def test_a_request_id_is_made_for_errors_too(client: TestClient, supplied: str) -> None:
    """The id middleware is plain ASGI: error responses carry the id and are counted."""
    r = client.post("/score", json={"amount": "lots"}, headers={"X-Request-ID": supplied})
    made = r.headers["X-Request-ID"]
    assert r.status_code == 422 and made != supplied and r.json()["request_id"] == made
    r = client.get("/no/such/path")
    assert r.status_code == 404 and len(r.headers["X-Request-ID"]) == 32
    text = client.get("/metrics").text
    assert 'fraudvae_requests_total{endpoint="/score",method="POST",status="422"}' in text
    assert 'endpoint="unmatched",method="GET",status="404"' in text


def test_api_keys(model_dir: Path) -> None:
    with make_client(model_dir, api_keys="k1,k2") as c:
        assert c.get("/health").status_code == 200
        for path in ("/model",):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
            assert c.get(path, headers={"X-API-Key": "k2"}).status_code == 200
        assert c.post("/score", json=a_transaction()).status_code == 401
        assert c.post("/score", json=a_transaction(), headers={"X-API-Key": "k1"}).status_code == 200


def test_reload_swaps_and_refuses_bad_models(client: TestClient, other_model_dir: Path, tmp_path: Path) -> None:
    before = client.get("/model").json()["model_version"]
    assert client.post("/model/reload", json={"model_dir": str(other_model_dir)}).status_code == 401
    bad = tmp_path / "broken"
    bad.mkdir()
    r = client.post("/model/reload", json={"model_dir": str(bad)}, headers={"X-API-Key": "admin-secret"})
    assert r.status_code == 422 and r.json()["detail"].startswith("model refused:")
    assert client.get("/model").json()["model_version"] == before, "the old model keeps serving"
    r = client.post("/model/reload", json={"model_dir": str(other_model_dir)}, headers={"X-API-Key": "admin-secret"})
    assert r.status_code == 200 and r.json()["previous_version"] == before
    assert client.post("/score", json=a_transaction()).json()["model_version"] == r.json()["model_version"] != before


def test_reload_disabled_without_admin_key(model_dir: Path) -> None:
    with make_client(model_dir) as c:
        r = c.post("/model/reload")
        assert r.status_code == 403 and "FRAUDVAE_ADMIN_KEY" in r.json()["detail"]


def test_settings_fail_fast_on_a_missing_model(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="does not exist"):
        Settings(model_dir=tmp_path / "nope")  # type: ignore[arg-type]


def test_absurd_magnitudes_get_a_finite_score(client: TestClient) -> None:
    """Regression: 1e300 overflowed the score to inf, which JSON cannot carry (a 500)."""
    r = client.post("/score", json=a_transaction() | {"amount": 1e300, "txn_count_1h": -1e300})
    assert r.status_code == 200
    assert r.json()["is_anomaly"] is True and r.json()["anomaly_score"] < 1e300


def test_dates_outside_the_supported_range_are_named(client: TestClient) -> None:
    """Regression: year 425 passed the schema and failed deep in pandas."""
    detail = _detail(client.post("/score", json=a_transaction() | {"timestamp": "0425-02-13T11:53:49Z"}))
    assert detail[0]["field"] == "timestamp" and "1700 and 2199" in detail[0]["message"]


def test_extreme_expected_values_do_not_overflow(client: TestClient) -> None:
    """Regression (found by schemathesis): expm1 overflowed turning a huge decoder mean back into units."""
    r = client.post("/score", json=a_transaction() | {"txn_count_24h": 34922.0, "channel": "x", "country": "y"})
    assert r.status_code == 200


@pytest.mark.parametrize("field", ["amount", "country", "card_present", "timestamp"])
def test_null_where_training_never_had_one_is_scored_and_named(client: TestClient, field: str) -> None:
    """Missing where never missing is evidence, not an error: 200, and the explanation names it."""
    r = client.post("/score", json=a_transaction() | {field: None})
    assert r.status_code == 200, r.text
    named = [f["feature"].split(".")[0] for f in r.json()["top_features"]]
    assert field in named
    normal = client.post("/score", json=a_transaction()).json()["anomaly_score"]
    assert r.json()["anomaly_score"] > normal


def test_integer_binary_column_accepts_0_and_1_regression(tmp_path: Path) -> None:
    """A 0/1 integer column was validated as a boolean (0 == False), so the 0 and 1 its error promised got 422."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.normal(size=400), "flag": rng.integers(0, 2, 400), "ok": rng.random(400) < 0.5})
    VAEDetector(random_state=0, max_epochs=2).fit(frame).save(str(tmp_path / "m"))
    with make_client(tmp_path / "m") as c:
        for flag in (0, 1):
            assert c.post("/score", json={"amount": 0.1, "flag": flag, "ok": True}).status_code == 200
        r = c.post("/score", json={"amount": 0.1, "flag": 2, "ok": True})
        assert r.status_code == 422
        assert _detail(r)[0]["field"] == "flag" and _detail(r)[0]["expected"] == "one of [0, 1] or null"
        r = c.post("/score", json={"amount": 0.1, "flag": 1, "ok": 1})
        assert r.status_code == 422 and _detail(r)[0]["field"] == "ok"
