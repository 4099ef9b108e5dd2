"""Every error response is made here: exceptions map to HTTP statuses in one place.

No client input reaches a 500: validation problems are 422 with one entry per field,
size limits 413, content types 415, keys 401/403, an unloaded model or an unreachable state
store 503, a state store of another feature spec 409. A genuine bug
is a 500 carrying only the request id (the traceback goes to the log, never the client).

Every error body passes through :func:`json_safe`: a value echoed back (``1e999``, which
JSON parsing made infinite; a string with a lone surrogate; a 1 MB cell) becomes a short,
escaped string, so building a 422 can never raise.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fraudvae.data.textparse import encodes_utf8, printable
from fraudvae.exceptions import (
    ArtifactError,
    DataFileError,
    FraudVAEError,
    SchemaError,
    StateIncompatibleError,
    StateUnavailableError,
)

from .schemas import FieldError

log = logging.getLogger("fraudvae.service")


class ServiceError(Exception):
    """An error with an HTTP status and a client-facing message."""

    status = 400

    def __init__(self, detail: str | list[dict[str, Any]]) -> None:
        super().__init__(detail if isinstance(detail, str) else "invalid request")
        self.detail = detail


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotReady(ServiceError):
    status = 503


class InvalidInput(ServiceError):
    status = 422


def _short(value: Any) -> Any:
    """A value as it may be echoed in an error: itself when short and JSON-safe, else escaped."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) < 1 << 53:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and len(value) <= 80 and value.isprintable() and encodes_utf8(value):
        return value
    return printable(value, 80)


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` with every leaf made serializable (see :func:`_short`); containers kept."""
    if depth > 8:
        return printable(value, 80)
    if isinstance(value, dict):
        return {str(_short(str(k))): json_safe(v, depth + 1) for k, v in list(value.items())[:200]}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in list(value)[:200]]
    if isinstance(value, str) and encodes_utf8(value):
        return value if len(value) <= 2000 else value[:1997] + "..."
    return _short(value)


def field_error(field: str | None, value: Any, expected: str, message: str, row: int | None = None) -> dict[str, Any]:
    """One entry of a 422 body: a :class:`~.schemas.FieldError`, as the JSON it is sent as."""
    entry = FieldError.model_construct(field=field, row=row, value=_short(value), expected=expected, message=message)
    return entry.model_dump()


def error_response(request: Request, detail: Any, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one way an error body is written: ``{"detail": ..., "request_id": ...}``, JSON-safe."""
    return JSONResponse({"detail": json_safe(detail), "request_id": _request_id(request)}, status, headers=headers)


def pydantic_errors(
    exc: ValidationError, *, row_offset: bool = False, expected: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One entry per offending field: name, row (for batches), value, what was expected.

    ``expected`` maps a column to the schema's description of its values, used instead
    of pydantic's wording when a value is present but wrong.
    """
    expected = expected or {}
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err.get("loc", ()))
        row = loc.pop(0) if row_offset and loc and isinstance(loc[0], int) else None
        field = ".".join(str(p) for p in loc) or None
        kind = err.get("type", "")
        if kind == "missing":
            value = None
        elif kind == "extra_forbidden":
            value = _short(err.get("input"))
        else:
            value = _short(err.get("input"))
            expected_text = expected.get(str(loc[0]) if loc else "", err.get("msg", ""))
        if kind in ("missing", "extra_forbidden"):
            expected_text = expected_text_for(kind)
        out.append(field_error(field, value, expected_text, err.get("msg", ""), row if isinstance(row, int) else None))
    return out


def expected_text_for(kind: str) -> str:
    return "a value (required field)" if kind == "missing" else "no such field (unknown fields are refused)"


def schema_errors(exc: SchemaError) -> list[dict[str, Any]]:
    return [field_error(p.column, p.found, p.expected, str(p), p.row) for p in exc.problems]


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "APIKey"} if exc.status == 401 else None
        return error_response(request, exc.detail, exc.status, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            field_error(
                ".".join(str(p) for p in e.get("loc", ())[1:]) or None,
                e.get("input"),
                e.get("msg", ""),
                e.get("msg", ""),
            )
            for e in exc.errors()
        ]
        return error_response(request, detail, 422)

    @app.exception_handler(SchemaError)
    async def _schema(request: Request, exc: SchemaError) -> JSONResponse:
        return error_response(request, schema_errors(exc), 422)

    @app.exception_handler(ArtifactError)
    async def _artifact(request: Request, exc: ArtifactError) -> JSONResponse:
        return error_response(request, f"model refused: {exc}", 422)

    @app.exception_handler(DataFileError)
    async def _unreadable(request: Request, exc: DataFileError) -> JSONResponse:
        return error_response(request, [field_error(None, None, "a readable CSV document", str(exc))], 422)

    @app.exception_handler(StateUnavailableError)
    async def _state_down(request: Request, exc: StateUnavailableError) -> JSONResponse:
        # Never a score computed without its history: the request is refused whole.
        return error_response(request, f"state store unavailable: {exc}", 503, {"Retry-After": "1"})

    @app.exception_handler(StateIncompatibleError)
    async def _state_other_spec(request: Request, exc: StateIncompatibleError) -> JSONResponse:
        return error_response(request, f"state store refused: {exc}", 409)

    @app.exception_handler(FraudVAEError)
    async def _library(request: Request, exc: FraudVAEError) -> JSONResponse:
        return error_response(request, str(exc), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(request, str(exc.detail), exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error (request %s)", _request_id(request))
        return error_response(request, "internal error; see the server log", 500)
