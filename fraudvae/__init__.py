"""fraudvae: fraud and anomaly detection with a variational autoencoder for tabular data.

Fit :class:`VAEDetector` on normal transactions, calibrate its threshold on held-out
rows, then score through this API, the HTTP service, the batch job or Spark: all of
them call :meth:`VAEDetector.score_frame`.
"""

from fraudvae._version import __version__
from fraudvae.detector import LATENT, SCORINGS, ScoreResult, VAEDetector
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
    NotFittedError,
    SchemaError,
)
from fraudvae.schema import ColumnSpec, Schema

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
    "NotFittedError",
    "Schema",
    "SchemaError",
    "ScoreResult",
    "VAEDetector",
    "__version__",
]
