"""Next period's precision at a threshold, projected from the labelled period's trend.

A threshold chosen on one month's labels meets its target on the next month only if the next
month behaves alike, and a model's traffic drifts away from its training data: on BankSim
the false-positive rate at a fixed threshold grew about 1.7x a month while the true-positive
rate held, so next month's precision fell below the labelled month's 95% interval in 9 of 20
recalibrations. The projection states an interval for the *next* period instead:

- The labelled period is cut into :data:`BLOCKS` equal spans of time. In each, the rate of
  true and of false positives per labelled row is counted at a *reference* threshold with
  many rows above it (the median labelled fraud's score for true positives; the top 1% of
  labelled legitimate rows, or the top 200 if that is more, for false positives). A Poisson
  log-linear fit gives each rate's trend per period with its standard error. The trend is
  taken to hold in the tail at the thresholds a target chooses (a proportional drift).
- At a candidate threshold the labelled period's counts give the level (with its Gamma
  uncertainty), the trend carries it over the next period (as long as the labelled one,
  right after it), and the next period's own Poisson noise (as many rows) is added. The 2.5%
  and 97.5% quantiles of the simulated precision are the 95% prediction interval.
- Without event times there is no trend: the interval is the level's uncertainty and the
  next period's noise only (the traffic is assumed not to drift).

The simulation's generator is seeded, so the same labels give the same threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BLOCKS", "Projection", "Trends", "project_precision", "trends"]

#: Spans of time the labelled period is cut into to measure the trend (weeks of a month).
BLOCKS = 4
_DRAWS = 4000
_REFERENCE_LEGIT_SHARE = 0.01
_REFERENCE_LEGIT_ROWS = 200


@dataclass(frozen=True)
class Trends:
    """Log-rate change per period (and its standard error) of true and false positives."""

    tp: float = 0.0
    tp_se: float = 0.0
    fp: float = 0.0
    fp_se: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "true_positive_rate_change_per_period": float(np.exp(self.tp)),
            "false_positive_rate_change_per_period": float(np.exp(self.fp)),
            "true_positive_log_slope": self.tp,
            "true_positive_log_slope_se": self.tp_se,
            "false_positive_log_slope": self.fp,
            "false_positive_log_slope_se": self.fp_se,
        }


@dataclass(frozen=True)
class Projection:
    precision: float
    low: float
    high: float


def trends(scores: np.ndarray, y: np.ndarray, times: np.ndarray | None) -> Trends:
    """The true- and false-positive trends of the labelled period (none without times or with one instant)."""
    if times is None or times.size == 0 or float(times.max()) == float(times.min()):
        return Trends()
    position = (times - times.min()) / (times.max() - times.min())
    block = np.minimum((position * BLOCKS).astype(np.int64), BLOCKS - 1)
    centre = (np.arange(BLOCKS) + 0.5) / BLOCKS - 0.5
    rows = np.bincount(block, minlength=BLOCKS).astype(np.float64)
    legit = scores[~y]
    share = min(1.0, max(_REFERENCE_LEGIT_SHARE, _REFERENCE_LEGIT_ROWS / max(legit.size, 1)))
    fp_ref = float(np.quantile(legit, 1 - share, method="lower")) if legit.size else np.inf
    tp_ref = float(np.median(scores[y])) if y.any() else np.inf
    tp, tp_se = _log_slope(np.bincount(block, weights=(scores >= tp_ref) & y, minlength=BLOCKS), rows, centre)
    fp, fp_se = _log_slope(np.bincount(block, weights=(scores >= fp_ref) & ~y, minlength=BLOCKS), rows, centre)
    return Trends(tp, tp_se, fp, fp_se)


def project_precision(true_positives: int, false_positives: int, rows: int, trend: Trends) -> Projection:
    """Next period's precision and its 95% prediction interval from the labelled period's counts at a threshold."""
    rng = np.random.default_rng(0)
    g_tp, g_fp = _growth(trend.tp), _growth(trend.fp)
    point = true_positives * g_tp / max(true_positives * g_tp + false_positives * g_fp, 1e-300)
    tp_rate = rng.gamma(true_positives + 0.5, 1.0 / rows, _DRAWS) * _growth(rng.normal(trend.tp, trend.tp_se, _DRAWS))
    fp_rate = rng.gamma(false_positives + 0.5, 1.0 / rows, _DRAWS) * _growth(rng.normal(trend.fp, trend.fp_se, _DRAWS))
    tp = rng.poisson(np.minimum(rows * tp_rate, 1e12))
    fp = rng.poisson(np.minimum(rows * fp_rate, 1e12))
    precision = tp / np.maximum(tp + fp, 1)
    low, high = np.quantile(precision, [0.025, 0.975])
    return Projection(float(point), float(low), float(high))


def _growth(slope: np.ndarray | float) -> np.ndarray:
    """Mean rate over the next period (centre +1) over the labelled period's mean (centre 0), for a log slope."""
    b = np.clip(np.asarray(slope, dtype=np.float64), -20.0, 20.0)
    flat = np.abs(b) < 1e-9
    safe = np.where(flat, 1.0, b)
    return np.where(flat, 1.0, (np.exp(1.5 * safe) - np.exp(0.5 * safe)) / (np.exp(0.5 * safe) - np.exp(-0.5 * safe)))


def _log_slope(counts: np.ndarray, rows: np.ndarray, centre: np.ndarray) -> tuple[float, float]:
    """Poisson log-linear fit of ``counts`` (half a count added to each span) against time: slope and its SE."""
    keep = rows > 0
    counts, rows, centre = counts[keep] + 0.5, rows[keep], centre[keep]
    if centre.size < 2:
        return 0.0, 0.0
    X = np.c_[np.ones_like(centre), centre]
    beta = np.array([np.log(counts.sum() / rows.sum()), 0.0])
    for _ in range(100):
        mu = rows * np.exp(np.clip(X @ beta, -700, 700))
        step = np.linalg.solve(X.T @ (mu[:, None] * X), X.T @ (counts - mu))
        beta = beta + step
        if np.abs(step).max() < 1e-10:
            break
    mu = rows * np.exp(np.clip(X @ beta, -700, 700))
    cov = np.linalg.inv(X.T @ (mu[:, None] * X))
    return float(beta[1]), float(np.sqrt(max(cov[1, 1], 0.0)))
