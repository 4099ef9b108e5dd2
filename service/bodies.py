"""Request bodies in, response bodies out: reading, parsing and formatting, with no ML logic."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from fastapi import Request, Response
from pydantic import TypeAdapter

from fraudvae.data.io import read_csv_bytes, typed_frame
from fraudvae.data.schema import Schema
from fraudvae.detection.contract import SCORE_COLUMNS, score_columns
from fraudvae.detection.results import ScoreResult
from fraudvae.exceptions import DataFileError

from . import errors
from .errors import InvalidInput, PayloadTooLarge
from .schemas import FeatureContribution

__all__ = ["csv_frame", "json_response", "media_type", "parse_json", "read_body", "row_results"]


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


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_json(body: bytes) -> Any:
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


def row_results(result: ScoreResult, top_k: int) -> list[dict[str, Any]]:
    """One JSON object per scored row: the contract's score columns, threshold, components, top features."""
    fields = tuple(FeatureContribution.model_fields)  # exactly the documented keys
    tops = [[{k: item[k] for k in fields} for item in row] for row in result.top_features(top_k)] if top_k else None
    threshold = float(result.threshold)
    scores = score_columns(result, 0)
    columns = zip(
        *(np.asarray(scores[name]).tolist() for name in SCORE_COLUMNS),
        result.reconstruction.tolist(),
        result.neg_elbo.tolist(),
        strict=True,
    )
    out = []
    for i, (*values, reconstruction, neg_elbo) in enumerate(columns):
        row: dict[str, Any] = dict(zip(SCORE_COLUMNS, values, strict=True))
        row["threshold"] = threshold
        row["components"] = {"reconstruction_error": reconstruction, "neg_elbo": neg_elbo}
        row["top_features"] = tops[i] if tops is not None else []
        out.append(row)
    return out


#: Serializes the scoring responses (dicts of floats, bools, strings and lists) in pydantic-core.
_PAYLOAD = TypeAdapter(dict[str, Any])


def json_response(payload: dict[str, Any]) -> Response:
    """The body serialized once, without FastAPI validating it again against the response model.

    The response model still documents the body (OpenAPI) and the fuzz test checks every
    response against it; re-validating a 1,000-row batch took longer than scoring it.
    Non-finite floats become ``null``, as the model's serializer wrote them.
    """
    return Response(_PAYLOAD.dump_json(payload), media_type="application/json")


def csv_frame(body: bytes, limit: int, schema: Schema) -> pd.DataFrame:
    """A ``text/csv`` body as a frame, read and typed as the batch job reads files.

    Arrow parses it (pandas' CSV float parser crashes the process on some exponents);
    every column arrives as bytes and numbers are parsed safely (``fraudvae.data.textparse``).
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
