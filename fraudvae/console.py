"""What the CLI prints while it works: epoch progress and log lines (nothing with --quiet)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from fraudvae.training import EpochLog

__all__ = ["EpochProgress", "say"]


class EpochProgress:
    """A tqdm bar on a terminal, one plain line per epoch otherwise, nothing with --quiet."""

    def __init__(self, quiet: bool, stream: Any = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.bar: Any = None
        self.started = time.monotonic()

    def __call__(self, log: EpochLog) -> None:
        if self.quiet:
            return
        if self.stream.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=log.max_epochs, desc="training", unit="epoch", file=self.stream, leave=False)
            self.bar.set_postfix(train=f"{log.train_loss:.3f}", val=f"{log.val_loss:.3f}", refresh=False)
            self.bar.update(1)
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / log.epoch * (log.max_epochs - log.epoch)
        print(
            f"epoch {log.epoch}/{log.max_epochs} train_loss={log.train_loss:.4f} val_loss={log.val_loss:.4f} "
            f"kl={log.kl:.3f} elapsed={elapsed:.0f}s eta<={eta:.0f}s (early stopping may end sooner)",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def say(quiet: bool) -> Callable[[str], None]:
    return (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
