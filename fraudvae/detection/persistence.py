"""Saving and loading a fitted detector: safetensors, JSON documents and a SHA-256 manifest.

Nothing is unpickled: tensors come from safetensors, everything else from JSON (see
:mod:`fraudvae.detection.artifact`, which writes atomically and verifies every file's hash).
"""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import sklearn
import torch

from fraudvae._version import __version__
from fraudvae.data.preprocessing import Preprocessor
from fraudvae.data.schema import Schema
from fraudvae.detection.artifact import read_artifact, write_artifact
from fraudvae.detection.engine import Engine
from fraudvae.detection.fitting import Fitted, Init
from fraudvae.detection.plan import ScoringPlan
from fraudvae.exceptions import ConfigurationError, IncompatibleArtifactError
from fraudvae.model.backends import backend_for

__all__ = ["RESERVED_DOCUMENTS", "load_detector", "save_detector"]

#: Documents every model directory holds; ``extra_documents`` may not use these names.
RESERVED_DOCUMENTS = ("config", "schema", "preprocessing", "calibration", "history", "versions", "reference")

#: The detector class (this module does not import it: the detector imports this module).
D = TypeVar("D")


def save_detector(det: Any, path: str, extra_documents: Mapping[str, Any] | None) -> None:
    """Write a fitted ``VAEDetector`` (its parameters and :class:`~fraudvae.detection.fitting.Fitted` state)."""
    extra_docs = dict(extra_documents or getattr(det, "extra_documents_", {}))
    reserved = set(RESERVED_DOCUMENTS) & set(extra_docs)
    if reserved:
        raise ConfigurationError(f"extra_documents cannot use the reserved name(s) {sorted(reserved)}.")
    engine = det.engine_
    params = det.get_params()
    params.pop("n_jobs")  # a runtime setting of this machine, not of the model
    params["hidden_dims"] = list(params["hidden_dims"])
    params["column_types"] = dict(params["column_types"]) if params["column_types"] else None
    tensors, extra = engine.backend.state()
    config = {
        "class": type(det).__name__,
        "params": params,
        "seed": det.seed_,
        "architecture": det.architecture_,
        "train_config": getattr(det, "train_config_", None),
        "n_features_in": int(det.n_features_in_),
        "feature_names_in": [str(c) for c in getattr(det, "feature_names_in_", [])] or None,
        "n_train_rows": det.n_train_rows_,
        "n_validation_rows": det.n_validation_rows_,
        # JSON has no NaN: a diverged initialisation's loss is saved as null.
        "inits": [
            {"seed": s, "validation_loss": v if math.isfinite(v) else None}
            for s, v in zip(det.init_seeds_, det.init_validation_losses_, strict=True)
        ],
        "best_init": det.best_init_,
        **extra,
    }
    versions = {
        "fraudvae": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        # The audit trail of threshold changes (fraudvae calibrate), oldest first.
        **({"recalibrations": det.recalibrations_} if getattr(det, "recalibrations_", None) else {}),
    }
    documents = {
        "config": config,
        "schema": engine.schema.to_json(),
        "preprocessing": engine.preprocessor.to_json(),
        "calibration": engine.calibration,
        "history": det.history_,
        "versions": versions,
        **({"reference": det.reference_} if getattr(det, "reference_", None) is not None else {}),
        **extra_docs,
    }
    write_artifact(path, tensors, documents)
    det.extra_documents_ = extra_docs


def load_detector(cls: type[D], path: str) -> D:
    """Rebuild a detector of class ``cls`` from a directory written by :func:`save_detector`."""
    tensors, docs = read_artifact(path)
    try:
        config = docs["config"]
        params = dict(config["params"])
        params["hidden_dims"] = tuple(params["hidden_dims"])
        params.setdefault("prior_components", 0)  # saved before mixture priors: the standard normal
        params.setdefault("n_init", 1)  # saved before n_init: one fit
        det: Any = cls(**params)
        schema = Schema.from_json(docs["schema"])
        pre = Preprocessor.from_json(schema, docs["preprocessing"])
        seed = int(config["seed"])
        # Saved before n_init: no list, and the one fit's seed is the detector's.
        inits = [Init(int(i["seed"]), _loss(i["validation_loss"])) for i in config.get("inits", [])]
        best_init = int(config.get("best_init", 0))
        if inits and not 0 <= best_init < len(inits):
            raise ValueError(f"best_init {best_init} does not index one of the {len(inits)} saved initialisations")
        model_seed = inits[best_init].seed if inits else seed
        backend = backend_for(det.kind).from_state(config["architecture"], tensors, config, seed=model_seed, pre=pre)
        # Before plans, a model calibrated the plan of its own scoring and n_score_samples.
        plan = ScoringPlan.resolve(det.scoring, det.n_score_samples)
        engine = Engine(schema, pre, backend, int(config["n_train_rows"]), docs["calibration"], plan)
        architecture, n_train = config["architecture"], int(config["n_train_rows"])
        history, train_config = list(docs["history"]), config.get("train_config")
        det._set_fitted(
            Fitted(
                engine,
                seed,
                architecture,
                n_train,
                int(config["n_validation_rows"]),
                history,
                train_config,
                inits,
                best_init,
                docs.get("reference"),  # saved before drift checks: none
            )
        )
        det.n_features_in_ = int(config["n_features_in"])
        if config.get("feature_names_in"):
            det.feature_names_in_ = np.asarray(config["feature_names_in"], dtype=object)
        det.extra_documents_ = {k: v for k, v in docs.items() if k not in RESERVED_DOCUMENTS}
        det.recalibrations_ = list(docs.get("versions", {}).get("recalibrations", []))
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise IncompatibleArtifactError(
            f"{path!r} passed its integrity check but its content is not what this fraudvae "
            f"({__version__}) expects ({type(exc).__name__}: {exc}). It was written by fraudvae "
            f"{docs.get('versions', {}).get('fraudvae', 'unknown')}; re-save it with this version."
        ) from exc
    return det


def _loss(value: float | None) -> float:
    return math.nan if value is None else float(value)
