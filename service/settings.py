"""Service settings from ``FRAUDVAE_*`` environment variables, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fraudvae.state import DEFAULT_EVENT_TTL


class Settings(BaseSettings):
    """Every option of the service; a bad value stops the start-up with the variable's name."""

    model_config = SettingsConfigDict(env_prefix="FRAUDVAE_", extra="ignore")

    model_dir: Path = Field(description="Directory written by VAEDetector.save / fraudvae train.")
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Comma-separated keys; when set, scoring and model endpoints need X-API-Key."
    )
    admin_key: SecretStr | None = Field(None, description="Key for POST /model/reload (reload is disabled without it).")
    max_batch_rows: int = Field(10_000, ge=1, description="Largest /batch_score batch.")
    max_body_bytes: int = Field(20_000_000, ge=1024, description="Largest request body.")
    explain_top_k: int = Field(3, ge=0, le=50, description="Top contributing features returned per row.")
    torch_threads: int = Field(1, ge=1, le=64, description="Torch threads per worker (1 suits concurrent requests).")
    keep_alive_seconds: int = Field(
        75,
        ge=1,
        le=3600,
        description="How long an idle keep-alive connection stays open. Longer than a load balancer's idle "
        "timeout (60 s is common), so the server never closes a connection the balancer is about to reuse.",
    )
    state_url: str | None = Field(
        None,
        description="State store of a model trained with a feature spec: sqlite:///path.sqlite (one machine, "
        "any number of workers) or redis://host:port/db[?prefix=NAME] (a fleet). Default: a SQLite file "
        "beside the model directory (MODEL.state.sqlite).",
    )
    event_id_column: str | None = Field(
        None,
        description="The raw event's column that identifies it (a spec model records each event once per id); "
        'without it, a request names each event with an "event_id" field.',
    )
    state_event_ttl_seconds: float = Field(
        DEFAULT_EVENT_TTL,
        gt=0,
        description="How long a recorded event id is remembered (retries answered from the store); a model with "
        "[[label_risk]] keeps ids at least its delay + longest window, so a late label finds its event.",
    )
    score_log: bool = Field(
        True,
        description="Remember each scored event (id, time, model version, score, flag, top features) in the "
        "monitor store, for GET /monitor and POST /feedback.",
    )
    monitor_path: Path | None = Field(
        None,
        description="The monitor store's SQLite file (score log, labels, recent rows). Default: beside the "
        "model directory (MODEL.monitor.sqlite).",
    )
    monitor_url: str | None = Field(
        None,
        description="The monitor store of a fleet: redis://host:port/db[?prefix=NAME], shared by every server (one "
        "score log, one set of labels). Default: the state store's URL when it is Redis, else the SQLite file.",
    )
    score_log_max_rows: int = Field(1_000_000, ge=1000, description="Scored events kept (the oldest go first).")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$", description="uvicorn log level.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("model_dir")
    @classmethod
    def _model_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"model directory {str(value)!r} does not exist")
        return value
