"""Dependencies shared by the routers: settings, the current model, metrics, API keys."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from .errors import Forbidden, Unauthorized
from .schemas import ErrorResponse
from .settings import Settings
from .state import LoadedModel, Metrics

__all__ = ["ERROR_RESPONSES", "KEYED", "MetricsDep", "ModelDep", "SettingsDep", "require_admin_key", "require_api_key"]


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Needed when FRAUDVAE_API_KEYS is set.")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def current_model(request: Request) -> LoadedModel:
    return request.app.state.holder.get()  # type: ignore[no-any-return]


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


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
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
#: Scoring and model endpoints need an API key when FRAUDVAE_API_KEYS is set.
KEYED = [Depends(require_api_key)]
#: Error responses the keyed endpoints document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid X-API-Key."},
    413: {"model": ErrorResponse, "description": "Body or batch too large."},
    415: {"model": ErrorResponse, "description": "Unsupported content type."},
    422: {"model": ErrorResponse, "description": "Invalid input, one entry per field."},
    503: {"model": ErrorResponse, "description": "Model not loaded."},
}
