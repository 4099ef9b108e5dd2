"""Request and response schemas. Requests are built from the model's training schema.

A transaction's JSON fields are the training columns with their types, so ``/docs``
shows the real names; strings are not accepted for numbers, NaN and Infinity are not
numbers, unknown fields are refused, and nullable columns accept ``null``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, WithJsonSchema, create_model
from pydantic.types import FiniteFloat

from fraudvae.data.schema import EXCLUDED, ColumnSpec, Schema
from fraudvae.features.spec import FeatureSpec

Number = Annotated[FiniteFloat, Field(strict=True)]


def _supported_year(value: dt.datetime) -> dt.datetime:
    if not 1700 <= value.year <= 2199:
        raise ValueError("a date-time between the years 1700 and 2199")
    return value


#: pandas timestamps cover 1678-2261; the contract says so in the schema too.
DateTime = Annotated[
    dt.datetime,
    AfterValidator(_supported_year),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": "^(1[7-9]|2[01])[0-9]{2}-"}),
]


def _field_type(spec: ColumnSpec) -> Any:
    if spec.kind == "numeric":
        t: Any = Number
    elif spec.kind == "categorical":
        t = StrictStr
    elif spec.kind == "datetime":
        t = DateTime
    elif all(isinstance(level, bool) for level in spec.levels):
        # Not ``levels == (False, True)``: that also holds for a 0/1 integer column
        # (0 == False), whose requests carry 0 and 1, not booleans.
        t = StrictBool
    else:
        t = Literal[tuple(spec.levels)]  # type: ignore[misc]
    # Null is accepted for every column (a value missing where training never had one is
    # scored as evidence); a column left out of a request is still an error.
    return t | None


def _python_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name)
    if not base or base[0].isdigit() or base.startswith("_"):
        base = "f_" + base
    candidate, i = base, 1
    while candidate in taken:
        candidate, i = f"{base}_{i}", i + 1
    taken.add(candidate)
    return candidate


#: Fields of a raw event's request that are not columns: its id, and whether to record it.
CONTROL_FIELDS = ("event_id", "record")
#: A raw event's column the model does not type (an entity key, the spec's time or value column).
RawValue = StrictStr | Annotated[int, Field(strict=True)] | Number | None


def event_model(schema: Schema, spec: FeatureSpec, id_column: str | None) -> tuple[type[BaseModel], tuple[str, ...]]:
    """The request of a model trained with a feature spec: its raw event, and the event's columns.

    The derived columns are the service's to compute and are refused; the spec's own columns
    (keys, time, values) are required; ``event_id`` (unless ``id_column`` names the event)
    and ``record`` are control fields.
    """
    derived = set(spec.feature_names())
    kept = tuple(c for c in schema.columns if c.name not in derived)
    own = {c.name for c in kept}
    extra = [c for c in sorted(spec.columns_used() | ({id_column} if id_column else set())) if c not in own]
    columns = tuple([c.name for c in kept] + extra)
    fields: dict[str, Any] = {
        name: (RawValue, Field(..., alias=name, description="raw event column used by the feature spec"))
        for name in extra
    }
    if id_column is None and "event_id" not in columns:
        fields["event_id"] = (
            StrictStr | Annotated[int, Field(strict=True)] | None,
            Field(None, alias="event_id", description="This event's id: a retry with the same id is counted once."),
        )
    if "record" not in columns:
        fields["record"] = (
            StrictBool,
            Field(True, alias="record", description="false: score from the history as it stands, record nothing."),
        )
    return transaction_model(Schema(kept), fields), columns


def transaction_model(schema: Schema, extra: dict[str, Any] | None = None) -> type[BaseModel]:
    """A pydantic model with one field per training column (aliased to the real name).

    Without ``extra`` (a plain model), an optional ``event_id`` names the transaction in the
    score log, so that ``POST /feedback`` can label it (unless a training column has that name).
    """
    fields: dict[str, Any] = {}
    taken: set[str] = set()
    plain_id = extra is None and "event_id" not in schema.names
    for name, definition in (extra or {}).items():
        fields[_python_name(name, taken)] = definition
    for spec in schema.columns:
        if spec.encoding == EXCLUDED:
            # Accepted (clients send whole records) and ignored: the model leaves it out.
            fields[_python_name(spec.name, taken)] = (
                Any,
                Field(None, alias=spec.name, description=f"not used by the model: {spec.reason}"),
            )
            continue
        description = f"{spec.kind} column, expected {spec.expected}"
        default = None if spec.nullable else ...
        fields[_python_name(spec.name, taken)] = (
            _field_type(spec),
            Field(default, alias=spec.name, description=description),
        )
    if plain_id:
        fields[_python_name("event_id", taken)] = (
            str | None,
            Field(
                None,
                alias="event_id",
                max_length=200,
                description="This transaction's id: the score log keeps it, and POST /feedback labels it.",
            ),
        )
    return create_model(  # type: ignore[call-overload, no-any-return]
        "Transaction",
        __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **fields,
    )


class FeatureContribution(BaseModel):
    feature: str = Field(description="Model feature (a column, or a part of a datetime column).")
    contribution: float = Field(description="This feature's term of the anomaly score (nats).")
    attribution: float = Field(description="How much the score falls when this feature alone is made typical.")
    value: float | str | bool | None = Field(description="The row's value.")
    expected: float | str | bool | None = Field(description="What the model expected for this row.")


class ScoreComponents(BaseModel):
    reconstruction_error: float = Field(description="Negative log-likelihood at the posterior mean.")
    neg_elbo: float = Field(description="Negative evidence lower bound.")


class RowScore(BaseModel):
    anomaly_score: float
    is_anomaly: bool
    threshold: float
    p_value: float = Field(description="Conformal p-value against held-out normal rows (small = unusual).")
    components: ScoreComponents
    top_features: list[FeatureContribution]
    event_id: str | None = Field(
        None, description="The event's id as sent (a spec model's: null for a what-if); POST /feedback labels it."
    )
    late: bool | None = Field(
        None, description="A spec model's event older than its entity's newest recorded one (README: late events)."
    )
    replayed: bool | None = Field(None, description="A retried event id: the stored answer, nothing counted twice.")


class ScoreResponse(RowScore):
    model_version: str
    request_id: str


class BatchSummary(BaseModel):
    rows: int
    flagged: int
    elapsed_ms: float


class BatchResponse(BaseModel):
    results: list[RowScore] = Field(description="One result per input row, in input order.")
    summary: BatchSummary
    model_version: str
    request_id: str


class FieldError(BaseModel):
    field: str | None = Field(description="Offending field (column), when the error is about one.")
    row: int | None = Field(None, description="Row of a batch (0-based), when the error is about one.")
    value: Any = Field(None, description="The value received (truncated), if any.")
    expected: str = Field(description="What was expected.")
    message: str


class ErrorResponse(BaseModel):
    detail: str | list[FieldError]
    request_id: str | None = None


class ModelInfo(BaseModel):
    model_version: str
    fraudvae_version: str
    kind: str
    scoring: str
    threshold: float
    schema_: dict[str, Any] = Field(alias="schema")
    column_roles: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Columns fit did not model as given (excluded, or frequency-encoded), with the reason.",
    )
    calibration: dict[str, Any]
    training: dict[str, Any]
    state: dict[str, Any] | None = Field(
        None,
        description="A spec model's state store: kind, url (no password), entities, events, expiries, read and "
        "write latency (ms, p50/p99 of this worker's last requests); null for a model without a spec.",
    )

    model_config = ConfigDict(populate_by_name=True)


class ReloadRequest(BaseModel):
    model_dir: str | None = Field(None, description="New model directory; default: re-read the current one.")

    model_config = ConfigDict(extra="forbid")


class ReloadResponse(BaseModel):
    model_version: str
    previous_version: str
    model_dir: str
