"""Liveness, readiness and Prometheus metrics (no API key: probes and scrapers call them)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from fraudvae.exceptions import StateUnavailableError

from ..deps import MetricsDep
from ..monitoring import monitor_document
from ..schemas import ErrorResponse

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers.")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: a model is loaded (and a spec model's state store answers).",
    responses={503: {"model": ErrorResponse}},
)
async def ready(request: Request) -> dict[str, str]:
    model = request.app.state.holder.get()
    if model.state is not None:
        await run_in_threadpool(model.state.ready)  # StateUnavailableError: 503
    return {"status": "ready", "model_version": model.version}


@router.get(
    "/metrics",
    summary="Prometheus metrics.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def prometheus(request: Request, metrics: MetricsDep) -> Response:
    holder = request.app.state.holder
    if holder.ready and holder.get().state is not None:
        await run_in_threadpool(metrics.observe_state, holder.get().state.store)
    if holder.ready and request.app.state.monitor is not None:
        try:
            document = await run_in_threadpool(monitor_document, request.app.state.monitor, holder.get())
        except StateUnavailableError:  # a fleet's Redis monitor is down: the other metrics still answer
            document = None
        if document is not None:
            metrics.observe_monitor(document)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
