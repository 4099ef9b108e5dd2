"""Probe likelihood families the product does not ship, on every shared file (issue 13).

Why: on cover, skin, optdigits and landsat KNN leads by far. A per-feature diagnosis of the
default detector on cover (seed 0) shows one column, the elevation, ranking the anomalies at
0.998 AUROC on its own while the summed score reaches 0.921: near-deterministic columns
(three hill-shades, functions of aspect and slope) get per-row decoder variances so small that
normal held-out rows pay 15-45 nats (standard deviation) on them, against a mean of -2. This
script measures what changes to the numeric likelihood buy, fitted like the default
(``VAEDetector(random_state=seed, **params)``), on the protocol's splits
(``../shared/BENCHMARK.md``), each variant patched in for its own fits only:

- ``capC``: the per-row decoder variance lies between the learned per-feature ceiling and
  ``exp(-C)`` times it (a row may be predicted at most ``exp(C)`` times more precisely than
  average; the product's decoder has no such floor beyond the quantization step).
- ``floorM``: the decoder's variance floor of a numeric feature is ``M * step**2`` for its
  quantization step (the product's is ``step**2 / 12``, uniform noise over one step), so
  columns recorded on a grid (counts, pixel values, rounded amounts) cannot be predicted
  more sharply than ``sqrt(M)`` steps; continuous columns (step near 0) are unchanged.
- ``homoscedastic``: one learned variance per feature, no per-row variance.
- ``student_tNU``: a Student-t of ``NU`` degrees of freedom in place of the Gaussian.
- ``ensembleN``: the mean score of ``N`` default detectors differing only in their seed
  (``seed + 1000 * i``; member 0 is the default's own fit): the issue's allowed average of
  VAE likelihood scores, at ``N`` times the fit and scoring cost.
- ``free_bits0.5``, ``beta0.5``: parameters of the default detector.
- ``model_seedK``: the default detector with ``random_state = seed + 1000 * K`` on the same
  rows (``model_seed0`` is the default's own fit, re-run here): with ``K = 0..4``, how much
  of the seed spread is the model's own randomness (initialisation, batches, its validation
  split) and how much the protocol's draw of rows.
- ``best_ofK``: ``K`` initialisations (``random_state = seed + 1000 * k``) on the split of
  ``seed`` (held fixed), the one with the lowest validation negative ELBO kept, the way
  scikit-learn's ``GaussianMixture(n_init=K)`` keeps its best bound; initialisation 0 is the
  default's own fit. Its row also records every initialisation's figures and validation
  loss, and the mean score of all ``K`` (an ensemble at ``K`` times the scoring cost).

Scoring-time variants change no fit: they re-score the default's own fit (one fit per file
and seed serves them all) with another numeric likelihood built on the same decoder outputs
at the posterior mean, so they say whether the trained decoder's per-row variances can be
corrected after the fact:

- ``val_mixture``, ``val_cap``, ``val_student_t``: per numeric feature, a contamination
  ``(1 - w) N(mu, var) + w N(mu, ceiling)``, a cap ``var >= exp(-C) * ceiling`` or a
  Student-t of ``nu`` degrees of freedom, its parameter chosen from a grid that includes the
  default (``w = 0``, ``C = inf``, ``nu = inf``) by the mean negative log-likelihood of the
  fit's own validation rows: label-free, one choice per column.
- ``own_default``: the fit unchanged, the baseline of the machine the run is on (fits differ
  between CPU types; the detection table's may come from another machine).
- ``scapC``: the cap ``var >= exp(-C) * ceiling`` on every numeric feature, at scoring only.
- ``jacobian``: the likelihood in the user's units, ``+ log(1 + |x - shift|)`` for the
  columns the preprocessor log-transforms (their density in the transformed units is what
  the product scores).
- ``logvarW``: the per-row precision term ``0.5 log var`` of every numeric feature weighted
  by ``W`` instead of 1 (``logvar0``: only the standardized error ``0.5 (x - mu)^2 / var``
  is left, so a row earns nothing for sitting where the decoder is sure of itself).
- ``hingeQ``: each feature's contribution (the latent term left alone) raised to at least
  its ``Q``-th percentile over the fit's validation rows, so a feature can add suspicion but
  a row reconstructed better than usual on one feature cannot cancel another's.

Writes AUROC / AUPRC of the ELBO and of the reconstruction score per (variant, file, seed) to
``benchmarks/results/likelihood_probe.jsonl`` (resumes), and a table against the default
detector of ``benchmarks/detection.py``'s state (the same fits) to docs/experiments/2026-12-04-likelihood-probe.md.

Run:  .venv/bin/python benchmarks/likelihood_probe.py            (every variant, seed 0)
      .venv/bin/python benchmarks/likelihood_probe.py --variants cap2.3 --seeds 1,2
      .venv/bin/python benchmarks/likelihood_probe.py --variants own_default,val_mixture,scap2.3 --seeds 0,1,2
      .venv/bin/python benchmarks/likelihood_probe.py --variants model_seed0,model_seed1,model_seed2
      .venv/bin/python benchmarks/likelihood_probe.py --variants best_of5 --seeds 0,1
Every run rewrites the whole section of docs/experiments/2026-12-04-likelihood-probe.md from the results file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import detection, protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.data import preprocessing as fv_pre
from fraudvae.detection import fitting as fv_fitting
from fraudvae.detection.fitting import INIT_SEED_STRIDE, MIN_SPLIT_ROWS, best_init
from fraudvae.model import losses as fv_losses
from fraudvae.model import network as fv_model
from fraudvae.model.backends import NetworkBackend
from fraudvae.model.network import Inputs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "likelihood_probe.jsonl"


def _heads_with(logvar_of: Callable[[fv_model.TabularVAE, torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
    """``TabularVAE.heads`` with the numeric log-variance computed by ``logvar_of(module, raw)``."""
    original = fv_model.TabularVAE.heads

    def heads(self: fv_model.TabularVAE, out: torch.Tensor) -> fv_model.DecoderOutput:
        res = original(self, out)
        raw = out[..., self.n_num : 2 * self.n_num]
        res.num_logvar = logvar_of(self, raw)
        return res

    return heads


def _student_t_const(nu: float) -> float:
    """The Student-t's log-normaliser (of ``nu`` degrees of freedom, unit scale), as an NLL term."""
    return math.lgamma(nu / 2) - math.lgamma((nu + 1) / 2) + 0.5 * math.log(nu * math.pi)


@contextlib.contextmanager
def _patched(variant: str) -> Iterator[None]:
    saved_heads, saved_nll, saved_init = fv_model.TabularVAE.heads, fv_losses.gaussian_nll, fv_pre.Preprocessor.__init__
    try:
        if variant.startswith("floor"):
            m = float(variant[len("floor") :])

            def init(self: fv_pre.Preprocessor, *args: Any, **kwargs: Any) -> None:
                saved_init(self, *args, **kwargs)
                self.num_min_variance = [self.stats[n]["step"] ** 2 * m for n in self.num_features]

            fv_pre.Preprocessor.__init__ = init  # type: ignore[method-assign]
        elif variant.startswith("cap"):
            c = float(variant[3:])
            fv_model.TabularVAE.heads = _heads_with(  # type: ignore[method-assign]
                lambda m, raw: torch.log(torch.exp(m.num_logvar_base - c * torch.sigmoid(raw)) + m.num_min_variance)
            )
        elif variant == "homoscedastic":
            fv_model.TabularVAE.heads = _heads_with(  # type: ignore[method-assign]
                lambda m, raw: torch.log(torch.exp(m.num_logvar_base + 0.0 * raw) + m.num_min_variance)
            )
        elif variant.startswith("student_t"):
            nu = float(variant[len("student_t") :])
            const = _student_t_const(nu)

            def t_nll(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
                return const + 0.5 * logvar + 0.5 * (nu + 1) * torch.log1p((x - mu) ** 2 * torch.exp(-logvar) / nu)

            fv_losses.gaussian_nll = t_nll  # feature_nll looks the name up at call time
        yield
    finally:
        fv_model.TabularVAE.heads = saved_heads  # type: ignore[method-assign]
        fv_losses.gaussian_nll = saved_nll
        fv_pre.Preprocessor.__init__ = saved_init  # type: ignore[method-assign]


def _known(variant: str) -> bool:
    """A name this script can fit: a typo must not silently fit the default."""
    if variant in ("homoscedastic", "free_bits0.5", "beta0.5", *RESCORED_NAMES):
        return True
    for prefix, low, high in (("logvar", 0.0, 1.0), ("hinge", 0.0, 100.0)):
        if variant.startswith(prefix):
            try:
                return low <= float(variant[len(prefix) :]) <= high
            except ValueError:
                return False
    if variant.startswith("ensemble"):
        return variant[len("ensemble") :].isdigit() and int(variant[len("ensemble") :]) > 0
    if variant.startswith("model_seed"):
        return variant[len("model_seed") :].isdigit()
    if variant.startswith("best_of"):
        return variant[len("best_of") :].isdigit() and int(variant[len("best_of") :]) > 1
    for prefix in ("floor", "cap", "student_t", "scap"):
        if variant.startswith(prefix):
            try:
                return float(variant[len(prefix) :]) > 0
            except ValueError:
                return False
    return False


def _params(variant: str) -> dict[str, Any]:
    if variant == "free_bits0.5":
        return {"free_bits": 0.5}
    if variant == "beta0.5":
        return {"beta": 0.5}
    return {}


#: Scoring-time variants whose parameter each numeric feature takes from the fit's validation rows.
VALIDATION_CHOSEN = ("val_mixture", "val_cap", "val_student_t")
#: Every scoring-time variant with a fixed name (``scapC``, ``logvarW`` and ``hingeQ`` carry a number).
RESCORED_NAMES = (*VALIDATION_CHOSEN, "jacobian", "own_default")
#: The grids they choose from; the first value of each is the default decoder's own likelihood.
GRIDS: dict[str, tuple[float, ...]] = {
    "mixture": (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.4),
    "cap": (math.inf, 9.0, 6.9, 4.6, 3.4, 2.3, 1.6, 1.0, 0.5, 0.0),
    "student_t": (math.inf, 64.0, 32.0, 16.0, 8.0, 4.0, 2.0, 1.0),
}


def _scoring_time(variant: str) -> bool:
    """Re-scores the default's own fit rather than fitting anew."""
    return variant in RESCORED_NAMES or variant.startswith(("scap", "logvar", "hinge"))


def _seed_offset(variant: str) -> int:
    return 1000 * int(variant[len("model_seed") :]) if variant.startswith("model_seed") else 0


def gaussian(x: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return 0.5 * (math.log(2 * math.pi) + np.log(var) + (x - mu) ** 2 / var)


def family_nll(
    kind: str, p: float, x: np.ndarray, mu: np.ndarray, var: np.ndarray, ceiling: float | np.ndarray
) -> np.ndarray:
    """Negative log-likelihood of ``x`` under one member of a family around the decoder's ``N(mu, var)``.

    ``ceiling`` is the feature's largest variance (the learned per-feature cap of the product's
    decoder). Each family's first grid value gives back ``N(mu, var)`` exactly.
    """
    if kind == "mixture":
        a = gaussian(x, mu, var)
        if p == 0.0:
            return a
        b = gaussian(x, mu, np.broadcast_to(ceiling, np.shape(x)))
        low = np.minimum(a, b)
        return low - np.log((1 - p) * np.exp(low - a) + p * np.exp(low - b))
    if kind == "cap":
        return gaussian(x, mu, var if math.isinf(p) else np.maximum(var, np.exp(-p) * ceiling))
    if kind == "student_t":
        if math.isinf(p):
            return gaussian(x, mu, var)
        const = _student_t_const(p)
        return const + 0.5 * np.log(var) + 0.5 * (p + 1) * np.log1p((x - mu) ** 2 / var / p)
    raise ValueError(f"unknown family {kind!r}; expected one of {sorted(GRIDS)}")


def choose(kind: str, x: np.ndarray, mu: np.ndarray, var: np.ndarray, ceiling: float) -> float:
    """The grid value with the lowest mean negative log-likelihood on these (validation) values.

    Ties keep the earlier value, so the default wins unless another value is strictly better.
    """
    if x.size == 0:
        return GRIDS[kind][0]
    costs = [float(np.mean(family_nll(kind, p, x, mu, var, ceiling))) for p in GRIDS[kind]]
    return GRIDS[kind][int(np.argmin(costs))]


def validation_rows(det: VAEDetector, X_train: Any, split_seed: int | None = None) -> Any:
    """The rows ``fit`` held out for early stopping and calibration (as ``fraudvae.detection.fitting`` splits them).

    ``split_seed``: the seed the split was drawn with when it was not the detector's own
    (:func:`_split_of`).
    """
    n = len(X_train)
    perm = np.random.default_rng(det.seed_ if split_seed is None else split_seed).permutation(n)
    n_val = round(det.validation_fraction * n)
    idx = perm if n_val < MIN_SPLIT_ROWS or n - n_val < MIN_SPLIT_ROWS else perm[:n_val]
    if len(idx) != det.n_validation_rows_:
        raise RuntimeError(f"re-derived {len(idx)} validation rows; the fit held out {det.n_validation_rows_}")
    return X_train.iloc[np.sort(idx)].reset_index(drop=True)


def _module(det: VAEDetector) -> fv_model.TabularVAE:
    backend = det.engine_.backend
    if not isinstance(backend, NetworkBackend):
        raise TypeError(f"scoring-time variants re-score a network; got {type(backend).__name__}")
    return backend.module


def _decoded(det: VAEDetector, frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
    """Standardized values, observed mask, the decoder's mean and variance at the posterior mean, the clean frame."""
    prepared = det.engine_.prepare(frame, errors="raise", warn_extra=False)
    e, module = prepared.enc, _module(det)
    x = Inputs(
        torch.from_numpy(e.num.astype(np.float32)),
        torch.from_numpy(e.num_obs.astype(np.float32)),
        torch.from_numpy(e.bin.astype(np.float32)),
        torch.from_numpy(e.cat),
    )
    with torch.no_grad():
        mu, _ = module.encode(x)
        out = module.decode(mu)
    return e.num, e.num_obs, out.num_mu.double().numpy(), out.num_logvar.double().exp().numpy(), prepared.clean


def scoring_time_deltas(
    det: VAEDetector, X_train: Any, X_test: Any, variants: list[str]
) -> dict[str, tuple[np.ndarray, int]]:
    """Per variant, what it adds to each test row's score, and how many numeric features it changes."""
    module = _module(det)
    with torch.no_grad():
        ceiling = (torch.exp(module.num_logvar_base) + module.num_min_variance).double().numpy()
    xt, ot, mut, vart, clean = _decoded(det, X_test)
    base = gaussian(xt, mut, vart) * ot
    out: dict[str, tuple[np.ndarray, int]] = {}
    chosen, hinged = any(v in VALIDATION_CHOSEN for v in variants), any(v.startswith("hinge") for v in variants)
    val = validation_rows(det, X_train) if chosen or hinged else None
    if chosen:
        xv, ov, muv, varv, _ = _decoded(det, val)
    if hinged:
        # Every feature's contribution but the latent term (the last column).
        cv = det.feature_contributions(val).to_numpy()[:, :-1]
        ct = det.feature_contributions(X_test).to_numpy()[:, :-1]
    for variant in variants:
        if variant == "own_default":  # the fit itself, unchanged: the baseline on this machine
            out[variant] = (np.zeros(len(xt)), 0)
            continue
        if variant.startswith("logvar"):
            weight = float(variant[len("logvar") :])
            out[variant] = ((weight - 1.0) * (0.5 * np.log(vart) * ot).sum(axis=1), xt.shape[1])
            continue
        if variant.startswith("hinge"):
            floor = np.percentile(cv, float(variant[len("hinge") :]), axis=0)
            out[variant] = ((np.maximum(ct, floor) - ct).sum(axis=1), ct.shape[1])
            continue
        if variant == "jacobian":
            pre = det.engine_.preprocessor
            logged = [n for n in pre.num_features if pre.stats[n]["transform"] == "log1p"]
            extra = np.zeros(len(xt))
            for n in logged:
                v = clean[n].to_numpy(dtype=np.float64) - pre.stats[n]["shift"]
                extra += np.nan_to_num(np.log1p(np.abs(v)), nan=0.0)
            out[variant] = (extra, len(logged))
            continue
        if variant.startswith("scap"):
            kind, params = "cap", [float(variant[len("scap") :])] * xt.shape[1]
        else:
            kind = variant[len("val_") :]
            params = [
                choose(kind, xv[ov[:, j] > 0, j], muv[ov[:, j] > 0, j], varv[ov[:, j] > 0, j], float(ceiling[j]))
                for j in range(xv.shape[1])
            ]
        new = (
            np.column_stack(
                [family_nll(kind, p, xt[:, j], mut[:, j], vart[:, j], ceiling[j]) for j, p in enumerate(params)]
            )
            if params
            else np.zeros_like(base)
        )
        out[variant] = ((new * ot - base).sum(axis=1), sum(p != GRIDS[kind][0] for p in params))
    return out


def _done() -> dict[tuple[str, str, int], dict[str, Any]]:
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()] if OUT.exists() else []
    return {(r["variant"], r["name"], r["seed"]): r for r in rows}


def _fit_rows(variant: str, name: str, s: protocol.Split) -> list[dict[str, Any]]:
    """The row of one fitted variant: its own fits (``ensembleN`` averages ``N`` of them)."""
    started = time.perf_counter()
    members = int(variant[len("ensemble") :]) if variant.startswith("ensemble") else 1
    with _patched(variant):
        # Member 0 is the default's own fit (or model_seedK's); the others differ only in their seed.
        dets = [
            VAEDetector(random_state=s.seed + _seed_offset(variant) + 1000 * i, **_params(variant)).fit(s.X_train)
            for i in range(members)
        ]
        row: dict[str, Any] = {"variant": variant, "name": name, "seed": s.seed, "fit_s": time.perf_counter() - started}
        for scoring in ("elbo", "reconstruction"):
            row[scoring] = protocol.auc_pair(
                s.y_test, np.mean([d.anomaly_score(s.X_test, scoring=scoring) for d in dets], axis=0)
            )
    return [row]


class _PinnedRandom:
    """``numpy.random`` whose ``default_rng`` ignores its seed and uses one pinned seed."""

    def __init__(self, seed: int) -> None:
        self._seed = seed

    def default_rng(self, _seed: Any = None) -> np.random.Generator:
        return np.random.default_rng(self._seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(np.random, name)


class _PinnedNumpy:
    """``numpy`` as ``fraudvae.detection.fitting`` sees it inside :func:`_split_of` (it draws the split with ``default_rng``)."""

    def __init__(self, seed: int) -> None:
        self.random = _PinnedRandom(seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


@contextlib.contextmanager
def _split_of(seed: int) -> Iterator[None]:
    """Fits inside draw their validation split from ``seed`` whatever their ``random_state``."""
    saved = fv_fitting.np
    fv_fitting.np = _PinnedNumpy(seed)  # type: ignore[assignment]
    try:
        yield
    finally:
        fv_fitting.np = saved


def _best_of_rows(variant: str, name: str, s: protocol.Split) -> list[dict[str, Any]]:
    """``best_ofK``: ``K`` initialisations on one split, the lowest validation loss kept."""
    started = time.perf_counter()
    inits, scores = [], []
    for k in range(int(variant[len("best_of") :])):
        with _split_of(s.seed):
            det = VAEDetector(random_state=s.seed + INIT_SEED_STRIDE * k).fit(s.X_train)
        score = det.anomaly_score(s.X_test)
        inits.append([*protocol.auc_pair(s.y_test, score), det.init_validation_losses_[0]])
        scores.append((score, det.anomaly_score(s.X_test, scoring="reconstruction")))
    best = best_init([i[2] for i in inits])  # the product's rule, as VAEDetector(n_init=K) applies it
    row: dict[str, Any] = {"variant": variant, "name": name, "seed": s.seed, "fit_s": time.perf_counter() - started}
    row["elbo"], row["reconstruction"] = inits[best][:2], protocol.auc_pair(s.y_test, scores[best][1])
    row["chosen"], row["inits"] = best, inits
    row["ensemble"] = protocol.auc_pair(s.y_test, np.mean([sc for sc, _ in scores], axis=0))
    return [row]


def best_of_report(variant: str, seeds: list[int]) -> str:
    """Means over the files ``variant`` has at every seed: one initialisation, their average, the one kept, ..."""
    done = _done()
    names = [n for n in [*protocol.ADBENCH_ALL, *protocol.CSV_SETS] if all((variant, n, s) in done for s in seeds)]
    if not names:
        return f"No file has {variant} at seeds {seeds} yet.\n"
    n = int(variant[len("best_of") :])

    def first(k: int) -> Callable[[dict[str, Any]], list[float]]:
        # The product's rule (``VAEDetector(n_init=k)``) on the first k initialisations.
        return lambda r: r["inits"][best_init([i[2] for i in r["inits"][:k]])][:2]

    ways: dict[str, Callable[[dict[str, Any]], list[float]]] = {
        "initialisation 0 (the default's fit)": lambda r: r["inits"][0][:2],
        "an initialisation, on average": lambda r: list(np.mean([i[:2] for i in r["inits"]], axis=0)),
        **{f"the lowest validation loss of the first {k} (`n_init={k}`)": first(k) for k in range(2, n)},
        f"the lowest validation loss of all {n} (kept)": lambda r: r["elbo"],
        "the mean score of all (ensemble)": lambda r: r["ensemble"],
        "the best test AUROC (an oracle)": lambda r: max(r["inits"], key=lambda i: i[0])[:2],
    }
    groups = [
        (label, [n for n in names if n in members])
        for label, members in (("ADBench", protocol.ADBENCH_ALL), ("fraud CSVs", list(protocol.CSV_SETS)))
    ]
    head = " | ".join(f"{len(g)} {label}, AUROC / AUPRC" for label, g in groups if g)
    lines = [
        f"`{variant}`, seeds {', '.join(map(str, seeds))}: means over files and seeds; the last column is the"
        f" AUROC range over the seeds, mean over the {len(names)} files.",
        "",
        f"| score of | {head} | AUROC range |",
        "|---|" + "---:|" * (1 + sum(1 for _, g in groups if g)),
    ]
    for way, get in ways.items():
        cells = []
        for _, g in groups:
            if g:
                pairs = [get(done[(variant, n, s)]) for n in g for s in seeds]
                cells.append(f"{np.mean([p[0] for p in pairs]):.3f} / {np.mean([p[1] for p in pairs]):.3f}")
        # An average of figures is not one detector's: its range over the seeds says nothing.
        spread = np.mean([np.ptp([get(done[(variant, n, s)])[0] for s in seeds]) for n in names])
        lines.append(f"| {way} | " + " | ".join(cells) + (" | - |" if "average" in way else f" | {spread:.3f} |"))
    return "\n".join(lines) + "\n"


def _rescored_rows(variants: list[str], name: str, s: protocol.Split) -> list[dict[str, Any]]:
    """The rows of scoring-time variants: one default fit, re-scored by each."""
    started = time.perf_counter()
    det = VAEDetector(random_state=s.seed).fit(s.X_train)
    fit_s = time.perf_counter() - started
    scores = {scoring: det.anomaly_score(s.X_test, scoring=scoring) for scoring in ("elbo", "reconstruction")}
    rows = []
    for variant, (delta, changed) in scoring_time_deltas(det, s.X_train, s.X_test, variants).items():
        row: dict[str, Any] = {"variant": variant, "name": name, "seed": s.seed, "fit_s": fit_s, "changed": changed}
        row["n_numeric"] = len(det.engine_.preprocessor.num_features)
        for scoring, score in scores.items():
            row[scoring] = protocol.auc_pair(s.y_test, score + delta)
        rows.append(row)
    return rows


def run(variants: list[str], seeds: list[int], names: list[str]) -> None:
    done = _done()
    with OUT.open("a") as out:
        for name in names:
            X, y = protocol.load(name)
            for seed in seeds:
                s = protocol.split(name, X, y, seed)
                todo = [v for v in variants if (v, name, seed) not in done]
                rescored = [v for v in todo if _scoring_time(v)]
                rows = _rescored_rows(rescored, name, s) if rescored else []
                for variant in todo:
                    if variant.startswith("best_of"):
                        rows += _best_of_rows(variant, name, s)
                    elif not _scoring_time(variant):
                        rows += _fit_rows(variant, name, s)
                for row in rows:
                    print(json.dumps(row), flush=True)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    done[(row["variant"], name, seed)] = row


def report(variants: list[str], seeds: list[int]) -> str:
    """Per file, AUROC / AUPRC of the ELBO averaged over ``seeds``, on the files every variant has; then the means."""
    done, state = _done(), detection.load_state()
    peers = ("PyOD KNN", "IsolationForest", "fraudvae")
    names = [
        n
        for n in [*protocol.ADBENCH_ALL, *protocol.CSV_SETS]
        if all((v, n, s) in done for v in variants for s in seeds)
        and all((n, s, p) in state for p in peers for s in seeds)
    ]
    if not names:
        return f"No file has every variant of {variants} for seeds {seeds} yet.\n"
    cols = [*peers, *variants]

    def cell(col: str, name: str) -> tuple[float, float]:
        pairs = [
            (state[(name, s, col)]["auroc"], state[(name, s, col)]["auprc"])
            if col in peers
            else done[(col, name, s)]["elbo"]
            for s in seeds
        ]
        return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))

    lines = [
        f"Seeds {', '.join(map(str, seeds))} (means), AUROC / AUPRC of the ELBO; `fraudvae` is today's default "
        "(the detection table's fits), the peers are from the same state.",
        "",
        "| file | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    table = {c: [cell(c, n) for n in names] for c in cols}
    for i, n in enumerate(names):
        lines.append(f"| {n} | " + " | ".join(f"{table[c][i][0]:.3f} / {table[c][i][1]:.3f}" for c in cols) + " |")
    groups = (
        ("ADBench", [i for i, n in enumerate(names) if n in protocol.ADBENCH_ALL]),
        ("fraud CSVs", [i for i, n in enumerate(names) if n in protocol.CSV_SETS]),
    )
    for label, idx in groups:
        if not idx:
            continue
        cells = [
            f"**{np.mean([table[c][i][0] for i in idx]):.3f} / {np.mean([table[c][i][1] for i in idx]):.3f}**"
            for c in cols
        ]
        lines.append(f"| **mean, {len(idx)} {label}** | " + " | ".join(cells) + " |")
    if len(seeds) > 1:
        cells = []
        for c in cols:
            ranges = [
                np.ptp([state[(n, s, c)]["auroc"] if c in peers else done[(c, n, s)]["elbo"][0] for s in seeds])
                for n in names
            ]
            cells.append(f"{np.mean(ranges):.3f}")
        lines.append("| AUROC range over the seeds, mean over files | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: Five model seeds on the same rows (``model_seed0`` is the default's own fit, re-run on this machine).
MODEL_SEEDS = [f"model_seed{k}" for k in range(5)]
SPREAD = ROOT / "benchmarks" / "results" / "seed_spread.json"


def model_seed_report(seed: int = 0) -> str:
    """Per file: AUROC range over five model seeds on one draw of rows, beside the range over five draws.

    The protocol's seed draws the rows and seeds the model at once
    (``benchmarks/seed_spread.py``); holding the rows fixed isolates what the detector's own
    randomness moves.
    """
    done = _done()
    spread = json.loads(SPREAD.read_text())["files"] if SPREAD.exists() else {}
    names = [n for n in [*protocol.ADBENCH_ALL, *protocol.CSV_SETS] if all((v, n, seed) in done for v in MODEL_SEEDS)]
    if not names:
        return f"No file has {MODEL_SEEDS} at seed {seed} yet.\n"
    lines = [
        f"Rows of protocol seed {seed}; the default detector with `random_state` {seed} + 1000 k for k = 0-4, all "
        "fitted in one run on one machine. Beside it, the range over protocol seeds 0-4 (rows and model seed "
        "drawn together, `benchmarks/seed_spread.py`).",
        "",
        "| file | AUROC over 5 model seeds, min-max | range | AUPRC min-max | range over 5 row draws |",
        "|---|---:|---:|---:|---:|",
    ]
    model_ranges, row_ranges = [], []
    for n in names:
        pairs = [tuple(done[(v, n, seed)]["elbo"]) for v in MODEL_SEEDS]
        a, p = np.array([q[0] for q in pairs]), np.array([q[1] for q in pairs])
        rows = [spread[n][k]["fraudvae"] for k in sorted(spread[n])] if n in spread else []
        model_ranges.append(float(np.ptp(a)))
        row_range = f"{np.ptp(rows):.3f}" if rows else "n/a"
        if rows:
            row_ranges.append(float(np.ptp(rows)))
        lines.append(
            f"| {n} | {a.min():.3f}-{a.max():.3f} | {np.ptp(a):.3f} | {p.min():.3f}-{p.max():.3f} | {row_range} |"
        )
    lines.append(
        f"| **mean over {len(names)} files** | | **{np.mean(model_ranges):.3f}** | | "
        f"**{np.mean(row_ranges) if row_ranges else float('nan'):.3f}** |"
    )
    return "\n".join(lines) + "\n"


#: The variants measured on every shared file at seed 0 (docs/experiments/2026-12-04-likelihood-probe.md).
VARIANTS = "cap2.3,ensemble2,homoscedastic,student_t4,student_t20,free_bits0.5,beta0.5"


#: The scoring-time variants, measured on every shared file at seeds 0-2.
SCORING_VARIANTS = (
    "own_default,val_mixture,val_cap,val_student_t,scap2.3,scap4.6,jacobian,logvar0,logvar0.5,hinge25,hinge50"
)


def section(variants: list[str], rescored: list[str]) -> str:
    """Seed 0 for every fitted variant; seeds 0-2 for those that have them on every file; the
    scoring-time variants; then the rest on their files; then the model-seed spread."""
    done = _done()
    names = [*protocol.ADBENCH_ALL, *protocol.CSV_SETS]

    def on_every_file(vs: list[str]) -> list[str]:
        return [v for v in vs if all((v, n, s) in done for n in names for s in (0, 1, 2))]

    parts = [report(variants, [0])]
    if three := on_every_file(variants):
        parts += ["", report(three, [0, 1, 2])]
    if rescored_three := on_every_file(rescored):
        parts += [
            "",
            "Scoring-time variants, each re-scoring the default's own fit:",
            "",
            report(rescored_three, [0, 1, 2]),
        ]
    best_of = sorted({v for (v, _, _) in done if v.startswith("best_of")})
    partial = sorted(
        {v for (v, _, s) in done if s == 0} - set(variants) - set(rescored) - set(MODEL_SEEDS) - set(best_of)
    )
    if partial:
        parts += ["", "Variants measured on some files only (seed 0), on the files they share:", ""]
        parts += [report(partial, [0])]
    for v in best_of:
        seeds = [s for s in (0, 1, 2) if any((v, n, s) in done for n in names)]
        parts += ["", "Several initialisations on one split:", "", best_of_report(v, seeds)]
    if any(v in MODEL_SEEDS for (v, _, _) in done):
        parts += ["", "The model's own randomness, rows held fixed:", "", model_seed_report(0)]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=VARIANTS, help="comma-separated: capC, homoscedastic, student_tNU, ...")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--files", default=",".join([*protocol.ADBENCH_ALL, *protocol.CSV_SETS]))
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if not _known(v)]
    if unknown:
        parser.error(
            f"unknown variant(s) {unknown}; expected capC, floorM, student_tNU, scapC, ensembleN, model_seedK "
            "(numbers > 0), best_ofK (K > 1), logvarW (0 <= W <= 1), hingeQ (0 <= Q <= 100), homoscedastic, free_bits0.5, "
            "beta0.5, val_mixture, val_cap, val_student_t or jacobian"
        )
    run(variants, [int(s) for s in args.seeds.split(",")], args.files.split(","))
    # The whole section, whatever this run added to it.
    text = section(VARIANTS.split(","), SCORING_VARIANTS.split(","))
    print(text)
    replace_section(ROOT / "docs" / "experiments" / "2026-12-04-likelihood-probe.md", "likelihood_probe", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
