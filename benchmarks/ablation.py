"""What each candidate default buys, on every shared file, with PyOD KNN in the same run.

Issue 13: on ADBench files the defaults were never tuned on, plain KNN led. This script
fits ``VAEDetector(random_state=seed, **params)`` for each named configuration on the
protocol's splits (``../shared/BENCHMARK.md``) and PyOD KNN (library defaults, on the
protocol's peer matrices) on the same rows, and writes AUROC, AUPRC and fit seconds per
(configuration, file, seed) to ``benchmarks/results/ablation.jsonl``. Runs already in that
file are kept, so an interrupted run resumes. Every configuration spells out its widths and
prior: ``"previous"`` is the default before issue 13, ``"wide"`` the default of its first
part, ``"default"`` today's, whose runs (and KNN's) come from ``benchmarks/detection.py``'s
state file when it has them: the very fits of the detection table.

Run:  .venv/bin/python benchmarks/ablation.py [--seeds 0] [--configs default,previous]
      (about 2 minutes per configuration and seed on 2 idle cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pyod.models.knn import KNN
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import detection, protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ablation.jsonl"
PREVIOUS = {"hidden_dims": [128, 64], "prior_components": 0}
WIDE = {"hidden_dims": [256, 128], "prior_components": 0}
#: name -> (VAEDetector parameters, what the change is).
CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "previous": (PREVIOUS, "the default before issue 13: widths 128, 64"),
    "longer": ({**PREVIOUS, "max_epochs": 200}, "previous, up to 200 epochs (early stopping still on)"),
    "latent16": ({**PREVIOUS, "latent_dim": 16}, "previous, latent size 16 whatever the width of the data"),
    "beta0.5": ({**PREVIOUS, "beta": 0.5}, "previous, KL weight 0.5 in training"),
    "reconstruction": ({**PREVIOUS, "scoring": "reconstruction"}, "previous, scored by reconstruction"),
    "iwae": ({**PREVIOUS, "scoring": "iwae"}, "previous, scored by IWAE over 16 draws"),
    "wide": (WIDE, "the default of the first part of issue 13: widths 256, 128, standard normal prior"),
    "wide+latent16": ({**WIDE, "latent_dim": 16}, "widths 256, 128 and latent size 16"),
    "wide+beta0.5": ({**WIDE, "beta": 0.5}, "widths 256, 128 and KL weight 0.5"),
    "wide+latent16+beta0.5": (
        {**WIDE, "latent_dim": 16, "beta": 0.5},
        "widths 256, 128, latent size 16, KL weight 0.5",
    ),
    "wider": ({**WIDE, "hidden_dims": [512, 256], "latent_dim": 16}, "widths 512, 256 and latent size 16"),
    "deeper": (
        {**WIDE, "hidden_dims": [256, 256, 128], "latent_dim": 16},
        "three layers 256, 256, 128, latent size 16",
    ),
    "mixture16": (
        {"hidden_dims": [256, 128], "prior_components": 16},
        "today's default fitted here, beside `wide` in the same run (fit time)",
    ),
    "mixture64": (
        {"hidden_dims": [256, 128], "prior_components": 64},
        "widths 256, 128, a mixture prior of 64 Gaussians",
    ),
    "default": (
        {"hidden_dims": [256, 128], "prior_components": 16},
        "today's default: widths 256, 128, a learned mixture prior of 16 Gaussians",
    ),
}


def _done() -> dict[tuple[str, str, int], dict[str, Any]]:
    """Stored runs; today's default (and KNN) also from ``benchmarks/detection.py``'s state, the same fits."""
    rows = [json.loads(line) for line in OUT.read_text().splitlines() if line.strip()] if OUT.exists() else []
    done = {(r["config"], r["name"], r["seed"]): r for r in rows}
    as_config = {"fraudvae": "default", "PyOD KNN": "KNN"}
    for (name, seed, method), r in detection.load_state().items():
        if method in as_config:
            row = {"config": as_config[method], "name": name, "seed": seed, "secs": r["fit_s"] + r["score_s"], **r}
            done.setdefault((row["config"], name, seed), row)
    return done


def run(configs: list[str], seeds: list[int], names: list[str]) -> None:
    done = _done()
    with OUT.open("a") as out:
        for name in names:
            X, y = protocol.load(name)
            for seed in seeds:
                s = protocol.split(name, X, y, seed)
                for config in ["KNN", *configs]:
                    if (config, name, seed) in done:
                        continue
                    started = time.perf_counter()
                    if config == "KNN":
                        A, B = protocol.peer_matrices(s.X_train, s.X_test)
                        score = KNN().fit(A).decision_function(B)
                    else:
                        det = VAEDetector(random_state=seed, **CONFIGS[config][0]).fit(s.X_train)
                        score = det.anomaly_score(s.X_test)
                    row = {
                        "config": config,
                        "name": name,
                        "seed": seed,
                        "auroc": float(roc_auc_score(s.y_test, score)),
                        "auprc": float(average_precision_score(s.y_test, score)),
                        "secs": time.perf_counter() - started,
                    }
                    print(json.dumps(row), flush=True)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    done[(config, name, seed)] = row


def table(configs: list[str], seed: int) -> str:
    done = _done()
    files = [n for n in protocol.ADBENCH_ALL if all((c, n, seed) in done for c in ["KNN", *configs])]
    cols = ["KNN", *configs]
    lines = [
        f"Seed {seed}, the {len(files)} ADBench files, AUROC / AUPRC; KNN fitted in the same run on the same rows.",
        "",
        "| file | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for n in files:
        cells = [f"{done[(c, n, seed)]['auroc']:.3f} / {done[(c, n, seed)]['auprc']:.3f}" for c in cols]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for label, key in (("**mean AUROC / AUPRC**", None), ("fit seconds, summed", "secs")):
        cells = []
        for c in cols:
            rows = [done[(c, n, seed)] for n in files]
            if key is None:
                cells.append(
                    f"**{np.mean([r['auroc'] for r in rows]):.3f} / {np.mean([r['auprc'] for r in rows]):.3f}**"
                )
            else:
                cells.append(f"{sum(r[key] for r in rows):.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- `{c}`: {CONFIGS[c][1]}." for c in configs)]
    return "\n".join(lines) + "\n"


def report(configs: list[str], seed: int) -> str:
    """A table of the configurations measured on every ADBench file, then one of all on the files all share."""
    done = _done()
    full = [c for c in configs if all((c, n, seed) in done for n in protocol.ADBENCH_ALL)]
    parts = [table(full, seed)]
    if len(full) < len(configs):
        parts += ["", "Every configuration, on the files where each was measured:", "", table(configs, seed)]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--files", default=",".join([*protocol.ADBENCH_ALL, *protocol.CSV_SETS]))
    args = parser.parse_args()
    configs, seeds = args.configs.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; expected some of {list(CONFIGS)}")
    run(configs, seeds, args.files.split(","))
    text = report(configs, seeds[0])
    print(text)
    replace_section(ROOT / "docs" / "experiments" / "2026-12-02-generalization-ablation.md", "ablation", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
