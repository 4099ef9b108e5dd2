"""Label risk on the Fraud Detection Handbook's stream (issue 39): does terminal risk over confirmed fraud help?

``../shared/data/entity/fdh_customers_dev.csv.gz`` (simulated by the ULB/Worldline Fraud
Detection Handbook; most frauds come from compromised terminals), in time order: the model
is fitted on the normal rows of the first ``TRAIN_DAYS`` days (at most 20,000, as the
protocol samples) and measured on the days from ``TEST_FROM``. Features are computed over
the whole stream in one pass, point in time, as ``fraudvae train``/``evaluate`` do. Two
specs, the Handbook's own feature set split in two:

* ``customer``: the customer's count and mean amount over 1, 7 and 30 days;
* ``customer+terminal``: the same, plus the terminal's confirmed frauds and their share over
  1, 7 and 30 days ending 7 days before the event (a label counts 7 days after its event).

Metrics: AUROC, AUPRC, and the Handbook's card precision at 100 per day (per day, each
customer's highest score; the share of the top 100 customers with a fraud that day),
averaged over the test days. Seeds 0-4. One row per (spec, seed) in
``benchmarks/results/label_risk.jsonl`` (resumes); the table goes to BENCHMARKS.md.

Run:  .venv/bin/python benchmarks/label_risk.py      (about 6 minutes on 2 idle cores)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import protocol
from benchmarks.markdown import replace_section
from fraudvae import VAEDetector
from fraudvae.features.behaviour import model_frame
from fraudvae.features.stream import compute_features, parse_spec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "label_risk.jsonl"
FILE = protocol.SHARED_DATA / "entity" / "fdh_customers_dev.csv.gz"
TRAIN_DAYS, TEST_FROM = 120, 127  # a week's gap: the test's labels are not the training's
SEEDS = (0, 1, 2, 3, 4)
CUSTOMER = {
    "keys": ["CUSTOMER_ID"],
    "windows": ["1d", "7d", "30d"],
    "count": True,
    "mean": ["TX_AMOUNT"],
}
TERMINAL_RISK = {"keys": ["TERMINAL_ID"], "label": "TX_FRAUD", "windows": ["1d", "7d", "30d"], "delay": "7d"}
SPECS = {
    "customer": {"time": {"column": "TX_DATETIME"}, "entity": [CUSTOMER]},
    "customer+terminal": {"time": {"column": "TX_DATETIME"}, "entity": [CUSTOMER], "label_risk": [TERMINAL_RISK]},
}


def card_precision_at_100(day: np.ndarray, customer: np.ndarray, y: np.ndarray, score: np.ndarray) -> float:
    """The Handbook's daily card precision at k = 100, averaged over days."""
    frame = pd.DataFrame({"day": day, "customer": customer, "y": y, "score": score})
    cards = frame.groupby(["day", "customer"], sort=False).agg(score=("score", "max"), y=("y", "max")).reset_index()
    top = cards.sort_values("score", ascending=False, kind="stable").groupby("day", sort=True).head(100)
    return float(top.groupby("day")["y"].mean().mean())


def main() -> int:
    frame = pd.read_csv(FILE)
    day = frame["TX_TIME_DAYS"].to_numpy()
    y = frame["TX_FRAUD"].to_numpy().astype(bool)
    # The model reads the amount and the derived columns: ids are dropped by the spec, and the
    # time (all of the test lies after training) would only say "later".
    raw = frame.drop(columns=["TRANSACTION_ID", "TX_DATETIME", "TX_TIME_SECONDS", "TX_TIME_DAYS", "TX_FRAUD"])
    done = {(r["spec"], r["seed"]) for r in map(json.loads, OUT.read_text().splitlines())} if OUT.exists() else set()
    train_rows, test_rows = np.flatnonzero((day < TRAIN_DAYS) & ~y), np.flatnonzero(day >= TEST_FROM)
    with OUT.open("a") as out:
        for name, doc in SPECS.items():
            if all((name, s) in done for s in SEEDS):
                continue
            spec = parse_spec(doc)
            started = time.perf_counter()
            X = model_frame(raw, compute_features(frame, spec), spec)
            features_s = time.perf_counter() - started
            for seed in SEEDS:
                if (name, seed) in done:
                    continue
                rng = np.random.default_rng(seed)
                fit_rows = np.sort(
                    rng.choice(train_rows, min(protocol.MAX_TRAIN_NORMAL, train_rows.size), replace=False)
                )
                started = time.perf_counter()
                det = VAEDetector(random_state=seed).fit(X.iloc[fit_rows])
                fit_s = time.perf_counter() - started
                s = det.anomaly_score(X.iloc[test_rows])
                yt = y[test_rows]
                row = {
                    "spec": name,
                    "seed": seed,
                    "auroc": float(roc_auc_score(yt, s)),
                    "auprc": float(average_precision_score(yt, s)),
                    "card_precision_100": card_precision_at_100(
                        day[test_rows], frame["CUSTOMER_ID"].to_numpy()[test_rows], yt, s
                    ),
                    "test_rows": int(test_rows.size),
                    "test_frauds": int(yt.sum()),
                    "fit_s": fit_s,
                    "features_s": features_s,
                }
                print(json.dumps(row), flush=True)
                out.write(json.dumps(row) + "\n")
                out.flush()
    rows = [json.loads(line) for line in OUT.read_text().splitlines()]
    table = pd.DataFrame(rows).groupby("spec")[["auroc", "auprc", "card_precision_100"]].agg(["mean", "min", "max"])
    lines = [
        f"Handbook customers' dev half: fit on days 0-{TRAIN_DAYS - 1} (20,000 normal rows), test on days {TEST_FROM}+ "
        f"({rows[0]['test_rows']:,} events, {rows[0]['test_frauds']:,} frauds); seeds 0-4, mean (min-max). Terminal "
        "risk: frauds and share over 1, 7, 30 days ending 7 days before.",
        "",
        "| features | AUROC | AUPRC | card precision@100 per day |",
        "|---|---|---|---|",
    ]
    for name in SPECS:
        if name not in table.index:
            continue
        r = table.loc[name]
        cells = [
            f"{r[(m, 'mean')]:.3f} ({r[(m, 'min')]:.3f}-{r[(m, 'max')]:.3f})"
            for m in ("auroc", "auprc", "card_precision_100")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if set(SPECS) <= set(table.index):
        ratio = table.loc["customer+terminal", ("auprc", "mean")] / table.loc["customer", ("auprc", "mean")]
        per = pd.DataFrame(rows).pivot(index="seed", columns="spec", values="auprc")
        each = ", ".join(f"{v:.2f}x" for v in (per["customer+terminal"] / per["customer"]).tolist())
        lines += [
            "",
            f"AUPRC with terminal risk / without: **{ratio:.2f}x** on the means (bar: 2x); per seed {each}. The "
            "Handbook's supervised baseline on these features: "
            "[3.4](https://fraud-detection-handbook.github.io/fraud-detection-handbook/Chapter_3_GettingStarted/"
            "BaselineModeling.html) (labels, another split).",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    replace_section(ROOT / "BENCHMARKS.md", "label_risk", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
