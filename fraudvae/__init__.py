"""fraudvae: fraud and anomaly detection with a variational autoencoder for tabular data.

Fit :class:`VAEDetector` on normal transactions, calibrate its threshold on held-out
rows, then score through this API, the HTTP service, the batch job or Spark: all of
them call the same two steps, :meth:`VAEDetector.prepare` and
:meth:`VAEDetector.score_prepared` (together :meth:`VAEDetector.score_frame`).
"""

from fraudvae._version import __version__
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
