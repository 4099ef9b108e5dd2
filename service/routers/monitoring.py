"""``POST /feedback`` (analysts' labels in) and ``GET /monitor`` (live precision, alert rate, drift)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from .. import errors
from ..bodies import media_type, parse_json, read_body
from ..deps import ERROR_RESPONSES, KEYED, ModelDep, SettingsDep
from ..errors import InvalidInput, NotReady, PayloadTooLarge, UnsupportedMediaType
from ..monitoring import FeedbackItem, monitor_document

router = APIRouter(tags=["monitoring"])

_ONE = TypeAdapter(FeedbackItem)
_MANY = TypeAdapter(list[FeedbackItem])


def _store(request: Request) -> Any:
    store = request.app.state.monitor
    if store is None:
        raise NotReady("the score log is off (FRAUDVAE_SCORE_LOG=false): no labels or live figures")
    return store


@router.post(
    "/feedback",
    summary="Analysts' labels: one {event_id, label, source, labelled_at} or a list.",
    description="Idempotent on (event_id, source): the same label again changes nothing, a later labelled_at "
    "from the same source replaces the earlier label (every label is kept in the history). A label for an "
    "event the score log never saw is kept and reported in `unknown_event_ids`.",
    dependencies=KEYED,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            FeedbackItem.model_json_schema(),
                            {"type": "array", "items": FeedbackItem.model_json_schema(), "minItems": 1},
                        ]
                    }
                }
            },
        }
    },
)
async def feedback(request: Request, settings: SettingsDep, model: ModelDep) -> dict[str, Any]:
    risk = model.state is not None and model.spec is not None and bool(model.spec.label_risk)
    store = request.app.state.monitor if risk else _store(request)  # label risk takes labels without the log
    if media_type(request) != "application/json":
        raise UnsupportedMediaType(f"content type {media_type(request) or 'none'!r}; expected application/json")
    body = parse_json(await read_body(request, settings.max_body_bytes))
    batch = isinstance(body, list)
    if batch and len(body) > settings.max_batch_rows:
        raise PayloadTooLarge(f"{len(body)} labels exceed the limit of {settings.max_batch_rows} per request")
    if batch and not body:
        raise InvalidInput([errors.field_error(None, [], "at least one label", "empty list")])
    try:
        items = _MANY.validate_python(body) if batch else [_ONE.validate_python(body)]
    except ValidationError as exc:
        raise InvalidInput(errors.pydantic_errors(exc, row_offset=batch)) from exc
    received = time.time()
    labels = [i.to_label(received) for i in items]
    counts = await run_in_threadpool(store.add_labels, labels) if store is not None else {}
    if risk:
        # The model's label-risk features read the latest label of each event (by labelled_at).
        latest = {lab.event_id: lab.label == 1 for lab in sorted(labels, key=lambda lab: lab.labelled_at)}
        scorer = await run_in_threadpool(model.state.scorer)  # type: ignore[union-attr]
        counts["label_risk"] = await run_in_threadpool(scorer.apply_labels, latest)
    return {"received": len(items), **counts}


@router.get(
    "/monitor", summary="Live alert rate, precision, recall and label delay; drift of recent rows.", dependencies=KEYED
)
async def monitor(request: Request, model: ModelDep) -> dict[str, Any]:
    store = _store(request)
    return await run_in_threadpool(monitor_document, store, model)
