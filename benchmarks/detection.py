"""Detection benchmark: fraudvae's default detector beside the peers, per ../shared/BENCHMARK.md.

Every dataset in ../shared/data, seeds 0, 1, 2, normal-only training, fixed splits; the
peers (IsolationForest with 200 trees, PyOD VAE, AutoEncoder, KNN and ECOD with their
library defaults) run in the same process on the same rows. Results are appended to a
JSON-lines file as each (dataset, seed, method) finishes, so an interrupted run resumes
where it stopped; the table is then written into BENCHMARKS.md between markers.

Run:  .venv/bin/python benchmarks/detection.py          (about 30-60 minutes on 2 cores)
      .venv/bin/python benchmarks/detection.py --fresh  (discard earlier results)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "benchmarks" / "results" / "detection.jsonl"
METHODS = ["fraudvae", "IsolationForest", "PyOD VAE", "PyOD AutoEncoder", "PyOD KNN", "PyOD ECOD"]


def _pyod(name: str, seed: int):  # type: ignore[no-untyped-def]
    if name == "PyOD VAE":
        from pyod.models.vae import VAE

        return VAE(random_state=seed, verbose=0)
    if name == "PyOD AutoEncoder":
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(random_state=seed, verbose=0)
    if name == "PyOD KNN":
        from pyod.models.knn import KNN

        return KNN()
    from pyod.models.ecod import ECOD

    return ECOD()


def run_method(method: str, split: protocol.Split) -> dict[str, float]:
    """Fit on the normal training rows, score the test rows; higher score = more anomalous."""
    started = time.perf_counter()
    if method == "fraudvae":
        det = VAEDetector(random_state=split.seed).fit(split.X_train)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        s = det.anomaly_score(split.X_test)
    else:
        A, B = protocol.peer_matrices(split.X_train, split.X_test)
        started = time.perf_counter()
        if method == "IsolationForest":
            model = IsolationForest(n_estimators=200, random_state=split.seed).fit(A)
            fit_s = time.perf_counter() - started
            started = time.perf_counter()
            s = -model.score_samples(B)
        else:
            model = _pyod(method, split.seed)
            model.fit(A)
            fit_s = time.perf_counter() - started
            started = time.perf_counter()
            s = model.decision_function(B)
    score_s = time.perf_counter() - started
    s = np.nan_to_num(np.asarray(s, dtype=np.float64), nan=0.0, posinf=1e300, neginf=-1e300)
    return {
        "auroc": float(roc_auc_score(split.y_test, s)),
        "auprc": float(average_precision_score(split.y_test, s)),
        "fit_s": fit_s,
        "score_s": score_s,
    }


def load_state() -> dict[tuple[str, int, str], dict]:
    done = {}
    if STATE.exists():
        for line in STATE.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(r["dataset"], r["seed"], r["method"])] = r
    return done


def table(results: pd.DataFrame) -> str:
    """Markdown: AUROC / AUPRC per dataset (mean over seeds), mean, rank, times."""
    g = results.groupby(["dataset", "method"])[["auroc", "auprc", "fit_s", "score_s"]].mean().reset_index()
    methods = [m for m in METHODS if m in set(g["method"])]
    datasets = list(dict.fromkeys(results["dataset"]))
    lines = []
    for metric in ("auroc", "auprc"):
        pivot = g.pivot(index="dataset", columns="method", values=metric).loc[datasets, methods]
        ranks = pivot.rank(axis=1, ascending=False).mean()
        lines.append(f"### {metric.upper()} (mean over seeds {sorted(set(results['seed']))})\n")
        lines.append("| dataset | " + " | ".join(methods) + " |")
        lines.append("|---|" + "---:|" * len(methods))
        for d in datasets:
            best = pivot.loc[d].max()
            cells = [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in pivot.loc[d]]
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        lines.append("| **mean** | " + " | ".join(f"{v:.3f}" for v in pivot.mean()) + " |")
        groups = (
            ("ADBench", [d for d in datasets if d not in protocol.CSV_SETS]),
            ("fraud CSV", [d for d in datasets if d in protocol.CSV_SETS]),
        )
        for label, part in groups:
            if part and len(part) < len(datasets):
                cells = " | ".join(f"{v:.3f}" for v in pivot.loc[part].mean())
                lines.append(f"| **mean, {len(part)} {label} files** | {cells} |")
        lines.append("| **average rank** | " + " | ".join(f"{v:.2f}" for v in ranks) + " |\n")
    times = g.groupby("method")[["fit_s", "score_s"]].sum().loc[methods]
    vae_fit = times.loc["fraudvae", "fit_s"] if "fraudvae" in times.index else float("nan")
    lines.append("### Time (seconds, summed over datasets, mean over seeds)\n")
    lines.append("| method | fit s | score s | fit time / fraudvae's |")
    lines.append("|---|---:|---:|---:|")
    for m, row in times.iterrows():
        lines.append(f"| {m} | {row['fit_s']:.1f} | {row['score_s']:.1f} | {row['fit_s'] / vae_fit:.2f} |")
    return "\n".join(lines) + "\n"


def summary(results: pd.DataFrame) -> str:
    """The front page's view: per method, mean AUROC / AUPRC overall, on the ADBench and the fraud files, and rank."""
    g = results.groupby(["dataset", "method"])[["auroc", "auprc"]].mean().reset_index()
    methods = [m for m in METHODS if m in set(g["method"])]
    datasets = list(dict.fromkeys(results["dataset"]))
    adbench = [d for d in datasets if d not in protocol.CSV_SETS]
    fraud = [d for d in datasets if d in protocol.CSV_SETS]
    pivots = {
        m: g.pivot(index="dataset", columns="method", values=m).loc[datasets, methods] for m in ("auroc", "auprc")
    }
    ranks = {m: p.rank(axis=1, ascending=False).mean() for m, p in pivots.items()}
    lines = [
        f"Mean AUROC / AUPRC over seeds {sorted(set(results['seed']))}; per file: "
        "[detection notes](docs/experiments/2026-12-02-detection-notes.md).",
        "",
        f"| method | all {len(datasets)} files | {len(adbench)} ADBench files | {len(fraud)} fraud CSV files | average rank |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in methods:
        cells = [
            " / ".join(f"{pivots[k].loc[part, m].mean():.3f}" for k in ("auroc", "auprc"))
            for part in (datasets, adbench, fraud)
        ]
        rank = f"{ranks['auroc'][m]:.2f} / {ranks['auprc'][m]:.2f}"
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {rank} |")
    return "\n".join(lines) + "\n"


def _coverage(results: pd.DataFrame, names: list[str], methods: list[str]) -> str:
    """Say which (dataset, method) cells are averaged over fewer than the three seeds."""
    counts = results.groupby(["dataset", "method"])["seed"].nunique()
    short = [
        f"{d} / {m}: {counts.get((d, m), 0)} seed(s)"
        for d in names
        for m in methods
        if counts.get((d, m), 0) < len(protocol.SEEDS)
    ]
    if not short:
        return "\nEvery cell is the mean over seeds 0, 1 and 2.\n"
    return (
        "\n**Incomplete run**: these cells have fewer than three seeds (the run resumes where it stopped): "
        + "; ".join(short)
        + ".\n"
    )


def run(names: list[str], seeds: tuple[int, ...], methods: list[str]) -> dict[tuple[str, int, str], dict]:
    """Run every (dataset, seed, method) not yet in the state file; return all results."""
    done = load_state()
    for split in protocol.splits(names, seeds):
        for method in methods:
            key = (split.name, split.seed, method)
            if key in done:
                continue
            r = {"dataset": split.name, "seed": split.seed, "method": method, **run_method(method, split)}
            with STATE.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            done[key] = r
            print(
                f"{split.name:18s} seed={split.seed} {method:17s} AUROC={r['auroc']:.3f} AUPRC={r['auprc']:.3f} "
                f"fit={r['fit_s']:.1f}s score={r['score_s']:.1f}s",
                flush=True,
            )
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="discard earlier results and start again")
    parser.add_argument("--datasets", help="comma-separated subset (default: every file in ../shared/data)")
    parser.add_argument("--methods", help=f"comma-separated subset of {METHODS}")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not touch BENCHMARKS.md")
    parser.add_argument("--report-only", action="store_true", help="run nothing; write the table from saved results")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2, the protocol)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.fresh and STATE.exists():
        STATE.unlink()
    STATE.parent.mkdir(parents=True, exist_ok=True)
    names = args.datasets.split(",") if args.datasets else protocol.dataset_names()
    methods = args.methods.split(",") if args.methods else METHODS
    seeds = tuple(int(s) for s in args.seeds.split(","))
    done = load_state() if args.report_only else run(names, seeds, methods)
    methods = METHODS if args.report_only else methods
    # The table is the protocol's seeds; further seeds (benchmarks/seed_spread.py) stay in the state file.
    results = pd.DataFrame([r for k, r in done.items() if k[0] in names and k[2] in methods and k[1] in protocol.SEEDS])
    text = table(results) + _coverage(results, names, methods)
    print(text)
    if not args.no_write:
        quality, _, times = text.partition("### Time (seconds")
        replace_section(ROOT / "BENCHMARKS.md", "detection", summary(results) + _coverage(results, names, methods))
        replace_section(ROOT / "docs" / "experiments" / "2026-12-02-detection-notes.md", "detection_tables", quality)
        notes = ROOT / "docs" / "experiments" / "2026-12-02-detection-notes.md"
        replace_section(notes, "detection_time", "### Time (seconds" + times if times else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
