"""The loaded model: what it is (``GET /model``) and swapping it (``POST /model/reload``)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from fraudvae._version import __version__
from fraudvae.detection.calibration import calibration_summary
from fraudvae.exceptions import StateUnavailableError

from ..deps import ERROR_RESPONSES, KEYED, MetricsDep, ModelDep, require_admin_key
from ..schemas import ErrorResponse, ModelInfo, ReloadRequest, ReloadResponse
from ..state import LoadedModel, load_model

log = logging.getLogger("fraudvae.service")
router = APIRouter(tags=["model"])


@router.get(
    "/model",
    summary="The loaded model: version, schema, threshold, calibration, training metrics.",
    dependencies=KEYED,
    response_model=ModelInfo,
    responses=ERROR_RESPONSES,
)
async def model_info(model: ModelDep) -> dict[str, Any]:
    det = model.detector
    summary = det.extra_documents_.get("training_summary", {})
    training = {
        "n_train_rows": det.n_train_rows_,
        "n_validation_rows": det.n_validation_rows_,
        "epochs": len(det.history_),
        "final_validation_loss": det.history_[-1]["val_loss"] if det.history_ else None,
        "n_init": det.n_init,
        "best_init": det.best_init_,
        "init_validation_losses": [v if math.isfinite(v) else None for v in det.init_validation_losses_],
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
        "calibration": calibration_summary(det.calibration_),
        "training": training,
        "state": await run_in_threadpool(_state_stats, model),
    }


def _state_stats(model: LoadedModel) -> dict[str, Any] | None:
    """The state store of a spec model (kind, entities, events, expiries, latency), or None."""
    if model.state is None:
        return None
    try:
        return model.state.store.stats()
    except StateUnavailableError as exc:
        return {"kind": model.state.store.kind, "url": model.state.store.redacted_url(), "error": str(exc)}


@router.post(
    "/model/reload",
    summary="Load a model directory and swap it in atomically (admin key).",
    dependencies=[Depends(require_admin_key)],
    response_model=ReloadResponse,
    responses={**ERROR_RESPONSES, 403: {"model": ErrorResponse, "description": "Reload disabled."}},
)
async def reload(request: Request, metrics: MetricsDep, body: ReloadRequest | None = None) -> dict[str, str]:
    holder = request.app.state.holder
    target = Path(body.model_dir) if body and body.model_dir else holder.get().model_dir
    try:
        new = await run_in_threadpool(load_model, target, request.app.state.settings)
    except Exception:
        metrics.reloads.labels("refused").inc()
        raise  # mapped to 422 by the handlers; the old model keeps serving
    old = holder.swap(new)
    metrics.reloads.labels("ok").inc()
    request.app.openapi_schema = None  # the request schema may have changed
    log.info("model %s loaded from %s (was %s)", new.version, target, old.version if old else None)
    return {"model_version": new.version, "previous_version": old.version if old else "", "model_dir": str(target)}
