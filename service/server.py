"""``fraudvae serve``: check the configuration and the model, then start uvicorn (no argv here: the CLI owns it)."""

from __future__ import annotations

import os
import sys

# Imported at module level: without the [service] extra, importing this module fails, and
# the CLI turns that into "pip install 'fraudvae[service]'" (tests/test_architecture.py).
import uvicorn
from pydantic import ValidationError

from fraudvae import VAEDetector
from fraudvae.exceptions import FraudVAEError

from .settings import Settings

__all__ = ["run_server"]


def run_server(options: dict[str, object]) -> int:
    """Start the service; ``options`` (model, host, port, workers, state; None = unset) win over ``FRAUDVAE_*``."""

    # Command-line options win over FRAUDVAE_* variables; workers inherit them through the environment.
    for option, var in (
        ("model", "MODEL_DIR"),
        ("host", "HOST"),
        ("port", "PORT"),
        ("workers", "WORKERS"),
        ("state", "STATE_URL"),
    ):
        value = options.get(option)
        if value is not None:
            os.environ[f"FRAUDVAE_{var}"] = str(value)
    try:
        settings = Settings()  # type: ignore[call-arg]
        VAEDetector.load(str(settings.model_dir))  # fail before accepting traffic, with one line
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        hint = " (pass --model or set FRAUDVAE_MODEL_DIR)" if field == "model_dir" else ""
        print(f"fraudvae: error: invalid setting FRAUDVAE_{field.upper()}: {first['msg']}{hint}", file=sys.stderr)
        return 2
    except FraudVAEError as exc:
        print(f"fraudvae: error: cannot serve {str(settings.model_dir)!r}: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "fraudvae_service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_seconds,
    )
    return 0
