"""Score estimator and draw count: AUROC/AUPRC of one fitted detector scored several ways.

Seeds 0-2 of the detection protocol on every file in ../shared/data: one default
``VAEDetector`` per dataset and seed, then its test split scored by the negative ELBO and the IWAE
bound with 1 to 32 fixed draws, by the ELBO with 0 draws (its reconstruction term at the
posterior mean, ``n_score_samples=0``), and by the reconstruction term alone. Scoring costs
one decoder pass per draw (plus one at the posterior mean), so this is the quality side of
the batch throughput trade-off.

The table gives each dataset's AUROC averaged over the seeds.

Run: .venv/bin/python benchmarks/draws.py               (about 12 minutes on 2 cores)
     .venv/bin/python benchmarks/draws.py --seeds 0     (one seed, about 4 minutes)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks import protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector

ROOT = Path(__file__).resolve().parents[1]
DRAWS = (0, 1, 2, 4, 8, 16, 32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated protocol seeds")
    seeds = tuple(int(s) for s in parser.parse_args(argv).seeds.split(","))
    columns = [f"elbo {k}" for k in DRAWS] + [f"iwae {k}" for k in DRAWS if k > 1] + ["reconstruction"]
    auroc: dict[str, list[float]] = {c: [] for c in columns}
    auprc: dict[str, list[float]] = {c: [] for c in columns}
    names: list[str] = []
    for sp in protocol.splits(protocol.dataset_names(), seeds=seeds):
        det = VAEDetector(random_state=sp.seed).fit(sp.X_train)
        names.append(sp.name)
        scored: dict[str, np.ndarray] = {}
        for k in DRAWS:
            det.set_params(n_score_samples=k)  # takes effect at once: the draws follow the plan
            scored[f"elbo {k}"] = det.anomaly_score(sp.X_test, scoring="elbo")
            if k > 1:
                scored[f"iwae {k}"] = det.anomaly_score(sp.X_test, scoring="iwae")
        scored["reconstruction"] = det.anomaly_score(sp.X_test, scoring="reconstruction")
        for c in columns:
            auroc[c].append(roc_auc_score(sp.y_test, scored[c]))
            auprc[c].append(average_precision_score(sp.y_test, scored[c]))
        print(sp.name, sp.seed, {c: round(auroc[c][-1], 4) for c in columns}, flush=True)
    lines = ["| dataset | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name in dict.fromkeys(names):
        rows = [i for i, n in enumerate(names) if n == name]
        lines.append(f"| {name} | " + " | ".join(f"{np.mean([auroc[c][i] for i in rows]):.3f}" for c in columns) + " |")
    lines.append("| **mean AUROC** | " + " | ".join(f"**{np.mean(auroc[c]):.4f}**" for c in columns) + " |")
    if len(seeds) > 1:
        seed_of = [i % len(seeds) for i in range(len(names))]  # splits() yields seeds innermost
        lines.append(
            "| mean AUROC per seed | "
            + " | ".join(
                " / ".join(
                    f"{np.mean([a for a, s in zip(auroc[c], seed_of, strict=True) if s == j]):.3f}"
                    for j in range(len(seeds))
                )
                for c in columns
            )
            + " |"
        )
    lines.append("| **mean AUPRC** | " + " | ".join(f"**{np.mean(auprc[c]):.4f}**" for c in columns) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(ROOT / "docs" / "experiments" / "2026-11-23-draws.md", "draws", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
