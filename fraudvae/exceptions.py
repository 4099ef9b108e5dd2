"""Every error fraudvae raises on purpose, in one tree.

Catch :class:`FraudVAEError` to handle anything the library reports deliberately;
catch a leaf to react to one situation. The service maps these classes to HTTP
statuses in one place (``service/errors.py``), and the CLI prints their message as
one line.

::

    FraudVAEError
    ├── DataError (ValueError)             bad data given to fit or score
    │   ├── SchemaError                    frame does not match the training schema
    │   ├── InsufficientDataError          too few rows to fit or calibrate
    │   └── DataFileError                  a data file is missing or unreadable
    ├── ConfigurationError (ValueError)    an invalid parameter or option
    │   └── NotCalibratedError             a scoring plan without a calibrated threshold
    ├── NotFittedError                     scoring before ``fit`` (also sklearn's
    │                                      ``NotFittedError``)
    ├── ArtifactError (OSError)            a model directory cannot be used
    │   ├── IntegrityError                 a file is modified, truncated or missing
    │   └── IncompatibleArtifactError      written by an unsupported format version
    └── StateError                         the online state store cannot serve a request
        ├── StateUnavailableError (OSError)   unreachable or failing: nothing scored (HTTP 503)
        └── StateIncompatibleError         holds another spec's history (also ConfigurationError)

    FraudVAEWarning (UserWarning)
    └── DataWarning                        suspicious but usable data
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

__all__ = [
    "ArtifactError",
    "ColumnProblem",
    "ConfigurationError",
    "DataError",
    "DataFileError",
    "DataWarning",
    "EventOrderError",
    "FraudVAEError",
    "FraudVAEWarning",
    "IncompatibleArtifactError",
    "InsufficientDataError",
    "IntegrityError",
    "NotCalibratedError",
    "NotFittedError",
    "SchemaError",
    "StateError",
    "StateIncompatibleError",
    "StateUnavailableError",
]


class FraudVAEError(Exception):
    """Base class of every error fraudvae raises deliberately."""


class DataError(FraudVAEError, ValueError):
    """The data given to ``fit``, ``calibrate`` or a scoring call cannot be used."""


@dataclass(frozen=True)
class ColumnProblem:
    """One offending column (and optionally row) found by schema validation.

    Kept structured so that the HTTP service can report one error per field and the
    batch job can write one reject line per row, without parsing message strings.
    """

    column: str
    found: str
    expected: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"column {self.column!r}" + (f" (row {self.row})" if self.row is not None else "")
        return f"{where}: found {self.found}, expected {self.expected}"

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "found": self.found, "expected": self.expected, "row": self.row}


class SchemaError(DataError):
    """A frame does not match the schema the detector was trained on.

    ``problems`` lists every offending column, so one call reports them all.
    """

    def __init__(self, problems: list[ColumnProblem], hint: str = "") -> None:
        self.problems = list(problems)
        lines = "; ".join(str(p) for p in self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        fix = hint or "Pass a frame with the training columns and types (see detector.schema_)."
        super().__init__(f"Input does not match the training schema: {lines}{more}. {fix}")


class InsufficientDataError(DataError):
    """Too few rows (or usable columns) to fit or calibrate reliably."""


class DataFileError(DataError):
    """A data file cannot be found, read or parsed (wrong format, missing label column...)."""


class EventOrderError(DataFileError):
    """An event came after a later one where events must be in time order (a stream of chunks)."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.position = position  # the row's position in the chunk


class ConfigurationError(FraudVAEError, ValueError):
    """A parameter or option has a value fraudvae does not accept."""


class NotCalibratedError(ConfigurationError):
    """A scoring plan (method and draws) was asked for that has no calibrated threshold."""


@functools.cache
def _not_fitted_error() -> type[Exception]:
    # Built on first use: scikit-learn's base class costs its 1.8 s import, which the
    # ``fraudvae`` command's help and argument errors should not pay.
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

    class NotFittedError(FraudVAEError, _SklearnNotFittedError):
        """A detector was used for scoring before ``fit`` (or ``load``)."""

    NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"  # pickles by name
    return NotFittedError


if TYPE_CHECKING:
    from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

    class NotFittedError(FraudVAEError, _SklearnNotFittedError):
        """A detector was used for scoring before ``fit`` (or ``load``)."""


def __getattr__(name: str) -> Any:
    if name == "NotFittedError":
        return _not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ArtifactError(FraudVAEError, OSError):
    """A model directory is missing, incomplete or unreadable."""


class IntegrityError(ArtifactError):
    """A model file does not match the SHA-256 recorded in its manifest."""


class IncompatibleArtifactError(ArtifactError):
    """A model directory was written in a format this fraudvae version cannot read."""


class FraudVAEWarning(UserWarning):
    """Base class of fraudvae's warnings."""


class DataWarning(FraudVAEWarning):
    """The data is usable but probably not what the caller meant (constant or label-like columns)."""


class StateError(FraudVAEError):
    """The online state store (behavioural features' history) cannot serve this request."""


class StateUnavailableError(StateError, OSError):
    """The state store cannot be reached or answered with an error: nothing was scored or recorded."""


class StateIncompatibleError(StateError, ConfigurationError):
    """The state store holds the history of another feature spec (or another record format)."""
