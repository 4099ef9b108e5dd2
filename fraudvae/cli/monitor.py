"""``fraudvae monitor``: drift and alert rates of a file of recent traffic against a saved model."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_monitor_commands"]


def _cmd_monitor(args: argparse.Namespace) -> int:
    from fraudvae.jobs.monitor_job import monitor_file

    result = monitor_file(
        args.model,
        args.data,
        args.out,
        label_column=args.label_column,
        normal_value=args.normal_value,
        time_column=args.time_column,
        period=args.period,
    )
    d = result.document
    target = d["target_fpr"]
    print(
        f"{d['rows']} rows scored ({d['rejected']} rejected): alert rate {d['alert_rate']:.3%}"
        + (f" against a target FPR of {target:.2%}" if target is not None else "")
        + "."
    )
    if d["labels"] is not None:
        p, r = d["labels"]["precision"], d["labels"]["recall"]
        print(
            f"Labelled alerts: {d['labels']['labelled_alerts']}, precision "
            f"{'n/a' if p is None else f'{p:.3f}'}; recall among labelled frauds {'n/a' if r is None else f'{r:.3f}'}."
        )
    drifted = d["drifted_columns"]
    print(
        f"Drift in {len(drifted)} column(s){': ' + ', '.join(drifted) if drifted else ''}; score drift: {d['score_drifted']}."
    )
    print(f"Report: {result.out_dir / 'monitor.html'} (numbers in monitor.json)")
    return 0


def add_monitor_commands(sub: Any) -> None:
    p = sub.add_parser(
        "monitor",
        help="drift and alert rates of recent traffic against the model's training rows",
        description="Score a file of recent traffic with a saved model and compare it with the reference sample "
        "of training rows the model keeps: per column (Kolmogorov-Smirnov or chi-square on small windows, "
        "Wasserstein or Jensen-Shannon distance on large ones, unseen levels, missing rates) and for the score "
        "(against the calibration scores). Reports the alert rate against the target FPR, over time, and with "
        "labels the precision of labelled alerts. Writes monitor.html and monitor.json.",
    )
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--data", required=True, help="recent traffic: .csv, .csv.gz or .parquet")
    p.add_argument("--out", required=True, help="report directory to write")
    p.add_argument("--label-column", help="column of analysts' labels (missing = not labelled yet)")
    p.add_argument("--normal-value", help="label value of legitimate rows (default: 0/false/no/legit)")
    p.add_argument("--time-column", help="date-time column for alerts over time (default: the model's time column)")
    p.add_argument("--period", default="D", help="pandas period of the time buckets (default D: one day)")
    p.set_defaults(func=_cmd_monitor)
