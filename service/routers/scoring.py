"""``POST /score`` and ``POST /batch_score``: bodies in, the library's scoring, results out."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from fraudvae.detection.results import ScoreResult

from .. import errors
from ..bodies import csv_frame, json_response, media_type, parse_json, read_body, row_results
from ..coalesce import Coalescer
from ..deps import ERROR_RESPONSES, KEYED, MetricsDep, ModelDep, SettingsDep
from ..errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ..events import score_rows, validate_events
from ..monitoring import log_scored
from ..schemas import BatchResponse, ScoreResponse
from ..state import LoadedModel

router = APIRouter(tags=["scoring"])


@router.post(
    "/score",
    summary="Score one transaction.",
    dependencies=KEYED,
    response_model=ScoreResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"x-fraudvae-body": "transaction"},
)
async def score(request: Request, model: ModelDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    if media_type(request) != "application/json":
        raise UnsupportedMediaType(f"content type {media_type(request) or 'none'!r}; expected application/json")
    body = parse_json(await read_body(request, settings.max_body_bytes))
    ids: list[Any] | None
    if model.spec is not None:  # a raw event: its features come from the state store
        records, ids, record = validate_events([body], model, batch=False)
    else:
        try:
            row = model.row_adapter.validate_python(body)
        except ValidationError as exc:
            raise InvalidInput(errors.pydantic_errors(exc, expected=model.expected)) from exc
        records, record = [row.model_dump(by_alias=True)], True
        ids = [records[0].get("event_id")]
    # Inline, not in the thread pool (one row takes a few milliseconds on the worker's one torch
    # thread; the hop to a pool thread and back made /score slower: docs/experiments/2026-11-23-
    # http-service.md), and together with the requests that wait at the same time (coalesce.py).
    # Batches, which take longer, go to the pool.
    coalescer: Coalescer = request.app.state.coalescer
    frame, answers, result = await coalescer.score(
        model, records, ids, record, settings.explain_top_k, on_pass=metrics.pass_requests.observe
    )
    metrics.observe_scores(result)
    if record:
        _log(request, model, result, frame, ids, [bool(a.get("replayed")) for a in answers])
    return json_response({**answers[0], "model_version": model.version, "request_id": request.state.request_id})


@router.post(
    "/batch_score",
    summary="Score a batch (JSON array or CSV) in one vectorised pass.",
    description="Body: a JSON array of transactions (Content-Type: application/json), or CSV with a "
    "header row of the training columns (Content-Type: text/csv). Results come back in input order.",
    dependencies=KEYED,
    response_model=BatchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"x-fraudvae-body": "batch"},
)
async def batch_score(request: Request, model: ModelDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    started = time.perf_counter()
    media = media_type(request)
    if media not in ("application/json", "text/csv"):
        raise UnsupportedMediaType(f"content type {media or 'none'!r}; expected application/json or text/csv")
    body = await read_body(request, settings.max_body_bytes)
    limit = settings.max_batch_rows
    if media == "application/json":
        rows = parse_json(body)
        if isinstance(rows, list) and len(rows) > limit:
            raise PayloadTooLarge(f"batch of {len(rows)} rows exceeds the limit of {limit} rows")
        if isinstance(rows, list) and not rows:
            raise InvalidInput([errors.field_error(None, [], "at least one transaction", "empty batch")])
        records: list[dict[str, Any]]
        ids: list[Any] | None
        if model.spec is not None:
            if not isinstance(rows, list):
                raise InvalidInput([errors.field_error(None, None, "a JSON array of events", "not an array")])
            records, ids, record = validate_events(rows, model, batch=True)
        else:
            try:
                validated = model.batch_adapter.validate_python(rows)
            except ValidationError as exc:
                raise InvalidInput(errors.pydantic_errors(exc, row_offset=True, expected=model.expected)) from exc
            records, record = [r.model_dump(by_alias=True) for r in validated], True
            ids = [r.get("event_id") for r in records]
        frame, answers, result = await run_in_threadpool(
            score_rows, model, records, ids, record, settings.explain_top_k
        )
        metrics.observe_scores(result)
        if record:
            replayed = [bool(a.get("replayed")) for a in answers]
            await run_in_threadpool(_log, request, model, result, frame, ids, replayed)
        return _batch_response(answers, result, started, model, request)
    elif model.spec is not None:
        raise UnsupportedMediaType(
            "a model with a feature spec takes its raw events as a JSON array (each with its event id), not CSV"
        )
    frame = csv_frame(body, limit, model.detector.schema_)  # CSV rows carry no event ids
    result = await run_in_threadpool(
        model.detector.score_frame, frame, explain_top_k=settings.explain_top_k, warn_extra=False
    )
    metrics.observe_scores(result)
    await run_in_threadpool(_log, request, model, result, frame, None)
    return _batch_response(row_results(result, settings.explain_top_k), result, started, model, request)


def _log(
    request: Request,
    model: LoadedModel,
    result: ScoreResult,
    frame: Any,
    ids: list[Any] | None,
    skip: list[bool] | None = None,
) -> None:
    """The score log (on by default). A store that fails is counted and logged, never the request's failure."""
    store = request.app.state.monitor
    if store is None:
        return
    try:
        log_scored(store, model, result, frame, list(ids) if ids is not None else [None] * len(result), skip)
    except Exception:  # observability must not fail a scored request
        request.app.state.metrics.score_log_errors.inc()
        logging.getLogger("fraudvae.service").exception("score log write failed")


def _batch_response(
    answers: list[dict[str, Any]], result: ScoreResult, started: float, model: LoadedModel, request: Request
) -> Response:
    return json_response(
        {
            "results": answers,
            "summary": {
                "rows": len(result),
                "flagged": int(np.sum(result.is_anomaly)),
                "elapsed_ms": (time.perf_counter() - started) * 1000,
            },
            "model_version": model.version,
            "request_id": request.state.request_id,
        }
    )
