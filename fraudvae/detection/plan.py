"""The scoring plan: which score, estimated with how many draws of the latent code.

One small value object replaces the three meanings ``n_score_samples`` used to have
(``None``, ``0``, ``k``), so every place that needs draws (scoring, calibration, the
explanation baseline) asks the same question of the same object.
"""

from __future__ import annotations

from dataclasses import dataclass

from fraudvae.exceptions import ConfigurationError

__all__ = ["IWAE_DEFAULT_DRAWS", "SCORINGS", "ScoringPlan"]

SCORINGS = ("elbo", "reconstruction", "iwae")
#: IWAE draws when none are asked for (the ELBO and the reconstruction need none).
IWAE_DEFAULT_DRAWS = 16


@dataclass(frozen=True)
class ScoringPlan:
    """A score method and the number of latent draws behind it.

    ``draws`` is the number of fixed draws ``z_k = mu + sigma * eps_k`` the sampled
    passes average over; ``0`` evaluates at the posterior mean (one decoder pass). The
    ELBO and the reconstruction accept 0; IWAE needs at least 1. A reconstruction score
    never depends on the draws (they only fill the companion ``neg_elbo`` column).
    """

    method: str
    draws: int

    def __post_init__(self) -> None:
        if self.method not in SCORINGS:
            raise ConfigurationError(f"scoring={self.method!r} is invalid; expected one of {list(SCORINGS)}.")
        if self.draws < 0:
            raise ConfigurationError(f"draws={self.draws!r} is invalid; expected 0 or more draws.")
        if self.method == "iwae" and self.draws == 0:
            raise ConfigurationError(
                "scoring='iwae' with n_score_samples=0 is invalid; the importance-weighted bound needs "
                "at least 1 draw. Set n_score_samples >= 1 (or None for 16) or use scoring='elbo'."
            )

    @classmethod
    def resolve(cls, method: str, n_score_samples: int | None) -> ScoringPlan:
        """The plan a detector's ``scoring`` and ``n_score_samples`` ask for.

        ``n_score_samples=None`` means each method's default: the posterior mean for the
        ELBO and the reconstruction, 16 draws for IWAE. An int is the draw count for all.
        """
        if n_score_samples is not None and n_score_samples < 0:
            raise ConfigurationError(
                f"n_score_samples={n_score_samples!r} is invalid; expected 0 or more draws, or None (the default)."
            )
        if n_score_samples is not None:
            return cls(method, int(n_score_samples))
        return cls(method, IWAE_DEFAULT_DRAWS if method == "iwae" else 0)

    @property
    def key(self) -> str:
        """Name of the calibration stored for this plan (``"elbo"``, ``"elbo@16"``, ``"iwae@16"``)."""
        if self.method == "reconstruction" or self.draws == 0:
            return self.method
        return f"{self.method}@{self.draws}"

    def describe(self) -> str:
        if self.method == "reconstruction":
            return "reconstruction"
        where = "at the posterior mean" if self.draws == 0 else f"over {self.draws} draws"
        return f"{self.method} {where}"
