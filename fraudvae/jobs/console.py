"""What the CLI prints while it works: epoch progress and log lines (nothing with --quiet)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudvae.model.training import EpochLog

__all__ = ["EpochProgress", "describe_goal", "describe_inits", "say"]


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
        init = f"init {log.init + 1}/{log.n_init} " if log.n_init > 1 else ""
        if log.epoch == 1 and log.init > 0:  # the next initialisation starts over
            self.close()
            self.started = time.monotonic()
        if self.stream.isatty():
            if self.bar is None:
                from tqdm import tqdm

                desc = f"training {init}".rstrip()
                self.bar = tqdm(total=log.max_epochs, desc=desc, unit="epoch", file=self.stream, leave=False)
            self.bar.set_postfix(train=f"{log.train_loss:.3f}", val=f"{log.val_loss:.3f}", refresh=False)
            self.bar.update(1)
            return
        elapsed = time.monotonic() - self.started
        eta = elapsed / log.epoch * (log.max_epochs - log.epoch)
        print(
            f"{init}epoch {log.epoch}/{log.max_epochs} train_loss={log.train_loss:.4f} val_loss={log.val_loss:.4f} "
            f"kl={log.kl:.3f} elapsed={elapsed:.0f}s eta<={eta:.0f}s (early stopping may end sooner)",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def say(quiet: bool) -> Callable[[str], None]:
    return (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))


def describe_goal(cal: dict[str, Any]) -> str:
    """The calibration goal and what it realized, for the line ``train`` ends with."""
    r = cal["realized"]
    names = {"target_fpr": "false-positive rate", "target_precision": "precision", "target_recall": "recall"}
    parts = [f"target {names.get(k, k)} {v}" for k, v in cal["goal"].items() if k.startswith("target")]
    if cal["goal"].get("objective") == "best_f1":
        parts.append("best F1 on the calibration rows")
    parts.append(f"realized FPR {r['false_positive_rate']:.4f} on {r['n_normal']} held-out normal rows")
    if "precision" in r:
        parts.append(f"precision {r['precision']:.3f}, recall {r['recall']:.3f}")
    return "; ".join(parts)


def describe_inits(det: Any) -> str:
    """Which of a fitted detector's ``n_init`` initialisations was kept, and why."""
    losses = ", ".join(f"{v:.4f}" for v in det.init_validation_losses_)
    return (
        f"Kept initialisation {det.best_init_ + 1} of {det.n_init} (seed {det.init_seeds_[det.best_init_]}), "
        f"the lowest validation loss of {losses}."
    )
