"""The ``fraudvae`` command: a thin layer over :mod:`fraudvae.jobs.workflows` and friends.

Every user mistake ends in one line on stderr (``fraudvae: error: ...``) and a non-zero exit
status, never a traceback. Heavy modules (torch, pandas) load inside the commands: help is instant.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from fraudvae._version import __version__
from fraudvae.cli.monitor import add_calibrate_commands, add_monitor_commands, add_score_log_options, score_log_of
from fraudvae.cli.state import add_state_commands, add_state_option
from fraudvae.exceptions import ConfigurationError, FraudVAEError
from fraudvae.jobs.console import EpochProgress, describe_goal, describe_inits, say

__all__ = ["main"]

EXIT_USER_ERROR = 2


# ---------------------------------------------------------------------- commands
def _cmd_train(args: argparse.Namespace) -> int:
    from fraudvae.jobs.workflows import train_file

    progress = EpochProgress(args.quiet)
    params: dict[str, Any] = {"kind": args.kind, "random_state": args.seed}
    if args.epochs is not None:
        params["max_epochs"] = args.epochs
    if args.scoring is not None:
        params["scoring"] = args.scoring
    if args.score_samples is not None:
        params["n_score_samples"] = args.score_samples
    if args.prior_components is not None:
        params["prior_components"] = args.prior_components
    if args.n_init is not None:
        params["n_init"] = args.n_init
    if args.column_types:
        params["column_types"] = _pairs(args.column_types, "--column-types")
    try:
        result = train_file(
            args.data,
            args.out,
            label_column=args.label_column,
            normal_value=args.normal_value,
            time_column=args.time_column,
            drop_columns=_split_list(args.drop_columns),
            target_fpr=args.target_fpr,
            target_precision=args.target_precision,
            target_recall=args.target_recall,
            compare=not args.no_compare,
            features=args.features,
            on_epoch=progress,
            log=say(args.quiet),
            **params,
        )
    finally:
        progress.close()
    s = result.summary
    cal = s["calibration"]
    print(
        f"Saved model to {args.out}: fitted on {s['n_fit_rows']} normal rows in {s['fit_seconds']:.1f}s, "
        f"threshold {cal['threshold']:.4g} ({describe_goal(cal)})."
    )
    if result.detector.n_init > 1:
        print(describe_inits(result.detector))
    if s.get("comparison"):
        best = max(s["comparison"], key=lambda r: r["auroc"])
        print(
            f"Test split AUROC: VAE {s['comparison'][0]['auroc']:.3f}; best of the comparison: {best['method']} {best['auroc']:.3f}."
        )
    if args.label_column:
        print(
            f"Next: fraudvae evaluate --model {args.out} --data {args.data} --label-column {args.label_column} --out REPORT_DIR"
        )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fraudvae.jobs.workflows import evaluate_file

    result = evaluate_file(
        args.model,
        args.data,
        args.label_column,
        args.out,
        normal_value=args.normal_value,
        all_rows=args.all_rows,
        keep_columns=_split_list(args.keep_columns) if args.keep_columns is not None else None,
    )
    m = result.metrics
    at = m["at_threshold"]
    print(result.note)
    print(
        f"{result.n_rows} rows, {m['n_fraud']} fraud: AUROC {m['auroc']:.3f}, AUPRC {m['auprc']:.3f}; at the threshold "
        f"precision {at['precision']:.3f}, recall {at['recall']:.3f}, FPR {at['false_positive_rate']:.4f}."
    )
    print(f"Report: {result.report_dir / 'report.html'} (numbers in report.json, scores in scores.csv)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from fraudvae.jobs.demo import run_demo

    progress = EpochProgress(args.quiet)
    try:
        run_demo(args.out, rows=args.rows, seed=args.seed, on_epoch=progress, log=say(args.quiet))
    finally:
        progress.close()
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    """Print the one-line summary; exit 1 when the reject rate is too high."""
    keep = [c.strip() for c in (args.keep_columns or "").split(",") if c.strip()]
    common = {
        "keep_columns": keep,
        "explain_top_k": args.explain_top_k,
        "max_reject_rate": args.max_reject_rate,
        "history": args.history,
    }
    log = score_log_of(args)  # the local engine's; Spark refuses it
    if args.engine == "spark":
        score_path = _optional("fraudvae.jobs.spark", "spark", "--engine spark").score_path
        summary = score_path(args.model, args.input, args.output, master=args.master, **common)
    else:
        from fraudvae.jobs.batch import score_file

        chunks = args.chunk_rows
        summary = score_file(
            args.model, args.input, args.output, chunk_rows=chunks, progress=not args.quiet, **common, **log
        )
    print(summary.line())
    if summary.reject_rate > args.max_reject_rate:
        print(
            f"fraudvae: error: {summary.rows_rejected} of {summary.rows_read} rows rejected "
            f"({summary.reject_rate:.2%} > --max-reject-rate {args.max_reject_rate:.2%}); "
            f"see {args.output}.rejects.csv. {args.output} was not written.",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_features_suggest(args: argparse.Namespace) -> int:
    from fraudvae.data.io import read_table
    from fraudvae.features.suggest import suggest_spec, write_spec

    text, reasons = suggest_spec(read_table(args.data), label_column=args.label_column)
    for line in reasons:
        print(f"# {line}", file=sys.stderr)
    if args.out:
        write_spec(args.out, text)
        print(f"Wrote {args.out}; edit it, then: fraudvae train --data {args.data} --features {args.out} ...")
    else:
        print(text, end="")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    server = _optional("fraudvae_service.server", "service", "fraudvae serve")
    return int(server.run_server({k: getattr(args, k) for k in ("model", "host", "port", "workers", "state")}))


def _optional(module: str, extra: str, feature: str) -> Any:
    """Import a module of an optional extra, or stop with the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"{feature} needs the {extra!r} extra ({exc.name} is not installed): pip install 'fraudvae[{extra}]'"
        ) from exc


def _share(option: str) -> Callable[[str], float]:
    """An argparse type: a number strictly between 0 and 1, refused in one line otherwise."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:  # not a number: refused below as one
            value = math.nan
        if not 0.0 < value < 1.0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a share; expected a number between 0 and 1, e.g. 0.01")
        return value

    parse.__name__ = option
    return parse


def _pairs(text: str, option: str) -> dict[str, str]:
    """``a=x,b=y`` as a dict; a malformed item is a one-line error."""
    out = {}
    for item in _split_list(text):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigurationError(
                f"{option} item {item!r} is malformed; expected NAME=KIND, e.g. merchant=frequency."
            )
        out[name.strip()] = value.strip()
    return out


def _split_list(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudvae",
        description="Fraud and anomaly detection with a variational autoencoder: train on normal rows, "
        "calibrate a threshold, evaluate, and score in batch, on Spark or over HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"fraudvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="fit a detector on a CSV/Parquet file and save it",
        description="Fit a detector on a table and save the model directory with a training summary. "
        "With --label-column, only normal rows are fitted; a held-out split calibrates the threshold.",
    )
    p.add_argument("--data", required=True, help="training table: .csv, .csv.gz or .parquet")
    p.add_argument("--out", required=True, help="model directory to write (replaced atomically if it exists)")
    p.add_argument("--label-column", help="column holding the label; it is never used as a feature")
    p.add_argument("--normal-value", help="value of the label column that marks normal rows (default: 0/false/no)")
    p.add_argument(
        "--time-column",
        help="split by this column: fit on the oldest 60%%, calibrate on the next 20%%, "
        "test on the newest 20%% (default: a random stratified split)",
    )
    p.add_argument("--drop-columns", help="comma-separated columns to leave out of the features (ids, free text)")
    p.add_argument(
        "--column-types",
        help="NAME=KIND pairs, comma-separated, overriding what training infers: numeric, categorical, binary, "
        "datetime, frequency (model how often the value occurs), years (a date as years before the event) or "
        "exclude. Identifiers, free text and "
        "high-cardinality text are detected and named in a warning; this overrides that choice.",
    )
    goal = p.add_mutually_exclusive_group()
    goal.add_argument(
        "--target-fpr",
        type=_share("--target-fpr"),
        help="false-positive rate the threshold is set to (default 0.01; needs only normal rows)",
    )
    goal.add_argument(
        "--target-precision",
        type=_share("--target-precision"),
        help="precision the threshold is set to on the calibration split (needs --label-column)",
    )
    goal.add_argument(
        "--target-recall",
        type=_share("--target-recall"),
        help="recall the threshold is set to on the calibration split (needs --label-column)",
    )
    p.add_argument("--kind", choices=["vae", "ae", "dae", "ppca"], default="vae", help="model family (default vae)")
    p.add_argument("--scoring", choices=["elbo", "reconstruction", "iwae"], help="default score (default elbo)")
    p.add_argument("--epochs", type=int, help="maximum epochs (default: scaled to the data, early stopping)")
    p.add_argument(
        "--score-samples",
        type=int,
        help="draws of z per ELBO/IWAE score (default: the ELBO at the posterior mean, 16 draws for IWAE)",
    )
    p.add_argument("--prior-components", type=int, help="Gaussians in the learned prior (default 16; 0: N(0, I))")
    p.add_argument(
        "--n-init",
        type=int,
        help="initialisations to train, the lowest validation loss kept (default 1; each one is a whole fit)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed for the split, the weights and the scores (default 0)"
    )
    p.add_argument(
        "--features",
        metavar="SPEC",
        help="behavioural feature spec (TOML; start from 'fraudvae features suggest'): per-entity windows and "
        "within-row features, computed point-in-time and stored with the model",
    )
    p.add_argument("--no-compare", action="store_true", help="skip fitting the comparison detectors on the test split")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _threads_option(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="score a labelled file and write the HTML/JSON report",
        description="Score a labelled table with a saved model and write report.html, report.json and "
        "scores.csv. On the model's own training file only its held-out test split is scored.",
    )
    p.add_argument("--model", required=True, help="model directory written by 'fraudvae train'")
    p.add_argument("--data", required=True, help="labelled table: .csv, .csv.gz or .parquet")
    p.add_argument("--label-column", required=True, help="column holding the label")
    p.add_argument(
        "--normal-value", help="label value of normal rows (default: the one used in training, else 0/false/no)"
    )
    p.add_argument("--out", required=True, help="report directory to write")
    p.add_argument("--all-rows", action="store_true", help="score every row even if this is the training file")
    p.add_argument(
        "--keep-columns",
        help="comma-separated input columns (ids) copied into scores.csv and the report's top rows, to join "
        "results back (default: the columns training dropped, such as an id, when present)",
    )
    _threads_option(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "demo",
        help="train and evaluate on built-in synthetic card transactions",
        description="Generate the built-in card-transaction data, train, calibrate, evaluate and write "
        "the model and the report. Seeded: the numbers repeat.",
    )
    p.add_argument(
        "--out", default="demo_output", help="directory for the data, model and report (default demo_output)"
    )
    p.add_argument("--rows", type=int, default=40_000, help="transactions to generate (default 40000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the model (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _threads_option(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "features",
        help="behavioural features: propose a spec from a data file",
        description="Behavioural features (per-entity windows, time since previous, new values, within-row "
        "differences) are declared in a TOML spec passed to 'fraudvae train --features'.",
    )
    features = p.add_subparsers(dest="features_command", required=True, metavar="ACTION")
    q = features.add_parser(
        "suggest",
        help="propose a spec from the data, explaining each choice",
        description="Read a file and propose a spec: the event time, repeated id-like columns as entities, "
        "amount-like columns to aggregate, and time differences between timestamp columns. Each choice is "
        "explained; edit the spec and pass it to 'fraudvae train --features'.",
    )
    q.add_argument("--data", required=True, help="a table of events: .csv, .csv.gz or .parquet")
    q.add_argument("--label-column", help="the label column, never used in a feature")
    q.add_argument("--out", help="write the spec here (default: print it)")
    q.set_defaults(func=_cmd_features_suggest)

    p = sub.add_parser(
        "score",
        help="score a CSV/Parquet file of any size in chunks (or on Spark)",
        description="Stream a table through a saved model in constant memory. Rows that cannot be "
        "scored go to OUT.rejects.csv with their line number and reason; OUT appears atomically.",
    )
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument(
        "--input", required=True, help="input .csv, .csv.gz or .parquet (a directory of them with --engine spark)"
    )
    p.add_argument("--output", required=True, help="output .csv, .csv.gz or .parquet (format from the extension)")
    p.add_argument("--chunk-rows", type=int, default=20_000, help="rows per chunk (default 20000)")
    p.add_argument("--keep-columns", help="comma-separated input columns to copy to the output (ids, amounts)")
    p.add_argument("--explain-top-k", type=int, default=0, help="add the top K feature contributions per row")
    p.add_argument(
        "--max-reject-rate",
        type=float,
        default=0.0,
        help="fail (exit 1) when more than this share of rows is rejected (default 0)",
    )
    p.add_argument(
        "--history",
        help="earlier events (same columns) whose behaviour is the past of the input's events, for a model "
        "trained with --features; both files in time order",
    )
    add_score_log_options(p)
    p.add_argument("--engine", choices=["local", "spark"], default="local", help="local streaming (default) or Spark")
    p.add_argument("--master", default="local[2]", help="Spark master with --engine spark (default local[2])")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _threads_option(p)
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser(
        "serve",
        help="serve /score and /batch_score over HTTP",
        description="Start the HTTP scoring service (uvicorn). Settings may also come from FRAUDVAE_* "
        "environment variables; a missing or corrupt model stops the start-up with one line.",
    )
    p.add_argument("--model", help="model directory (or FRAUDVAE_MODEL_DIR)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1, or FRAUDVAE_HOST)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000, or FRAUDVAE_PORT)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default 1, or FRAUDVAE_WORKERS)")
    add_state_option(p)
    _threads_option(p)
    p.set_defaults(func=_cmd_serve)
    add_state_commands(sub)
    add_monitor_commands(sub)
    add_calibrate_commands(sub)
    return parser


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: FRAUDVAE_TORCH_THREADS, else chosen from the work and the CPUs this "
        "process may use; 1 for usual sizes, which stays fast on a busy machine)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            parser.error(f"--threads {args.threads} is invalid; expected a positive number of threads")
        threads = importlib.import_module("fraudvae.model.threads")  # torch: only once a command runs
        os.environ[threads.ENV_VAR] = str(args.threads)  # read by fitting, the batch job and the service alike
    try:
        with warnings.catch_warnings():
            # Library warnings (ignored columns, label-like names) become one readable line
            # each, printed once even when several detectors (the comparison) meet them.
            warnings.simplefilter("always")
            _shown.clear()
            warnings.showwarning = _show_warning  # type: ignore[assignment]
            return int(args.func(args))
    except FraudVAEError as exc:
        print(f"fraudvae: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"fraudvae: error: {exc.strerror or exc}: {exc.filename!r}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("fraudvae: interrupted", file=sys.stderr)
        return 130


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    text = str(message)
    if text in _shown:
        return
    _shown.add(text)
    print(f"fraudvae: warning: {text}", file=sys.stderr)


_shown: set[str] = set()
