"""The FastAPI app factory. The model is loaded in ``lifespan`` and swapped atomically on reload.

Run it with ``fraudvae serve --model DIR`` (or ``uvicorn --factory service.app:create_app``
with ``FRAUDVAE_MODEL_DIR`` set).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import torch
from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from fraudvae import VAEDetector
from fraudvae._version import __version__
from fraudvae.detector import ScoreResult
from fraudvae.exceptions import DataFileError
from fraudvae.io import read_csv_bytes, typed_frame
from fraudvae.schema import Schema
from service import errors
from service.errors import Forbidden, InvalidInput, NotReady, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from service.schemas import (
    BatchResponse,
    ErrorResponse,
    FeatureContribution,
    ModelInfo,
    ReloadRequest,
    ReloadResponse,
    ScoreResponse,
    transaction_model,
)
from service.settings import Settings

log = logging.getLogger("fraudvae.service")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# ---------------------------------------------------------------------- model state
@dataclass(frozen=True)
class LoadedModel:
    """Everything a request needs, swapped as one object: a request keeps the one it started with."""

    detector: VAEDetector
    model_dir: Path
    version: str
    row_model: type[BaseModel]
    row_adapter: TypeAdapter[Any]
    batch_adapter: TypeAdapter[Any]
    expected: dict[str, str]


def load_model(model_dir: Path) -> LoadedModel:
    """Load and verify a model directory, and build its request schema."""
    detector = VAEDetector.load(str(model_dir))
    digest = hashlib.sha256((model_dir / "manifest.json").read_bytes()).hexdigest()[:12]
    row_model = transaction_model(detector.schema_)
    return LoadedModel(
        detector=detector,
        model_dir=model_dir,
        version=f"{digest}",
        row_model=row_model,
        row_adapter=TypeAdapter(row_model),
        batch_adapter=TypeAdapter(list[row_model]),  # type: ignore[valid-type]
        expected={c.name: c.expected for c in detector.schema_.columns},
    )


class ModelHolder:
    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    def get(self) -> LoadedModel:
        current = self._current
        if current is None:
            raise NotReady("the model is not loaded yet")
        return current

    def swap(self, new: LoadedModel) -> LoadedModel | None:
        with self._lock:
            old, self._current = self._current, new
        return old

    @property
    def ready(self) -> bool:
        return self._current is not None


# ---------------------------------------------------------------------- metrics
class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fraudvae_requests_total",
            "HTTP requests by endpoint and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fraudvae_request_seconds",
            "Request latency by endpoint.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.rows = Counter("fraudvae_rows_scored_total", "Rows scored.", registry=self.registry)
        self.flagged = Counter("fraudvae_rows_flagged_total", "Rows flagged as anomalous.", registry=self.registry)
        self.flag_rate = Gauge(
            "fraudvae_flag_rate", "Share of scored rows flagged since start.", registry=self.registry
        )
        self.scores = Histogram(
            "fraudvae_anomaly_score",
            "Distribution of anomaly scores.",
            buckets=(-50, -20, -10, 0, 5, 10, 20, 30, 50, 75, 100, 200, 500, 1000, 1e4),
            registry=self.registry,
        )
        self._rows_total = 0
        self._flagged_total = 0
        self.reloads = Counter(
            "fraudvae_model_reloads_total", "Model reloads by outcome.", ["outcome"], registry=self.registry
        )

    def observe_scores(self, result: ScoreResult) -> None:
        self.rows.inc(len(result))
        self.flagged.inc(int(result.is_anomaly.sum()))
        self._rows_total += len(result)
        self._flagged_total += int(result.is_anomaly.sum())
        self.flag_rate.set(self._flagged_total / self._rows_total if self._rows_total else 0.0)
        for s in result.anomaly_score:
            self.scores.observe(float(s))


# ---------------------------------------------------------------------- helpers
async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput([errors.field_error(None, None, "a JSON document", f"invalid JSON: {exc}")]) from exc
    except RecursionError as exc:  # "[[[[...": nesting deeper than the parser's stack
        raise InvalidInput(
            [
                errors.field_error(
                    None, None, "a JSON document nested at most a few levels", "invalid JSON: nested too deeply"
                )
            ]
        ) from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _rows_to_frame(rows: list[BaseModel], model: LoadedModel) -> pd.DataFrame:
    names = model.detector.schema_.names
    records = [r.model_dump(by_alias=True) for r in rows]
    return pd.DataFrame.from_records(records, columns=names)


def _row_results(result: ScoreResult, top_k: int) -> list[dict[str, Any]]:
    fields = tuple(FeatureContribution.model_fields)  # exactly the documented keys
    tops = [[{k: item[k] for k in fields} for item in row] for row in result.top_features(top_k)] if top_k else None
    threshold = float(result.threshold)
    columns = zip(
        result.anomaly_score.tolist(),
        np.asarray(result.is_anomaly, dtype=bool).tolist(),
        result.p_value.tolist(),
        result.reconstruction.tolist(),
        result.neg_elbo.tolist(),
        tops if tops is not None else [[] for _ in range(len(result))],
        strict=True,
    )
    return [
        {
            "anomaly_score": score,
            "is_anomaly": flag,
            "threshold": threshold,
            "p_value": p_value,
            "components": {"reconstruction_error": reconstruction, "neg_elbo": neg_elbo},
            "top_features": top,
        }
        for score, flag, p_value, reconstruction, neg_elbo, top in columns
    ]


#: Serializes the scoring responses (dicts of floats, bools, strings and lists) in pydantic-core.
_PAYLOAD = TypeAdapter(dict[str, Any])


def _json_response(payload: dict[str, Any]) -> Response:
    """The body serialized once, without FastAPI validating it again against the response model.

    The response model still documents the body (OpenAPI) and the fuzz test checks every
    response against it; re-validating a 1,000-row batch took longer than scoring it.
    Non-finite floats become ``null``, as the model's serializer wrote them.
    """
    return Response(_PAYLOAD.dump_json(payload), media_type="application/json")


# ---------------------------------------------------------------------- dependencies
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when FRAUDVAE_API_KEYS is set.")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def current_model(request: Request) -> LoadedModel:
    return request.app.state.holder.get()  # type: ignore[no-any-return]


def require_api_key(
    settings: Annotated[Settings, Depends(get_settings)], key: Annotated[str | None, Depends(api_key_header)]
) -> None:
    if not settings.api_keys:
        return
    given = (key or "").encode()
    # Compare with every key, in constant time each, so timing tells nothing about which matched.
    ok = False
    for k in settings.api_keys:
        ok |= secrets.compare_digest(given, k.get_secret_value().encode())
    if not ok:
        raise Unauthorized("missing or invalid X-API-Key header")


def require_admin_key(
    settings: Annotated[Settings, Depends(get_settings)], key: Annotated[str | None, Depends(api_key_header)]
) -> None:
    if settings.admin_key is None:
        raise Forbidden("model reload is disabled; set FRAUDVAE_ADMIN_KEY to enable it")
    if not secrets.compare_digest((key or "").encode(), settings.admin_key.get_secret_value().encode()):
        raise Unauthorized("missing or invalid admin X-API-Key header")


ModelDep = Annotated[LoadedModel, Depends(current_model)]


# ---------------------------------------------------------------------- factory
def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Settings are read (and validated) now, so a bad configuration fails at start-up."""
    settings = settings or Settings()  # type: ignore[call-arg]
    holder = ModelHolder()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch.set_num_threads(settings.torch_threads)
        holder.swap(await run_in_threadpool(load_model, settings.model_dir))
        log.info("model %s loaded from %s", holder.get().version, settings.model_dir)
        yield

    app = FastAPI(
        title="fraudvae scoring service",
        version=__version__,
        description="Scores transactions with a VAE trained on normal rows. Higher anomaly_score = more suspicious.",
        lifespan=lifespan,
        responses={422: {"model": ErrorResponse, "description": "Invalid input, one entry per field."}},
        docs_url=None,
        redoc_url=None,
    )
    _install_docs(app)
    app.state.settings, app.state.holder, app.state.metrics = settings, holder, metrics
    errors.install(app)

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        supplied = request.headers.get("x-request-id", "")
        request.state.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    Keyed = [Depends(require_api_key)]
    error_responses: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorResponse, "description": "Missing or invalid X-API-Key."},
        413: {"model": ErrorResponse, "description": "Body or batch too large."},
        415: {"model": ErrorResponse, "description": "Unsupported content type."},
        422: {"model": ErrorResponse, "description": "Invalid input, one entry per field."},
        503: {"model": ErrorResponse, "description": "Model not loaded."},
    }

    # ------------------------------------------------------------------ endpoints
    @app.get("/health", summary="Liveness: the process answers.")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: a model is loaded.", responses={503: {"model": ErrorResponse}})
    async def ready() -> dict[str, str]:
        return {"status": "ready", "model_version": holder.get().version}

    @app.get(
        "/metrics",
        summary="Prometheus metrics.",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/model",
        summary="The loaded model: version, schema, threshold, calibration, training metrics.",
        dependencies=Keyed,
        response_model=ModelInfo,
        responses=error_responses,
    )
    async def model_info(model: ModelDep) -> dict[str, Any]:
        det = model.detector
        calibration = {k: v for k, v in det.calibration_.items() if k not in ("reference_scores", "feature_baseline")}
        summary = det.extra_documents_.get("training_summary", {})
        training = {
            "n_train_rows": det.n_train_rows_,
            "n_validation_rows": det.n_validation_rows_,
            "epochs": len(det.history_),
            "final_validation_loss": det.history_[-1]["val_loss"] if det.history_ else None,
            "comparison": summary.get("comparison"),
            "fit_seconds": summary.get("fit_seconds"),
        }
        return {
            "model_version": model.version,
            "fraudvae_version": __version__,
            "kind": det.kind,
            "scoring": det.scoring,
            "threshold": det.threshold_,
            "schema": det.schema_.to_json(),
            "column_roles": det.schema_.roles(),
            "calibration": calibration,
            "training": training,
        }

    @app.post(
        "/score",
        summary="Score one transaction.",
        dependencies=Keyed,
        response_model=ScoreResponse,
        responses=error_responses,
        openapi_extra={"x-fraudvae-body": "transaction"},
    )
    async def score(request: Request, model: ModelDep) -> Response:
        if _media_type(request) != "application/json":
            raise UnsupportedMediaType(f"content type {_media_type(request) or 'none'!r}; expected application/json")
        body = _parse_json(await read_body(request, settings.max_body_bytes))
        try:
            row = model.row_adapter.validate_python(body)
        except ValidationError as exc:
            raise InvalidInput(errors.pydantic_errors(exc, expected=model.expected)) from exc
        frame = _rows_to_frame([row], model)
        result = await run_in_threadpool(
            model.detector.score_frame, frame, explain_top_k=settings.explain_top_k, warn_extra=False
        )
        metrics.observe_scores(result)
        return _json_response(
            {
                **_row_results(result, settings.explain_top_k)[0],
                "model_version": model.version,
                "request_id": request.state.request_id,
            }
        )

    @app.post(
        "/batch_score",
        summary="Score a batch (JSON array or CSV) in one vectorised pass.",
        description="Body: a JSON array of transactions (Content-Type: application/json), or CSV with a "
        "header row of the training columns (Content-Type: text/csv). Results come back in input order.",
        dependencies=Keyed,
        response_model=BatchResponse,
        responses=error_responses,
        openapi_extra={"x-fraudvae-body": "batch"},
    )
    async def batch_score(request: Request, model: ModelDep) -> Response:
        started = time.perf_counter()
        media = _media_type(request)
        if media not in ("application/json", "text/csv"):
            raise UnsupportedMediaType(f"content type {media or 'none'!r}; expected application/json or text/csv")
        body = await read_body(request, settings.max_body_bytes)
        limit = settings.max_batch_rows
        if media == "application/json":
            rows = _parse_json(body)
            if isinstance(rows, list) and len(rows) > limit:
                raise PayloadTooLarge(f"batch of {len(rows)} rows exceeds the limit of {limit} rows")
            if isinstance(rows, list) and not rows:
                raise InvalidInput([errors.field_error(None, [], "at least one transaction", "empty batch")])
            try:
                validated = model.batch_adapter.validate_python(rows)
            except ValidationError as exc:
                raise InvalidInput(errors.pydantic_errors(exc, row_offset=True, expected=model.expected)) from exc
            frame = _rows_to_frame(validated, model)
        else:
            frame = _csv_frame(body, limit, model.detector.schema_)
        result = await run_in_threadpool(
            model.detector.score_frame, frame, explain_top_k=settings.explain_top_k, warn_extra=False
        )
        metrics.observe_scores(result)
        return _json_response(
            {
                "results": _row_results(result, settings.explain_top_k),
                "summary": {
                    "rows": len(result),
                    "flagged": int(np.sum(result.is_anomaly)),
                    "elapsed_ms": (time.perf_counter() - started) * 1000,
                },
                "model_version": model.version,
                "request_id": request.state.request_id,
            }
        )

    @app.post(
        "/model/reload",
        summary="Load a model directory and swap it in atomically (admin key).",
        dependencies=[Depends(require_admin_key)],
        response_model=ReloadResponse,
        responses={**error_responses, 403: {"model": ErrorResponse, "description": "Reload disabled."}},
    )
    async def reload(body: ReloadRequest | None = None) -> dict[str, str]:
        target = Path(body.model_dir) if body and body.model_dir else holder.get().model_dir
        try:
            new = await run_in_threadpool(load_model, target)
        except Exception:
            metrics.reloads.labels("refused").inc()
            raise  # mapped to 422 by the handlers; the old model keeps serving
        old = holder.swap(new)
        metrics.reloads.labels("ok").inc()
        app.openapi_schema = None  # the request schema may have changed
        log.info("model %s loaded from %s (was %s)", new.version, target, old.version if old else None)
        return {"model_version": new.version, "previous_version": old.version if old else "", "model_dir": str(target)}

    def openapi() -> dict[str, Any]:
        """The OpenAPI document, with the loaded model's transaction schema as the request bodies."""
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        if holder.ready:
            model = holder.get()
            row_schema = model.row_model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in row_schema.pop("$defs", {}).items():
                doc["components"]["schemas"][name] = sub
            doc["components"]["schemas"]["Transaction"] = row_schema
            ref = {"$ref": "#/components/schemas/Transaction"}
            for path, kind in (("/score", "transaction"), ("/batch_score", "batch")):
                op = doc["paths"][path]["post"]
                op.pop("x-fraudvae-body", None)
                content: dict[str, Any]
                if kind == "transaction":
                    content = {"application/json": {"schema": ref}}
                else:
                    # text/csv is accepted too (see the description), but "any string" is no
                    # contract a client or a fuzzer can rely on, so only JSON is declared.
                    content = {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "items": ref,
                                "minItems": 1,
                                "maxItems": settings.max_batch_rows,
                            }
                        },
                    }
                op["requestBody"] = {"required": True, "content": content}
        if not settings.api_keys:
            # Without FRAUDVAE_API_KEYS the key is not checked: do not advertise it.
            for path, ops in doc["paths"].items():
                for op in ops.values():
                    if path != "/model/reload":
                        op.pop("security", None)
                        op.get("responses", {}).pop("401", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    return app


#: Swagger UI and ReDoc assets from a Python package: /docs works without internet access.
DOCS_ASSETS = "/docs-assets"


def _install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) served from the ``fastapi-offline`` package's static files, not a CDN.

    There is no ``/redoc``: ReDoc's bundle fetches its logo from its CDN, and a docs page
    of this service reaches nothing but this service.
    """
    static = importlib.resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        )


def _csv_frame(body: bytes, limit: int, schema: Schema) -> pd.DataFrame:
    """A ``text/csv`` body as a frame, read and typed as the batch job reads files.

    Arrow parses it (pandas' CSV float parser crashes the process on some exponents);
    every column arrives as bytes and numbers are parsed safely (``fraudvae.textparse``).
    Lines with the wrong number of fields, unknown columns, too many rows and an empty
    body are 422/413 errors that name the line or column.
    """
    try:
        table, malformed = read_csv_bytes(body)
    except DataFileError as exc:
        raise InvalidInput([errors.field_error(None, None, "CSV with a header row", str(exc))]) from exc
    names = set(schema.all_names)
    unknown = [c for c in table.column_names if c not in names]
    if unknown:
        raise InvalidInput(
            [
                errors.field_error(c, None, "no such field (unknown fields are refused)", "unknown column")
                for c in unknown[:50]
            ]
        )
    if malformed.lines:
        raise InvalidInput(
            [
                errors.field_error(None, None, f"{len(table.column_names)} fields per line", f"line {line}: {why}")
                for line, why in list(zip(malformed.lines, malformed.reasons, strict=True))[:50]
            ]
        )
    if table.num_rows > limit:
        raise PayloadTooLarge(f"batch of {table.num_rows} rows exceeds the limit of {limit} rows")
    if table.num_rows == 0:
        raise InvalidInput([errors.field_error(None, None, "at least one data row", "empty batch")])
    return typed_frame(table, {c.name: c.kind for c in schema.columns})


__all__ = ["create_app", "load_model"]
