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

Writes AUROC / AUPRC of the ELBO and of the reconstruction score per (variant, file, seed) to
``benchmarks/results/likelihood_probe.jsonl`` (resumes), and a table against the default
detector of ``benchmarks/detection.py``'s state (the same fits) to BENCHMARKS.md.

Run:  .venv/bin/python benchmarks/likelihood_probe.py            (every variant, seed 0)
      .venv/bin/python benchmarks/likelihood_probe.py --variants cap2.3 --seeds 1,2
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
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import detection, protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae import losses as fv_losses
from fraudvae import model as fv_model
from fraudvae import preprocessing as fv_pre

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
            const = math.lgamma(nu / 2) - math.lgamma((nu + 1) / 2) + 0.5 * math.log(nu * math.pi)

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
    if variant in ("homoscedastic", "free_bits0.5", "beta0.5"):
        return True
    if variant.startswith("ensemble"):
        return variant[len("ensemble") :].isdigit() and int(variant[len("ensemble") :]) > 0
    for prefix in ("floor", "cap", "student_t"):
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


def _done() -> dict[tuple[str, str, int], dict[str, Any]]:
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()] if OUT.exists() else []
    return {(r["variant"], r["name"], r["seed"]): r for r in rows}


def run(variants: list[str], seeds: list[int], names: list[str]) -> None:
    done = _done()
    with OUT.open("a") as out:
        for name in names:
            X, y = protocol.load(name)
            for seed in seeds:
                s = protocol.split(name, X, y, seed)
                for variant in variants:
                    if (variant, name, seed) in done:
                        continue
                    started = time.perf_counter()
                    members = int(variant[len("ensemble") :]) if variant.startswith("ensemble") else 1
                    with _patched(variant):
                        # Member 0 is the default's own fit; the others differ only in their seed.
                        dets = [
                            VAEDetector(random_state=seed + 1000 * i, **_params(variant)).fit(s.X_train)
                            for i in range(members)
                        ]
                        fit_s = time.perf_counter() - started
                        row: dict[str, Any] = {"variant": variant, "name": name, "seed": seed, "fit_s": fit_s}
                        for scoring in ("elbo", "reconstruction"):
                            score = np.mean([d.anomaly_score(s.X_test, scoring=scoring) for d in dets], axis=0)
                            score = np.nan_to_num(score, nan=0.0, posinf=1e300)
                            row[scoring] = [
                                float(roc_auc_score(s.y_test, score)),
                                float(average_precision_score(s.y_test, score)),
                            ]
                    print(json.dumps(row), flush=True)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    done[(variant, name, seed)] = row


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


#: The variants measured on every shared file at seed 0 (BENCHMARKS.md).
VARIANTS = "cap2.3,ensemble2,homoscedastic,student_t4,student_t20,free_bits0.5,beta0.5"


def section(variants: list[str]) -> str:
    """Seed 0 for every variant; seeds 0-2 for those that have them on every file; then the rest on their files."""
    done = _done()
    names = [*protocol.ADBENCH_ALL, *protocol.CSV_SETS]
    three = [v for v in variants if all((v, n, s) in done for n in names for s in (0, 1, 2))]
    parts = [report(variants, [0])]
    if three:
        parts += ["", report(three, [0, 1, 2])]
    partial = sorted({v for (v, _, s) in done if s == 0} - set(variants))
    if partial:
        parts += ["", "Variants measured on some files only (seed 0), on the files they share:", ""]
        parts += [report(partial, [0])]
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
            f"unknown variant(s) {unknown}; expected capC, floorM, student_tNU, ensembleN (numbers > 0), "
            "homoscedastic, free_bits0.5 or beta0.5"
        )
    run(variants, [int(s) for s in args.seeds.split(",")], args.files.split(","))
    text = section(variants)
    print(text)
    replace_section(ROOT / "BENCHMARKS.md", "likelihood_probe", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
