"""``fraudvae monitor``: drift and alert rates of a file of recent traffic against a saved model."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_calibrate_commands", "add_monitor_commands", "add_score_log_options", "score_log_of"]


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


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from fraudvae.jobs.calibrate_job import recalibrate_file

    entry = recalibrate_file(
        args.model,
        args.data,
        label_column=args.label_column,
        normal_value=args.normal_value,
        target_precision=args.target_precision,
        target_recall=args.target_recall,
        target_fpr=args.target_fpr,
        out=args.out,
        who=args.who,
        time_column=args.time_column,
    )
    e = entry["expected"]
    print(f"Threshold {entry['old_threshold']:.6g} -> {entry['new_threshold']:.6g} ({entry['goal']}).")
    if e.get("precision") is not None:
        lo, hi = e["precision_ci95"]
        rlo, rhi = e["recall_ci95"]
        print(
            f"Expected precision {e['precision']:.3f} (95% interval {lo:.3f}-{hi:.3f}, {e['labelled_alerts']} labelled "
            f"alerts), recall {e['recall']:.3f} ({rlo:.3f}-{rhi:.3f}, {e['labelled_frauds']} labelled frauds)."
        )
        nxt = e["next_period"]
        plo, phi = nxt["precision_pi95"]
        print(
            f"Next period (as long as the labelled one): precision {nxt['precision']:.3f} (95% prediction interval "
            f"{plo:.3f}-{phi:.3f}; trend: {nxt['trend']}, false positives x{nxt['false_positive_rate_change_per_period']:.2f} "
            "per period)."
        )
    else:
        print(f"Alert rate on the traffic given: {e['alert_rate']:.3%} of {e['rows']} rows.")
    print(
        f"Saved to {args.out or args.model}; the audit entry is in versions.json. A running service: POST /model/reload."
    )
    return 0


def _cmd_feedback_import(args: argparse.Namespace) -> int:
    import json

    from fraudvae.jobs.feedback_job import import_feedback

    print(json.dumps(import_feedback(args.file, args.model, args.monitor_path), indent=2))
    return 0


def add_calibrate_commands(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate",
        help="a new model version with a threshold chosen from analysts' labels (or recent traffic)",
        description="Score labelled events (or recent unlabelled traffic) with a saved model and choose a new "
        "threshold: --target-precision or --target-recall with --label-column, or --target-fpr alone. Only the "
        "threshold changes; versions.json keeps an audit entry (who, when, which labels, old and new threshold, "
        "expected precision and recall with 95%% intervals, and next period's projected precision). Refused below 30 labelled alerts or 10 frauds.",
    )
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--data", "--labels", dest="data", required=True, help="events (.csv, .csv.gz, .parquet)")
    p.add_argument("--label-column", help="column of labels (missing = not labelled, left out)")
    p.add_argument("--normal-value", help="label value of legitimate rows (default: 0/false/no/legit)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-precision", type=float, help="precision to reach on the labelled events")
    target.add_argument("--target-recall", type=float, help="recall to reach among the labelled frauds")
    target.add_argument("--target-fpr", type=float, help="alert rate on recent unlabelled traffic")
    p.add_argument("--out", help="write the new version here (default: replace the model directory atomically)")
    p.add_argument("--who", help="name recorded in the audit entry (default: the login name)")
    p.add_argument(
        "--time-column",
        help="event times (numbers or date-times): a precision target then holds over the next period, following "
        "the labelled period's trend (default: a spec model's time column)",
    )
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser(
        "feedback",
        help="analysts' labels into the model's monitor store",
        description="Labels for scored events, as POST /feedback takes them, from a file.",
    )
    actions = p.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    q = actions.add_parser(
        "import",
        help="import labels from a CSV or Parquet file",
        description="Columns: event_id, label (fraud or legit), and optionally source (default analyst) and "
        "labelled_at (ISO 8601 or unix seconds; default now). Idempotent on (event_id, source); a later "
        "labelled_at replaces, every label stays in the history; unknown event ids are kept and reported.",
    )
    q.add_argument("file", help="labels: .csv, .csv.gz or .parquet")
    q.add_argument("--model", required=True, help="model directory (names the default monitor store)")
    q.add_argument(
        "--monitor-path",
        help="the monitor store: its SQLite file, or a fleet's redis://host:port/db[?prefix=NAME] (default: "
        "MODEL.monitor.sqlite)",
    )
    q.set_defaults(func=_cmd_feedback_import)


def add_score_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--score-log",
        help="also write a score log (.parquet): event id, time, model version, score, flag, top features",
    )
    p.add_argument("--id-column", help="the input column naming each event in the score log")


def score_log_of(args: argparse.Namespace) -> dict[str, Any]:
    """The score-log arguments of ``fraudvae score`` (local engine only: Spark refuses them)."""
    if args.score_log is None and args.id_column is None:
        return {}
    if args.engine == "spark":
        from fraudvae.exceptions import ConfigurationError

        raise ConfigurationError("--score-log is written by the local engine; drop --engine spark or --score-log.")
    return {"score_log": args.score_log, "id_column": args.id_column}
