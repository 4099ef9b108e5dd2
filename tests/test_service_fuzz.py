"""Schemathesis fuzzes the service through its own OpenAPI schema: no 5xx, no schema violation.

The schema is loaded after the app's lifespan has loaded the model, so the generated
transactions use the real training columns. (Schemathesis' pytest fixture loader does
not support pytest 9 yet, so its Hypothesis strategies are driven directly.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from fraudvae_service.app import create_app
from fraudvae_service.settings import Settings
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.slow  # real processes, servers or long runs: make test, not make check

#: Examples per operation; ``benchmarks/fuzz.py`` raises it for long runs.
EXAMPLES = max(1, int(os.environ.get("FRAUDVAE_FUZZ_EXAMPLES", "150")) * 2 // 5)

OPERATIONS = [
    "GET /health",
    "GET /ready",
    "GET /metrics",
    "GET /model",
    "POST /score",
    "POST /batch_score",
    "POST /model/reload",
    "POST /feedback",
    "GET /monitor",
]


@pytest.fixture(scope="module")
def api_schema(model_dir: Path) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(Settings(model_dir=model_dir, max_batch_rows=20, admin_key="admin-secret"))  # type: ignore[arg-type]
    with TestClient(app):  # runs the lifespan: the model is loaded
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    found = sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations())
    assert found == sorted(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_conforms_to_its_schema(api_schema: schemathesis.BaseSchema, operation: str) -> None:
    method, path = operation.split(" ")
    strategy = api_schema[path][method].as_strategy()

    calls = 0

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate()

    run()
    if os.environ.get("FRAUDVAE_FUZZ_COUNTS"):  # benchmarks/fuzz.py reads how many inputs were tried
        with open(os.environ["FRAUDVAE_FUZZ_COUNTS"], "a") as counts:
            counts.write(f"{operation}\t{calls}\n")
