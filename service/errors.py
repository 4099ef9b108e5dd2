"""Every error response is made here: exceptions map to HTTP statuses in one place.

No client input reaches a 500: validation problems are 422 with one entry per field,
size limits 413, content types 415, keys 401/403, an unloaded model 503. A genuine bug
is a 500 carrying only the request id (the traceback goes to the log, never the client).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fraudvae.exceptions import ArtifactError, FraudVAEError, SchemaError

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
    text = repr(value)
    return value if len(text) <= 80 and isinstance(value, str | int | float | bool | type(None)) else text[:77] + "..."


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
        out.append(
            {"field": field, "row": row, "value": value, "expected": expected_text, "message": err.get("msg", "")}
        )
    return out


def expected_text_for(kind: str) -> str:
    return "a value (required field)" if kind == "missing" else "no such field (unknown fields are refused)"


def schema_errors(exc: SchemaError) -> list[dict[str, Any]]:
    return [
        {"field": p.column, "row": p.row, "value": p.found, "expected": p.expected, "message": str(p)}
        for p in exc.problems
    ]


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "APIKey"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail, "request_id": _request_id(request)}, exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or None,
                "row": None,
                "value": _short(e.get("input")),
                "expected": e.get("msg", ""),
                "message": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail, "request_id": _request_id(request)}, 422)

    @app.exception_handler(SchemaError)
    async def _schema(request: Request, exc: SchemaError) -> JSONResponse:
        return JSONResponse({"detail": schema_errors(exc), "request_id": _request_id(request)}, 422)

    @app.exception_handler(ArtifactError)
    async def _artifact(request: Request, exc: ArtifactError) -> JSONResponse:
        return JSONResponse({"detail": f"model refused: {exc}", "request_id": _request_id(request)}, 422)

    @app.exception_handler(FraudVAEError)
    async def _library(request: Request, exc: FraudVAEError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "request_id": _request_id(request)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail), "request_id": _request_id(request)},
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error (request %s)", _request_id(request))
        return JSONResponse({"detail": "internal error; see the server log", "request_id": _request_id(request)}, 500)
