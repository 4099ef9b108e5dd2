"""The FastAPI app factory. The model is loaded in ``lifespan`` and swapped atomically on reload.

Run it with ``fraudvae serve --model DIR`` (or ``uvicorn --factory fraudvae_service.app:create_app``
with ``FRAUDVAE_MODEL_DIR`` set). Routes live in ``routers/`` (one module per area), request
and response bodies in ``bodies.py``, shared dependencies in ``deps.py``, model state and
metrics in ``state.py``, and every error response in ``errors.py``.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraudvae._version import __version__

from . import errors
from .coalesce import Coalescer
from .events import score_batch
from .monitoring import open_monitor
from .routers import health, model, monitoring, scoring
from .schemas import ErrorResponse
from .settings import Settings
from .state import Metrics, ModelHolder, load_model

__all__ = ["create_app", "load_model"]

log = logging.getLogger("fraudvae.service")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Settings are read (and validated) now, so a bad configuration fails at start-up."""
    settings = settings or Settings()  # type: ignore[call-arg]
    holder = ModelHolder()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch.set_num_threads(settings.torch_threads)
        holder.swap(await run_in_threadpool(load_model, settings.model_dir, settings))
        app.state.monitor = await run_in_threadpool(open_monitor, settings)
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
    app.state.coalescer = Coalescer(score_batch)  # /score requests that wait together, scored as one batch
    errors.install(app)

    app.add_middleware(RequestContext, metrics=metrics)

    app.state.monitor = None  # opened at start-up (lifespan)
    for router in (health.router, model.router, scoring.router, monitoring.router):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        """The OpenAPI document, with the loaded model's transaction schema as the request bodies."""
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        if holder.ready:
            loaded = holder.get()
            row_schema = loaded.row_model.model_json_schema(ref_template="#/components/schemas/{model}")
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
        feedback = doc["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        feedback["anyOf"][1]["maxItems"] = settings.max_batch_rows  # 413 above, like /batch_score
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


class RequestContext:
    """Request ids (``X-Request-ID``, echoed or made) and per-endpoint request metrics.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    relays every request body and response through memory streams in a task group, which
    cost a one-row ``/score`` about as much as validating the row.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = Headers(scope=scope).get("x-request-id", "")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


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
