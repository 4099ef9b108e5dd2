"""Recalibration from labels, measured forward in time (issue 38): does next month meet the stated precision?

BankSim's dev stream (``../shared/data/entity/banksim_dev.csv.gz``; ``step`` is the day), months
of 30 days. For seeds 0-2: fit the default detector on month 0's normal rows (at most 20,000),
calibrated at fit to a 1% false-positive rate as always; then for each later month k with
labels, recalibrate to a target precision on month k's labelled events
(:func:`fraudvae.monitor.recalibrate.new_calibration`, as ``fraudvae calibrate`` does) and
measure the precision and recall of that threshold on month k + 1, against the 95% prediction
interval the recalibration stated for the next period (``step``, the day, is the event time). The fit-time threshold's precision on month k + 1 is beside it.

Writes one row per (seed, target, month) to ``benchmarks/results/recalibration.jsonl``
(resumes) and the table to docs/experiments/2026-12-05-recalibration.md.

Run:  .venv/bin/python benchmarks/recalibration.py      (about 5 minutes on 2 idle cores)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.exceptions import InsufficientDataError
from fraudvae.monitor.recalibrate import new_calibration

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "recalibration.jsonl"
DOC = ROOT / "docs" / "experiments" / "2026-12-05-recalibration.md"
FILE = protocol.SHARED_DATA / "entity" / "banksim_dev.csv.gz"
TARGETS = (0.5, 0.7)
SEEDS = (0, 1, 2)


def _rates(scores: np.ndarray, y: np.ndarray, threshold: float) -> tuple[float | None, float, int]:
    alerts = scores > threshold
    precision = float(y[alerts].mean()) if alerts.any() else None
    return precision, float(alerts[y].mean()), int(alerts.sum())


def main() -> int:
    frame = pd.read_csv(FILE)
    steps = frame.pop("step").to_numpy().astype(np.float64)
    month = (steps // 30).astype(np.int64)
    y_all = frame.pop("fraud").to_numpy().astype(bool)
    done = (
        {(r["seed"], r["target"], r["month"]) for r in map(json.loads, OUT.read_text().splitlines())}
        if OUT.exists()
        else set()
    )
    months = sorted(set(month.tolist()))
    with OUT.open("a") as out:
        for seed in SEEDS:
            todo = [(t, k) for t in TARGETS for k in months[1:-1] if (seed, t, k) not in done]
            if not todo:
                continue
            train = frame[(month == 0) & ~y_all]
            if len(train) > protocol.MAX_TRAIN_NORMAL:
                train = train.iloc[
                    np.random.default_rng(seed).choice(len(train), protocol.MAX_TRAIN_NORMAL, replace=False)
                ]
            started = time.perf_counter()
            det = VAEDetector(random_state=seed).fit(train)
            fit_s = time.perf_counter() - started
            scores = {k: det.anomaly_score(frame[month == k]) for k in months[1:]}
            for target, k in todo:
                y_k, y_next = y_all[month == k], y_all[month == k + 1]
                row = {"seed": seed, "target": target, "month": k, "fit_s": fit_s}
                try:
                    _, entry = new_calibration(
                        det.engine_.calibration,
                        scores[k],
                        y_k,
                        target_precision=target,
                        source={"month": k},
                        times=steps[month == k],
                    )
                except InsufficientDataError as exc:
                    row["refused"] = str(exc)
                else:
                    precision, recall, alerts = _rates(scores[k + 1], y_next, entry["new_threshold"])
                    nxt = entry["expected"]["next_period"]
                    lo, hi = nxt["precision_pi95"]
                    fit_p, fit_r, _ = _rates(scores[k + 1], y_next, det.threshold_)
                    row |= {
                        "stated": nxt["precision"],
                        "ci": [lo, hi],
                        "labelled_precision": entry["expected"]["precision"],
                        "labelled_alerts": entry["expected"]["labelled_alerts"],
                        "fp_change": nxt["false_positive_rate_change_per_period"],
                        "next_precision": precision,
                        "next_recall": recall,
                        "next_alerts": alerts,
                        "within": precision is not None and lo <= precision <= hi,
                        "meets_target": precision is not None and precision >= target,
                        "fit_threshold_precision": fit_p,
                        "fit_threshold_recall": fit_r,
                    }
                print(json.dumps(row), flush=True)
                out.write(json.dumps(row) + "\n")
                out.flush()
    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    lines = [
        "BankSim dev, fit on month 0's normal rows (1% FPR at fit); recalibrated on month k's labels to the target "
        "precision over the next period (the month's trend carried forward); measured on month k + 1. Seeds 0-2.",
        "",
        "| target | seed | month k | month k: precision (alerts) | false positives per month | stated for k+1 (95% interval) | month k+1 precision | recall | alerts | within | meets target | fit threshold: precision / recall |",
        "|---:|---:|---:|---|---:|---|---:|---:|---:|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["target"], r["seed"], r["month"])):
        if "refused" in r:
            lines.append(
                f"| {r['target']} | {r['seed']} | {r['month']} | refused: {r['refused'][:70]} | | | | | | | | |"
            )
            continue
        p = "n/a" if r["next_precision"] is None else f"{r['next_precision']:.3f}"
        fp = "n/a" if r["fit_threshold_precision"] is None else f"{r['fit_threshold_precision']:.3f}"
        lines.append(
            f"| {r['target']} | {r['seed']} | {r['month']} | {r['labelled_precision']:.3f} ({r['labelled_alerts']}) | "
            f"x{r['fp_change']:.2f} | {r['stated']:.3f} ({r['ci'][0]:.3f}-{r['ci'][1]:.3f}) | "
            f"{p} | {r['next_recall']:.3f} | {r['next_alerts']} | {'yes' if r['within'] else '**no**'} | "
            f"{'yes' if r['meets_target'] else '**no**'} | {fp} / {r['fit_threshold_recall']:.3f} |"
        )
    measured = [r for r in rows if "refused" not in r]
    within = sum(r["within"] for r in measured)
    meets = sum(r["meets_target"] for r in measured)
    first = [r for r in measured if r["month"] == min(r["month"] for r in rows)]
    lines += [
        "",
        f"Next month's precision within the stated interval: {within} of {len(measured)} recalibrations; at or above "
        f"the target: {meets} of {len(measured)}; refused: {len(rows) - len(measured)}. From the first month's labels: "
        f"{sum(r['within'] and r['meets_target'] for r in first)} of {len(first)} within and on target.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(DOC, "recalibration", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
