"""Raw events for a model trained with a feature spec: validated here, featured from the state store.

The request carries the raw event (the spec's input columns); the derived columns are the
service's to compute and a request that sends one is refused (422), so no client can smuggle
its own velocity counts. The library does the rest: :class:`~fraudvae.state.online.OnlineScorer`
reads and records the entities' history in one store transaction, and the detector scores
the raw columns plus the features exactly as the batch job does.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pandas as pd
from pydantic import ValidationError

from fraudvae.detection.results import ScoreResult
from fraudvae.exceptions import StateError
from fraudvae.state.online import Online

from . import errors
from .bodies import row_results
from .coalesce import Scored
from .errors import InvalidInput, NotReady
from .state import LoadedModel

__all__ = ["score_batch", "score_rows", "validate_events"]


def validate_events(
    bodies: list[Any], model: LoadedModel, *, batch: bool
) -> tuple[list[dict[str, Any]], list[str] | None, bool]:
    """The events (validated, as records), their ids, and whether to record them."""
    derived = set(model.spec.feature_names()) if model.spec is not None else set()
    smuggled = [
        errors.field_error(
            name,
            body[name],
            "no such field: the service computes it from the entity's recorded history",
            f"{name!r} is derived by the model's feature spec; send the raw event only",
            i if batch else None,
        )
        for i, body in enumerate(bodies)
        if isinstance(body, dict)
        for name in body
        if name in derived
    ]
    if smuggled:
        raise InvalidInput(smuggled)
    try:
        rows = model.batch_adapter.validate_python(bodies) if batch else [model.row_adapter.validate_python(bodies[0])]
    except ValidationError as exc:
        raise InvalidInput(errors.pydantic_errors(exc, row_offset=batch, expected=model.expected)) from exc
    dumped = [r.model_dump(by_alias=True) for r in rows]
    flags = {bool(d.get("record", True)) for d in dumped}
    if len(flags) > 1:
        raise InvalidInput(
            [errors.field_error("record", None, "the same value for every event of a batch", "mixed record flags")]
        )
    record = flags.pop() if flags else True
    id_field = model.id_column or "event_id"
    ids = [d.get(id_field) for d in dumped]
    if record:
        missing = [i for i, v in enumerate(ids) if v is None or (isinstance(v, str) and not v.strip())]
        if missing:
            raise InvalidInput(
                [
                    errors.field_error(
                        id_field,
                        ids[i],
                        "this event's id (text or integer): a recorded event is counted once per id",
                        f'{id_field!r} is missing; send it, or "record": false for a what-if',
                        i if batch else None,
                    )
                    for i in missing[:50]
                ]
            )
    return dumped, ([str(v) for v in ids] if record else None), record


def _event_features(frame: pd.DataFrame, ids: list[str] | None, record: bool, model: LoadedModel) -> Online:
    """The events' features from the store (recorded unless a what-if): the first half of scoring them."""
    if model.state is None:  # pragma: no cover (a spec model always has a state)
        raise NotReady("the model's state store is not open")
    return model.state.scorer().features(frame, ids, record=record)


def _event_answers(
    online: Online, result: ScoreResult, ids: list[str] | None, record: bool, model: LoadedModel, top_k: int
) -> list[dict[str, Any]]:
    """One answer per event from the detector's ``result`` (stored answers for retried ids); new
    answers are stored for later retries: the second half."""
    rows = row_results(result, top_k)
    answers: dict[str, str] = {}
    for i, row in enumerate(rows):
        row["late"] = bool(online.late[i])
        row["replayed"] = i in online.replayed
        row["event_id"] = ids[i] if ids is not None else None
        stored = online.replayed.get(i)
        if stored is not None:
            rows[i] = {**json.loads(stored), "replayed": True}
        elif ids is not None:  # a new event, or a recorded one whose answer was never stored
            answers.setdefault(ids[i], json.dumps(row))
    if record and model.state is not None:
        model.state.scorer().remember(answers)
    return rows


def score_rows(
    model: LoadedModel, records: list[dict[str, Any]], ids: list[Any] | None, record: bool, top_k: int
) -> tuple[pd.DataFrame, list[dict[str, Any]], ScoreResult]:
    """Validated rows scored: one frame, one answer per row, the detector's result.

    What ``/batch_score`` runs for a batch and ``/score`` for the requests that wait together
    (:mod:`fraudvae_service.coalesce`). A spec model's rows are raw events: their features come
    from the store (recorded unless ``record`` is false; ``ids`` name them). Otherwise ``ids``
    are the rows' optional ``event_id`` fields, echoed in the answers.
    """
    frame = pd.DataFrame.from_records(records, columns=model.frame_columns)
    if model.spec is not None:
        online = _event_features(frame, ids, record, model)
        result = model.detector.score_frame(online.frame, explain_top_k=top_k, warn_extra=False)
        return frame, _event_answers(online, result, ids, record, model, top_k), result
    result = model.detector.score_frame(frame, explain_top_k=top_k, warn_extra=False)
    return frame, _answers(result, ids, top_k), result


def score_batch(
    model: LoadedModel, parts: list[tuple[list[dict[str, Any]], list[Any] | None]], record: bool, top_k: int
) -> list[Scored | Exception]:
    """Several requests' validated rows scored as one batch (what ``/score``'s coalescer runs).

    One frame, one store transaction, one network pass; each request gets its own rows back,
    the answers it gets alone. If the batch fails, each request is scored alone and gets its
    own error: a spec model's events, once recorded, are scored from the features computed
    for them (never recorded twice). A store that is down (:class:`StateError`) raises.
    """
    if len(parts) == 1:
        return [_alone(model, *parts[0], record, top_k)]
    bounds = itertools.accumulate((len(records) for records, _ in parts), initial=0)
    spans = [slice(a, b) for a, b in itertools.pairwise(bounds)]
    ids = None if parts[0][1] is None else [i for _, part_ids in parts for i in part_ids or []]
    frame = pd.DataFrame.from_records([r for records, _ in parts for r in records], columns=model.frame_columns)
    if model.spec is None:
        try:
            result = model.detector.score_frame(frame, explain_top_k=top_k, warn_extra=False)
        except Exception:
            return [_alone(model, *part, record, top_k) for part in parts]
        answers = _answers(result, ids, top_k)
        return [(_rows(frame, span), answers[span], result.take(span)) for span in spans]
    try:
        online = _event_features(frame, ids, record, model)
    except StateError:
        raise
    except Exception:  # a request's own bad event: nothing was recorded (the transaction rolled back)
        return [_alone(model, *part, record, top_k) for part in parts]
    try:
        result = model.detector.score_frame(online.frame, explain_top_k=top_k, warn_extra=False)
    except Exception:  # recorded: each request's rows scored alone, from their features
        out: list[Scored | Exception] = []
        for span in spans:
            mine = Online(
                _rows(online.frame, span),
                online.late[span],
                {i - span.start: v for i, v in online.replayed.items() if span.start <= i < span.stop},
                online.recorded,
            )
            part_ids = ids[span] if ids is not None else None
            try:
                result = model.detector.score_frame(mine.frame, explain_top_k=top_k, warn_extra=False)
            except Exception as exc:
                out.append(exc)
            else:
                out.append((_rows(frame, span), _event_answers(mine, result, part_ids, record, model, top_k), result))
        return out
    answers = _event_answers(online, result, ids, record, model, top_k)  # one store write for all answers
    return [(_rows(frame, span), answers[span], result.take(span)) for span in spans]


def _alone(
    model: LoadedModel, records: list[dict[str, Any]], ids: list[Any] | None, record: bool, top_k: int
) -> Scored | Exception:
    try:
        return score_rows(model, records, ids, record, top_k)
    except StateError:
        raise
    except Exception as exc:  # this request's own error
        return exc


def _rows(frame: pd.DataFrame, span: slice) -> pd.DataFrame:
    return frame.iloc[span].reset_index(drop=True)


def _answers(result: ScoreResult, ids: list[Any] | None, top_k: int) -> list[dict[str, Any]]:
    """One answer per row of a stateless model, with its ``event_id`` when the row had one."""
    answers = row_results(result, top_k)
    for answer, event_id in zip(answers, ids or [None] * len(answers), strict=True):
        if event_id is not None:
            answer["event_id"] = event_id
    return answers
