"""fraudvae: fraud and anomaly detection with a variational autoencoder for tabular data.

Fit :class:`VAEDetector` on normal transactions, calibrate its threshold on held-out
rows, then score through this API, the HTTP service, the batch job or Spark: all of
them call the same two steps, :meth:`VAEDetector.prepare` and
:meth:`VAEDetector.score_prepared` (together :meth:`VAEDetector.score_frame`).

The names below load on first use (PEP 562): ``import fraudvae`` alone, and the ``fraudvae``
command's help and argument errors, do not pay for torch, pandas and scikit-learn (3 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fraudvae._version import __version__

if TYPE_CHECKING:
    from fraudvae.data.schema import ColumnSpec, Schema
    from fraudvae.detection.detector import VAEDetector
    from fraudvae.detection.engine import PreparedRows
    from fraudvae.detection.plan import SCORINGS, ScoringPlan
    from fraudvae.detection.results import LATENT, ScoreResult
    from fraudvae.exceptions import (
        ArtifactError,
        ColumnProblem,
        ConfigurationError,
        DataError,
        DataFileError,
        DataWarning,
        FraudVAEError,
        FraudVAEWarning,
        IncompatibleArtifactError,
        InsufficientDataError,
        IntegrityError,
        NotCalibratedError,
        NotFittedError,
        SchemaError,
    )

#: The modules the public names come from (``__all__`` says which names).
_HOMES = (
    "fraudvae.exceptions",
    "fraudvae.data.schema",
    "fraudvae.detection.detector",
    "fraudvae.detection.engine",
    "fraudvae.detection.plan",
    "fraudvae.detection.results",
)

__all__ = [
    "LATENT",
    "SCORINGS",
    "ArtifactError",
    "ColumnProblem",
    "ColumnSpec",
    "ConfigurationError",
    "DataError",
    "DataFileError",
    "DataWarning",
    "FraudVAEError",
    "FraudVAEWarning",
    "IncompatibleArtifactError",
    "InsufficientDataError",
    "IntegrityError",
    "NotCalibratedError",
    "NotFittedError",
    "PreparedRows",
    "Schema",
    "SchemaError",
    "ScoreResult",
    "ScoringPlan",
    "VAEDetector",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        for home in _HOMES:
            module = importlib.import_module(home)
            if hasattr(module, name):
                globals()[name] = value = getattr(module, name)  # the next lookup is a plain attribute
                return value
    raise AttributeError(f"module 'fraudvae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
